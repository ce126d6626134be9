"""PyTorch backend: the FP32 reference (CPU, or CUDA when torch sees a GPU), from the model's model.pt."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from core.segmentation.models import ModelError, ModelManifest
from engines.backends.base import Backend, BackendUnavailableError

if TYPE_CHECKING:
    import torch

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, manifest: ModelManifest, *, device: str = "auto", threads: int = 0) -> None:
        try:
            import torch

            from engines.segmentation.reference import load_torch_model
        except Exception as exc:
            raise BackendUnavailableError(f"PyTorch is not installed here ({exc}); pick another backend") from exc
        self._torch = torch
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("PyTorch sees no CUDA GPU; use the CPU or another backend")
        if threads > 0:
            torch.set_num_threads(threads)
        try:
            model = load_torch_model(manifest)
        except ModelError as exc:
            raise BackendUnavailableError(str(exc)) from exc
        self.model = model.to(device)
        self.device = device

    def predict(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return np.asarray(self.model(x).float().cpu().numpy(), dtype=np.float32)

    def predict_device(self, batch: torch.Tensor) -> torch.Tensor:
        """The model runs on the tensor itself (moved to the model's device only if it is elsewhere)."""
        th = self._torch
        with th.inference_mode():
            logits: torch.Tensor = self.model(batch.to(self.device, th.float32)).float()
            return logits.to(batch.device)

    def close(self) -> None:
        del self.model
        if self.device == "cuda":
            self._torch.cuda.empty_cache()
