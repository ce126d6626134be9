"""Pre- and post-processing on a torch device (the GPU when the backend runs there): the same math as
preprocess.prepare, sliding_window.sliding_window_predict and postprocess.restore, so the CT goes to the device once
and only the label volume comes back. Largest components and lesion refinement (postprocess.final_masks) stay on the
CPU.

Resampling follows SimpleITK's linear interpolator exactly: a sample at continuous source index u (per axis) is
inside the image when -0.5 <= u < n - 0.5, takes the edge voxel's value within that half voxel (u clamped to
[0, n - 1]) and the default value 0 outside. It runs as grid_sample (trilinear, align_corners=True) at normalised
coordinates 2u / (n - 1) - 1 computed in float64 on the host from the documented grids (preprocess.model_grid).
The anti-aliasing Gaussian is scipy's gaussian_filter(mode="nearest", truncate=3.0) as a weighted sum of shifted
copies (not conv3d, which CUDA runs in TF32 by default and would round HU values to about 3 digits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from numpy.typing import NDArray

from core.segmentation.models import CancelledError, ModelManifest
from engines.backends.base import Backend
from engines.segmentation.preprocess import Prepared, Shape3, Vec3, antialias_sigma_vox, model_grid, model_padding
from engines.segmentation.sliding_window import gaussian_importance, plan_windows

__all__ = [
    "gaussian_filter_nearest",
    "prepare_on_device",
    "release",
    "restore_on_device",
    "sliding_window_on_device",
]

#: numpy dtypes sent to the device as they are (converted to float32 there); others are converted on the host
_RAW_DTYPES = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.int32, np.int64, np.float16, np.float32)}
_RESTORE_CHUNK_BYTES = 256 << 20


def _gaussian_kernel(sigma: float, truncate: float) -> NDArray[np.float64]:
    """scipy.ndimage's 1-D Gaussian: radius int(truncate * sigma + 0.5), weights normalised to sum 1."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x * x)
    return np.asarray(phi / phi.sum(), dtype=np.float64)


