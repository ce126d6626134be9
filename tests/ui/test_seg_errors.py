"""A stored segmentation that does not fit the open series: the segmentation panel's check raises the project's
user-facing error (a RadPlanError), so the GUI shows its sentence, not "failed because of an internal error".

The panel reaches the check only after a segmentation job in the engine worker (a long GUI flow), so the check
itself (ui.segmentation.panel.masks_fitting, called by the panel's task) is run here inside a real TaskRunner task,
whose failure message is what the panel shows (its on_error callback)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.dicom.volumes import VolumeError
from ui.segmentation.panel import masks_fitting
from ui.workers import CancelToken, TaskRunner

SHAPE = (24, 96, 96)


def test_masks_that_fit_are_returned_unchanged() -> None:
    masks = {"gtv": np.zeros(SHAPE, np.uint8), "lung_left": np.ones(SHAPE, np.uint8)}
    assert masks_fitting(masks, SHAPE) is masks


def test_a_mask_of_another_shape_is_a_user_facing_error() -> None:
    masks = {"gtv": np.zeros(SHAPE, np.uint8), "lung_left": np.zeros((20, 96, 96), np.uint8)}
    with pytest.raises(VolumeError) as exc:
        masks_fitting(masks, SHAPE)
    assert str(exc.value) == (
        "the stored segmentation does not fit the open series: its lung_left mask is 20 x 96 x 96 voxels, the series "
        "24 x 96 x 96 (slices x rows x columns). It was made on another series; open that series, or run the "
        "segmentation again on this one"
    )


def test_the_gui_shows_the_sentence_not_an_internal_error(qtbot: Any) -> None:
    runner = TaskRunner()
    errors: list[str] = []
    masks = {"gtv": np.zeros((SHAPE[0] - 1, *SHAPE[1:]), np.uint8)}

    def work(_token: CancelToken, report: Any) -> Any:  # as the panel's task ends: the masks are checked
        report(0.99, "loading the masks")
        return masks_fitting(masks, SHAPE)

    task = runner.submit("segmentation", work, doing="running the segmentation", on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)
    assert runner.wait_idle(5000) and task.status == "failed"
    assert errors == [
        "Running the segmentation failed: the stored segmentation does not fit the open series: its gtv mask is "
        "23 x 96 x 96 voxels, the series 24 x 96 x 96 (slices x rows x columns). It was made on another series; "
        "open that series, or run the segmentation again on this one."
    ]
    assert "internal error" not in errors[0]
