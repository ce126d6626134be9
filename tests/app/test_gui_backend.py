"""The workstation's status bar names the inference backend the engine would pick (`auto`), judged at start-up
without importing any backend: engines.backends.availability.expected_auto_choice, used by app.cli.gui_cmds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engines.backends import availability
from engines.backends.availability import auto_choice, expected_auto_choice, probe_backends

ROOT = Path(__file__).resolve().parents[2]


def fake_machine(monkeypatch: Any, tmp_path: Path, *, gpu: bool, installed: dict[str, str]) -> None:
    """installed: module -> "cpu" or "cuda" (the build); packages laid out as the real wheels are."""
    dirs: dict[str, Path] = {}
    for module, build in installed.items():
        d = tmp_path / module
        (d / "capi").mkdir(parents=True)
        if module == "onnxruntime" and build == "cuda":
            (d / "capi" / "libonnxruntime_providers_cuda.so").write_bytes(b"")
        if module == "torch":
            cuda = "'12.1'" if build == "cuda" else "None"
            (d / "version.py").write_text(f"__version__ = '2.3.0'\ndebug = False\ncuda: Optional[str] = {cuda}\n")
        dirs[module] = d
    monkeypatch.setattr(availability, "_package_dir", dirs.get)
    monkeypatch.setattr(availability, "gpu_visible", lambda: gpu)


def test_tensorrt_installed_without_a_gpu_runs_onnxruntime_on_the_cpu(monkeypatch: Any, tmp_path: Path) -> None:
    fake_machine(monkeypatch, tmp_path, gpu=False,
                 installed={"tensorrt": "cuda", "pycuda": "cuda", "onnxruntime": "cuda", "torch": "cuda"})  # fmt: skip
    assert expected_auto_choice() == "onnxruntime (cpu)"


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        ({"tensorrt": "cuda", "pycuda": "cuda", "onnxruntime": "cpu"}, "tensorrt (cuda)"),
        ({"tensorrt": "cuda", "onnxruntime": "cpu"}, "onnxruntime (cpu)"),  # no PyCUDA: TensorRT cannot start
        ({"onnxruntime": "cuda", "torch": "cuda"}, "onnxruntime (cuda)"),
        ({"onnxruntime": "cpu", "torch": "cuda"}, "torch (cuda)"),
        ({"onnxruntime": "cpu", "torch": "cpu"}, "onnxruntime (cpu)"),
        ({"torch": "cpu"}, "torch (cpu)"),
        ({}, "none: no inference backend is available"),
    ],
)
def test_auto_order_on_a_gpu_machine(
    monkeypatch: Any, tmp_path: Path, installed: dict[str, str], expected: str
) -> None:
    fake_machine(monkeypatch, tmp_path, gpu=True, installed=installed)
    assert expected_auto_choice() == expected


def test_cuda_visible_devices_can_hide_the_gpu(monkeypatch: Any) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert availability.gpu_visible() is False
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert availability.gpu_visible() is False


@pytest.mark.slow
def test_light_probe_agrees_with_the_full_probe_here() -> None:
    """On this machine the light probe names what probe_backends (which imports every backend) says auto picks."""
    assert expected_auto_choice() == auto_choice(probe_backends())


def test_gui_backend_name_imports_no_backend() -> None:
    code = ("import sys, time; from app.cli.gui_cmds import backend_name; t = time.perf_counter(); "
            "name = backend_name(); took = time.perf_counter() - t; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'tensorrt', 'scipy') if m in sys.modules]; "
            "print(name, took, ','.join(heavy) or '-', sep='|')")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    name, took, heavy = out.stdout.strip().split("|")
    assert name == expected_auto_choice()
    assert float(took) < 0.2 and heavy == "-", out.stdout
