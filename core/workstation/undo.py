"""Undo/redo for mask edits: each step keeps only the changed bounding box of one label (memory stays small).

Edits are recorded from worker threads (a brush stroke, an AI segmentation's masks) while the UI thread undoes,
redoes and draws: every change holds the stack's lock, and a mask array, once in the stack, is never changed in
place (an edit, an undo and a redo each put a new array in), so a snapshot can be read in any thread without a copy.
"""

from __future__ import annotations

import threading
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
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False, compare=False)

    def apply(self, label: str, new_mask: NDArray[np.uint8], description: str) -> bool:
        """Replace masks[label] by new_mask; False (nothing recorded) when nothing changed."""
        with self._lock:
            return self._apply(label, new_mask, description)

    def snapshot(self) -> dict[str, NDArray[np.uint8]]:
        """The current masks (label -> array): safe to read in another thread while edits go on here, as the
        arrays are never changed in place. Do not write into them."""
        with self._lock:
            return dict(self.masks)

    def _put(self, label: str, box: tuple[slice, slice, slice], values: NDArray[np.uint8]) -> None:
        mask = self.masks[label].copy()
        mask[box] = values
        self.masks[label] = mask

    def _apply(self, label: str, new_mask: NDArray[np.uint8], description: str) -> bool:
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
        with self._lock:
            if not self._done:
                return None
            edit = self._done.pop()
            self._put(edit.label, edit.box, edit.before)
            self._undone.append(edit)
            self.dirty = True
            return edit

    def redo(self) -> MaskEdit | None:
        with self._lock:
            if not self._undone:
                return None
            edit = self._undone.pop()
            self._put(edit.label, edit.box, edit.after)
            self._done.append(edit)
            self.dirty = True
            return edit

    def history(self) -> list[str]:
        with self._lock:
            return [e.description for e in self._done]
