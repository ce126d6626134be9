"""Inference backends: TensorRT (NVIDIA GPUs), ONNX Runtime, PyTorch (reference)."""
