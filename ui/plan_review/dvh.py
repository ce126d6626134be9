"""The plan review's DVH tab: one curve per structure (pyqtgraph) and a draggable dose cursor whose read-out gives
every structure's volume at that dose (core.workstation.plan_review.dvh_readout)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from core.workstation.plan_review import dvh_readout

__all__ = ["CURVE_COLOURS", "DvhView"]

CURVE_COLOURS = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
                 "#bcf60c", "#fabebe", "#008080", "#e6beff")  # fmt: skip


class DvhView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        import pyqtgraph as pg

        super().__init__(parent)
        self.plot = pg.PlotWidget(objectName="dvh_plot")
        self.plot.setBackground("#16171a")
        self.plot.setLabel("bottom", "Dose", units="Gy")
        self.plot.setLabel("left", "Volume (%)")
        self.plot.addLegend(offset=(-10, 10))
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.cursor = pg.InfiniteLine(pos=0.0, angle=90, movable=True, pen=pg.mkPen("#dddddd", width=1))
        self.cursor.sigPositionChanged.connect(self._cursor_moved)
        self.readout = QLabel("Drag the vertical line to read volumes at a dose.", objectName="dvh_readout")
        self.readout.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.readout)
        self.curves: dict[str, list[list[float]]] = {}

    def show_curves(self, curves: dict[str, list[list[float]]], cursor_dose: float | None = None) -> None:
        """Plot these curves ({structure: [[dose Gy, volume %], ...]}) and put the cursor at cursor_dose."""
        import pyqtgraph as pg

        self.plot.clear()
        self.curves = dict(curves)
        for i, (name, curve) in enumerate(sorted(curves.items())):
            if curve:
                xs, ys = zip(*curve, strict=True)
                self.plot.plot(list(xs), list(ys), name=name,
                               pen=pg.mkPen(CURVE_COLOURS[i % len(CURVE_COLOURS)], width=2))  # fmt: skip
        self.plot.addItem(self.cursor)
        if cursor_dose is not None:
            self.cursor.setValue(cursor_dose)
        if not curves:
            self.readout.setText("No DVH: the plan has no computed dose.")

    def set_cursor_dose(self, dose_gy: float) -> None:
        self.cursor.setValue(dose_gy)

    def _cursor_moved(self) -> None:
        dose = float(self.cursor.value())
        values = dvh_readout(self.curves, dose)
        self.readout.setText(f"At {dose:.2f} Gy: " + "; ".join(f"{k} {v:.1f}%" for k, v in sorted(values.items())))
