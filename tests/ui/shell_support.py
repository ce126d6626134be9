"""Helpers for the GUI-shell tests: a real demo workspace (store created with core APIs) and a signed-in window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.settings import Settings
from core.workstation.context import WorkstationContext
from core.workstation.demo import DemoWorkspace, build_demo_workspace
from ui.app import create_application
from ui.main_window import MainWindow

SMALL = {"shape": (96, 96, 40), "spacing_mm": (4.0, 4.0, 5.0)}


def workspace(tmp_path: Path, seed: int = 0) -> DemoWorkspace:
    return build_demo_workspace(tmp_path / "ws", seed=seed, **SMALL)  # type: ignore[arg-type]


def open_window(qtbot: Any, ws: DemoWorkspace, *, auto_lock_minutes: float = 10.0, **ctx: Any) -> MainWindow:
    app = create_application()  # reuses pytest-qt's QApplication and gives it the theme, as `radplan gui` does
    app.setProperty("radplan_no_dialogs", True)  # errors go to the status bar, no modal box blocks the test
    context = WorkstationContext(settings=Settings(data_dir=ws.data_dir, auto_lock_minutes=auto_lock_minutes),
                                 open_store=lambda: ws.store, demo_folder=ws.demo_folder, **ctx)  # fmt: skip
    window = MainWindow(context, ws.store)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()  # shortcuts need the active window (Xvfb has no window manager to give it)
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    return window


def sign_in(qtbot: Any, window: MainWindow, name: str, password: str, *, expect_ok: bool = True) -> None:
    window.login.user.setText(name)
    window.login.password.setText(password)
    window.login.button.click()
    if expect_ok:
        qtbot.waitUntil(lambda: window.pages.currentIndex() == 1, timeout=20000)
    else:
        qtbot.waitUntil(lambda: bool(window.login.error.text()), timeout=20000)


def tab_titles(window: MainWindow) -> list[str]:
    return [window.tabs.tabText(i) for i in range(window.tabs.count())]


def close(qtbot: Any, window: MainWindow, ws: DemoWorkspace) -> None:
    qtbot.wait(300)  # let the viewer's deferred 3-D fill run while its GL window still exists
    window.close()
    assert window.runner.wait_idle(30000)
    ws.store.close()