def gaussian_filter_nearest(volume: torch.Tensor, sigma_vox: Sequence[float], truncate: float = 3.0) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter(volume, sigma_vox, mode="nearest", truncate=truncate)`` of a 3-D tensor: one
    1-D pass per axis with sigma > 0, the edge voxel repeated beyond the border."""
    out = volume
    for axis, sigma in enumerate(sigma_vox):
        if sigma <= 1e-15:  # scipy skips these axes too
            continue
        weights = _gaussian_kernel(float(sigma), truncate)
        radius, n = len(weights) // 2, out.shape[axis]
        index = torch.arange(-radius, n + radius, device=out.device).clamp_(0, n - 1)
        padded = out.index_select(axis, index)
        acc = torch.zeros_like(out)
        for k, w in enumerate(weights.tolist()):
            acc.add_(padded.narrow(axis, k, n), alpha=w)
        out = acc
    return out


def _axis_samples(
    n_out: int, out_origin: float, out_spacing: float, n_in: int, in_origin: float, in_spacing: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """grid_sample coordinates (align_corners=True) of the output voxels along one axis, and which are inside."""
    index = (out_origin + np.arange(n_out, dtype=np.float64) * out_spacing - in_origin) / in_spacing
    inside = (index >= -0.5) & (index < n_in - 0.5)
    clamped = np.clip(index, 0.0, n_in - 1.0)
    normalised = 2.0 * clamped / (n_in - 1) - 1.0 if n_in > 1 else np.zeros_like(clamped)
    return normalised, inside


def _resample(volume: torch.Tensor, axes: Sequence[tuple[NDArray[np.float64], NDArray[np.bool_]]]) -> torch.Tensor:
    """Trilinear samples of ``volume`` [C, Z, Y, X] at the per-axis (z, y, x) coordinates: [C, z', y', x']."""
    device = volume.device
    (gz, mz), (gy, my), (gx, mx) = (
        (torch.from_numpy(g).to(device, torch.float32), torch.from_numpy(m).to(device)) for g, m in axes
    )
    zz, yy, xx = torch.meshgrid(gz, gy, gx, indexing="ij")
    grid = torch.stack((xx, yy, zz), dim=-1)[None]  # grid_sample wants (x, y, z) last
    out = F.grid_sample(volume[None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0]
    inside = mz[:, None, None] & my[None, :, None] & mx[None, None, :]
    return torch.where(inside, out, torch.zeros((), dtype=out.dtype, device=device))


def _to_device(array: NDArray[Any], device: torch.device) -> torch.Tensor:
    data = np.ascontiguousarray(array)
    if data.dtype not in _RAW_DTYPES:
        data = data.astype(np.float32)
    return torch.from_numpy(data).to(device).to(torch.float32)


@torch.inference_mode()
def prepare_on_device(
    hu: NDArray[Any], spacing_mm: Vec3, manifest: ModelManifest, device: str | torch.device
) -> tuple[torch.Tensor, Prepared]:
    """preprocess.prepare on ``device``: the model input [Z, Y, X] float32 there, and its Prepared (whose ``image``
    is a host copy of the same tensor)."""
    if np.ndim(hu) != 3:
        raise ValueError(f"a 3-D volume is needed, not shape {np.shape(hu)}")
    dev = torch.device(device)
    source_shape: Shape3 = (int(hu.shape[0]), int(hu.shape[1]), int(hu.shape[2]))
    spacing: Vec3 = (float(spacing_mm[0]), float(spacing_mm[1]), float(spacing_mm[2]))
    model_spacing = manifest.spacing_mm
    shape, origin = model_grid(source_shape, spacing, model_spacing)
    norm = manifest.normalisation
    volume = _to_device(hu, dev).clamp_(norm.clip_hu[0], norm.clip_hu[1])
    sigma_vox = antialias_sigma_vox(spacing, model_spacing)
    if sigma_vox is not None:
        volume = gaussian_filter_nearest(volume, sigma_vox, truncate=3.0)
    axes = [
        _axis_samples(shape[a], origin[2 - a], model_spacing[2 - a], source_shape[a], 0.0, spacing[2 - a])
        for a in range(3)
    ]
    image = _resample(volume[None], axes)[0]
    del volume
    image = image.clamp_(norm.clip_hu[0], norm.clip_hu[1]).sub_(float(norm.mean)).div_(float(norm.std))
    pad = model_padding(shape, manifest.divisible_by)
    if any(after for _, after in pad):
        value = float(np.float32(norm.value_of(norm.clip_hu[0])))
        image = F.pad(image, (0, pad[2][1], 0, pad[1][1], 0, pad[0][1]), mode="constant", value=value)
    image = image.contiguous()
    prepared = Prepared(
        image=np.ascontiguousarray(image.cpu().numpy(), dtype=np.float32),
        source_shape=source_shape,
        source_spacing_mm=spacing,
        model_spacing_mm=model_spacing,
        model_shape=shape,
        model_origin_mm=origin,
        pad=pad,
    )
    return image, prepared


@torch.inference_mode()
def sliding_window_on_device(
    image: torch.Tensor,
    backend: Backend,
    *,
    patch_size: tuple[int, int, int],
    num_classes: int,
    overlap: float = 0.5,
    batch_size: int = 1,
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """sliding_window.sliding_window_predict on the image's device: softmax probabilities [C, Z, Y, X] there. The
    batches go to ``backend.predict_device``; blending, accumulation and division stay on the device."""
    padded_shape, starts = plan_windows(tuple(int(n) for n in image.shape), patch_size, overlap)
    device = image.device
    shape = tuple(int(n) for n in image.shape)
    image = image.float()
    if padded_shape != shape:
        fill = float(image.min()) if image.numel() else 0.0
        pads = [t - n for n, t in zip(shape, padded_shape, strict=True)]
        image = F.pad(image, (0, pads[2], 0, pads[1], 0, pads[0]), mode="constant", value=fill)
    weight = torch.from_numpy(gaussian_importance(patch_size)).to(device)
    acc = torch.zeros((num_classes, *padded_shape), dtype=torch.float32, device=device)
    norm = torch.zeros(padded_shape, dtype=torch.float32, device=device)
    pz, py, px = patch_size
    step, done = max(1, batch_size), 0
    for b in range(0, len(starts), step):
        if cancelled is not None and cancelled():
            raise CancelledError("the segmentation was cancelled")
        chunk = starts[b : b + step]
        batch = torch.stack([image[z : z + pz, y : y + py, x : x + px] for z, y, x in chunk])[:, None].contiguous()
        logits = backend.predict_device(batch)
        if tuple(logits.shape) != (len(chunk), num_classes, pz, py, px):
            raise ValueError(f"the model returned shape {tuple(logits.shape)} for a batch of {tuple(batch.shape)}")
        probs = torch.softmax(logits.to(device, torch.float32), dim=1)
        for (z, y, x), p in zip(chunk, probs, strict=True):
            acc[:, z : z + pz, y : y + py, x : x + px] += p * weight
            norm[z : z + pz, y : y + py, x : x + px] += weight
        done += len(chunk)
        if progress is not None:
            progress(done / len(starts))
    acc /= norm.clamp_min(1e-8)
    return acc[:, : shape[0], : shape[1], : shape[2]]


@torch.inference_mode()
def restore_on_device(
    probs: torch.Tensor, prepared: Prepared, *, chunk_bytes: int = _RESTORE_CHUNK_BYTES
) -> NDArray[np.uint8]:
    """postprocess.restore on the probabilities' device: padding cropped, every class resampled linearly onto the
    source grid, argmax there (first class wins ties); only the uint8 labels [z, y, x] come back to the host. The
    source grid is done in slabs of slices so that about ``chunk_bytes`` of samples exist at a time."""
    if probs.ndim != 4 or tuple(probs.shape[1:]) != prepared.image.shape:
        raise ValueError(
            f"probabilities of shape {tuple(probs.shape)} do not match the prepared image {prepared.image.shape}"
        )
    (z0, _), (y0, _), (x0, _) = prepared.pad
    mz, my, mx = prepared.model_shape
    cropped = probs[:, z0 : z0 + mz, y0 : y0 + my, x0 : x0 + mx].float()
    src, src_sp = prepared.source_shape, prepared.source_spacing_mm
    axes = [
        _axis_samples(
            src[a], 0.0, src_sp[2 - a], prepared.model_shape[a],
            prepared.model_origin_mm[2 - a], prepared.model_spacing_mm[2 - a],
        )
        for a in range(3)
    ]  # fmt: skip
    labels = torch.empty(src, dtype=torch.uint8, device=probs.device)
    per_slice = (8 * cropped.shape[0] + 24) * src[1] * src[2]  # samples (twice), grid, mask, argmax bytes
    slab = max(1, int(chunk_bytes) // per_slice)
    for k in range(0, src[0], slab):
        part = (axes[0][0][k : k + slab], axes[0][1][k : k + slab])
        labels[k : k + slab] = _resample(cropped, [part, axes[1], axes[2]]).argmax(dim=0).to(torch.uint8)
    return np.ascontiguousarray(labels.cpu().numpy(), dtype=np.uint8)


def release(device: str | torch.device) -> None:
    """Hand cached device memory back (after the device pipeline gave way to the host)."""
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
