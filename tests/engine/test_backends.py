"""Backends behind one interface: ONNX Runtime vs the PyTorch FP32 reference (Dice >= 0.99 per structure), auto
selection with its reason, the out-of-memory fallback, cancellation, and the TensorRT FP16 parity on a GPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from core.dicom.volumes import Volume
from core.segmentation.models import CancelledError, ModelManifest, load_manifest
from core.segmentation.result import SegmentationResult
from core.segmentation.service import read_series_dir
from engines.backends.base import Backend, BackendUnavailableError, is_out_of_memory
from engines.backends.select import choose_backend, load_backend
from engines.backends.tensorrt_backend import import_tensorrt
from engines.segmentation.engine import InferencePlan, segment_volume, smaller_patch


def dice(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


@pytest.fixture(scope="module")
def manifest(tiny_model_dir: Path) -> ModelManifest:
    return load_manifest(tiny_model_dir)


@pytest.fixture(scope="module")
def volume(small_study: Path) -> Volume:
    return read_series_dir(small_study / "ct").volume


@pytest.fixture(scope="module")
def reference(volume: Volume, manifest: ModelManifest) -> SegmentationResult:
    """The PyTorch FP32 reference on a crop (PyTorch eager on 2 CPUs is slow)."""
    backend = load_backend("torch", manifest, device="cpu")
    return segment_volume(_crop(volume), manifest, backend)


def _crop(volume: Volume) -> Volume:
    from dataclasses import replace

    return replace(volume, array=np.ascontiguousarray(volume.array[8:32, 16:80, 16:80]))


def _assert_parity(result: SegmentationResult, reference: SegmentationResult) -> None:
    assert sorted(result.labels) == sorted(reference.labels)
    scores = {name: dice(result.labels[name], reference.labels[name]) for name in reference.labels}
    assert all(score >= 0.99 for score in scores.values()), scores
    assert sum(int(m.sum()) for m in reference.labels.values()) > 0  # not a trivial all-empty comparison


@pytest.mark.slow
def test_onnxruntime_matches_torch_reference(
    volume: Volume, manifest: ModelManifest, reference: SegmentationResult
) -> None:
    backend = load_backend("onnxruntime", manifest, device="cpu")
    result = segment_volume(_crop(volume), manifest, backend)
    assert result.backend == "onnxruntime (cpu, fp32)" and reference.backend == "torch (cpu, fp32)"
    _assert_parity(result, reference)


@pytest.mark.gpu
@pytest.mark.slow
def test_tensorrt_fp16_matches_torch_reference(
    volume: Volume, manifest: ModelManifest, reference: SegmentationResult, tmp_path: Path
) -> None:
    try:
        import_tensorrt()
    except BackendUnavailableError as exc:
        pytest.skip(f"TensorRT backend unavailable here: {exc}")
    backend = load_backend("tensorrt", manifest, cache_dir=tmp_path / "engines")
    result = segment_volume(_crop(volume), manifest, backend)
    assert result.backend == "tensorrt (cuda, fp16)"
    _assert_parity(result, reference)
    assert len(list((tmp_path / "engines").glob("*.plan"))) == 1  # cached: a second load builds nothing
    load_backend("tensorrt", manifest, cache_dir=tmp_path / "engines").close()
    assert len(list((tmp_path / "engines").glob("*.plan"))) == 1


def test_auto_picks_the_fastest_available_and_says_why(manifest: ModelManifest, tmp_path: Path) -> None:
    choice = choose_backend("auto", manifest, cache_dir=tmp_path)
    try:
        import_tensorrt()
        assert choice.backend.name == "tensorrt"
    except BackendUnavailableError as exc:
        assert choice.backend.name == "onnxruntime"
        assert choice.reason.startswith(f"auto picked {choice.backend.describe()}")
        assert f"tensorrt/cuda: {exc}" in choice.reason
    finally:
        choice.backend.close()
    with pytest.raises(BackendUnavailableError, match="unknown backend"):
        load_backend("tflite", manifest)


class FlakyGpu(Backend):
    """A GPU backend seam: out of memory above a patch size or batch, like a small GPU."""

    name = "tensorrt"
    device = "cuda"
    precision = "fp16"

    def __init__(self, inner: Backend, max_voxels: int | None) -> None:
        self.inner, self.max_voxels, self.calls, self.closed = inner, max_voxels, 0, False

    def predict(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        self.calls += 1
        if self.max_voxels is None or batch.size > self.max_voxels:
            raise RuntimeError("CUDA error: out of memory (cudaErrorMemoryAllocation)")
        return self.inner.predict(batch)

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def ort_cpu(manifest: ModelManifest) -> Iterator[Backend]:
    backend = load_backend("onnxruntime", manifest, device="cpu")
    yield backend
    backend.close()


def test_out_of_memory_halves_batch_then_patch(volume: Volume, manifest: ModelManifest, ort_cpu: Backend) -> None:
    gpu = FlakyGpu(ort_cpu, max_voxels=16 * 16 * 16)
    messages: list[str] = []
    result = segment_volume(
        _crop(volume), manifest, gpu, lambda _f, m: messages.append(m), plan=InferencePlan((16, 32, 32), batch_size=2)
    )
    assert result.notes == (
        "out of memory on tensorrt (cuda, fp16): batch reduced to 1",
        "out of memory on tensorrt (cuda, fp16): patch reduced to 16x16x16",
    )
    assert all(note in messages for note in result.notes) and result.backend == "tensorrt (cuda, fp16)"


def test_out_of_memory_falls_back_to_cpu(volume: Volume, manifest: ModelManifest, ort_cpu: Backend) -> None:
    gpu = FlakyGpu(ort_cpu, max_voxels=None)  # even the smallest patch does not fit
    result = segment_volume(_crop(volume), manifest, gpu, cpu_fallback=lambda: ort_cpu)
    assert result.backend == "onnxruntime (cpu, fp32)" and gpu.closed
    assert result.notes[-1] == (
        "out of memory on tensorrt (cuda, fp16) even with the smallest patch: running on onnxruntime (cpu, fp32)"
    )
    assert sum(int(m.sum()) for m in result.labels.values()) > 0
    with pytest.raises(RuntimeError, match="out of memory"):  # no fallback given: the error stands
        segment_volume(_crop(volume), manifest, FlakyGpu(ort_cpu, max_voxels=None))


def test_oom_detection_and_patch_halving() -> None:
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("[ONNXRuntimeError] : 6 : Failed to allocate memory for requested buffer"))
    assert is_out_of_memory(type("OutOfMemoryError", (RuntimeError,), {})("CUDA"))
    assert not is_out_of_memory(ValueError("shape mismatch"))
    assert smaller_patch((96, 160, 160), 16) == (48, 80, 80)
    assert smaller_patch((48, 80, 80), 16) == (32, 32, 32)
    assert smaller_patch((32, 32, 32), 16) is None


def test_cancel_stops_the_segmentation(volume: Volume, manifest: ModelManifest, ort_cpu: Backend) -> None:
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(CancelledError):
        segment_volume(_crop(volume), manifest, ort_cpu, cancelled=cancelled)
