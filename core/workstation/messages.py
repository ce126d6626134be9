"""Errors as plain sentences with what to do; never a traceback on screen (the log file keeps the details)."""

from __future__ import annotations

import logging

from core.errors import AuthenticationError, PermissionDeniedError, RadPlanError, SessionLockedError

__all__ = ["friendly_message"]

log = logging.getLogger("radplan.gui")


def friendly_message(exc: BaseException, doing: str) -> str:
    """One or two sentences for the person: what failed while `doing` and what to do next."""
    text = str(exc).strip().rstrip(".")
    if isinstance(exc, SessionLockedError):
        return "The session is locked after inactivity. Unlock it with your password to go on."
    if isinstance(exc, AuthenticationError):
        return f"Sign-in failed: {text}. Check the user name and password (caps lock?) and try again."
    if isinstance(exc, PermissionDeniedError):
        return f"Not allowed: {text}. Ask an administrator if your role should permit this."
    if isinstance(exc, RadPlanError):
        return f"{doing.capitalize()} failed: {text}."
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return (
            f"{doing.capitalize()} failed: the network connection did not work ({type(exc).__name__}). "
            "Check the PACS node settings and the network, then try again."
        )
    if isinstance(exc, (ValueError, KeyError)):
        return f"{doing.capitalize()} failed: {text.strip(chr(39) + chr(34))}. Correct the input and try again."
    if isinstance(exc, OSError):
        return f"{doing.capitalize()} failed: {exc.strerror or text}. Check the file or folder and try again."
    log.error("internal error while %s", doing, exc_info=exc)
    return (
        f"{doing.capitalize()} failed because of an internal error ({type(exc).__name__}). Your input is kept; "
        "details are in the log file (logs/radplan.log under the data folder). Try again, and report it if it "
        "happens again."
    )
