"""Segmentation: run the engine on the open study as a background job (progress, cancel), edit masks with brush,
eraser and seeded region growing (core.segmentation.edit) at the cursor or, brush and eraser, by painting strokes
with the mouse in the viewer (one undo step per stroke), undo/redo, save as a new version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.dicom.volumes import VolumeError
from core.security.roles import Permission
from core.viewer.geometry import VIEW_AXIS
from core.workstation.study import OpenStudy, save_mask_version
from ui.common import notice
from ui.engine_jobs import follow_engine_job
from ui.workers import CancelToken, TaskInfo

if TYPE_CHECKING:
    from ui.main_window import MainWindow

__all__ = ["SegmentationPanel", "masks_fitting"]

TOOLS = ("brush", "eraser", "region grow")


def masks_fitting(masks: dict[str, np.ndarray], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The stored segmentation's masks when each fits the open series; else VolumeError, which the GUI shows as its
    sentence (core.workstation.messages)."""
    for name, mask in sorted(masks.items()):
        if mask.shape != shape:
            got, want = (" x ".join(str(n) for n in s) for s in (mask.shape, shape))
            raise VolumeError(
                f"the stored segmentation does not fit the open series: its {name} mask is {got} voxels, the series "
                f"{want} (slices x rows x columns). It was made on another series; open that series, or run the "
                "segmentation again on this one"
            )
    return masks


