"""Sliding-window inference with Gaussian-weighted blending (as nnU-Net): overlapping patches, each patch's
softmax weighted by a Gaussian importance map (sigma = patch / 8, centre 1), summed and divided by the summed
weights. The backend is any callable ``predict([N, 1, z, y, x] float32) -> [N, C, z, y, x]`` logits."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from core.segmentation.models import CancelledError

__all__ = [
    "CancelledError",
    "Predict",
    "gaussian_importance",
    "patch_starts",
    "plan_windows",
    "sliding_window_predict",
    "softmax",
]

Predict = Callable[[NDArray[np.float32]], NDArray[np.float32]]


def softmax(logits: NDArray[np.float32], axis: int = 1) -> NDArray[np.float32]:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted.astype(np.float32, copy=False)


def gaussian_importance(patch_size: Sequence[int], sigma_scale: float = 1.0 / 8.0) -> NDArray[np.float32]:
    axes = [np.exp(-0.5 * ((np.arange(p) - (p - 1) / 2.0) / max(p * sigma_scale, 1e-6)) ** 2) for p in patch_size]
    weight = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    weight /= weight.max()
    return np.maximum(weight, 1e-3).astype(np.float32)


def patch_starts(length: int, patch: int, overlap: float) -> list[int]:
    """Start indices covering ``length`` with windows of ``patch`` overlapping by about ``overlap``."""
    if length <= patch:
        return [0]
    step = max(1, int(patch * (1.0 - overlap)))
    n = math.ceil((length - patch) / step) + 1
    return sorted({round(i * (length - patch) / (n - 1)) for i in range(n)})


def plan_windows(
    shape: Sequence[int], patch_size: tuple[int, int, int], overlap: float
) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """(padded shape, window start corners) for an image of ``shape`` [Z, Y, X]: every axis padded up to the patch,
    windows placed by `patch_starts`. The one plan of the host and the device sliding windows."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError("overlap must be in [0, 1)")
    if len(shape) != 3:
        raise ValueError(f"image must be [Z, Y, X], not shape {tuple(shape)}")
    padded_shape = tuple(max(int(n), p) for n, p in zip(shape, patch_size, strict=True))
    starts = list(
        itertools.product(*(patch_starts(n, p, overlap) for n, p in zip(padded_shape, patch_size, strict=True)))
    )
    return padded_shape, starts


def sliding_window_predict(
    image: NDArray[np.float32],
    predict: Predict,
    *,
    patch_size: tuple[int, int, int],
    num_classes: int,
    overlap: float = 0.5,
    batch_size: int = 1,
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> NDArray[np.float32]:
    """Softmax probabilities [C, Z, Y, X] for ``image`` [Z, Y, X]. An axis shorter than the patch is padded with
    the image minimum (air after normalisation) and cropped again. Raises CancelledError when ``cancelled()``."""
    padded_shape, starts = plan_windows(image.shape, patch_size, overlap)
    shape = image.shape
    if padded_shape != shape:
        fill = float(image.min()) if image.size else 0.0
        image = np.pad(image, [(0, t - n) for n, t in zip(shape, padded_shape, strict=True)], constant_values=fill)
    weight = gaussian_importance(patch_size)
    acc = np.zeros((num_classes, *padded_shape), dtype=np.float32)
    norm = np.zeros(padded_shape, dtype=np.float32)
    pz, py, px = patch_size
    done = 0
    for b in range(0, len(starts), max(1, batch_size)):
        if cancelled is not None and cancelled():
            raise CancelledError("the segmentation was cancelled")
        chunk = starts[b : b + max(1, batch_size)]
        batch = np.stack([image[z : z + pz, y : y + py, x : x + px] for z, y, x in chunk])[:, None]
        logits = np.asarray(predict(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)
        if logits.shape != (len(chunk), num_classes, pz, py, px):
            raise ValueError(f"the model returned shape {logits.shape} for a batch of {batch.shape}")
        probs = softmax(logits, axis=1)
        for (z, y, x), p in zip(chunk, probs, strict=True):
            acc[:, z : z + pz, y : y + py, x : x + px] += p * weight
            norm[z : z + pz, y : y + py, x : x + px] += weight
        done += len(chunk)
        if progress is not None:
            progress(done / len(starts))
    acc /= np.maximum(norm, 1e-8)
    return acc[:, : shape[0], : shape[1], : shape[2]]
