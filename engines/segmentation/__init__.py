"""Segmentation inference math (numpy + SimpleITK, backend-agnostic) and the thorax U-Net (PyTorch, training and
the FP32 reference). preprocess -> sliding_window -> postprocess; reference gives the PyTorch predict callable."""

from __future__ import annotations
