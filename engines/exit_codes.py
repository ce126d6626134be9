"""Exit statuses of the engine worker process, shared by the worker and its host without importing the worker."""

from __future__ import annotations

__all__ = ["EXIT_LOCKED"]

EXIT_LOCKED = 75  # EX_TEMPFAIL: another worker holds the lock
