"""Hosts ui.viewer.ViewerPanel in the window: feeds it the open study (CT, masks, and - once read in the second step of
opening - the RT Structure Set contours and RT Dose), with the control column of ui.viewer.sidebar (mouse tool,
distance, dose switches, structure list, ROI statistics computed by core.workstation.roi in a worker)."""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QScrollArea, QSplitter, QVBoxLayout, QWidget

from core.workstation.study import OpenStudy
from ui.common import notice

if TYPE_CHECKING:
    from core.workstation.roi import RoiReadout
    from ui.main_window import MainWindow
    from ui.viewer.overlays import PackedSegmentation
    from ui.workers import TaskInfo

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
        self.sidebar: Any = None
        #: the last ROI statistics shown (core.workstation.roi.RoiReadout), for whoever wants the numbers
        self.readout: RoiReadout | None = None
        self._stats_ids = itertools.count(1)
        self._stats_wanted = 0
        self._masks_ids = itertools.count(1)
        self._masks_wanted = 0
        #: the number of the last mask refresh drawn (equal to the last requested once the viewer is up to date)
        self.masks_shown = 0
        self.preset = QComboBox(objectName="viewer_preset")
        self.info = QLabel("No study open: open one from the worklist (Ctrl+1).")
        self.notes = notice("", "viewer_notes")
        self.notes.hide()
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Window preset"))
        bar.addWidget(self.preset)
        bar.addWidget(self.info, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.notes)
        if self.viewer is None:
            self.preset.setEnabled(False)
            layout.addWidget(notice("The image viewer is not available in this build yet (ui.viewer is missing)."))
            layout.addStretch(1)
        else:
            from core.viewer import WINDOW_PRESETS
            from ui.viewer.sidebar import ViewerSidebar

            self.preset.addItems(list(WINDOW_PRESETS))
            self.preset.setCurrentText(self.viewer.state.preset or "")
            self.preset.currentTextChanged.connect(self.set_preset)
            self.sidebar = ViewerSidebar(self.viewer)
            self.sidebar.paintRequested.connect(self._paint_requested)
            self.sidebar.statisticsRequested.connect(self.show_statistics)
            scroll = QScrollArea()
            scroll.setWidget(self.sidebar)
            scroll.setWidgetResizable(True)
            scroll.setMinimumWidth(340)
            split = QSplitter(Qt.Orientation.Horizontal)
            split.addWidget(self.viewer)
            split.addWidget(scroll)
            split.setStretchFactor(0, 1)
            split.setSizes([1000, 360])
            layout.addWidget(split, 1)
        shell.study_opened.connect(self.show_study)
        shell.overlays_loaded.connect(self.show_overlays)
        shell.masks_changed.connect(self.refresh_masks)
        if shell.study is not None:
            self.show_study(shell.study)

    def show_study(self, study: OpenStudy) -> None:
        self._show_info(study)
        self.readout = None
        if self.viewer is not None:
            self.viewer.set_volume(study.volume)
            self.refresh_masks()
            self.sidebar.show_statistics("select a structure in the list.")
            if study.overlays_loaded:
                self.show_overlays(study)
            else:
                self.sidebar.set_dose_available(False, "Reading the study's RT Dose...")
        self._show_notes(study)

    def show_overlays(self, study: OpenStudy) -> None:
        """The RT Structure Set contours and the RT Dose (wash and isodose lines) of the open study."""
        if study is not self.shell.study:
            return
        self._show_info(study)
        self._show_notes(study)
        if self.viewer is None:
            return
        self.viewer.set_structures(study.structures)
        self.viewer.set_dose(study.dose)
        if study.dose is None:
            self.sidebar.set_dose_available(False)
        else:
            levels = ", ".join(f"{v:.1f}" for v in sorted(self.viewer.state.dose.levels_gy, reverse=True))
            peak = float(study.dose.dose_gy.max())
            self.sidebar.set_dose_available(True, f"RT Dose: maximum {peak:.1f} Gy; isodose lines at {levels} Gy.")

    def _show_info(self, study: OpenStudy) -> None:
        v = study.volume
        size = "x".join(str(n) for n in v.array.shape[::-1])
        spacing = "x".join(f"{s:.2f}" for s in v.spacing_mm)
        text = f"{v.modality} {size}, {spacing} mm; masks: {study.mask_source}"
        if study.overlays_loaded:
            shown = [f"RT Structure Set ({len(study.structures.structures)} ROIs)"] if study.structures else []
            shown += ["RT Dose"] if study.dose is not None else []
            text += "; " + (", ".join(shown) if shown else "no RT Structure Set or RT Dose")
        else:
            text += "; reading the structure set and dose..."
        self.info.setText(text)

    def _show_notes(self, study: OpenStudy) -> None:
        self.notes.setText(" ".join(study.overlay_notes))
        self.notes.setVisible(bool(study.overlay_notes))

    def refresh_masks(self) -> TaskInfo | None:
        """Show the study's current masks, keeping the colour, opacity and visibility chosen for each.

        The masks are ordered and bit-packed in a worker thread (0.1-0.2 s for 7 masks of a 512x512x150 study);
        the UI thread only hands the result to the viewer. When edits come faster than that, only the newest
        request is shown. Returns the packing task (None when there is nothing to show)."""
        study = self.shell.study
        if self.viewer is None or study is None:
            return None
        self._show_info(study)
        masks, shape = study.masks.snapshot(), study.volume.array.shape
        request = self._masks_wanted = next(self._masks_ids)

        def work(_t: Any, _r: Any) -> PackedSegmentation:
            from ui.viewer.overlays import pack_segmentation

            return pack_segmentation(masks, shape)

        def done(packed: PackedSegmentation) -> None:
            if request == self._masks_wanted and study is self.shell.study and self.viewer is not None:
                self._show_masks(request, packed)

        def failed(message: str) -> None:
            if request == self._masks_wanted:
                self.masks_shown = request  # nothing newer to wait for: the viewer keeps the masks it shows
                self.shell.show_error(message + " The viewer still shows the masks from before; the masks are kept.")

        return self.shell.run("draw masks", work, doing="drawing the masks", on_done=done, on_error=failed, quiet=True)

    @property
    def masks_up_to_date(self) -> bool:
        """True once the newest mask refresh requested is on screen."""
        return self.masks_shown == self._masks_wanted

    def _show_masks(self, request: int, packed: PackedSegmentation) -> None:
        styles = dict(self.viewer.state.structures("segmentation"))
        self.viewer.set_segmentation(packed, {n: s.colour for n, s in styles.items()})
        for name, style in styles.items():
            if name in packed.masks:
                self.viewer.set_structure_style(name, opacity=style.opacity, visible=style.visible)
        self.masks_shown = request
        chosen = self.sidebar.structures.selected()
        if chosen is not None and chosen[0] == "segmentation":
            self.show_statistics(*chosen)

    def set_preset(self, name: str) -> None:
        if self.viewer is not None:
            self.viewer.set_preset(name)
            if self.preset.currentText() != name:
                self.preset.setCurrentText(name)

    def scroll(self, view: str, steps: int) -> None:
        if self.viewer is not None:
            self.viewer.scroll(view, steps)

    # ------------------------------------------------------------------ tools and statistics
    def _paint_requested(self, on: bool) -> None:
        """Painting belongs to the segmentation panel (label, brush, undo): the tool selector switches it there."""
        seg = self.shell.panels.get("segmentation")
        paint = getattr(seg, "paint", None)
        if paint is None:
            if on:
                self.shell.show_error("Painting masks needs the Segmentation panel, which this role does not have.")
            return
        paint.setChecked(on)

    def show_statistics(self, layer: str, name: str) -> None:
        """HU mean/SD and volume of the structure (a mask or an RTSTRUCT ROI), computed in a worker."""
        study = self.shell.study
        if study is None or self.sidebar is None:
            return
        if layer == "segmentation" and name in study.masks.masks:
            data = {"mask": study.masks.snapshot()[name]}  # never changed in place: no copy needed
        elif layer == "contours" and study.structures is not None and name in study.structures.structures:
            data = {"contour": study.structures.structures[name]}
        else:
            self.sidebar.show_statistics(f"{name} is no longer in the study.")
            return
        request = self._stats_wanted = next(self._stats_ids)
        volume = study.volume
        self.sidebar.show_statistics(f"{name}: computing...")

        def work(_t: Any, _r: Any) -> RoiReadout:
            from core.workstation.roi import structure_statistics

            return structure_statistics(volume, name, **data)  # type: ignore[arg-type]

        def done(readout: RoiReadout) -> None:
            if request == self._stats_wanted:
                self.readout = readout
                self.sidebar.show_statistics(readout.text())

        def failed(message: str) -> None:
            if request == self._stats_wanted:
                self.sidebar.show_statistics(f"{name}: could not be measured ({message})")

        self.shell.run("ROI statistics", work, doing=f"measuring {name}", on_done=done, on_error=failed, quiet=True)
