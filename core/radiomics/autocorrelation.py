"""Moran's I and Geary's C (IBSI 1, ``morph_moran_i`` / ``morph_geary_c``), exact, by FFT convolution.

Weights are w_ij = 1 / d_ij (mm) between the centres of ROI voxels i != j. The voxels lie on a regular grid, so
every double sum is a linear convolution with K(r) = 1 / |r| (K(0) = 0) over the ROI's bounding box. With m the
ROI indicator and dev = (x - mean) m:

    sum_ij w_ij dev_i dev_j = <dev, K * dev>,   W = sum_ij w_ij = <m, K * m>,   r_i = (K * m)_i,
    sum_ij w_ij (x_i - x_j)^2 = 2 <dev^2, K * m> - 2 <dev, K * dev>.

The convolutions are done with real FFTs in float64 on the box zero-padded to at least 2 n - 1 per axis (no
wrap-around), so the result is the pairwise one up to floating-point rounding, in O(M log M) for M padded voxels
instead of O(N^2) for N ROI voxels.

Memory: one transform of the padded box holds at most ``MAX_FFT_ELEMENTS`` complex values (1 GiB; about four such
arrays are alive at once). A larger box is processed in slabs along z: every pair of slabs (output, input) is one
FFT convolution with the kernel shifted by the slabs' z distance, still exact, in about S times the work for S
slabs. Only a single padded y-x plane above the limit (a box over ~5800 x 5800 voxels) raises
``RadiomicsInputError``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.fft import irfftn, next_fast_len, rfftn
from scipy.spatial.distance import cdist

from core.radiomics.preprocess import RadiomicsInputError

__all__ = ["MAX_FFT_ELEMENTS", "moran_geary", "moran_geary_pairs"]

Floats = NDArray[np.float64]
MAX_FFT_ELEMENTS = 2**26
_NAN2 = (float("nan"), float("nan"))


def _wrapped(length: int) -> NDArray[np.int64]:
    """Signed offsets of a circular axis of ``length``: 0, 1, ..., then the negative ones."""
    idx = np.arange(length, dtype=np.int64)
    return np.where(idx <= length // 2, idx, idx - length)


def _kernel(shape: tuple[int, int, int], z_shift: int, spacing: tuple[float, float, float]) -> Floats:
    """1 / distance (mm) on the padded grid for the offsets (z_shift + wrapped z, wrapped y, wrapped x); 0 at 0."""
    oz = (z_shift + _wrapped(shape[0])) * spacing[0]
    oy = _wrapped(shape[1]) * spacing[1]
    ox = _wrapped(shape[2]) * spacing[2]
    d2 = (oz**2)[:, None, None] + ((oy**2)[:, None] + (ox**2)[None, :])[None]
    kernel: Floats = np.divide(1.0, np.sqrt(d2), out=np.zeros_like(d2), where=d2 > 0)
    return kernel


def _slab_height(nz: int, plane: int, limit: int) -> int:
    """Largest z height whose padded transform (next_fast_len(2 h - 1) x plane complex values) fits in ``limit``."""
    if next_fast_len(1) * plane > limit:
        raise RadiomicsInputError(
            f"ROI box too large for Moran's I / Geary's C: one padded plane has {plane} FFT elements (limit {limit})"
        )
    h = nz
    while h > 1 and next_fast_len(2 * h - 1) * plane > limit:
        h -= 1
    return math.ceil(nz / math.ceil(nz / h))  # same number of slabs, balanced heights


def _convolve(field: Floats, k_hat: NDArray[np.complex128], shape: tuple[int, int, int]) -> Floats:
    """Circular convolution of ``field`` zero-padded to ``shape`` with the kernel whose rfftn is ``k_hat``."""
    f_hat = rfftn(field, s=shape)
    f_hat *= k_hat
    return np.asarray(irfftn(f_hat, s=shape), dtype=np.float64)


def _weighted_sums(
    dev: Floats, ind: Floats, spacing: tuple[float, float, float], limit: int
) -> tuple[float, float, float]:
    """(<dev, K*dev>, <dev^2, K*m>, <m, K*m>) over the box, by slab pairs along z."""
    nz, ny, nx = dev.shape
    ly, lx = next_fast_len(2 * ny - 1), next_fast_len(2 * nx - 1, real=True)
    h = _slab_height(nz, ly * (lx // 2 + 1), limit)
    lz = next_fast_len(2 * h - 1)
    starts = range(0, nz, h)
    cross = spread = w_sum = 0.0
    for shift in sorted({a - b for a in starts for b in starts}):
        k_hat = rfftn(_kernel((lz, ly, lx), shift, spacing))
        for b in starts:
            a = b + shift
            if not 0 <= a < nz:
                continue
            out = (slice(0, min(h, nz - a)), slice(0, ny), slice(0, nx))
            d_out, m_out = dev[a : a + h], ind[a : a + h]
            conv = _convolve(dev[b : b + h], k_hat, (lz, ly, lx))[out]
            cross += float(np.vdot(d_out, conv))
            conv = _convolve(ind[b : b + h], k_hat, (lz, ly, lx))[out]
            spread += float(np.vdot(d_out**2, conv))
            w_sum += float(np.vdot(m_out, conv))
    return cross, spread, w_sum


def moran_geary(
    mask: NDArray[np.bool_],
    image: NDArray[np.floating],
    spacing_mm: tuple[float, float, float],
    max_fft_elements: int = MAX_FFT_ELEMENTS,
) -> tuple[float, float]:
    """Moran's I and Geary's C of ``image`` over ``mask`` (arrays (z, y, x), ``spacing_mm`` (z, y, x)).

    NaN for fewer than 2 voxels or a constant intensity. ``max_fft_elements`` bounds one transform (see the module).
    """
    mask = np.asarray(mask, dtype=bool)
    n = int(mask.sum())
    if n < 2:
        return _NAN2
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
    m = mask[box]
    x = np.asarray(image, dtype=np.float64)[box]
    vals = x[m]
    if vals.min() == vals.max():
        return _NAN2
    dev = np.where(m, x - vals.mean(), 0.0)
    den = float(np.vdot(dev, dev))
    sp = (float(spacing_mm[0]), float(spacing_mm[1]), float(spacing_mm[2]))
    cross, spread, w_sum = _weighted_sums(dev, m.astype(np.float64), sp, max_fft_elements)
    geary_num = 2 * spread - 2 * cross
    return n / w_sum * cross / den, (n - 1) / (2 * w_sum) * geary_num / den


def moran_geary_pairs(points: Floats, values: Floats) -> tuple[float, float]:
    """Reference O(N^2) version over explicit points (mm), by blocks of ``cdist`` rows; for tests.

    sum w_ij d_i d_j = d^T W d and sum w_ij (d_i - d_j)^2 = 2 sum_i d_i^2 r_i - 2 d^T W d (W symmetric, r row sums).
    """
    n = len(values)
    if n < 2:
        return _NAN2
    dev = values - values.mean()
    den = float((dev**2).sum())
    if den == 0:
        return _NAN2
    w_sum = cross = spread = 0.0
    rows = max(1, 2**22 // n)
    for start in range(0, n, rows):
        d = cdist(points[start : start + rows], points)
        w = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
        row_sums = w.sum(axis=1)
        block = dev[start : start + rows]
        w_sum += float(row_sums.sum())
        cross += float(block @ (w @ dev))
        spread += float(2 * (block**2 @ row_sums))
    geary_num = spread - 2 * cross
    return n / w_sum * cross / den, (n - 1) / (2 * w_sum) * geary_num / den
