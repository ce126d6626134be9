"""One segmentation, end to end on a volume: prepare -> sliding-window inference on a backend -> restore ->
structure masks -> the manifest's lesion edge refinement, with progress, cancellation and the out-of-memory fallback.

Out of memory (GPU or host, any backend: engines.backends.base.is_out_of_memory): the batch is halved down to 1,
then the patch is halved (kept a multiple of the model's divisible_by, at least twice it), then, when the backend
ran on a GPU and a CPU fallback is given, the whole volume runs again on the CPU. Each step is reported through
progress and kept in SegmentationResult.notes, so the job says what happened.

Pipeline: when the backend runs on CUDA and torch sees the GPU ("auto"), pre- and post-processing run there too
(engines.segmentation.device_pipeline: the CT goes to the GPU once, the label volume comes back); otherwise numpy on
the host. The timings then hold prepare_on_<device> and restore_on_<device>. Out of memory in the sliding window
falls back as above; the CPU fallback continues on the host pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.dicom.volumes import Volume
from core.segmentation.models import ModelManifest
from core.segmentation.result import SegmentationResult, mask_volumes_cc
from engines.backends.base import Backend, is_out_of_memory
from engines.segmentation.postprocess import final_masks, restore
from engines.segmentation.preprocess import prepare
from engines.segmentation.sliding_window import sliding_window_predict

if TYPE_CHECKING:
    import torch

__all__ = ["InferencePlan", "Pipeline", "Progress", "pipeline_device", "segment_volume", "smaller_patch"]

#: progress(fraction 0..1, message)
Progress = Callable[[float, str], None]
#: where pre/post-processing run: "auto" (on the GPU when the backend runs there), "host" (numpy), "device" (torch,
#: on the backend's GPU when torch sees it, else on the CPU: for tests)
Pipeline = Literal["auto", "host", "device"]


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


def _torch_sees_cuda() -> bool:
    try:
        import torch
    except Exception:
        return False
    return bool(torch.cuda.is_available())


def pipeline_device(pipeline: Pipeline, backend: Backend) -> str | None:
    """The torch device for pre/post-processing, or None for the numpy pipeline on the host."""
    if pipeline not in ("auto", "host", "device"):
        raise ValueError(f"unknown pipeline {pipeline!r}: auto, host or device")
    if pipeline == "host":
        return None
    cuda = backend.device == "cuda" and _torch_sees_cuda()
    if pipeline == "device":
        return "cuda" if cuda else "cpu"
    return "cuda" if cuda else None


def segment_volume(
    volume: Volume,
    manifest: ModelManifest,
    backend: Backend,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    *,
    plan: InferencePlan | None = None,
    cpu_fallback: Callable[[], Backend] | None = None,
    pipeline: Pipeline = "auto",
) -> SegmentationResult:
    """Masks of every model structure on the volume's grid (see the module docstring for the pipeline and the OOM
    fallback)."""
    report = progress or _no_progress
    plan = plan or InferencePlan(manifest.patch_size)
    timings: dict[str, float] = {}
    notes: list[str] = []
    device = pipeline_device(pipeline, backend)
    t0 = time.perf_counter()
    where = f"; pre/post-processing on {device}" if device else ""
    report(0.0, f"preparing the image for {manifest.name} on {backend.describe()}{where}")
    image: torch.Tensor | None = None
    if device is not None:
        from engines.segmentation import device_pipeline

        image, prepared = device_pipeline.prepare_on_device(volume.array, volume.spacing_mm, manifest, device)
        timings[f"prepare_on_{device}"] = time.perf_counter() - t0
    else:
        prepared = prepare(volume.array, volume.spacing_mm, manifest)
    timings["preprocess"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    patch, batch = plan.patch_size, max(1, plan.batch_size)
    while True:
        label = f"inference on {backend.describe()}"
        window: dict[str, Any] = {
            "patch_size": patch,
            "num_classes": manifest.num_classes,
            "overlap": plan.overlap,
            "batch_size": batch,
            "progress": lambda f, label=label: report(0.05 + 0.85 * f, label),
            "cancelled": cancelled,
        }
        try:
            if image is not None:
                probs_t = device_pipeline.sliding_window_on_device(image, backend, **window)
            else:
                probs = sliding_window_predict(prepared.image, backend, **window)
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
                if device is not None:  # the host pipeline from here: prepared.image holds the image there
                    image = None
                    device_pipeline.release(device)
                    device = None
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
    if device is not None:
        t3 = time.perf_counter()
        labels = device_pipeline.restore_on_device(probs_t, prepared)
        del probs_t, image
        timings[f"restore_on_{device}"] = time.perf_counter() - t3
    else:
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
