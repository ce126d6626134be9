"""Keeps patient identifiers out of log files.

By design RadPlan logs counts, internal ids and UIDs, never names or patient IDs. As a second line of defence,
every identifier the code meets (patient ID, name and its components, birth date) is registered here, and a
logging filter installed on every handler replaces them in the formatted message.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = ["PhiRedactingFilter", "redact", "register_phi"]

_lock = threading.Lock()
_terms: set[str] = set()
_pattern: re.Pattern[str] | None = None
REPLACEMENT = "[redacted]"


def register_phi(*values: object) -> None:
    """Remember identifiers to be scrubbed from logs (values shorter than 3 characters are ignored)."""
    global _pattern
    new = set()
    for value in values:
        text = str(value or "").strip()
        # a DICOM PN is family^given^middle^prefix^suffix, with up to three '='-separated groups
        # (alphabetic=ideographic=phonetic)
        for part in {text, *re.split(r"[\^= ]+", text), *text.split("=")}:
            if len(part) >= 3:
                new.add(part)
    with _lock:
        if new - _terms:
            _terms.update(new)
            alternatives = sorted(_terms, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(t) for t in alternatives), re.IGNORECASE)


def redact(text: str) -> str:
    pattern = _pattern
    return pattern.sub(REPLACEMENT, text) if pattern is not None else text


class PhiRedactingFilter(logging.Filter):
    """Formats the record's message once and replaces every registered identifier in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the logging call must not raise, and nothing may leak
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            message = f"{record.msg} (unformattable arguments: {', '.join(repr(a) for a in args)})"
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
