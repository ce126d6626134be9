"""TensorRT backend (NVIDIA GPUs): an FP16 engine built from the model's ONNX file, cached on disk, run with device
buffers and a CUDA stream through PyCUDA, with the TensorRT 10 API (build_serialized_network, set_input_shape,
set_tensor_address, execute_async_v3). predict_device runs the same engine on torch-owned GPU memory (the batch
tensor in, a torch-allocated output, torch's current stream) for the device pipeline.

The engine cache lives in <data_dir>/engines/<key>.plan with key = sha256 of (model sha256, GPU name, TensorRT
version, precision, optimisation profile): a new model, another GPU or another TensorRT version builds a new engine
(a plan is only valid for the GPU and TensorRT version that built it). The plan is written atomically (temp file +
rename) so a crash during a build never leaves a truncated plan behind.

PyCUDA rather than cuda-python: the gpu extra pins it (pyproject), its allocations are Python objects freed with
the backend, and it reports CUDA errors as exceptions (cuda-python returns error codes that every call must check).
tensorrt and pycuda are imported here only, lazily: without them the backend is reported unavailable with the
import error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from engines.backends.base import Backend, BackendUnavailableError

if TYPE_CHECKING:
    import torch

__all__ = ["TensorRTBackend", "engine_cache_path", "import_tensorrt"]

log = logging.getLogger("radplan.engines.tensorrt")
_WORKSPACE_BYTES = 4 << 30


def import_tensorrt() -> tuple[Any, Any]:
    """(tensorrt, pycuda.driver) or BackendUnavailableError saying which is missing and why."""
    try:
        import tensorrt as trt
    except Exception as exc:
        raise BackendUnavailableError(
            f"TensorRT is not installed ({type(exc).__name__}: {exc}); install the gpu extra "
            "(tensorrt>=10, pycuda) on a machine with an NVIDIA GPU"
        ) from exc
    try:
        import pycuda.driver as cuda
    except Exception as exc:
        raise BackendUnavailableError(f"PyCUDA is not installed ({type(exc).__name__}: {exc})") from exc
    if int(str(trt.__version__).split(".")[0]) < 10:
        raise BackendUnavailableError(f"TensorRT {trt.__version__} is too old: RadPlan needs TensorRT 10 or newer")
    try:
        cuda.init()
        if cuda.Device.count() < 1:
            raise BackendUnavailableError("no CUDA GPU is visible (CUDA_VISIBLE_DEVICES or the driver)")
    except BackendUnavailableError:
        raise
    except Exception as exc:
        raise BackendUnavailableError(f"CUDA could not start ({exc}): check the NVIDIA driver") from exc
    return trt, cuda


def engine_cache_path(
    cache_dir: Path, model_sha256: str, gpu_name: str, trt_version: str, profile: Sequence[Sequence[int]]
) -> Path:
    key = json.dumps([model_sha256, gpu_name, trt_version, "fp16", [list(p) for p in profile]])
    return Path(cache_dir) / f"{hashlib.sha256(key.encode()).hexdigest()}.plan"


class TensorRTBackend(Backend):
    name = "tensorrt"
    device = "cuda"
    precision = "fp16"

    def __init__(
        self,
        onnx_model: Path,
        *,
        model_sha256: str,
        patch_size: tuple[int, int, int],
        cache_dir: Path,
        input_name: str = "image",
        output_name: str = "logits",
        max_batch: int = 2,
        min_patch: tuple[int, int, int] | None = None,
        device_index: int = 0,
    ) -> None:
        trt, cuda = import_tensorrt()
        self._trt, self._cuda = trt, cuda
        self._device_index = device_index
        self._ctx = cuda.Device(device_index).retain_primary_context()
        self._ctx.push()
        try:
            self.gpu_name = str(cuda.Device(device_index).name())
            self.input_name, self.output_name, self.max_batch = input_name, output_name, max(1, max_batch)
            small = tuple(min_patch) if min_patch is not None else tuple(max(16, p // 4) for p in patch_size)
            profile = ((1, 1, *small), (1, 1, *patch_size), (self.max_batch, 1, *patch_size))
            self.plan_path = engine_cache_path(cache_dir, model_sha256, self.gpu_name, trt.__version__, profile)
            self._logger = trt.Logger(trt.Logger.WARNING)
            plan = self._load_or_build(Path(onnx_model), profile)
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(plan)
            if self._engine is None:
                raise BackendUnavailableError(f"TensorRT could not load the cached engine {self.plan_path}")
            self._context = self._engine.create_execution_context()
            self._stream = cuda.Stream()
            self._buffers: dict[str, tuple[int, Any, Any]] = {}  # name -> (bytes, device allocation, host buffer)
        finally:
            self._ctx.pop()

    # ----------------------------------------------------------------- engine build and cache
    def _load_or_build(self, onnx_model: Path, profile: tuple[tuple[int, ...], ...]) -> bytes:
        if self.plan_path.exists():
            log.info("TensorRT engine from the cache: %s", self.plan_path.name)
            return self.plan_path.read_bytes()
        trt = self._trt
        log.info("building the TensorRT FP16 engine for %s on %s (a few minutes, once)", onnx_model.name, self.gpu_name)
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(onnx_model.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendUnavailableError(f"TensorRT could not parse {onnx_model.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, _WORKSPACE_BYTES)
        if builder.platform_has_fast_fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        opt_profile = builder.create_optimization_profile()
        opt_profile.set_shape(self.input_name, profile[0], profile[1], profile[2])
        config.add_optimization_profile(opt_profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendUnavailableError("TensorRT could not build an engine for this model (see the log)")
        data = bytes(serialized)
        self.plan_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.plan_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.plan_path)
        self.plan_path.with_suffix(".json").write_text(
            json.dumps(
                {
                    "model": onnx_model.name,
                    "gpu": self.gpu_name,
                    "tensorrt": trt.__version__,
                    "precision": "fp16",
                    "profile": [list(p) for p in profile],
                },
                indent=2,
            )
        )
        return data

    # ----------------------------------------------------------------- execution
    def _buffer(self, name: str, shape: tuple[int, ...]) -> tuple[Any, Any]:
        """A device allocation and a page-locked host array of this shape (grown when needed, then reused)."""
        cuda = self._cuda
        nbytes = int(np.prod(shape)) * 4
        held = self._buffers.get(name)
        if held is None or held[0] < nbytes:
            device = cuda.mem_alloc(nbytes)
            host = cuda.pagelocked_empty(int(np.prod(shape)), dtype=np.float32)
            held = (nbytes, device, host)
            self._buffers[name] = held
        host_view = held[2][: int(np.prod(shape))].reshape(shape)
        return held[1], host_view

    def predict(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        if batch.shape[0] > self.max_batch:
            parts = [self.predict(batch[i : i + self.max_batch]) for i in range(0, batch.shape[0], self.max_batch)]
            return np.concatenate(parts, axis=0)
        self._ctx.push()
        try:
            shape = tuple(int(s) for s in batch.shape)
            if not self._context.set_input_shape(self.input_name, shape):
                raise ValueError(f"the TensorRT engine does not accept input shape {shape}")
            out_shape = tuple(int(s) for s in self._context.get_tensor_shape(self.output_name))
            d_in, h_in = self._buffer(self.input_name, shape)
            d_out, h_out = self._buffer(self.output_name, out_shape)
            np.copyto(h_in, batch.astype(np.float32, copy=False))
            self._cuda.memcpy_htod_async(d_in, h_in, self._stream)
            self._context.set_tensor_address(self.input_name, int(d_in))
            self._context.set_tensor_address(self.output_name, int(d_out))
            if not self._context.execute_async_v3(stream_handle=self._stream.handle):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the log)")
            self._cuda.memcpy_dtoh_async(h_out, d_out, self._stream)
            self._stream.synchronize()
            return np.array(h_out, dtype=np.float32, copy=True)
        finally:
            self._ctx.pop()

    def predict_device(self, batch: torch.Tensor) -> torch.Tensor:
        """``predict`` on torch-owned GPU memory: TensorRT reads the batch tensor and writes a torch-allocated output
        on torch's current stream (the primary context that PyCUDA retained is the one torch uses), nothing crosses
        to the host. A batch that is not on a GPU takes the default host round trip."""
        import torch

        if batch.device.type != "cuda":
            return super().predict_device(batch)
        if batch.shape[0] > self.max_batch:
            step = self.max_batch
            return torch.cat([self.predict_device(batch[i : i + step]) for i in range(0, batch.shape[0], step)])
        x = batch.detach().to(torch.device("cuda", self._device_index), torch.float32).contiguous()
        self._ctx.push()
        try:
            shape = tuple(int(s) for s in x.shape)
            if not self._context.set_input_shape(self.input_name, shape):
                raise ValueError(f"the TensorRT engine does not accept input shape {shape}")
            out_shape = tuple(int(s) for s in self._context.get_tensor_shape(self.output_name))
            half = self._engine.get_tensor_dtype(self.output_name) == self._trt.DataType.HALF
            out = torch.empty(out_shape, dtype=torch.float16 if half else torch.float32, device=x.device)
            self._context.set_tensor_address(self.input_name, x.data_ptr())
            self._context.set_tensor_address(self.output_name, out.data_ptr())
            stream = torch.cuda.current_stream(x.device)
            if not self._context.execute_async_v3(stream_handle=stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the log)")
            stream.synchronize()
        finally:
            self._ctx.pop()
        return out.float().to(batch.device)

    def close(self) -> None:
        self._ctx.push()
        try:
            self._buffers.clear()
            self._context = None
            self._engine = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
