"""QApplication set-up: HiDPI, the dark theme, the application identity."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from ui.theme import apply_dark_theme

__all__ = ["TorchBlocker", "create_application", "install_excepthook", "keep_torch_out"]


#: How long a thread running Python may keep the GIL while another waits for it (CPython's default: 5 ms). The UI
#: thread re-enters Python for every slot and Python-side event handler of a paint; each re-entry can wait this long
#: while a worker thread parses DICOM, so the GUI process asks for 1 ms.
GUI_SWITCH_INTERVAL_S = 0.001


def create_application(argv: list[str] | None = None) -> QApplication:
    """The process's QApplication (reused if one exists): HiDPI scale factors passed through unrounded."""
    sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        apply_dark_theme(existing)
        return existing
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("RadPlan")
    app.setOrganizationName("RadPlan")
    app.setApplicationDisplayName("RadPlan Workstation")
    apply_dark_theme(app)
    return app


class TorchBlocker(importlib.abc.MetaPathFinder):
    """Makes `import torch` fail in the GUI process. Inference runs in the engine worker process; in the GUI,
    spaCy's thinc would import PyTorch (seconds, mostly holding the GIL: the window freezes) only to offer torch
    models that the rule-based NLP never uses. Libraries treat the ImportError as "PyTorch not installed"."""

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: Any = None) -> None:
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("PyTorch is not loaded in the GUI process (the engine runs inference)", name=name)
        return None


def keep_torch_out() -> Callable[[], None]:
    """Install the TorchBlocker unless PyTorch is loaded already; returns the function that removes it."""
    if "torch" in sys.modules:
        return lambda: None
    blocker = TorchBlocker()
    sys.meta_path.insert(0, blocker)
    return lambda: sys.meta_path.remove(blocker) if blocker in sys.meta_path else None


def install_excepthook(show: Callable[[str], None]) -> None:
    """An exception escaping a Qt slot becomes a sentence for the person (`show`) and a log entry with the traceback
    (log file only), instead of a traceback on stderr."""
    import logging

    from core.workstation.messages import friendly_message

    log = logging.getLogger("radplan.gui")

    def hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        log.error("unhandled %s in the GUI", kind.__name__, exc_info=(kind, exc, tb))
        try:
            show(friendly_message(exc, "that action"))
        except Exception:
            log.exception("could not show the error")

    sys.excepthook = hook
