"""`radplan gui`: the workstation window (also what `radplan` with no command opens when a display exists).

`--smoke` builds a throw-away store with a demo study and a radiologist, signs in, opens the study, renders every
panel, optionally saves a screenshot of the whole window, and exits 0 (1 when the render is blank)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app.bootstrap import AppContext
from app.cli.common import pass_app

if TYPE_CHECKING:
    from core.workstation.context import WorkstationContext

__all__ = ["backend_name", "gui", "has_display", "workstation_context"]


def has_display() -> bool:
    """True when a window can be shown (X11/Wayland display, Windows/macOS, or an offscreen Qt platform)."""
    if sys.platform in ("win32", "darwin"):
        return True
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal", "vnc"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def backend_name() -> str:
    """The inference backend the engine would pick for a segmentation (`auto`) on this machine, e.g.
    'onnxruntime (cpu)' when TensorRT is installed but no GPU is visible (engines' light probe: no backend is
    imported, so the window still appears at once)."""
    from engines.backends.availability import expected_auto_choice

    try:
        return expected_auto_choice()
    except Exception as exc:  # a status-bar label must never stop the window from opening
        return f"unknown ({type(exc).__name__})"


@click.command("gui")
@click.option("--smoke", is_flag=True, help="Demo store and study, render every panel, exit (for tests and CI).")
@click.option(
    "--screenshot",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With --smoke: save a PNG of the whole window here.",
)
@click.option("--study", "study_uid", metavar="UID", help="Open this study after sign-in.")
@click.option("--startup-probe", is_flag=True, hidden=True, help="Print the start-up time once visible, exit (bench).")
@pass_app
def gui(app: AppContext, smoke: bool, screenshot: Path | None, study_uid: str | None, startup_probe: bool) -> None:
    """Open the workstation window: worklist, viewer, segmentation, analysis, plan review, jobs, settings."""
    if not has_display():
        raise click.ClickException("no display: set DISPLAY (or run under xvfb-run) to open the window")
    if screenshot is not None and not smoke:
        raise click.UsageError("--screenshot goes with --smoke")
    started = time.perf_counter()
    from ui.app import create_application, install_excepthook, keep_torch_out

    backend = backend_name()  # before the blocker: find_spec("torch") must still see the installed package
    keep_torch_out()
    qt_app = create_application()
    if smoke:
        from ui.smoke import run_smoke

        code = run_smoke(qt_app, screenshot, started)
        raise click.exceptions.Exit(code)
    from ui.main_window import MainWindow

    window = MainWindow(workstation_context(app, backend))
    install_excepthook(window.show_error)
    window.show()
    if startup_probe:
        _probe(qt_app, window, started)
    if study_uid:
        window.signed_in.connect(lambda: window.open_study(study_uid))
    code = qt_app.exec()
    raise click.exceptions.Exit(code)


def workstation_context(app: AppContext, backend: str) -> WorkstationContext:
    """What the window gets from the composition root. A passphrase-mode store is opened with the passphrase typed
    on the sign-in page, unless RADPLAN_PASSPHRASE is set: then open_store() uses it and the window never asks (the
    window never falls back to a terminal prompt: it may have no terminal)."""
    from core.workstation.context import WorkstationContext

    phrase_in_env = bool(os.environ.get("RADPLAN_PASSPHRASE"))
    return WorkstationContext(
        settings=app.settings,
        open_store=app.store,
        ensure_worker=getattr(app, "ensure_worker", None),
        backend_name=lambda: backend,
        open_store_with_passphrase=app.open_store_with_passphrase,
        needs_passphrase=lambda: not phrase_in_env and app.store_needs_passphrase(),
    )


def _probe(qt_app: object, window: object, started: float) -> None:
    """bench/gui_startup.py: report when the window is exposed (seconds since this command started; the caller adds
    interpreter start-up) and which heavy modules were loaded by then, then quit."""
    from PySide6.QtCore import QTimer

    def check() -> None:
        if window.isVisible() and window.windowHandle() is not None and window.windowHandle().isExposed():  # type: ignore[attr-defined]
            heavy = [m for m in ("torch", "onnxruntime", "radiomics", "spacy", "sklearn", "vtkmodules.vtkRenderingCore",
                                 "pyqtgraph", "pynetdicom") if m in sys.modules]  # fmt: skip
            click.echo(f"gui-visible {time.perf_counter() - started:.4f} cpu={time.process_time():.4f} "
                       f"heavy={','.join(heavy) or '-'}", err=True)  # fmt: skip
            qt_app.quit()  # type: ignore[attr-defined]
        else:
            QTimer.singleShot(5, check)

    QTimer.singleShot(0, check)
