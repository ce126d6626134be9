"""Producer names of the 'segmentation' results rows (a light module: the workstation imports it at start-up)."""

from __future__ import annotations

__all__ = ["EDITED_PRODUCER"]

#: Mask versions saved from the workstation: compressed arrays in the row, no DICOM SEG (the engine's rows name
#: their model and point at their SEG instance).
EDITED_PRODUCER = "radplan-gui-edit"
