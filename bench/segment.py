"""Segmentation benchmark: every available backend on one 512x512x150 demo study, in one run.

Each backend runs in a fresh subprocess (so peak memory is its own): read the CT series from DICOM files, segment
(prepare, sliding window, restore, structure masks), write DIR/seg.dcm and the .nii.gz masks, i.e. what
`radplan segment --input` does. Reported: end-to-end wall time, inference time, peak RSS (and peak GPU memory where
CUDA runs), the ratio to PyTorch eager (FP32, the reference) and the Dice of each structure against it.

Model: the shipped resources/models/radplan-thorax-unet when it exists, else (--stand-in, or when it is missing) a
stand-in with the same architecture, patch and spacing (engines/segmentation/train.py's TrainConfig) and random
weights: the timings hold, the masks mean nothing.

Usage: .venv/bin/python bench/segment.py [--shape 512x512x150] [--seed 0] [--backends torch,onnxruntime,tensorrt]
       [--model-dir DIR | --stand-in] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_stand_in(out_dir: Path) -> Path:
    """The trained model's architecture and manifest with random weights (seed 0)."""
    import torch

    from engines.segmentation.train import TrainConfig, export_onnx, write_manifest
    from engines.segmentation.unet import UNet3D

    config = TrainConfig()
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = UNet3D(1, 8, config.channels).eval()
    torch.save(model.state_dict(), out_dir / "model.pt")
    export_onnx(model, out_dir / "model.onnx", config.patch_size)
    write_manifest(out_dir, config, {"stand_in": "random weights with the trained architecture: timing only"})
    return out_dir


def run_one(backend: str, series_dir: Path, model_dir: Path, out: Path, threads: int) -> dict[str, Any]:
    """One backend, in this (fresh) process."""
    from core.segmentation.models import load_manifest
    from core.segmentation.result import write_result
    from core.segmentation.service import read_series_dir
    from engines.backends.base import BackendUnavailableError
    from engines.backends.select import load_backend
    from engines.segmentation.engine import segment_volume

    manifest = load_manifest(model_dir)
    t0 = time.perf_counter()
    try:
        engine = load_backend(backend, manifest, cache_dir=out.parent / "engines", threads=threads)
    except BackendUnavailableError as exc:
        return {"backend": backend, "available": False, "reason": str(exc)}
    t_load = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), _cpu()
    ct = read_series_dir(series_dir)
    result = segment_volume(ct.volume, manifest, engine)
    write_result(result, ct.volume, ct.images, out)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    gpu_peak = None
    if engine.device == "cuda":
        try:
            import torch

            gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if backend == "torch" else None
        except Exception:  # noqa: S110 (GPU memory is reported only where torch can tell)
            pass
    import numpy as np

    np.savez_compressed(out / "masks.npz", **{k: v for k, v in result.labels.items()})
    return {
        "backend": backend,
        "available": True,
        "describe": engine.describe(),
        "load_s": t_load,
        "wall_s": wall,
        "cpu_s": cpu,
        "timings_s": result.timings_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gpu_peak_mib": gpu_peak,
        "notes": list(result.notes),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _dice(a: Any, b: Any) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="512x512x150")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backends", default="torch,onnxruntime,tensorrt")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--stand-in", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--series", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.series, args.model_dir, args.out, args.threads)))
        return

    import numpy as np

    from core.demo.generator import generate_demo_study

    shape = tuple(int(v) for v in args.shape.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="radplan-bench-seg-") as tmp:
        work = Path(tmp)
        shipped = ROOT / "resources" / "models" / "radplan-thorax-unet"
        if args.model_dir is not None:
            model_dir, model_kind = args.model_dir, f"{args.model_dir}"
        elif (shipped / "manifest.json").is_file() and not args.stand_in:
            model_dir, model_kind = shipped, "the shipped trained model"
        else:
            model_dir, model_kind = write_stand_in(work / "model"), "stand-in (trained architecture, random weights)"
        generate_demo_study(work / "study", seed=args.seed, shape=shape)  # type: ignore[arg-type]
        print(f"model: {model_kind}; study {args.shape} seed {args.seed}; {args.threads} threads; "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs", flush=True)  # fmt: skip
        results = []
        for backend in args.backends.split(","):
            out = work / f"out-{backend}"
            out.mkdir()
            cmd = [sys.executable, __file__, "--one", backend, "--series", str(work / "study" / "ct"),
                   "--model-dir", str(model_dir), "--out", str(out), "--threads", str(args.threads)]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"{backend}: failed\n{proc.stderr[-2000:]}", flush=True)
                continue
            record = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(record)
            print(json.dumps(record), flush=True)
        ref = next((r for r in results if r["backend"] == "torch" and r["available"]), None)
        ref_masks = np.load(work / "out-torch" / "masks.npz") if ref is not None else None
        print("\n| backend | end-to-end s | CPU s | inference s | peak RSS MiB | vs PyTorch eager (wall, CPU) | "
              "min Dice vs PyTorch |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for r in results:
            if not r["available"]:
                print(f"| {r['backend']} | unavailable: {r['reason']} | | | | | |")
                continue
            ratio = (
                f"{ref['wall_s'] / r['wall_s']:.2f}x, {ref['cpu_s'] / r['cpu_s']:.2f}x" if ref is not None else "n/a"
            )
            dice = "n/a"
            if ref_masks is not None:
                masks = np.load(work / f"out-{r['backend']}" / "masks.npz")
                dice = f"{min(_dice(masks[k], ref_masks[k]) for k in ref_masks.files):.4f}"
            print(f"| {r['describe']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['timings_s']['inference']:.1f} | "
                  f"{r['peak_rss_mib']:.0f} | {ratio} | {dice} |")  # fmt: skip


if __name__ == "__main__":
    main()
