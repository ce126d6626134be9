"""Which inference backends can run on this machine, and why not where they cannot (for `radplan doctor`)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from engines.backends.order import AUTO_ORDER

__all__ = ["BackendStatus", "auto_choice", "expected_auto_choice", "gpu_visible", "probe_backends", "probe_gpu"]


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
    """What `--backend auto` picks here (engines.backends.order.AUTO_ORDER), as 'name (device)'."""
    by_name = {s.name: s for s in statuses}
    for name, device in AUTO_ORDER:
        status = by_name.get(name)
        if status is not None and status.available and device in status.devices:
            return f"{name} ({device})"
    return "none: no inference backend is available"


# ---------------------------------------------------------------------------------------------- light probe
# The workstation's status bar names the backend before any job ran, at start-up: probe_backends() would import
# PyTorch, ONNX Runtime and TensorRT (seconds). expected_auto_choice() answers the same question from files only.


def gpu_visible() -> bool:
    """Whether a CUDA GPU would be visible to the engine, without loading a driver library: an NVIDIA driver with
    at least one GPU (Linux: /proc/driver/nvidia/gpus; elsewhere nvidia-smi on the PATH), not hidden by
    CUDA_VISIBLE_DEVICES."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    if sys.platform.startswith("linux"):
        gpus = Path("/proc/driver/nvidia/gpus")
        return gpus.is_dir() and any(gpus.iterdir())
    return shutil.which("nvidia-smi") is not None


def _package_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _ort_has_cuda(ort_dir: Path) -> bool:
    """The onnxruntime-gpu build ships its CUDA execution provider as a library next to the core one."""
    return any((ort_dir / "capi").glob("*onnxruntime_providers_cuda*"))


def _torch_has_cuda(torch_dir: Path) -> bool:
    """torch/version.py says which CUDA the wheel was built for (`cuda: Optional[str] = None` on CPU builds)."""
    try:
        text = (torch_dir / "version.py").read_text(encoding="utf-8")
    except OSError:
        return False
    found = re.search(r"^cuda\b[^=]*=\s*(.+)$", text, re.MULTILINE)
    return found is not None and found.group(1).strip() not in ("None", "''", '""')


def expected_auto_choice() -> str:
    """What `--backend auto` would pick here, as auto_choice() names it ('name (device)'), judged from the installed
    packages and the GPU driver without importing any backend (milliseconds, so the GUI can show it at start-up).
    It can differ from the real choice only when a backend is installed but fails to load (a broken CUDA install):
    the engine then falls back, and the job reports what actually ran."""
    gpu = gpu_visible()
    found = {m: _package_dir(m) for m in ("tensorrt", "pycuda", "onnxruntime", "torch")}
    can_run = {
        ("tensorrt", "cuda"): gpu and found["tensorrt"] is not None and found["pycuda"] is not None,
        ("onnxruntime", "cuda"): gpu and found["onnxruntime"] is not None and _ort_has_cuda(found["onnxruntime"]),
        ("torch", "cuda"): gpu and found["torch"] is not None and _torch_has_cuda(found["torch"]),
        ("onnxruntime", "cpu"): found["onnxruntime"] is not None,
        ("torch", "cpu"): found["torch"] is not None,
    }
    for name, device in AUTO_ORDER:
        if can_run.get((name, device), False):
            return f"{name} ({device})"
    return "none: no inference backend is available"
