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
    active inference backend for the status bar; demo_folder: where `--smoke` put the demo study (note.txt)."""

    settings: Settings
    open_store: Callable[[], Store]
    ensure_worker: Callable[[], object] | None = None
    backend_name: Callable[[], str] = field(default=lambda: "not started")
    demo_folder: Path | None = None
