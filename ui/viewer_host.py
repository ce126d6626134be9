"""Hosts the VIEWER helper's ui.viewer.ViewerPanel in the window and feeds it the open study and masks."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from core.workstation.study import OpenStudy
from ui.common import notice

if TYPE_CHECKING:
    from ui.main_window import MainWindow

__all__ = ["ViewerHost"]

log = logging.getLogger("radplan.gui")


def _viewer_class() -> Any:
    try:
        from ui.viewer import ViewerPanel
    except ImportError as exc:  # the viewer is built separately; the shell keeps working without it
        log.warning("viewer not available: %s", exc)
        return None
    return ViewerPanel


class ViewerHost(QWidget):
    def __init__(self, shell: MainWindow) -> None:
        super().__init__()
        self.shell = shell
        cls = _viewer_class()
        self.viewer: Any = cls() if cls is not None else None
        self.preset = QComboBox(objectName="viewer_preset")
        self.info = QLabel("No study open: open one from the worklist (Ctrl+1).")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Window preset"))
        bar.addWidget(self.preset)
        bar.addWidget(self.info, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        if self.viewer is None:
            self.preset.setEnabled(False)
            layout.addWidget(notice("The image viewer is not available in this build yet (ui.viewer is missing)."))
            layout.addStretch(1)
        else:
            from core.viewer import WINDOW_PRESETS

            self.preset.addItems(list(WINDOW_PRESETS))
            self.preset.setCurrentText(self.viewer.state.preset or "")
            self.preset.currentTextChanged.connect(self.set_preset)
            layout.addWidget(self.viewer, 1)
        shell.study_opened.connect(self.show_study)
        shell.masks_changed.connect(self.refresh_masks)
        if shell.study is not None:
            self.show_study(shell.study)

    def show_study(self, study: OpenStudy) -> None:
        v = study.volume
        self.info.setText(f"{v.modality} {v.array.shape[2]}x{v.array.shape[1]}x{v.array.shape[0]}, "
                          f"{v.spacing_mm[0]:.2f}x{v.spacing_mm[1]:.2f}x{v.spacing_mm[2]:.2f} mm; "
                          f"masks: {study.mask_source}")  # fmt: skip
        if self.viewer is not None:
            self.viewer.set_volume(v)
            self.refresh_masks()

    def refresh_masks(self) -> None:
        study = self.shell.study
        if self.viewer is not None and study is not None:
            self.viewer.set_segmentation(dict(study.masks.masks))

    def set_preset(self, name: str) -> None:
        if self.viewer is not None:
            self.viewer.set_preset(name)
            if self.preset.currentText() != name:
                self.preset.setCurrentText(name)

    def scroll(self, view: str, steps: int) -> None:
        if self.viewer is not None:
            self.viewer.scroll(view, steps)
