"""Logging: a rotating file in <data dir>/logs, warnings on stderr, patient identifiers scrubbed on every handler."""

from __future__ import annotations

import logging
import logging.handlers
import os
from typing import TextIO

from core.logsafe import PhiRedactingFilter
from core.settings import Settings

__all__ = ["configure_logging"]

_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Opens the log file readable by its owner only, also the fresh file after each rollover."""

    def _open(self) -> TextIO:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # a file that already existed keeps its mode otherwise
            return open(fd, "a", encoding=self.encoding, errors=self.errors)
        except BaseException:
            os.close(fd)
            raise


def configure_logging(settings: Settings, *, verbose: bool = False) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG if verbose else getattr(logging, settings.log_level.upper(), logging.INFO))
    redactor = PhiRedactingFilter()
    log_dir = settings.data_dir / "logs"
    try:
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_dir.chmod(0o700)
        file_handler = _PrivateRotatingFileHandler(
            log_dir / "radplan.log",
            maxBytes=settings.log_max_bytes,
            backupCount=settings.log_backups,
            encoding="utf-8",
        )
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        file_handler.addFilter(redactor)
        root.addHandler(file_handler)
    except OSError:
        pass  # a read-only data dir must not stop the CLI; stderr still gets warnings
    err = logging.StreamHandler()
    err.setLevel(logging.DEBUG if verbose else logging.WARNING)
    err.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    err.addFilter(redactor)
    if not verbose:  # records logged with extra={"file_only": True} (tracebacks of internal errors) stay in the file
        err.addFilter(lambda record: not getattr(record, "file_only", False))
    root.addHandler(err)
