"""Masks reach the viewer without holding the UI thread: the viewer host orders and bit-packs them in a worker
thread (0.1-0.2 s for 7 masks of a 512x512x150 study) and only hands the result to the viewer; when edits come
faster than that, only the newest is drawn. Real window and VTK views under Xvfb, real store."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ui.viewer.overlays as overlays
from core.workstation.demo import RADIOLOGIST
from tests.ui.shell_support import close, open_window, sign_in, workspace

pytestmark = [pytest.mark.qt, pytest.mark.slow]


def _study_in_viewer(qtbot: Any, window: Any, ws: Any) -> Any:
    """Sign in, open the demo study, wait for its RT objects and masks in the viewer; the viewer host."""
    sign_in(qtbot, window, RADIOLOGIST, ws.passwords[RADIOLOGIST])
    window.open_study(ws.study_uid)
    qtbot.waitUntil(lambda: window.study is not None and window.study.overlays_loaded, timeout=60000)
    window.show_panel("viewer")
    host = window.panels["viewer"]
    qtbot.waitUntil(lambda: host.masks_up_to_date, timeout=20000)
    return host


def test_masks_are_packed_off_the_ui_thread_and_only_the_newest_is_drawn(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path)
    window = open_window(qtbot, ws)
    try:
        host = _study_in_viewer(qtbot, window, ws)
        study, viewer = window.study, host.viewer
        shape = study.volume.array.shape

        real = overlays.pack_segmentation
        packed_in: list[tuple[bool, tuple[str, ...]]] = []

        def spy(masks: Any, size: Any) -> Any:
            packed_in.append((threading.current_thread() is threading.main_thread(), tuple(sorted(masks))))
            if "slow" in masks and masks["slow"].any():  # the older request finishes after the newer one
                time.sleep(1.0)
            return real(masks, size)

        monkeypatch.setattr(overlays, "pack_segmentation", spy)
        slow = np.zeros(shape, np.uint8)
        slow[shape[0] // 2, 10:20, 10:20] = 1
        study.masks.apply("slow", slow, "test: an edit whose drawing takes long")
        window.masks_changed.emit()
        fast = np.zeros(shape, np.uint8)
        fast[shape[0] // 2, 30:40, 30:40] = 1
        study.masks.apply("fast", fast, "test: the next edit")
        study.masks.apply("slow", np.zeros(shape, np.uint8), "test: the first one cleared")
        window.masks_changed.emit()
        assert not host.masks_up_to_date  # the UI thread went on at once; the viewer gets the masks later
        qtbot.waitUntil(lambda: len(packed_in) == 2 and host.masks_up_to_date, timeout=20000)
        qtbot.wait(1500)  # the older, slower request ends now and must not replace the newer masks
        assert packed_in and not any(on_ui for on_ui, _ in packed_in), "packing ran on the UI thread"
        shown = viewer._masks
        assert set(shown) >= {"slow", "fast"}
        assert not shown["slow"].any() and np.array_equal(shown["fast"], fast)
        assert ("segmentation", "fast") in host.sidebar.structures.rows
        bits = {name: layer for layer in viewer._composer.layers for name in layer.names}
        layer = bits["fast"]
        bit = layer.names.index("fast")
        assert np.array_equal((layer.bits >> bit) & 1, fast), "the viewer's layer is the newest mask"
        assert not ((bits["slow"].bits >> bits["slow"].names.index("slow")) & 1).any()
    finally:
        close(qtbot, window, ws)


def test_a_hidden_viewer_composes_nothing_until_it_shows(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segmentation usually lands while the Segmentation tab is in front: the hidden viewer only takes the masks;
    the slices are composed (and show the new masks) when the Viewer tab is shown."""
    ws = workspace(tmp_path)
    window = open_window(qtbot, ws)
    try:
        host = _study_in_viewer(qtbot, window, ws)
        study, viewer = window.study, host.viewer
        for name in viewer.state.structures("contours"):
            viewer.set_structure_style(name, visible=False, layer="contours")
        viewer.state.set_dose_display(wash=False, isodose=False)
        composed: list[str] = []
        real = viewer._composer.compose

        def counting(view: str, index: int, out: Any) -> None:
            composed.append(view)
            real(view, index, out)

        viewer._composer.compose = counting
        window.show_panel("segmentation")
        qtbot.waitUntil(lambda: not viewer.isVisible(), timeout=5000)
        k, j, i = (n // 2 for n in study.volume.array.shape)
        mask = np.zeros(study.volume.array.shape, np.uint8)
        mask[k, j - 8 : j + 8, i - 8 : i + 8] = 1
        study.masks.apply("boost", mask, "test: a mask arrives while the viewer is hidden")
        window.masks_changed.emit()
        qtbot.waitUntil(lambda: host.masks_up_to_date, timeout=20000)
        viewer.set_cursor(viewer.state.geometry.point_of((i, j, k)))  # also while hidden
        assert "boost" in viewer.state.structures("segmentation")
        assert composed == [], "the hidden viewer composed slices"
        window.show_panel("viewer")
        qtbot.waitUntil(lambda: len(composed) >= 3, timeout=5000)
        assert set(composed) == {"axial", "coronal", "sagittal"}
        viewer.set_structure_style("boost", colour=(255, 0, 255), opacity=1.0)
        pixels = viewer.view_pixels("axial")
        magenta = np.all(np.abs(pixels.astype(int) - (255, 0, 255)) < 30, axis=-1)
        assert magenta.sum() > 20, "the mask that arrived while hidden is drawn once the viewer shows"

        # packing fails (here: out of memory): a sentence, the masks kept, nothing left waiting
        def no_memory(_masks: Any, _shape: Any) -> Any:
            raise MemoryError

        monkeypatch.setattr(overlays, "pack_segmentation", no_memory)
        window.masks_changed.emit()
        qtbot.waitUntil(lambda: host.masks_up_to_date, timeout=20000)
        message = window.statusBar().currentMessage()
        assert "masks are kept" in message and "Traceback" not in message, message
        assert "boost" in study.masks.masks and "boost" in viewer.state.structures("segmentation")
    finally:
        close(qtbot, window, ws)
