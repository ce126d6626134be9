"""Pre/post-processing on a torch device (engines.segmentation.device_pipeline) against the numpy host pipeline:
parity of each step on device="cpu" (the same code runs on CUDA), segment_volume end to end with either pipeline,
the out-of-memory fallback on the device pipeline, and the backends' predict_device. The CUDA and TensorRT checks
are skipped with the reason on a machine without an NVIDIA GPU: they have not run where this was written."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from scipy import ndimage

from core.demo.anatomy import VolumeGeometry
from core.demo.phantom import build_phantom
from core.dicom.volumes import Volume
from core.segmentation.models import CancelledError, ModelManifest, get_model, load_manifest
from core.segmentation.result import SegmentationResult
from engines.backends.base import Backend, BackendUnavailableError
from engines.backends.onnxruntime_backend import OnnxRuntimeBackend
from engines.backends.select import load_backend
from engines.segmentation.device_pipeline import (
    gaussian_filter_nearest,
    prepare_on_device,
    restore_on_device,
    sliding_window_on_device,
)
from engines.segmentation.engine import InferencePlan, pipeline_device, segment_volume
from engines.segmentation.postprocess import restore
from engines.segmentation.preprocess import prepare
from engines.segmentation.sliding_window import sliding_window_predict
from tests.engine.tiny_model import write_tiny_model

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(
    not CUDA, reason="CUDA device pipeline: needs an NVIDIA GPU; run on the device machine (torch sees no CUDA here)"
)
METADATA = ("source_shape", "source_spacing_mm", "model_spacing_mm", "model_shape", "model_origin_mm", "pad")


def phantom_volume(shape_xyz: tuple[int, int, int], spacing: tuple[float, float, float], seed: int = 0) -> Volume:
    """A synthetic thorax CT (the demo generator's phantom, in memory) as the engine's Volume."""
    geometry = VolumeGeometry.centred(shape_xyz, spacing)
    hu = build_phantom(geometry, seed).hu
    return Volume(
        array=hu.astype(np.float32), spacing_mm=spacing, origin_mm=geometry.origin_mm,
        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), series_uid="1.2.826.0.1.3680043.10.54321.1",
        modality="CT", units="HU", sop_uids=(),
    )  # fmt: skip


def smooth_probs(shape: tuple[int, ...], classes: int, seed: int) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    logits = ndimage.gaussian_filter(rng.normal(size=(classes, *shape)).astype(np.float32), (0, 2, 2, 2)) * 20.0
    return torch.softmax(torch.from_numpy(logits), dim=0).numpy()


def dice(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def assert_same_masks(
    result: SegmentationResult, reference: SegmentationResult, *, every: bool = True
) -> dict[str, float]:
    """Dice >= 0.99 per structure; ``every`` structure non-empty (the shipped model) or at least one (random)."""
    assert sorted(result.labels) == sorted(reference.labels)
    scores = {name: dice(result.labels[name], reference.labels[name]) for name in reference.labels}
    assert all(score >= 0.99 for score in scores.values()), scores
    found = [int(m.sum()) > 0 for m in reference.labels.values()]
    assert all(found) if every else any(found)  # not a trivial all-empty comparison
    return scores


@pytest.fixture(scope="module")
def shipped() -> ModelManifest:
    return get_model()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ModelManifest:
    return load_manifest(write_tiny_model(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def tiny_torch(tiny: ModelManifest) -> Backend:
    return load_backend("torch", tiny, device="cpu")


# ----------------------------------------------------------------------------------------------- preprocessing
def test_gaussian_matches_scipy_nearest() -> None:
    """Edges repeated even where the kernel radius (9) is longer than the axis (6); sigma 0 leaves an axis alone."""
    volume = (np.random.default_rng(1).normal(size=(6, 20, 30)) * 500.0).astype(np.float32)
    volume[:, :, :10] = -1000.0
    sigma = (3.0, 1.4, 0.0)
    expected = ndimage.gaussian_filter(volume, sigma, mode="nearest", truncate=3.0)
    got = gaussian_filter_nearest(torch.from_numpy(volume), sigma, truncate=3.0).numpy()
    assert float(np.abs(got - expected).max()) < 1e-3  # HU (float32 accumulation against scipy's float64)


@pytest.mark.parametrize(
    ("shape_xyz", "spacing"),
    [
        ((200, 180, 24), (0.8, 0.8, 2.5)),  # downsampling in x, y: the anti-aliasing Gaussian runs
        ((60, 64, 12), (4.0, 4.0, 5.0)),  # upsampling on every axis: edge clamping of the first/last model voxels
        ((100, 90, 16), (1.3, 1.1, 4.0)),  # mixed: Gaussian in x, y, upsampling in z
    ],
)
def test_prepare_on_device_matches_prepare(
    shipped: ModelManifest, shape_xyz: tuple[int, int, int], spacing: tuple[float, float, float]
) -> None:
    volume = phantom_volume(shape_xyz, spacing, seed=2)
    host = prepare(volume.array, spacing, shipped)
    image, prepared = prepare_on_device(volume.array, spacing, shipped, "cpu")
    assert [getattr(prepared, f) for f in METADATA] == [getattr(host, f) for f in METADATA]
    assert image.device.type == "cpu" and image.dtype == torch.float32 and tuple(image.shape) == host.image.shape
    assert np.array_equal(prepared.image, image.numpy())
    assert float(np.abs(image.numpy() - host.image).max()) <= 1e-4
    assert float(host.image.std()) > 0.3  # structure, not a flat image
    # the integer HU the DICOM reader may hand over give the same image
    as_int16, _ = prepare_on_device(volume.array.astype(np.int16), spacing, shipped, "cpu")
    assert torch.equal(as_int16, image)


def test_prepare_cases_cover_gaussian_padding_and_clamping(shipped: ModelManifest) -> None:
    """The parametrised cases above exercise what they claim (so their parity means something)."""
    sigma = math.sqrt(shipped.spacing_mm[0] ** 2 - 0.8**2) / 2.0 / 0.8
    assert sigma > 0.2  # 0.8 mm -> model spacing: prepare smooths first
    up = prepare(phantom_volume((60, 64, 12), (4.0, 4.0, 5.0)).array, (4.0, 4.0, 5.0), shipped)
    assert min(up.model_origin_mm) < 0.0  # the first model voxel lies before source voxel 0: clamped, not 0
    assert any(after for _, after in up.pad)


# ----------------------------------------------------------------------------------------------- sliding window
def test_sliding_window_on_device_matches_host(tiny: ModelManifest, tiny_torch: Backend) -> None:
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.normal(size=(40, 50, 45)), 2.0).astype(np.float32) * 4.0
    for crop, batch in (((40, 50, 45), 3), ((8, 10, 12), 1)):  # the second is shorter than the patch: padded
        part = np.ascontiguousarray(image[: crop[0], : crop[1], : crop[2]])
        seen_host: list[float] = []
        seen_device: list[float] = []
        kwargs: dict[str, Any] = {
            "patch_size": (16, 32, 32),
            "num_classes": tiny.num_classes,
            "overlap": 0.5,
            "batch_size": batch,
        }
        host = sliding_window_predict(part, tiny_torch, progress=seen_host.append, **kwargs)
        probs = sliding_window_on_device(torch.from_numpy(part), tiny_torch, progress=seen_device.append, **kwargs)
        assert tuple(probs.shape) == host.shape == (tiny.num_classes, *crop)
        assert float(np.abs(probs.numpy() - host).max()) <= 1e-5
        assert seen_device == seen_host and seen_device[-1] == 1.0
    assert float(host.std()) > 1e-3  # the random model does not give flat probabilities


def test_sliding_window_on_device_cancels_and_checks_shapes(tiny: ModelManifest, tiny_torch: Backend) -> None:
    image = torch.zeros((32, 64, 64))
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(CancelledError):
        sliding_window_on_device(
            image, tiny_torch, patch_size=(16, 32, 32), num_classes=tiny.num_classes, cancelled=cancelled
        )
    assert calls["n"] == 3
    with pytest.raises(ValueError, match="shape"):  # the model gives 8 classes, not 3
        sliding_window_on_device(image, tiny_torch, patch_size=(16, 32, 32), num_classes=3)


# ----------------------------------------------------------------------------------------------- restore
@pytest.mark.parametrize(("shape_xyz", "spacing"), [((150, 140, 40), (0.8, 0.8, 2.5)), ((60, 64, 12), (4.0, 4.0, 5.0))])
def test_restore_on_device_matches_restore(
    shipped: ModelManifest, shape_xyz: tuple[int, int, int], spacing: tuple[float, float, float]
) -> None:
    volume = phantom_volume(shape_xyz, spacing)
    prepared = prepare(volume.array, spacing, shipped)
    probs = smooth_probs(prepared.image.shape, shipped.num_classes, seed=4)
    host = restore(probs, prepared)
    labels = restore_on_device(torch.from_numpy(probs), prepared, chunk_bytes=1 << 20)  # several slabs of slices
    assert labels.dtype == np.uint8 and labels.shape == host.shape == volume.array.shape
    assert float((labels == host).mean()) >= 0.999
    assert len(np.unique(host)) == shipped.num_classes  # every class present: a real comparison
    with pytest.raises(ValueError, match="do not match"):
        restore_on_device(torch.from_numpy(probs[:, :-8]), prepared)


# ----------------------------------------------------------------------------------------------- backends
def test_predict_device_of_the_backends_matches_predict(tiny: ModelManifest, tiny_torch: Backend) -> None:
    batch = np.random.default_rng(5).normal(size=(2, 1, 16, 32, 32)).astype(np.float32)
    reference = tiny_torch.predict(batch)
    got = tiny_torch.predict_device(torch.from_numpy(batch))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32 and got.device.type == "cpu"
    assert float(np.abs(got.numpy() - reference).max()) <= 1e-6
    ort = OnnxRuntimeBackend(tiny.model_path, device="cpu")  # IOBinding on the CPU tensor's memory
    try:
        via_binding = ort.predict_device(torch.from_numpy(batch))
        assert tuple(via_binding.shape) == reference.shape
        assert float(np.abs(via_binding.numpy() - ort.predict(batch)).max()) <= 1e-6
        assert float(np.abs(via_binding.numpy() - reference).max()) < 1e-3  # ONNX vs the torch reference
        # the base class's default: the host round trip through predict
        assert torch.equal(Backend.predict_device(ort, torch.from_numpy(batch)), torch.from_numpy(ort.predict(batch)))
    finally:
        ort.close()


# ----------------------------------------------------------------------------------------------- segment_volume
class Tagged(Backend):
    """A backend seam: another backend's model behind a chosen name/device, out of memory above a batch size."""

    def __init__(self, inner: Backend, *, device: str, max_voxels: int | None = -1) -> None:
        self.inner, self.device, self.max_voxels, self.closed = inner, device, max_voxels, False
        self.name, self.precision = "tensorrt", "fp16"

    def predict(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.max_voxels is None or (self.max_voxels >= 0 and batch.size > self.max_voxels):
            raise RuntimeError("CUDA error: out of memory (cudaErrorMemoryAllocation)")
        return self.inner.predict(batch)

    def close(self) -> None:
        self.closed = True


def test_pipeline_choice(tiny_torch: Backend) -> None:
    gpu = Tagged(tiny_torch, device="cuda")
    assert pipeline_device("auto", tiny_torch) is None and pipeline_device("host", gpu) is None
    assert pipeline_device("device", tiny_torch) == "cpu"
    assert pipeline_device("auto", gpu) == ("cuda" if CUDA else None)  # a GPU backend: only where torch sees it
    assert pipeline_device("device", gpu) == ("cuda" if CUDA else "cpu")
    with pytest.raises(ValueError, match="unknown pipeline"):
        pipeline_device("gpu", tiny_torch)  # type: ignore[arg-type]


def test_segment_volume_device_pipeline_matches_host(shipped: ModelManifest) -> None:
    """The shipped model on a 320 mm x 320 mm x 100 mm thorax at 0.8 x 0.8 x 2.5 mm, PyTorch on the CPU."""
    volume = phantom_volume((400, 400, 40), (0.8, 0.8, 2.5), seed=1)
    backend = load_backend("torch", shipped, device="cpu")
    t0 = time.perf_counter()
    host = segment_volume(volume, shipped, backend, pipeline="host")
    t1 = time.perf_counter()
    device = segment_volume(volume, shipped, backend, pipeline="device")
    t2 = time.perf_counter()
    scores = assert_same_masks(device, host)
    assert "prepare_on_cpu" in device.timings_s and "restore_on_cpu" in device.timings_s
    assert not any(key.endswith("_on_cpu") for key in host.timings_s)
    assert device.notes == host.notes and device.backend == host.backend == "torch (cpu, fp32)"
    timing = {k: round(v, 3) for k, v in (("host", t1 - t0), ("device", t2 - t1))}
    print(f"\nDice {scores}\nhost {host.timings_s}\ndevice {device.timings_s}\nwall {timing}")


def test_out_of_memory_fallback_on_the_device_pipeline(tiny: ModelManifest, tiny_torch: Backend) -> None:
    volume = phantom_volume((64, 64, 24), (4.0, 4.0, 5.0), seed=3)
    reference = segment_volume(volume, tiny, tiny_torch, pipeline="host")
    small = Tagged(tiny_torch, device="cuda", max_voxels=16 * 16 * 16)
    messages: list[str] = []
    plan = InferencePlan((16, 32, 32), batch_size=2)
    result = segment_volume(volume, tiny, small, lambda _f, m: messages.append(m), plan=plan, pipeline="device")
    assert result.notes == (
        "out of memory on tensorrt (cuda, fp16): batch reduced to 1",
        "out of memory on tensorrt (cuda, fp16): patch reduced to 16x16x16",
    )
    assert all(note in messages for note in result.notes)
    assert any(key.startswith("restore_on_") for key in result.timings_s)  # stayed on the device pipeline
    host_small = segment_volume(volume, tiny, small, plan=plan, pipeline="host")
    assert_same_masks(result, host_small, every=False)

    never = Tagged(tiny_torch, device="cuda", max_voxels=None)  # even the smallest patch does not fit
    fallen = segment_volume(volume, tiny, never, cpu_fallback=lambda: tiny_torch, pipeline="device")
    assert never.closed and fallen.backend == "torch (cpu, fp32)"
    assert fallen.notes[-1] == (
        "out of memory on tensorrt (cuda, fp16) even with the smallest patch: running on torch (cpu, fp32)"
    )
    assert not any(key.startswith("restore_on_") for key in fallen.timings_s)  # the host pipeline finished it
    assert_same_masks(fallen, reference, every=False)
    with pytest.raises(RuntimeError, match="out of memory"):  # no fallback given: the error stands
        segment_volume(volume, tiny, Tagged(tiny_torch, device="cuda", max_voxels=None), pipeline="device")


# ----------------------------------------------------------------------------------------------- CUDA only
@needs_cuda
def test_cuda_device_pipeline_matches_host(shipped: ModelManifest) -> None:
    volume = phantom_volume((400, 400, 40), (0.8, 0.8, 2.5), seed=1)
    image, prepared = prepare_on_device(volume.array, volume.spacing_mm, shipped, "cuda")
    host = prepare(volume.array, volume.spacing_mm, shipped)
    assert image.device.type == "cuda" and float(np.abs(image.cpu().numpy() - host.image).max()) <= 1e-4
    probs = smooth_probs(prepared.image.shape, shipped.num_classes, seed=4)
    labels = restore_on_device(torch.from_numpy(probs).cuda(), prepared)
    assert float((labels == restore(probs, prepared)).mean()) >= 0.999
    gpu = load_backend("torch", shipped, device="cuda")
    cpu = load_backend("torch", shipped, device="cpu")
    try:
        result = segment_volume(volume, shipped, gpu)  # auto: a CUDA backend gets the device pipeline
        reference = segment_volume(volume, shipped, cpu, pipeline="host")
    finally:
        gpu.close()
    assert "prepare_on_cuda" in result.timings_s and "restore_on_cuda" in result.timings_s
    scores = assert_same_masks(result, reference)
    print(f"\nDice {scores}\ncuda {result.timings_s}\nhost cpu {reference.timings_s}")


@needs_cuda
def test_cuda_onnxruntime_predict_device_matches_predict(tiny: ModelManifest) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("ONNX Runtime has no CUDA execution provider here (onnxruntime-gpu not installed)")
    ort = OnnxRuntimeBackend(tiny.model_path, device="cuda")
    batch = np.random.default_rng(6).normal(size=(2, 1, 16, 32, 32)).astype(np.float32)
    try:
        got = ort.predict_device(torch.from_numpy(batch).cuda())
        assert got.device.type == "cuda"
        assert float(np.abs(got.cpu().numpy() - ort.predict(batch)).max()) <= 1e-4
    finally:
        ort.close()


@needs_cuda
@pytest.mark.gpu
def test_tensorrt_predict_device_matches_predict(tiny: ModelManifest, tmp_path: Path) -> None:
    try:
        trt = load_backend("tensorrt", tiny, cache_dir=tmp_path / "engines")
    except BackendUnavailableError as exc:
        pytest.skip(f"TensorRT backend unavailable here: {exc}")
    batch = np.random.default_rng(7).normal(size=(3, 1, 16, 32, 32)).astype(np.float32)  # 3 > max_batch 2: split
    try:
        got = trt.predict_device(torch.from_numpy(batch).cuda())
        expected = trt.predict(batch)
    finally:
        trt.close()
    assert got.device.type == "cuda" and got.dtype == torch.float32 and tuple(got.shape) == expected.shape
    assert float(np.abs(got.cpu().numpy() - expected).max()) <= 1e-3  # the same FP16 engine both ways
