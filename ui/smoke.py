"""`radplan gui --smoke`: a demo workspace, sign in, open the demo study, render every panel, screenshot, exit."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QWidget

from core.settings import Settings
from core.workstation.context import WorkstationContext
from core.workstation.demo import RADIOLOGIST, build_demo_workspace

__all__ = ["grab_window", "image_is_blank", "run_smoke", "wait_until"]


def wait_until(predicate: Callable[[], bool], timeout_s: float, step_ms: int = 20) -> bool:
    app = QApplication.instance()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()  # type: ignore[union-attr]
        if predicate():
            return True
        time.sleep(step_ms / 1000)
    app.processEvents()  # type: ignore[union-attr]
    return predicate()


def grab_window(window: QWidget) -> QImage:
    """The window as on screen (OpenGL/VTK content included) - the screen's pixels where a screen exists."""
    window.raise_()
    QApplication.processEvents()
    screen = window.screen()
    image = screen.grabWindow(window.winId()).toImage() if screen is not None else QImage()
    if image.isNull() or image_is_blank(image):
        image = window.grab().toImage()
    return image


def image_is_blank(image: QImage, min_std: float = 4.0) -> bool:
    """True for a null, single-colour or almost uniform (blank/black) image."""
    if image.isNull() or image.width() < 8 or image.height() < 8:
        return True
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    pixels = arr[:, : img.width() * 3].astype(np.float32)
    return float(pixels.std()) < min_std or float(pixels.max()) < 16


def run_smoke(app: QApplication, screenshot: Path | None, started: float) -> int:
    """Open the demo study in a throw-away workspace, render every panel, save the screenshot; 0 when nothing was
    blank. The workspace (an encrypted store with the demo patient) is deleted afterwards, whatever happened."""
    root = Path(tempfile.mkdtemp(prefix="radplan-gui-smoke-"))
    try:
        return _smoke(app, screenshot, started, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _smoke(app: QApplication, screenshot: Path | None, started: float, root: Path) -> int:
    from ui.main_window import MainWindow

    ws = build_demo_workspace(root)
    ctx = WorkstationContext(settings=Settings(data_dir=ws.data_dir), open_store=lambda: ws.store,
                             demo_folder=ws.demo_folder)  # fmt: skip
    app.setProperty("radplan_no_dialogs", True)
    window = MainWindow(ctx, ws.store)
    window.show()
    wait_until(window.isVisible, 5)
    print(f"window visible after {time.perf_counter() - started:.3f} s (demo workspace included)", file=sys.stderr)
    window.login.user.setText(RADIOLOGIST)
    window.login.password.setText(ws.passwords[RADIOLOGIST])
    window.login.button.click()
    if not wait_until(lambda: window.pages.currentIndex() == 1, 30):
        print(f"smoke: sign-in failed: {window.login.error.text()}", file=sys.stderr)
        return 1
    window.open_study(ws.study_uid)
    if not wait_until(lambda: window.study is not None, 120):
        print("smoke: the demo study did not open", file=sys.stderr)
        return 1
    if not wait_until(lambda: window.study is not None and window.study.overlays_loaded, 120):
        print("smoke: the study's RT Structure Set and RT Dose did not load", file=sys.stderr)
        return 1
    plan = window.panels.get("plan")
    if plan is not None:
        plan.create_plan()  # type: ignore[attr-defined]
        wait_until(lambda: plan.record is not None, 120)  # type: ignore[attr-defined]
    blank = []
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        wait_until(lambda: False, 0.3)
        if image_is_blank(window.tabs.currentWidget().grab().toImage()):
            blank.append(window.tabs.tabText(index))
    window.show_panel("viewer")
    host = window.panels.get("viewer")
    wait_until(lambda: getattr(host, "masks_up_to_date", True), 60)  # masks are packed in a worker
    wait_until(lambda: False, 0.5)
    image = grab_window(window)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(screenshot))
        print(f"screenshot {image.width()}x{image.height()} written to {screenshot}", file=sys.stderr)
    code = 0
    if image_is_blank(image) or blank:
        print(f"smoke: blank render: {'window' if image_is_blank(image) else ', '.join(blank)}", file=sys.stderr)
        code = 1
    window.close()
    ws.store.close()
    return code
