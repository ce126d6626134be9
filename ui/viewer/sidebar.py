"""The viewer's control column: the mouse tool, the distance read-out, dose display switches, the structure list
and the ROI statistics read-out. Every control acts on the panel's :class:`core.viewer.state.ViewState` and follows
it (a tool or dose display changed elsewhere shows here too); the statistics themselves are computed by the host
(core.workstation.roi, off the UI thread), which calls :meth:`ViewerSidebar.show_statistics`."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from core.viewer.state import FIELD_DOSE, FIELD_TOOL, DistanceMeasurement, Tool
from ui.viewer.structures_panel import StructureList

__all__ = ["TOOL_LABELS", "ViewerSidebar"]

#: The tools of the selector, in its order, with what the left mouse button then does.
TOOL_LABELS: dict[Tool, str] = {
    "crosshair": "Navigate (move the crosshair)",
    "window_level": "Window / level (drag)",
    "distance": "Distance (drag, mm)",
    "pan": "Pan (drag)",
    "zoom": "Zoom (drag)",
    "paint": "Paint masks (Segmentation tab)",
}


def _label(text: str, name: str) -> QLabel:
    label = QLabel(text, objectName=name)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ViewerSidebar(QWidget):
    """``paintRequested(bool)``: the user chose the paint tool (True) or left it (False); the host asks the
    segmentation panel, which owns painting. ``statisticsRequested(layer, name)``: a structure was selected."""

    paintRequested = Signal(bool)  # noqa: N815  (Qt naming)
    statisticsRequested = Signal(str, str)  # noqa: N815

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        state = viewer.state
        self.tool = QComboBox(objectName="viewer_tool")
        for tool, text in TOOL_LABELS.items():
            self.tool.addItem(text, tool)
        self.tool.setCurrentIndex(self.tool.findData(state.tool))
        self.tool.currentIndexChanged.connect(self._tool_chosen)
        self.distance = _label("Distance: choose the distance tool, then drag in a view.", "viewer_distance")
        tools = QGroupBox("Mouse tool")
        form = QFormLayout(tools)
        form.addRow("Left button", self.tool)
        form.addRow(self.distance)

        self.dose_wash = QCheckBox("Dose colour wash", objectName="viewer_dose_wash")
        self.isodose = QCheckBox("Isodose lines", objectName="viewer_isodose")
        self.dose_opacity = QSlider(Qt.Orientation.Horizontal, objectName="viewer_dose_opacity")
        self.dose_opacity.setRange(0, 100)
        self.dose_info = _label("No RT Dose in this study.", "viewer_dose_info")
        self.dose_wash.toggled.connect(lambda on: state.set_dose_display(wash=on))
        self.isodose.toggled.connect(lambda on: state.set_dose_display(isodose=on))
        self.dose_opacity.valueChanged.connect(lambda v: state.set_dose_display(opacity=v / 100.0))
        dose = QGroupBox("Dose")
        dose_form = QFormLayout(dose)
        dose_form.addRow(self.dose_wash)
        dose_form.addRow(self.isodose)
        dose_form.addRow("Wash opacity", self.dose_opacity)
        dose_form.addRow(self.dose_info)

        self.structures = StructureList(state)
        self.structures.structureSelected.connect(self.statisticsRequested)
        self.statistics = _label("ROI statistics: select a structure in the list.", "viewer_roi_stats")
        structures = QGroupBox("Structures")
        box = QVBoxLayout(structures)
        box.addWidget(self.structures, 1)
        box.addWidget(self.statistics)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(tools)
        layout.addWidget(dose)
        layout.addWidget(structures, 1)
        self._show_dose()
        self.set_dose_available(False)
        viewer.measurementChanged.connect(self._show_measurement)
        self._unsubscribe = state.subscribe(self._on_state)
        self.destroyed.connect(lambda *_: self._unsubscribe())

    # -- tool -------------------------------------------------------------------------------------------------
    def set_tool(self, tool: Tool) -> None:
        """Choose a tool as the user does in the selector."""
        self.tool.setCurrentIndex(self.tool.findData(tool))

    def _tool_chosen(self, index: int) -> None:
        tool = self.tool.itemData(index)
        state = self.viewer.state
        if tool == state.tool:
            return
        if tool == "paint":
            self.paintRequested.emit(True)
            if state.tool != "paint":  # nobody took it (no segmentation panel): show the tool in use again
                self.tool.setCurrentIndex(self.tool.findData(state.tool))
            return
        if state.tool == "paint":
            self.paintRequested.emit(False)
        state.set_tool(tool)

    def _show_measurement(self, m: DistanceMeasurement | None) -> None:
        if m is None:
            self.distance.setText("Distance: -")
        else:
            self.distance.setText(f"Distance: {m.distance_mm:.1f} mm ({m.view} view)")

    # -- dose -------------------------------------------------------------------------------------------------
    def set_dose_available(self, available: bool, info: str = "") -> None:
        for widget in (self.dose_wash, self.isodose, self.dose_opacity):
            widget.setEnabled(available)
        self.dose_info.setText(info or ("RT Dose shown." if available else "No RT Dose in this study."))

    def _show_dose(self) -> None:
        display = self.viewer.state.dose
        for widget in (self.dose_wash, self.isodose, self.dose_opacity):
            widget.blockSignals(True)
        self.dose_wash.setChecked(display.wash)
        self.isodose.setChecked(display.isodose)
        self.dose_opacity.setValue(round(display.opacity * 100))
        for widget in (self.dose_wash, self.isodose, self.dose_opacity):
            widget.blockSignals(False)

    def _on_state(self, field: str, value: object) -> None:
        if field == FIELD_TOOL:
            self.tool.blockSignals(True)
            self.tool.setCurrentIndex(self.tool.findData(value))
            self.tool.blockSignals(False)
        elif field == FIELD_DOSE:
            self._show_dose()

    # -- statistics -------------------------------------------------------------------------------------------
    def show_statistics(self, text: str) -> None:
        self.statistics.setText(f"ROI statistics: {text}")
