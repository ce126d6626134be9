"""IBSI intensity features: statistics (``stat_``), intensity histogram (``ih_``), intensity-volume histogram (``ivh_``)
and local intensity peaks (``loc_``), vectorised with numpy.

``stat_`` and ``loc_`` use the (re-segmented) intensities in the image's unit (HU for CT); ``ih_`` uses the
discretised grey levels 1..Ng; ``ivh_`` uses the IVH intensities (discretised as the configuration says). IBSI
definitions: variance and standard deviation divide by N, kurtosis is the excess kurtosis, percentiles are
linear-interpolated (numpy default), ``qcod`` is (P75 - P25) / (P75 + P25).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["intensity_histogram", "ivh_features", "local_intensity", "statistics"]

Floats = NDArray[np.float64]
Features = dict[str, float]


def _moments(x: Floats, prefix: str) -> Features:
    mu = float(x.mean())
    dev = x - mu
    m2 = float((dev**2).mean())
    p10, p25, med, p75, p90 = (float(v) for v in np.percentile(x, [10, 25, 50, 75, 90]))
    inner = x[(x >= p10) & (x <= p90)]
    return {
        f"{prefix}_mean": mu,
        f"{prefix}_var": m2,
        f"{prefix}_skew": float((dev**3).mean() / m2**1.5) if m2 > 0 else 0.0,
        f"{prefix}_kurt": float((dev**4).mean() / m2**2 - 3) if m2 > 0 else 0.0,
        f"{prefix}_median": med,
        f"{prefix}_min": float(x.min()),
        f"{prefix}_p10": p10,
        f"{prefix}_p90": p90,
        f"{prefix}_max": float(x.max()),
        f"{prefix}_iqr": p75 - p25,
        f"{prefix}_range": float(x.max() - x.min()),
        f"{prefix}_mad": float(np.abs(dev).mean()),
        f"{prefix}_rmad": float(np.abs(inner - inner.mean()).mean()),
        f"{prefix}_medad": float(np.abs(x - med).mean()),
        f"{prefix}_cov": math.sqrt(m2) / mu if mu != 0 else float("nan"),
        f"{prefix}_qcod": (p75 - p25) / (p75 + p25) if p75 + p25 != 0 else float("nan"),
    }


def statistics(values: Floats) -> Features:
    """IBSI intensity-based statistical features (section 3.3) of the ROI intensities; energy in unit^2."""
    x = np.asarray(values, dtype=np.float64)
    out = _moments(x, "stat")
    out["stat_energy"] = float((x**2).sum())
    out["stat_rms"] = float(np.sqrt((x**2).mean()))
    return out


def intensity_histogram(levels: NDArray[np.int64], n_levels: int) -> Features:
    """IBSI intensity histogram features (section 3.4) of grey levels 1..Ng (empty levels included)."""
    x = np.asarray(levels, dtype=np.float64)
    out = _moments(x, "ih")
    hist = np.bincount(np.asarray(levels, np.int64) - 1, minlength=n_levels).astype(np.float64)
    p = hist / hist.sum()
    out["ih_mode"] = float(np.argmax(hist) + 1)
    nz = p[p > 0]
    out["ih_entropy"] = float(-(nz * np.log2(nz)).sum())
    out["ih_uniformity"] = float((p**2).sum())
    if n_levels > 1:
        grad = np.gradient(hist)  # first/last: one-sided difference; inside: central difference / 2
        out["ih_max_grad"] = float(grad.max())
        out["ih_max_grad_g"] = float(np.argmax(grad) + 1)
        out["ih_min_grad"] = float(grad.min())
        out["ih_min_grad_g"] = float(np.argmin(grad) + 1)
    return out


def ivh_features(values: Floats, step: float, lower: float | None = None, upper: float | None = None) -> Features:
    """IBSI intensity-volume histogram features (section 3.5).

    ``values``: IVH intensities, on a grid of ``step`` (1 grey level for discretised intensities, 1 HU for rounded
    CT). ``lower``/``upper``: the intensity range that defines the intensity fraction (default: ROI min/max).
    V_x: volume fraction with intensity fraction >= x; I_x: the lowest intensity whose volume fraction <= x.
    """
    x = np.asarray(values, dtype=np.float64)
    lo = float(x.min()) if lower is None else lower
    hi = float(x.max()) if upper is None else upper
    grid = lo + step * np.arange(round((hi - lo) / step) + 1)
    xs = np.sort(x)
    nu = 1.0 - np.searchsorted(xs, grid - step / 2, side="left") / x.size  # fraction with intensity >= grid value
    gamma = (grid - lo) / (hi - lo) if hi > lo else np.zeros_like(grid)

    def v_at(frac: float) -> float:
        hit = np.flatnonzero(gamma >= frac - 1e-12)
        return float(nu[hit[0]]) if hit.size else 0.0

    def i_at(frac: float) -> float:
        hit = np.flatnonzero(nu <= frac + 1e-12)
        return float(grid[hit[0]]) if hit.size else float(hi + step)

    v10, v90, i10, i90 = v_at(0.10), v_at(0.90), i_at(0.10), i_at(0.90)
    auc = float(np.sum((nu[1:] + nu[:-1]) / 2 * np.diff(gamma))) if grid.size > 1 else 0.0
    return {
        "ivh_v10": v10,
        "ivh_v90": v90,
        "ivh_i10": i10,
        "ivh_i90": i90,
        "ivh_diff_v10_v90": v10 - v90,
        "ivh_diff_i10_i90": i10 - i90,
        "ivh_auc": auc,
    }


def local_intensity(image: Floats, roi: NDArray[np.bool_], spacing_mm: tuple[float, float, float]) -> Features:
    """IBSI local intensity features (section 3.2): mean intensity in a 1 cm^3 sphere (radius 6.2 mm).

    The sphere mean uses every image voxel whose centre lies within the radius (inside or outside the ROI, never
    outside the image). ``loc_peak_loc``: at the ROI voxel of maximum intensity (the highest mean if several);
    ``loc_peak_glob``: the highest over all ROI voxels. ``image`` should keep a margin of >= 6.2 mm round the ROI.
    """
    radius = (3.0 / (4.0 * math.pi)) ** (1.0 / 3.0) * 10.0
    half = [int(radius // s) for s in spacing_mm]
    zz, yy, xx = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, spacing_mm, strict=True)], indexing="ij")
    kernel = (zz**2 + yy**2 + xx**2 <= radius**2).astype(np.float64)
    img = np.asarray(image, dtype=np.float64)
    total = ndimage.correlate(img, kernel, mode="constant", cval=0.0)
    count = ndimage.correlate(np.ones_like(img), kernel, mode="constant", cval=0.0)
    means = (total / count)[roi]
    vals = img[roi]
    return {
        "loc_peak_loc": float(means[vals == vals.max()].max()),
        "loc_peak_glob": float(means.max()),
    }
