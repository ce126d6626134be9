"""Which inference backends can run on this machine, and why not where they cannot (for `radplan doctor`)."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["BackendStatus", "auto_choice", "probe_backends", "probe_gpu"]


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    detail: str
    #: devices it can run on here ("cuda", "cpu"), fastest first
    devices: tuple[str, ...] = ()


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


def _tensorrt() -> BackendStatus:
    from engines.backends.base import BackendUnavailableError
    from engines.backends.tensorrt_backend import import_tensorrt

    try:
        trt, cuda = import_tensorrt()
    except BackendUnavailableError as exc:
        return BackendStatus("tensorrt", False, f"unavailable: {exc}")
    count = cuda.Device.count()
    names = ", ".join(str(cuda.Device(i).name()) for i in range(count))
    return BackendStatus("tensorrt", True, f"tensorrt {trt.__version__} FP16 on {names}", ("cuda",))


def probe_backends() -> list[BackendStatus]:
    result = [_tensorrt()]
    ort, ort_v = _version("onnxruntime")
    if ort is None:
        result.append(BackendStatus("onnxruntime", False, f"unavailable: onnxruntime {ort_v}"))
    else:
        providers = ort.get_available_providers()  # type: ignore[attr-defined]
        devices = ("cuda", "cpu") if "CUDAExecutionProvider" in providers else ("cpu",)
        result.append(
            BackendStatus("onnxruntime", True, f"onnxruntime {ort_v}, providers {', '.join(providers)}", devices)
        )
    torch, torch_v = _version("torch")
    if torch is None:
        result.append(BackendStatus("torch", False, f"unavailable: torch {torch_v}"))
    else:
        gpu = torch.cuda.is_available()  # type: ignore[attr-defined]
        result.append(
            BackendStatus(
                "torch", True, f"torch {torch_v}, {'CUDA' if gpu else 'CPU only'}", ("cuda", "cpu") if gpu else ("cpu",)
            )
        )
    return result


def auto_choice(statuses: list[BackendStatus]) -> str:
    """What `--backend auto` picks here (engines.backends.select.AUTO_ORDER), as 'name (device)'."""
    from engines.backends.select import AUTO_ORDER

    by_name = {s.name: s for s in statuses}
    for name, device in AUTO_ORDER:
        status = by_name.get(name)
        if status is not None and status.available and device in status.devices:
            return f"{name} ({device})"
    return "none: no inference backend is available"
