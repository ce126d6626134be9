"""Undo/redo for mask edits: each step keeps only the changed bounding box of one label (memory stays small)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from core.boxes import bounding_box

__all__ = ["MaskEdit", "MaskUndoStack"]


@dataclass(frozen=True)
class MaskEdit:
    label: str
    box: tuple[slice, slice, slice]
    before: NDArray[np.uint8]
    after: NDArray[np.uint8]
    description: str


@dataclass
class MaskUndoStack:
    """Holds the current masks; `apply(label, new_mask, description)` records an edit, undo()/redo() revert."""

    masks: dict[str, NDArray[np.uint8]]
    limit: int = 50
    _done: list[MaskEdit] = field(default_factory=list, init=False)
    _undone: list[MaskEdit] = field(default_factory=list, init=False)
    dirty: bool = field(default=False, init=False)

    def apply(self, label: str, new_mask: NDArray[np.uint8], description: str) -> bool:
        """Replace masks[label] by new_mask; False (nothing recorded) when nothing changed."""
        old = self.masks.get(label)
        if old is None:
            old = np.zeros_like(new_mask, dtype=np.uint8)
        if old.shape != new_mask.shape:
            raise ValueError(f"mask {label!r}: shape {new_mask.shape} is not the volume's {old.shape}")
        new = new_mask.astype(np.uint8, copy=False)
        found = bounding_box(old != new)
        if found is None:
            return False
        box = (found[0], found[1], found[2])
        self._done.append(MaskEdit(label, box, old[box].copy(), new[box].copy(), description))
        del self._done[: -self.limit]
        self._undone.clear()
        self.masks[label] = new.copy()
        self.dirty = True
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    def undo(self) -> MaskEdit | None:
        if not self._done:
            return None
        edit = self._done.pop()
        self.masks[edit.label][edit.box] = edit.before
        self._undone.append(edit)
        self.dirty = True
        return edit

    def redo(self) -> MaskEdit | None:
        if not self._undone:
            return None
        edit = self._undone.pop()
        self.masks[edit.label][edit.box] = edit.after
        self._done.append(edit)
        self.dirty = True
        return edit

    def history(self) -> list[str]:
        return [e.description for e in self._done]
