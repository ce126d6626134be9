"""A tiny randomly initialised segmentation model in the shipped manifest format (engine tests only)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

TINY_MODEL = "tiny-test-unet"
LABELS = ["background", "body", "lung_left", "lung_right", "heart", "spinal_cord", "esophagus", "gtv"]
ROI = {
    "body": "Body",
    "lung_left": "Lung_L",
    "lung_right": "Lung_R",
    "heart": "Heart",
    "spinal_cord": "SpinalCord",
    "esophagus": "Esophagus",
    "gtv": "GTV",
}
SMALL_SHAPE = (96, 96, 40)
SMALL_SPACING = (4.0, 4.0, 5.0)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_tiny_model(models_dir: Path, *, seed: int = 0, name: str = TINY_MODEL) -> Path:
    """models_dir/name/{model.onnx, model.pt, manifest.json}: a 2-level UNet3D with random weights."""
    import warnings

    import torch

    from engines.segmentation.unet import UNet3D

    directory = models_dir / name
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    kwargs = {"in_channels": 1, "num_classes": len(LABELS), "channels": [4, 8]}
    model = UNet3D(**{**kwargs, "channels": tuple(kwargs["channels"])}).eval()  # type: ignore[arg-type]
    torch.save(model.state_dict(), directory / "model.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, 16, 32, 32),),
            str(directory / "model.onnx"),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "n", 2: "z", 3: "y", 4: "x"}, "logits": {0: "n", 2: "z", 3: "y", 4: "x"}},
            opset_version=17,
            dynamo=False,
        )
    manifest = {
        "name": name,
        "version": "0.0.1",
        "task": "segmentation",
        "format": "onnx",
        "file": "model.onnx",
        "sha256": _sha(directory / "model.onnx"),
        "torch": {
            "file": "model.pt",
            "sha256": _sha(directory / "model.pt"),
            "architecture": "engines.segmentation.unet:UNet3D",
            "kwargs": kwargs,
        },
        "labels": LABELS,
        "roi_names": ROI,
        "spacing_mm": [4.0, 4.0, 5.0],
        "patch_size": [16, 32, 32],
        "divisible_by": 8,
        "normalisation": {"kind": "ct_clip", "clip_hu": [-1000, 1000], "mean": -300.0, "std": 500.0},
        "input_name": "image",
        "output_name": "logits",
        "derived": {"body": LABELS[1:]},
        "model_card": "MODEL_CARD.md",
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return directory
