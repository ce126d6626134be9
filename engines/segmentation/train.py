"""Reproducible training of the thorax U-Net on synthetic demo studies (``radplan model train``).

Each training seed's phantom is synthesised at the demo study's default geometry (512 x 512 x 150 voxels of
0.8 x 0.8 x 2.5 mm, as ``radplan demo-data``) and brought to the model grid by the same preprocess.prepare path the
inference uses; the truth masks are resampled linearly and painted into one label map in the class precedence
(later classes win: body < lung_right < lung_left < heart < esophagus < spinal_cord < gtv). Patches: one at a
random position and one around the tumour per step. Loss: cross-entropy + soft Dice. Augmentation: intensity scale
and shift, Gaussian noise (no flips: left and right lungs are different classes and the anatomy is not symmetric
front to back or head to foot). Everything random is seeded (numpy and torch), so the same command gives the same
weights on the same software.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F  # noqa: N812

from core.demo.phantom import VolumeGeometry, build_phantom
from core.segmentation.models import Normalisation, sha256_file
from engines.segmentation.preprocess import resample_to_model
from engines.segmentation.unet import UNet3D

__all__ = [
    "DEFAULT_GEOMETRY",
    "LABELS",
    "PRECEDENCE",
    "TrainConfig",
    "build_case",
    "export_onnx",
    "train",
    "write_manifest",
]

log = logging.getLogger("radplan.train")

LABELS: tuple[str, ...] = ("background", "body", "lung_left", "lung_right", "heart", "spinal_cord", "esophagus", "gtv")
#: Painting order (later wins where truth masks overlap).
PRECEDENCE: tuple[str, ...] = ("body", "lung_right", "lung_left", "heart", "esophagus", "spinal_cord", "gtv")
ROI_NAMES = {"body": "Body", "lung_left": "Lung_L", "lung_right": "Lung_R", "heart": "Heart",
             "spinal_cord": "SpinalCord", "esophagus": "Esophagus", "gtv": "GTV"}  # fmt: skip
DEFAULT_GEOMETRY = ((512, 512, 150), (0.8, 0.8, 2.5))


@dataclass(frozen=True)
class TrainConfig:
    seeds: tuple[int, ...] = tuple(range(1000, 1020))
    epochs: int = 60  # steps = epochs * len(seeds)
    batch_size: int = 1
    patch_size: tuple[int, int, int] = (48, 80, 80)  # z, y, x
    spacing_mm: tuple[float, float, float] = (2.4, 2.4, 2.5)  # x, y, z
    channels: tuple[int, ...] = (8, 16, 32, 64)
    lr: float = 3e-3
    seed: int = 20240315
    threads: int = 2
    clip_hu: tuple[float, float] = (-1000.0, 1000.0)
    mean: float = -400.0
    std: float = 500.0
    class_weights: tuple[float, ...] | None = None  # cross-entropy weight per class (None: equal)
    stop_after: int | None = None  # stop after this many steps (the LR schedule still spans epochs * seeds)
    init: str | None = None  # a model.pt to start from (a previous stage), recorded with its sha256
    tumour_fraction: float = 0.5  # share of patches centred near the tumour (the rest: anywhere)
    shape: tuple[int, int, int] = DEFAULT_GEOMETRY[0]
    source_spacing_mm: tuple[float, float, float] = DEFAULT_GEOMETRY[1]

    @property
    def normalisation(self) -> Normalisation:
        return Normalisation("ct_clip", self.clip_hu, self.mean, self.std)


def build_case(seed: int, config: TrainConfig) -> tuple[NDArray[np.float16], NDArray[np.uint8]]:
    """(normalised image, label map) of one demo phantom on the model grid (unpadded)."""
    geometry = VolumeGeometry.centred(config.shape, config.source_spacing_mm)
    phantom = build_phantom(geometry, seed)
    src = config.source_spacing_mm
    clipped = np.clip(phantom.hu.astype(np.float32), *config.clip_hu)
    image = config.normalisation.apply(resample_to_model(clipped, src, config.spacing_mm))
    labels = np.zeros(image.shape, dtype=np.uint8)
    for name in PRECEDENCE:
        fraction = resample_to_model(phantom.masks[name], src, config.spacing_mm, antialias=False)
        labels[fraction >= 0.5] = LABELS.index(name)
    return image.astype(np.float16), labels


def _crop(
    image: NDArray[np.float16], labels: NDArray[np.uint8], centre: Sequence[int], patch: Sequence[int]
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    pads = [(max(0, p - n), 0) for n, p in zip(image.shape, patch, strict=True)]
    if any(p for p, _ in pads):
        image = np.pad(image, [(0, p) for p, _ in pads], constant_values=float(image.min()))
        labels = np.pad(labels, [(0, p) for p, _ in pads])
    starts = [min(max(0, c - p // 2), n - p) for c, p, n in zip(centre, patch, image.shape, strict=True)]
    sl = tuple(slice(s, s + p) for s, p in zip(starts, patch, strict=True))
    return image[sl].astype(np.float32), labels[sl]


def _loss(
    logits: torch.Tensor, target: torch.Tensor, num_classes: int, weight: torch.Tensor | None = None
) -> torch.Tensor:
    ce = F.cross_entropy(logits, target, weight=weight)
    probs = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target, num_classes).permute(0, 4, 1, 2, 3).to(probs.dtype)
    dims = (0, 2, 3, 4)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2.0 * inter + 1.0) / (denom + 1.0)
    return ce + (1.0 - dice[1:]).mean()


def train(
    config: TrainConfig,
    out_dir: Path,
    *,
    log_fn: Callable[[str], None] = print,
    checkpoint_every: int = 100,
    command: str = "",
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Train, then write model.pt, model.onnx and manifest.json into ``out_dir``; returns the training record."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    t0 = time.perf_counter()
    cases = []
    for s in config.seeds:
        cached = cache_dir / f"case_{s}_{config.spacing_mm}.npz" if cache_dir is not None else None
        if cached is not None and cached.exists():
            with np.load(cached) as data:
                cases.append((data["image"], data["labels"]))
        else:
            cases.append(build_case(s, config))
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cached, image=cases[-1][0], labels=cases[-1][1])
        log_fn(f"case seed {s}: shape {cases[-1][0].shape} ({time.perf_counter() - t0:.0f} s)")
    t_data = time.perf_counter() - t0
    gtv_idx = LABELS.index("gtv")
    tumour_voxels = [np.argwhere(lab == gtv_idx) for _, lab in cases]
    model = UNet3D(1, len(LABELS), config.channels)
    init_sha = None
    if config.init:
        init_sha = sha256_file(Path(config.init))
        model.load_state_dict(torch.load(config.init, map_location="cpu", weights_only=True))
        log_fn(f"starting from {config.init} (sha256 {init_sha})")
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-5)
    steps = config.epochs * len(config.seeds)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: (1.0 - k / steps) ** 0.9)
    patch = config.patch_size
    ce_weight = None if config.class_weights is None else torch.tensor(config.class_weights, dtype=torch.float32)
    t1, running = time.perf_counter(), 0.0
    model.train()
    for step in range(min(steps, config.stop_after or steps)):
        xs, ys = [], []
        for b in range(config.batch_size):
            k = int(rng.integers(len(cases)))
            image, labels = cases[k]
            i = step * config.batch_size + b  # deterministic share: i is tumour-centred when floor(i*f) steps up
            if int((i + 1) * config.tumour_fraction) > int(i * config.tumour_fraction) and len(tumour_voxels[k]):
                centre = tumour_voxels[k][int(rng.integers(len(tumour_voxels[k])))]
                centre = centre + rng.integers(-np.array(patch) // 4, np.array(patch) // 4 + 1)
            else:
                centre = np.array([int(rng.integers(n)) for n in image.shape])
            x, y = _crop(image, labels, centre, patch)
            x = x * np.float32(1.0 + rng.normal(0.0, 0.05)) + np.float32(rng.normal(0.0, 0.05))
            x = x + rng.normal(0.0, float(rng.uniform(0.0, 0.03)), x.shape).astype(np.float32)
            xs.append(x[None])
            ys.append(y.astype(np.int64))
        xb, yb = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
        loss = _loss(model(xb), yb, len(LABELS), ce_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())
        running = 0.95 * running + 0.05 * value if step else value
        if step % 20 == 0 or step == steps - 1:
            log_fn(f"step {step + 1}/{steps} loss {running:.4f} ({time.perf_counter() - t1:.0f} s)")
        if checkpoint_every and (step + 1) % checkpoint_every == 0:
            torch.save(model.state_dict(), out_dir / "model.pt")
    t_train = time.perf_counter() - t1
    model.eval()
    torch.save(model.state_dict(), out_dir / "model.pt")
    export_onnx(model, out_dir / "model.onnx", config.patch_size)
    record = {
        "seeds": list(config.seeds), "epochs": config.epochs, "steps": steps, "batch_size": config.batch_size,
        "patch_size": list(config.patch_size), "lr": config.lr, "seed": config.seed, "init_sha256": init_sha,
        "stop_after": config.stop_after, "class_weights": config.class_weights,
        "tumour_fraction": config.tumour_fraction,
        "steps_done": min(steps, config.stop_after or steps),
        "threads": config.threads,
        "source_geometry": {"shape": list(config.shape), "spacing_mm": list(config.source_spacing_mm)},
        "data_seconds": round(t_data, 1), "train_seconds": round(t_train, 1), "final_loss": round(running, 5),
        "command": command,
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
    }  # fmt: skip
    write_manifest(out_dir, config, record)
    return record


def export_onnx(model: torch.nn.Module, path: Path, patch_size: Sequence[int]) -> None:
    """ONNX (opset 17) with dynamic N, Z, Y, X; input "image", output "logits"."""
    dummy = torch.zeros(1, 1, *patch_size)
    axes = {0: "n", 2: "z", 3: "y", 4: "x"}
    torch.onnx.export(
        model, (dummy,), str(path), input_names=["image"], output_names=["logits"], opset_version=17,
        dynamic_axes={"image": axes, "logits": axes}, dynamo=False,
    )  # fmt: skip


#: 1.1.0: the GTV edge is re-drawn on the CT (core.segmentation.refine); 1.0.0 used the network's argmax alone.
MODEL_VERSION = "1.1.0"
#: The GTV edge refinement written into the manifest (parameters chosen on training seeds 1000-1005, see
#: docs/segmentation.md): -400 HU is halfway between lung (-865) and solid tumour (30 HU).
REFINE = {
    "gtv": {"threshold_hu": -400.0, "search_mm": 10.0, "open_mm": 2.0, "open_fraction": 0.25,
            "within": ["lung_left", "lung_right"]},
}  # fmt: skip


def write_manifest(out_dir: Path, config: TrainConfig, record: dict[str, Any]) -> dict[str, Any]:
    organs = [n for n in LABELS if n != "background"]
    manifest = {
        "name": "radplan-thorax-unet", "version": MODEL_VERSION, "task": "segmentation", "format": "onnx",
        "file": "model.onnx", "sha256": sha256_file(out_dir / "model.onnx"),
        "torch": {"file": "model.pt", "sha256": sha256_file(out_dir / "model.pt"),
                  "architecture": "engines.segmentation.unet:UNet3D",
                  "kwargs": {"in_channels": 1, "num_classes": len(LABELS), "channels": list(config.channels)}},
        "labels": list(LABELS), "roi_names": ROI_NAMES, "spacing_mm": list(config.spacing_mm),
        "patch_size": list(config.patch_size), "divisible_by": 2 ** (len(config.channels) - 1),
        "normalisation": {"kind": "ct_clip", "clip_hu": list(config.clip_hu), "mean": config.mean, "std": config.std},
        "input_name": "image", "output_name": "logits", "model_card": "MODEL_CARD.md",
        "derived": {"body": organs},
        "largest_component": {n: 1.0 for n in organs},
        "refine": REFINE,
        "description": "3-D U-Net for the synthetic demo thorax; trained on synthetic data, not for clinical use",
        "training": record,
    }  # fmt: skip
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
