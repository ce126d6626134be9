"""The viewer's structure list: one row per structure of both layers (segmentation masks and RT Structure Set ROIs)
with a visibility check box, the name and source, a colour swatch (QColorDialog) and an opacity slider.

It only collects what the user chose and passes it to :meth:`core.viewer.state.ViewState.set_structure_style`; it
follows the state (structures replaced or restyled from elsewhere) through the state's callbacks.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QColorDialog,
    QHeaderView,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from core.viewer.state import FIELD_STRUCTURES, Layer, StructureStyle, ViewState

__all__ = ["LAYER_LABELS", "StructureList"]

#: How each layer is named in the list.
LAYER_LABELS: dict[Layer, str] = {"segmentation": "mask", "contours": "RTSTRUCT"}
_COLUMNS = ("Show", "Structure", "Source", "Colour", "Opacity")


class StructureList(QTableWidget):
    """Rows in the order: masks, then RTSTRUCT ROIs. ``structureSelected(layer, name)`` when a row is chosen."""

    structureSelected = Signal(str, str)  # noqa: N815  (Qt naming)

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(0, len(_COLUMNS), parent)
        self.setObjectName("viewer_structures")
        self.state = state
        self.rows: list[tuple[Layer, str]] = []
        #: the open colour dialog (non-modal; its colour is applied when accepted)
        self.colour_dialog: QColorDialog | None = None
        self.setHorizontalHeaderLabels(list(_COLUMNS))
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(24)
        for column in (0, 2):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        for column, width in ((3, 56), (4, 64)):  # the name gets the room left
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Fixed)
            header.resizeSection(column, width)
        self.itemSelectionChanged.connect(self._selection_changed)
        self._unsubscribe = state.subscribe(self._on_state)
        self.destroyed.connect(lambda *_: self._unsubscribe())
        self.rebuild()

    # -- what the user does -----------------------------------------------------------------------------------
    def row_of(self, layer: Layer, name: str) -> int:
        return self.rows.index((layer, name))

    def set_visible(self, layer: Layer, name: str, visible: bool) -> None:
        self.state.set_structure_style(name, visible=visible, layer=layer)

    def set_opacity(self, layer: Layer, name: str, opacity: float) -> None:
        self.state.set_structure_style(name, opacity=opacity, layer=layer)

    def set_colour(self, layer: Layer, name: str, colour: tuple[int, int, int]) -> None:
        self.state.set_structure_style(name, colour=colour, layer=layer)

    def choose_colour(self, layer: Layer, name: str) -> QColorDialog:
        """Open a colour dialog on the structure's colour; the chosen colour is applied when it is accepted."""
        r, g, b = self.state.structures(layer)[name].colour
        if self.colour_dialog is not None:
            self.colour_dialog.close()
        dialog = QColorDialog(QColor(r, g, b), self)
        dialog.setWindowTitle(f"Colour of {name}")
        dialog.colorSelected.connect(lambda c: self.set_colour(layer, name, (c.red(), c.green(), c.blue())))
        self.colour_dialog = dialog
        dialog.open()
        return dialog

    def selected(self) -> tuple[Layer, str] | None:
        rows = self.selectionModel().selectedRows() if self.selectionModel() is not None else []
        return self.rows[rows[0].row()] if rows and rows[0].row() < len(self.rows) else None

    def select(self, layer: Layer, name: str) -> None:
        self.selectRow(self.row_of(layer, name))

    # -- widgets of a row -------------------------------------------------------------------------------------
    def checkbox(self, layer: Layer, name: str) -> QCheckBox:
        return self.cellWidget(self.row_of(layer, name), 0)  # type: ignore[return-value]

    def swatch(self, layer: Layer, name: str) -> QPushButton:
        return self.cellWidget(self.row_of(layer, name), 3)  # type: ignore[return-value]

    def slider(self, layer: Layer, name: str) -> QSlider:
        return self.cellWidget(self.row_of(layer, name), 4)  # type: ignore[return-value]

    # -- state -> rows ----------------------------------------------------------------------------------------
    def rebuild(self) -> None:
        chosen = self.selected()
        self.blockSignals(True)
        self.rows = [(layer, n) for layer in LAYER_LABELS for n in self.state.structures(layer)]
        self.setRowCount(len(self.rows))
        for row, (layer, name) in enumerate(self.rows):
            style = self.state.structures(layer)[name]
            box = QCheckBox()
            box.setToolTip(f"Show {name}")
            box.toggled.connect(lambda on, ly=layer, n=name: self.set_visible(ly, n, on))
            swatch = QPushButton()
            swatch.setToolTip(f"Choose the colour of {name}")
            swatch.setFixedWidth(40)
            swatch.clicked.connect(lambda _c=False, ly=layer, n=name: self.choose_colour(ly, n))
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setToolTip(f"Opacity of {name} (%)")
            slider.valueChanged.connect(lambda v, ly=layer, n=name: self.set_opacity(ly, n, v / 100.0))
            self.setCellWidget(row, 0, box)
            self.setItem(row, 1, QTableWidgetItem(name))
            self.setItem(row, 2, QTableWidgetItem(LAYER_LABELS[layer]))
            self.setCellWidget(row, 3, swatch)
            self.setCellWidget(row, 4, slider)
            self._show_style(row, style)
        self.blockSignals(False)
        if chosen is not None and chosen in self.rows:
            self.select(*chosen)

    def _show_style(self, row: int, style: StructureStyle) -> None:
        box, swatch, slider = self.cellWidget(row, 0), self.cellWidget(row, 3), self.cellWidget(row, 4)
        assert isinstance(box, QCheckBox) and isinstance(swatch, QPushButton) and isinstance(slider, QSlider)
        for widget in (box, slider):
            widget.blockSignals(True)
        box.setChecked(style.visible)
        slider.setValue(round(style.opacity * 100))
        for widget in (box, slider):
            widget.blockSignals(False)
        r, g, b = style.colour
        swatch.setStyleSheet(f"background-color: rgb({r}, {g}, {b}); border: 1px solid #888;")
        swatch.setProperty("colour", (r, g, b))

    def _on_state(self, field: str, value: object) -> None:
        if field != FIELD_STRUCTURES or not isinstance(value, tuple):
            return
        layer, name = value
        if name is None or (layer, name) not in self.rows:
            self.rebuild()
        else:
            self._show_style(self.row_of(layer, name), self.state.structures(layer)[name])

    def _selection_changed(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.structureSelected.emit(*chosen)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        if self.colour_dialog is not None:
            self.colour_dialog.close()
        super().closeEvent(event)
