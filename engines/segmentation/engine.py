"""One segmentation, end to end on a volume: prepare -> sliding-window inference on a backend -> restore ->
structure masks -> the manifest's lesion edge refinement, with progress, cancellation and the out-of-memory fallback.

Out of memory (GPU or host, any backend: engines.backends.base.is_out_of_memory): the batch is halved down to 1,
then the patch is halved (kept a multiple of the model's divisible_by, at least twice it), then, when the backend
ran on a GPU and a CPU fallback is given, the whole volume runs again on the CPU. Each step is reported through
progress and kept in SegmentationResult.notes, so the job says what happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.dicom.volumes import Volume
from core.segmentation.models import ModelManifest
from core.segmentation.result import SegmentationResult, mask_volumes_cc
from engines.backends.base import Backend, is_out_of_memory
from engines.segmentation.postprocess import final_masks, restore
from engines.segmentation.preprocess import prepare
from engines.segmentation.sliding_window import sliding_window_predict

__all__ = ["InferencePlan", "Progress", "segment_volume", "smaller_patch"]

#: progress(fraction 0..1, message)
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class InferencePlan:
    patch_size: tuple[int, int, int]
    batch_size: int = 1
    overlap: float = 0.5


def smaller_patch(patch: tuple[int, int, int], divisible_by: int) -> tuple[int, int, int] | None:
    """Each axis halved (to a multiple of divisible_by, at least 2 * divisible_by); None when none can shrink."""
    floor = 2 * divisible_by
    new = tuple(max(floor, (p // 2) // divisible_by * divisible_by) for p in patch)
    return None if new == tuple(patch) else (new[0], new[1], new[2])


def _no_progress(_fraction: float, _message: str) -> None:
    return None


def segment_volume(
    volume: Volume,
    manifest: ModelManifest,
    backend: Backend,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    *,
    plan: InferencePlan | None = None,
    cpu_fallback: Callable[[], Backend] | None = None,
) -> SegmentationResult:
    """Masks of every model structure on the volume's grid (see the module docstring for the OOM fallback)."""
    report = progress or _no_progress
    plan = plan or InferencePlan(manifest.patch_size)
    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    report(0.0, f"preparing the image for {manifest.name} on {backend.describe()}")
    prepared = prepare(volume.array, volume.spacing_mm, manifest)
    timings["preprocess"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    patch, batch = plan.patch_size, max(1, plan.batch_size)
    while True:
        label = f"inference on {backend.describe()}"
        try:
            probs = sliding_window_predict(
                prepared.image,
                backend,
                patch_size=patch,
                num_classes=manifest.num_classes,
                overlap=plan.overlap,
                batch_size=batch,
                progress=lambda f, label=label: report(0.05 + 0.85 * f, label),  # type: ignore[misc]
                cancelled=cancelled,
            )
            break
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            if batch > 1:
                batch //= 2
                note = f"out of memory on {backend.describe()}: batch reduced to {batch}"
            elif (smaller := smaller_patch(patch, manifest.divisible_by)) is not None:
                patch = smaller
                note = f"out of memory on {backend.describe()}: patch reduced to {'x'.join(map(str, patch))}"
            elif cpu_fallback is not None and backend.device != "cpu":
                failed = backend.describe()
                backend.close()
                backend = cpu_fallback()
                patch, batch = plan.patch_size, 1
                note = f"out of memory on {failed} even with the smallest patch: running on {backend.describe()}"
            else:
                raise
            notes.append(note)
            report(0.05, note)
    timings["inference"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    report(0.92, "restoring the masks on the CT grid")
    labels = restore(probs, prepared)
    del probs
    raw, refined = final_masks(labels, manifest, volume.array, volume.spacing_mm)
    masks = {name: np.ascontiguousarray(mask, dtype=np.uint8) for name, mask in raw.items()}
    notes.extend(refined)
    timings["postprocess"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    report(1.0, "segmentation done")
    return SegmentationResult(
        labels=masks,
        model_name=manifest.name,
        model_version=manifest.version,
        backend=backend.describe(),
        timings_s=timings,
        volumes_cc=mask_volumes_cc(masks, volume.spacing_mm),
        roi_names=dict(manifest.roi_names),
        spacing_mm=volume.spacing_mm,
        source_series_uid=volume.series_uid,
        notes=tuple(notes),
    )
