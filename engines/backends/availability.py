"""Which inference backends can run on this machine, and why not where they cannot."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["BackendStatus", "probe_backends", "probe_gpu"]


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    detail: str


def probe_gpu() -> str:
    """'none' or the NVIDIA GPU list as nvidia-smi prints it."""
    if shutil.which("nvidia-smi") is None:
        return "none (nvidia-smi not found)"
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"none (nvidia-smi failed: {exc})"
    return out.stdout.strip() or f"none (nvidia-smi: {out.stderr.strip()})"


def _version(module: str) -> tuple[object | None, str]:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # any import failure means "not available", with the reason
        return None, f"not importable: {type(exc).__name__}: {exc}"
    return mod, str(getattr(mod, "__version__", "?"))


def probe_backends() -> list[BackendStatus]:
    result = []
    trt, trt_v = _version("tensorrt")
    cuda, cuda_v = _version("pycuda.driver")
    if trt is None:
        result.append(BackendStatus("tensorrt", False, f"tensorrt {trt_v}"))
    elif cuda is None:
        result.append(BackendStatus("tensorrt", False, f"tensorrt {trt_v}, but pycuda {cuda_v}"))
    else:
        try:
            cuda.init()  # type: ignore[attr-defined]
            count = cuda.Device.count()  # type: ignore[attr-defined]
            result.append(BackendStatus("tensorrt", count > 0, f"tensorrt {trt_v}, {count} CUDA device(s)"))
        except Exception as exc:
            result.append(BackendStatus("tensorrt", False, f"tensorrt {trt_v}, CUDA init failed: {exc}"))
    ort, ort_v = _version("onnxruntime")
    if ort is None:
        result.append(BackendStatus("onnxruntime", False, f"onnxruntime {ort_v}"))
    else:
        providers = ort.get_available_providers()  # type: ignore[attr-defined]
        result.append(BackendStatus("onnxruntime", True, f"onnxruntime {ort_v}, providers {', '.join(providers)}"))
    torch, torch_v = _version("torch")
    if torch is None:
        result.append(BackendStatus("torch", False, f"torch {torch_v}"))
    else:
        gpu = torch.cuda.is_available()  # type: ignore[attr-defined]
        result.append(BackendStatus("torch", True, f"torch {torch_v}, {'CUDA' if gpu else 'CPU only'}"))
    return result
