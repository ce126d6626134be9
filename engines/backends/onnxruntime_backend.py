"""ONNX Runtime backend: the CUDA execution provider when present, else the CPU provider."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from engines.backends.base import Backend, BackendUnavailableError

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

    def predict(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        (y,) = self.session.run([self.output_name], {self.input_name: x})
        return np.asarray(y, dtype=np.float32)

    def close(self) -> None:
        del self.session
