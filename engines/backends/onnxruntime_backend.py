"""ONNX Runtime backend: the CUDA execution provider when present, else the CPU provider."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from engines.backends.base import Backend, BackendUnavailableError

if TYPE_CHECKING:
    import torch

__all__ = ["OnnxRuntimeBackend"]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self,
        model: Path,
        *,
        input_name: str = "image",
        output_name: str = "logits",
        device: str = "auto",
        threads: int = 0,
    ) -> None:
        try:
            import onnxruntime as ort
        except Exception as exc:
            raise BackendUnavailableError(f"ONNX Runtime is not installed here ({exc})") from exc
        available = ort.get_available_providers()
        cuda = "CUDAExecutionProvider" in available
        if device == "cuda" and not cuda:
            raise BackendUnavailableError(
                f"ONNX Runtime has no CUDA provider here (providers: {', '.join(available)}); use device cpu"
            )
        providers: list[str] = ["CPUExecutionProvider"]
        if cuda and device in ("auto", "cuda"):
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model), sess_options=options, providers=providers)
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.input_name, self.output_name = input_name, output_name
        channels = next((o.shape[1] for o in self.session.get_outputs() if o.name == output_name), None)
        self._channels = channels if isinstance(channels, int) else None  # a named (dynamic) axis: not known

    def predict(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        (y,) = self.session.run([self.output_name], {self.input_name: x})
        return np.asarray(y, dtype=np.float32)

    def predict_device(self, batch: torch.Tensor) -> torch.Tensor:
        """Through an IOBinding on the tensor's own memory into a torch-allocated output when the tensor is where the
        session runs (CPU or CUDA): no trip through numpy. Elsewhere, the host round trip of the default."""
        import torch

        kind = batch.device.type
        if kind != self.device or self._channels is None:
            return super().predict_device(batch)
        x = batch.detach().to(torch.float32).contiguous()
        out = torch.empty((x.shape[0], self._channels, *x.shape[2:]), dtype=torch.float32, device=x.device)
        index = x.device.index or 0
        if kind == "cuda":
            torch.cuda.current_stream(x.device).synchronize()  # ONNX Runtime reads x on its own stream
        binding = self.session.io_binding()
        binding.bind_input(self.input_name, kind, index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(self.output_name, kind, index, np.float32, tuple(out.shape), out.data_ptr())
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return out

    def close(self) -> None:
        del self.session
