"""The PyTorch FP32 reference backend: the model's ``model.pt`` state dict in its architecture class, as a
``predict`` callable for sliding_window_predict (the ONNX Runtime / TensorRT backends expose the same shape)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import torch
from numpy.typing import NDArray

from core.segmentation.models import ModelError, ModelManifest, verify_file

__all__ = ["load_torch_model", "torch_predictor"]


def load_torch_model(manifest: ModelManifest) -> torch.nn.Module:
    """The model in eval mode, after checking model.pt against the manifest's sha256."""
    ref = manifest.torch
    if ref is None:
        raise ModelError(f"model {manifest.name!r} has no PyTorch reference (only ONNX)")
    path = manifest.directory / ref.file
    verify_file(path, ref.sha256, manifest.name)
    module_name, _, class_name = ref.architecture.partition(":")
    if not module_name.startswith("engines.segmentation."):
        raise ModelError(f"model {manifest.name!r}: architecture {ref.architecture!r} is not one of ours")
    cls = getattr(importlib.import_module(module_name), class_name)
    model: torch.nn.Module = cls(**dict(ref.kwargs))
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model


def torch_predictor(
    manifest: ModelManifest, device: str = "cpu"
) -> Callable[[NDArray[np.float32]], NDArray[np.float32]]:
    """``predict([N, 1, z, y, x]) -> [N, C, z, y, x]`` logits with the PyTorch reference model."""
    model = load_torch_model(manifest).to(device)

    def predict(batch: NDArray[np.float32]) -> NDArray[np.float32]:
        with torch.inference_mode():
            out = model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device))
        return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

    return predict
