"""What the composition root (app/) hands the GUI: settings and callables, never app objects themselves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings
from core.store.store import Store

__all__ = ["WorkstationContext"]


@dataclass(frozen=True)
class WorkstationContext:
    """settings; open_store() opens (or returns) the process's store; ensure_worker() starts the background
    engine process when none is alive (None: this installation has no engine worker); backend_name() names the
    active inference backend for the status bar; demo_folder: where `--smoke` put the demo study (note.txt).
    needs_passphrase() says whether the store must be opened with a passphrase the person types in the window (a
    passphrase-mode store and none given in the environment); open_store_with_passphrase(phrase) then opens it
    (WrongKeyError on a wrong one) and keeps it as the process's store (None: the window never asks)."""

    settings: Settings
    open_store: Callable[[], Store]
    ensure_worker: Callable[[], object] | None = None
    backend_name: Callable[[], str] = field(default=lambda: "not started")
    demo_folder: Path | None = None
    open_store_with_passphrase: Callable[[str], Store] | None = None
    needs_passphrase: Callable[[], bool] = field(default=lambda: False)