class SegmentationPanel(QWidget):
    def __init__(self, shell: MainWindow) -> None:
        super().__init__()
        self.shell = shell
        self.job_id: int | None = None
        self.task: TaskInfo | None = None
        self.last_job: Any = None
        self.model_name = "radplan-thorax-unet"
        self._stroke_connected = False
        self.method = QComboBox(objectName="segmentation_method")
        self.method.addItems(["AI model (radplan-thorax-unet)", "Region growing from the cursor (engine)"])
        self.run_btn = QPushButton("Run segmentation (Ctrl+R)", objectName="run_segmentation")
        self.run_btn.clicked.connect(self.run_segmentation)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        self.progress = QProgressBar(objectName="segmentation_progress")
        self.message = notice("Open a study, then run the segmentation or draw masks.")
        self.label = QComboBox(editable=True, objectName="edit_label")
        self.tool = QComboBox(objectName="edit_tool")
        self.tool.addItems(TOOLS)
        self.radius = QDoubleSpinBox(minimum=1.0, maximum=50.0, value=5.0, suffix=" mm")
        self.paint = QCheckBox("Paint in the viewer with the mouse (brush / eraser)", objectName="paint_in_viewer")
        self.paint.toggled.connect(self.set_painting)
        self.apply_btn = QPushButton("Apply at cursor")
        self.apply_btn.clicked.connect(lambda: self.apply_tool())
        self.undo_btn, self.redo_btn = QPushButton("Undo (Ctrl+Z)"), QPushButton("Redo (Ctrl+Shift+Z)")
        self.undo_btn.clicked.connect(self.undo)
        self.redo_btn.clicked.connect(self.redo)
        self.save_btn = QPushButton("Save as new version", objectName="save_masks")
        self.save_btn.clicked.connect(self.save_version)
        self.history = QListWidget()
        run_row = QHBoxLayout()
        for w in (self.method, self.run_btn, self.cancel_btn):
            run_row.addWidget(w)
        run_row.addWidget(self.progress, 1)
        form = QFormLayout()
        form.addRow("Structure", self.label)
        form.addRow("Tool", self.tool)
        form.addRow("Brush radius", self.radius)
        form.addRow("", self.paint)
        edit_row = QHBoxLayout()
        for w in (self.apply_btn, self.undo_btn, self.redo_btn, self.save_btn):
            edit_row.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addLayout(run_row)
        layout.addWidget(self.message)
        layout.addLayout(form)
        layout.addLayout(edit_row)
        layout.addWidget(self.history, 1)
        shell.study_opened.connect(self._study_opened)
        shell.masks_changed.connect(self._refresh)
        self._refresh()

    # ------------------------------------------------------------------ engine job
    def run_segmentation(self) -> None:
        study = self.shell.study
        if study is None:
            self.shell.show_error("Open a study first (worklist, Ctrl+1).")
            return
        try:
            from core.jobs import JobQueue
        except ImportError:
            self.message.setText("The segmentation engine is not available in this build yet (core.jobs missing).")
            return
        store, ensure_worker = self.shell.store, self.shell.ctx.ensure_worker
        access = self.shell.access(Permission.RUN_ANALYSIS)
        queue = JobQueue(store)  # type: ignore[arg-type]
        read_access = self.shell.access(Permission.READ_PATIENT_DATA)
        # No out_dir: the engine stores the SEG in the encrypted store only (no mask files in the clear on disk).
        payload: dict[str, Any] = {"study_uid": study.study_uid, "series_uid": study.volume.series_uid}
        if self.method.currentIndex() == 0:
            payload |= {"backend": "auto", "model": self.model_name}
        else:
            z, y, x = self._cursor_voxel(study)
            payload |= {"method": "region-grow", "seed_xyz": [x, y, z], "label": self.label.currentText() or "gtv"}

        def work(token: CancelToken, report: Any) -> Any:
            job = follow_engine_job(queue, "segment", payload, study_uid=study.study_uid, user=access.user.name,
                                    ensure_worker=ensure_worker, token=token, report=report,
                                    on_submitted=lambda job_id: setattr(self, "job_id", job_id))  # fmt: skip
            report(0.99, "loading the masks")
            from core.gcpause import paused_collection
            from core.segmentation.service import load_segmentation

            with paused_collection(freeze=False):  # parsing the SEG must not set off full collections (GIL)
                masks = masks_fitting(load_segmentation(store, read_access, study.study_uid),  # type: ignore[arg-type]
                                      study.volume.array.shape)  # fmt: skip
            # Recorded here, not on the UI thread: 0.2 s for 7 masks of a 512x512x150 study (one undo step each).
            for name, mask in masks.items():
                study.masks.apply(name, mask, f"AI segmentation (job {job.id}): {name}")
            return job, study

        self.run_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.progress.setValue(0)
        self.message.setText("segmentation queued...")
        self.task = self.shell.run(
            "segmentation", work, doing="running the segmentation",
            on_progress=lambda f, m: (self.progress.setValue(int(f * 100)), self.message.setText(m)),
            on_done=self._segmented, on_error=self._seg_failed, on_cancel=self._seg_cancelled,
        )  # fmt: skip

    def cancel(self) -> None:
        if self.task is not None:
            self.shell.runner.cancel(self.task.id)

    def _end(self, text: str) -> None:
        self.run_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        self.message.setText(text)

    def _segmented(self, result: tuple[Any, OpenStudy]) -> None:
        job, study = result
        self.last_job = job
        if study is not self.shell.study:  # another study was opened meanwhile: its masks were not touched
            self._end(f"segmentation of the previous study done (job {job.id}); reopen it to see its masks.")
            return
        study.mask_source = f"segmentation job {job.id}"
        self.shell.set_backend_status(str(job.result.get("backend", "?")))
        self.progress.setValue(100)
        vols = job.result.get("volumes_cc", {})
        self._end(f"segmentation done ({job.result.get('backend', '?')}): "
                  + ", ".join(f"{k} {v:.0f} cc" for k, v in sorted(vols.items())))  # fmt: skip
        self.shell.masks_changed.emit()

    def _seg_failed(self, message: str) -> None:
        self._end(message + " Your masks and edits are unchanged.")
        self.shell.show_error(message)

    def _seg_cancelled(self) -> None:
        self._end("Segmentation cancelled; your masks and edits are unchanged.")

    # ------------------------------------------------------------------ edits
    def _study_opened(self, study: OpenStudy) -> None:
        self._refresh()

    def _cursor_voxel(self, study: OpenStudy) -> tuple[int, int, int]:
        host = self.shell.panels.get("viewer")
        viewer = getattr(host, "viewer", None)
        if viewer is not None:
            x, y, z = viewer.state.cursor_index()
            return int(z), int(y), int(x)
        shape = study.volume.array.shape
        return shape[0] // 2, shape[1] // 2, shape[2] // 2

    def apply_tool(self, centre_zyx: tuple[int, int, int] | None = None) -> TaskInfo | None:
        study = self.shell.study
        if study is None:
            self.shell.show_error("Open a study first.")
            return None
        label = self.label.currentText().strip()
        if not label:
            self.shell.show_error("Type or choose the structure to edit.")
            return None
        tool, radius = self.tool.currentText(), self.radius.value()
        centre = centre_zyx or self._cursor_voxel(study)
        vol = study.volume
        current = study.masks.masks.get(label, np.zeros(vol.array.shape, np.uint8))

        def work(_t: CancelToken, _r: Any) -> bool:
            from core.segmentation import edit  # SimpleITK, scipy: off the UI thread

            if tool == "region grow":
                grown = edit.region_grow(vol.array, vol.spacing_mm, centre)
                new = edit.add(current, grown)
            else:
                ball = edit.sphere(vol.array.shape, vol.spacing_mm, centre, radius)
                new = edit.add(current, ball) if tool == "brush" else edit.erase(current, ball)
            return study.masks.apply(label, new, f"{tool} on {label} at voxel {centre}")

        self.apply_btn.setEnabled(False)
        return self.shell.run("mask edit", work, doing=f"applying the {tool}", on_done=self._edited,
                              on_error=self._edit_failed)  # fmt: skip

    def _viewer(self) -> Any:
        return getattr(self.shell.panels.get("viewer"), "viewer", None)

    def set_painting(self, on: bool) -> None:
        """Left-drag in the viewer paints (brush) or erases (eraser) the chosen structure, one undo step a stroke."""
        viewer = self._viewer()
        if viewer is None:
            if on:
                self.shell.show_error("The image viewer is not available, so there is nothing to paint on.")
            return
        if on and not self._stroke_connected:
            viewer.strokeFinished.connect(self.apply_stroke)
            self._stroke_connected = True
        viewer.state.set_tool("paint" if on else "crosshair")
        if on and self.tool.currentText() == "region grow":
            self.tool.setCurrentText("brush")

    def apply_stroke(self, view: str, points_zyx: list[tuple[float, float, float]]) -> TaskInfo | None:
        """One brush/eraser stroke along the mouse path (a disc of the brush radius in the view's plane)."""
        study = self.shell.study
        label = self.label.currentText().strip()
        tool, radius = self.tool.currentText(), self.radius.value()
        if study is None or not points_zyx:
            return None
        if not label:
            self.shell.show_error("Type or choose the structure to paint before drawing.")
            return None
        if tool not in ("brush", "eraser"):
            self.shell.show_error("Painting needs the brush or the eraser tool; region growing starts at the cursor.")
            return None
        vol = study.volume
        current = study.masks.masks.get(label, np.zeros(vol.array.shape, np.uint8))
        plane = 2 - VIEW_AXIS[view]  # type: ignore[index]  # the view's display axis (x, y, z) as array axis (z, y, x)

        def work(_t: CancelToken, _r: Any) -> bool:
            from core.segmentation import edit

            path = edit.stroke(vol.array.shape, vol.spacing_mm, points_zyx, radius, plane_axis=plane)
            new = edit.add(current, path) if tool == "brush" else edit.erase(current, path)
            return study.masks.apply(label, new, f"{tool} stroke on {label} ({view}, {len(points_zyx)} points)")

        return self.shell.run("mask edit", work, doing=f"applying the {tool} stroke", on_done=self._edited,
                              on_error=self._edit_failed)  # fmt: skip

    def _edited(self, changed: bool) -> None:
        self.apply_btn.setEnabled(True)
        if not changed:
            self.message.setText("That edit changed nothing.")
        self.shell.masks_changed.emit()

    def _edit_failed(self, message: str) -> None:
        self.apply_btn.setEnabled(True)
        self.shell.show_error(message)

    def undo(self) -> None:
        if self.shell.study is not None and self.shell.study.masks.undo() is not None:
            self.shell.masks_changed.emit()

    def redo(self) -> None:
        if self.shell.study is not None and self.shell.study.masks.redo() is not None:
            self.shell.masks_changed.emit()

    def save_version(self) -> TaskInfo | None:
        study = self.shell.study
        if study is None or not study.masks.masks:
            self.shell.show_error("There are no masks to save: run the segmentation or draw one first.")
            return None
        store, access = self.shell.store, self.shell.access(Permission.RUN_ANALYSIS)
        masks = study.masks.snapshot()  # arrays never changed in place: edits meanwhile do not reach this save
        self.save_btn.setEnabled(False)

        def done(version: int) -> None:
            self.save_btn.setEnabled(True)
            study.masks.dirty = False
            study.mask_source = f"saved version {version}"
            self.message.setText(f"Masks saved as version {version}.")

        def failed(message: str) -> None:
            self.save_btn.setEnabled(True)
            self.shell.show_error(message + " The masks stay open; try saving again.")

        return self.shell.run(
            "save masks",
            lambda _t, _r: save_mask_version(store, access, study.study_uid, masks,  # type: ignore[arg-type]
                                             series_uid=study.volume.series_uid),
            doing="saving the masks", on_done=done, on_error=failed,
        )  # fmt: skip

    def _refresh(self) -> None:
        study = self.shell.study
        has = study is not None
        for w in (self.apply_btn, self.label, self.tool):
            w.setEnabled(has)
        self.run_btn.setEnabled(has and self.cancel_btn.isEnabled() is False)
        self.undo_btn.setEnabled(has and study.masks.can_undo)  # type: ignore[union-attr]
        self.redo_btn.setEnabled(has and study.masks.can_redo)  # type: ignore[union-attr]
        self.save_btn.setEnabled(has and bool(study.masks.masks))  # type: ignore[union-attr]
        self.history.clear()
        if study is not None:
            self.history.addItems(study.masks.history())
            names = sorted(study.masks.masks) or ["GTV"]
            current = self.label.currentText()
            self.label.clear()
            self.label.addItems(names)
            if current:
                self.label.setCurrentText(current)
