"""Building a backend by name, and `auto`: the fastest one available here, with the reason for the choice.

auto tries, in order: TensorRT FP16 (NVIDIA GPU), ONNX Runtime with the CUDA provider, PyTorch on CUDA, ONNX Runtime
on the CPU, PyTorch on the CPU. The order follows bench/segment.py (bench/README.md): on the CPU ONNX Runtime is
faster than PyTorch eager; on a GPU TensorRT FP16 is the fastest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.segmentation.models import ModelError, ModelManifest
from engines.backends.base import BACKEND_NAMES, Backend, BackendUnavailableError
from engines.backends.order import AUTO_ORDER

__all__ = ["AUTO_ORDER", "Choice", "choose_backend", "load_backend"]


@dataclass(frozen=True)
class Choice:
    backend: Backend
    reason: str


def load_backend(
    name: str, manifest: ModelManifest, *, device: str = "auto", cache_dir: Path | None = None, threads: int = 0
) -> Backend:
    """The named backend for this model, or BackendUnavailableError with the reason."""
    if name == "tensorrt":
        if device == "cpu":
            raise BackendUnavailableError("TensorRT runs on NVIDIA GPUs only")
        from engines.backends.tensorrt_backend import TensorRTBackend, import_tensorrt

        import_tensorrt()  # the reason it cannot run comes first (not installed, no GPU, driver)
        if cache_dir is None:
            raise BackendUnavailableError("TensorRT needs an engine cache folder (settings.data_dir/engines)")
        return TensorRTBackend(
            manifest.model_path,
            model_sha256=manifest.sha256,
            patch_size=manifest.patch_size,
            cache_dir=cache_dir,
            input_name=manifest.input_name,
            output_name=manifest.output_name,
            min_patch=tuple(max(manifest.divisible_by, p // 4) for p in manifest.patch_size),  # type: ignore[arg-type]
        )
    if name == "onnxruntime":
        from engines.backends.onnxruntime_backend import OnnxRuntimeBackend

        manifest.verify()
        return OnnxRuntimeBackend(
            manifest.model_path,
            input_name=manifest.input_name,
            output_name=manifest.output_name,
            device=device,
            threads=threads,
        )
    if name == "torch":
        from engines.backends.torch_backend import TorchBackend

        return TorchBackend(manifest, device=device, threads=threads)
    raise BackendUnavailableError(f"unknown backend {name!r}: use auto or one of {', '.join(BACKEND_NAMES)}")


def choose_backend(
    requested: str, manifest: ModelManifest, *, cache_dir: Path | None = None, threads: int = 0
) -> Choice:
    """The requested backend, or for 'auto' the first of AUTO_ORDER that loads; the reason says why."""
    if requested != "auto":
        backend = load_backend(requested, manifest, cache_dir=cache_dir, threads=threads)
        return Choice(backend, f"{backend.describe()} as requested")
    skipped: list[str] = []
    for name, device in AUTO_ORDER:
        try:
            backend = load_backend(name, manifest, device=device, cache_dir=cache_dir, threads=threads)
        except ModelError:
            raise  # the model itself is refused: no backend can help
        except Exception as exc:  # unavailable, or failed to start (driver, engine build): try the next one
            skipped.append(f"{name}/{device}: {exc}")
            continue
        if backend.device != device:  # e.g. asked for CUDA, got the CPU provider
            backend.close()
            skipped.append(f"{name}/{device}: runs on {backend.device} only here")
            continue
        why = "fastest available" + (f" (not available: {'; '.join(skipped)})" if skipped else "")
        return Choice(backend, f"auto picked {backend.describe()}: {why}")
    raise BackendUnavailableError("no inference backend can run this model here: " + "; ".join(skipped))
