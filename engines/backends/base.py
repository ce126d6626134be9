"""The one interface every inference backend has: a `predict` callable on a batch of normalised patches.

predict(batch float32 [N, 1, z, y, x]) -> logits float32 [N, C, z, y, x] (the ONNX contract of the model folder).
predict_device does the same on a torch tensor and returns a tensor on the batch's device (the device pipeline,
engines.segmentation.device_pipeline); by default it goes through predict on the host.
Backends are built by engines.backends.select.load_backend; each imports its library lazily so that a missing
TensorRT or PyTorch only makes that backend unavailable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from core.errors import RadPlanError

if TYPE_CHECKING:
    import torch

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendName",
    "BackendUnavailableError",
    "is_out_of_memory",
]

BackendName = Literal["tensorrt", "onnxruntime", "torch"]
BACKEND_NAMES: tuple[BackendName, ...] = ("tensorrt", "onnxruntime", "torch")

_OOM_MARKERS = (
    "out of memory",
    "outofmemory",
    "failed to allocate memory",
    "cudaerrormemoryallocation",
    "cuda_error_out_of_memory",
    "bad_alloc",
    "cannot allocate memory",
)


class BackendUnavailableError(RadPlanError):
    """The backend cannot run here (library, GPU or model file missing); the message says which and what to do."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an error from any backend means 'not enough (GPU or host) memory for this patch/batch'."""
    if isinstance(exc, MemoryError):
        return True
    if type(exc).__name__ in ("OutOfMemoryError", "OutOfMemory"):  # torch.cuda.OutOfMemoryError, others
        return True
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(marker in text for marker in _OOM_MARKERS)


class Backend(ABC):
    """A loaded model ready to run. `device` is 'cpu' or 'cuda'; `precision` 'fp32' or 'fp16'."""

    name: BackendName
    device: str = "cpu"
    precision: str = "fp32"

    @abstractmethod
    def predict(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Logits for a batch of patches (see the module docstring)."""

    def predict_device(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits for a batch already on a torch device, as float32 on that device. This default copies the batch
        to the host, runs ``predict`` and copies the logits back; a backend that can run on the tensor overrides it."""
        import torch

        logits = self.predict(batch.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32)).to(batch.device)

    def __call__(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.predict(batch)

    def describe(self) -> str:
        return f"{self.name} ({self.device}, {self.precision})"

    def close(self) -> None:  # noqa: B027 (optional hook: most backends hold nothing to free)
        """Free the model and device memory (the default keeps nothing)."""
