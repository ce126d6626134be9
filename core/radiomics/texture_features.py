"""IBSI texture features from the matrices of :mod:`core.radiomics.texture_matrices`, with IBSI aggregation.

Aggregation suffixes (IBSI 1 manual, section 3.1.3): ``_2D_avg`` features per slice and direction, averaged;
``_2D_comb`` directions merged per slice, averaged over slices; ``_2_5D_avg`` slices merged per direction, averaged
over directions; ``_2_5D_comb`` everything merged; ``_3D_avg`` per 3D direction, averaged; ``_3D_comb`` merged.
Zone, neighbourhood and dependence matrices have no directions: ``_2D`` (per slice, averaged), ``_2_5D`` (merged
over slices), ``_3D``. Logarithms are base 2. Features are dimensionless (grey levels, counts) unless named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.radiomics import texture_matrices as tm

__all__ = ["texture_features"]

Floats = NDArray[np.float64]
Features = dict[str, float]

_SIZE_NAMES: dict[str, tuple[str, ...]] = {
    "rlm": ("sre", "lre", "lgre", "hgre", "srlge", "srhge", "lrlge", "lrhge", "glnu", "glnu_norm", "rlnu",
            "rlnu_norm", "r_perc", "gl_var", "rl_var", "rl_entr"),
    "szm": ("sze", "lze", "lgze", "hgze", "szlge", "szhge", "lzlge", "lzhge", "glnu", "glnu_norm", "zsnu",
            "zsnu_norm", "z_perc", "gl_var", "zs_var", "zs_entr"),
    "dzm": ("sde", "lde", "lgze", "hgze", "sdlge", "sdhge", "ldlge", "ldhge", "glnu", "glnu_norm", "zdnu",
            "zdnu_norm", "z_perc", "gl_var", "zd_var", "zd_entr"),
    "ngl": ("lde", "hde", "lgce", "hgce", "ldlge", "ldhge", "hdlge", "hdhge", "glnu", "glnu_norm", "dcnu",
            "dcnu_norm", "dc_perc", "gl_var", "dc_var", "dc_entr", "dc_energy"),
}  # fmt: skip


_GLCM_NAMES = (
    "joint_max", "joint_avg", "joint_var", "joint_entr", "diff_avg", "diff_var", "diff_entr", "sum_avg", "sum_var",
    "sum_entr", "energy", "contrast", "dissimilarity", "inv_diff", "inv_diff_norm", "inv_diff_mom",
    "inv_diff_mom_norm", "inv_var", "corr", "auto_corr", "clust_tend", "clust_shade", "clust_prom", "info_corr1",
    "info_corr2",
)  # fmt: skip


def _entropy(p: Floats) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def glcm_features(counts: Floats) -> Features:
    """IBSI GLCM features (section 3.6) of one symmetric count matrix."""
    ng = counts.shape[0]
    if counts.sum() == 0:  # no neighbour pair in the ROI (e.g. one voxel): undefined
        return dict.fromkeys(_GLCM_NAMES, float("nan"))
    p = counts / counts.sum()
    i, j = np.meshgrid(np.arange(1, ng + 1, dtype=float), np.arange(1, ng + 1, dtype=float), indexing="ij")
    pi = p.sum(axis=1)
    pj = p.sum(axis=0)
    g = np.arange(1, ng + 1, dtype=float)
    mu_i, mu_j = float((g * pi).sum()), float((g * pj).sum())
    sd_i = float(np.sqrt(((g - mu_i) ** 2 * pi).sum()))
    sd_j = float(np.sqrt(((g - mu_j) ** 2 * pj).sum()))
    k_abs = np.abs(i - j).astype(np.int64)
    p_diff = np.asarray(np.bincount(k_abs.ravel(), weights=p.ravel(), minlength=ng), np.float64)
    k = np.arange(ng, dtype=float)
    p_sum = np.asarray(
        np.bincount((i + j).astype(np.int64).ravel(), weights=p.ravel(), minlength=2 * ng + 1), np.float64
    )
    ks = np.arange(2 * ng + 1, dtype=float)
    diff_avg = float((k * p_diff).sum())
    sum_avg = float((ks * p_sum).sum())
    mu = float((i * p).sum())
    hxy = _entropy(p.ravel())
    outer = np.outer(pi, pj)
    nz = p > 0
    hxy1 = float(-(p[nz] * np.log2(outer[nz])).sum())
    hxy2 = _entropy(outer.ravel())
    hx = max(_entropy(pi), _entropy(pj))
    cl = i + j - mu_i - mu_j
    return {
        "joint_max": float(p.max()),
        "joint_avg": mu,
        "joint_var": float(((i - mu) ** 2 * p).sum()),
        "joint_entr": hxy,
        "diff_avg": diff_avg,
        "diff_var": float(((k - diff_avg) ** 2 * p_diff).sum()),
        "diff_entr": _entropy(p_diff),
        "sum_avg": sum_avg,
        "sum_var": float(((ks - sum_avg) ** 2 * p_sum).sum()),
        "sum_entr": _entropy(p_sum),
        "energy": float((p**2).sum()),
        "contrast": float(((i - j) ** 2 * p).sum()),
        "dissimilarity": diff_avg,
        "inv_diff": float((p / (1 + k_abs)).sum()),
        "inv_diff_norm": float((p / (1 + k_abs / ng)).sum()),
        "inv_diff_mom": float((p / (1 + (i - j) ** 2)).sum()),
        "inv_diff_mom_norm": float((p / (1 + (i - j) ** 2 / ng**2)).sum()),
        "inv_var": float((p_diff[1:] / k[1:] ** 2).sum()),
        "corr": float(((i * j * p).sum() - mu_i * mu_j) / (sd_i * sd_j)) if sd_i * sd_j > 0 else float("nan"),
        "auto_corr": float((i * j * p).sum()),
        "clust_tend": float((cl**2 * p).sum()),
        "clust_shade": float((cl**3 * p).sum()),
        "clust_prom": float((cl**4 * p).sum()),
        "info_corr1": (hxy - hxy1) / hx if hx > 0 else 0.0,
        "info_corr2": float(np.sqrt(max(0.0, 1 - np.exp(-2 * (hxy2 - hxy))))),
    }


def size_features(pairs: tm.LevelPairs, n_levels: int, n_voxels: float, family: str) -> Features:
    """The shared run-length / size-zone / distance-zone / dependence features (IBSI sections 3.7-3.11)."""
    ncol = int(pairs.second.max())
    m = np.bincount((pairs.level - 1) * ncol + (pairs.second - 1), minlength=n_levels * ncol)
    m = m.reshape(n_levels, ncol).astype(np.float64)
    ns = m.sum()
    i = np.arange(1, n_levels + 1, dtype=float)[:, None]
    j = np.arange(1, ncol + 1, dtype=float)[None, :]
    p = m / ns
    mu_i = float((i * p).sum())
    mu_j = float((j * p).sum())
    ri, cj = m.sum(axis=1), m.sum(axis=0)
    values = [
        (m / j**2).sum() / ns,
        (m * j**2).sum() / ns,
        (m / i**2).sum() / ns,
        (m * i**2).sum() / ns,
        (m / (i**2 * j**2)).sum() / ns,
        (m * i**2 / j**2).sum() / ns,
        (m * j**2 / i**2).sum() / ns,
        (m * i**2 * j**2).sum() / ns,
        (ri**2).sum() / ns,
        (ri**2).sum() / ns**2,
        (cj**2).sum() / ns,
        (cj**2).sum() / ns**2,
        ns / n_voxels,
        ((i - mu_i) ** 2 * p).sum(),
        ((j - mu_j) ** 2 * p).sum(),
        _entropy(p.ravel()),
        (p**2).sum(),
    ]
    return {name: float(v) for name, v in zip(_SIZE_NAMES[family], values, strict=False)}


def ngtdm_features(parts: tm.NgtdmParts) -> Features:
    """IBSI NGTDM features (section 3.10): coarseness, contrast, busyness, complexity, strength."""
    nvc = parts.n.sum()
    if nvc == 0:  # no voxel with a neighbour in the ROI: undefined
        return dict.fromkeys(("coarseness", "contrast", "busyness", "complexity", "strength"), float("nan"))
    p = parts.n / nvc
    g = np.arange(1, p.size + 1, dtype=float)
    present = p > 0
    ngp = int(present.sum())
    gp, pp, sp = g[present], p[present], parts.s[present]
    di = gp[:, None] - gp[None, :]
    ps = (pp * sp).sum()
    contrast = (pp[:, None] * pp[None, :] * di**2).sum() / (ngp * (ngp - 1)) * sp.sum() / nvc if ngp > 1 else 0.0
    busy_den = np.abs(gp[:, None] * pp[:, None] - gp[None, :] * pp[None, :]).sum()
    complexity = (np.abs(di) * (pp * sp)[:, None] + np.abs(di) * (pp * sp)[None, :]) / (pp[:, None] + pp[None, :])
    strength = ((pp[:, None] + pp[None, :]) * di**2).sum() / sp.sum() if sp.sum() > 0 else 0.0
    return {
        "coarseness": float(1 / ps) if ps > 0 else 1e6,
        "contrast": float(contrast),
        "busyness": float(ps / busy_den) if busy_den > 0 else 0.0,
        "complexity": float(complexity.sum() / nvc),
        "strength": float(strength),
    }


def _mean(dicts: Sequence[Features]) -> Features:
    return {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]} if dicts else {}


def _tag(prefix: str, feats: Features, suffix: str) -> Features:
    return {f"{prefix}_{k}_{suffix}": v for k, v in feats.items()}


def _directional(
    prefix: str,
    per_unit: Sequence[Sequence[Any]],
    n_vox: list[int],
    fn: Callable[[Any, float], Features],
    merge: Callable[[list[Any]], Any],
    empty: Callable[[Any], bool],
    dims: str,
) -> Features:
    """Aggregate directional matrices of several units (slices, or one volume) the IBSI ways."""
    out: Features = {}
    ndir = len(per_unit[0])
    avg = [fn(m, n) for ms, n in zip(per_unit, n_vox, strict=True) for m in ms if not empty(m)]
    comb = [fn(merge(list(ms)), n * ndir) for ms, n in zip(per_unit, n_vox, strict=True) if not empty(merge(list(ms)))]
    out |= _tag(prefix, _mean(avg), f"{dims}_avg") | _tag(prefix, _mean(comb), f"{dims}_comb")
    if dims == "2D":
        per_dir = [merge([ms[d] for ms in per_unit]) for d in range(ndir)]
        total = sum(n_vox)
        avg25 = [fn(m, total) for m in per_dir if not empty(m)]
        out |= _tag(prefix, _mean(avg25), "2_5D_avg")
        out |= _tag(prefix, fn(merge(per_dir), total * ndir), "2_5D_comb")
    return out


def _units(levels: tm.IntArray, planar: bool) -> list[tm.IntArray]:
    if not planar:
        return [levels]
    return [levels[z : z + 1] for z in range(levels.shape[0]) if (levels[z] > 0).any()]


def texture_features(
    levels: tm.IntArray, n_levels: int, roi: NDArray[np.bool_] | None = None, dims: str = "all"
) -> Features:
    """IBSI texture features of a discretised ROI (0 outside, 1..Ng): ``dims`` "2D" (2D and 2.5D aggregations),
    "3D", or "all"."""
    out: Features = {}
    wanted = [(planar, agg) for planar, agg in ((True, "2D"), (False, "3D")) if dims in ("all", agg)]
    for planar, agg in wanted:
        units = _units(levels, planar)
        masks = _units(np.asarray(roi if roi is not None else levels > 0, np.int64), planar)
        n_vox = [int((u > 0).sum()) for u in units]

        def cm(m: Any, _n: float) -> Features:
            return glcm_features(np.asarray(m, np.float64))

        out |= _directional(
            "cm",
            [tm.glcm(u, n_levels, planar) for u in units],
            n_vox,
            cm,
            lambda ms: np.sum(ms, axis=0),
            lambda m: float(np.asarray(m).sum()) == 0,
            agg,
        )

        def rl(m: Any, n: float) -> Features:
            return size_features(m, n_levels, n, "rlm")

        out |= _directional(
            "rlm",
            [tm.glrlm(u, planar) for u in units],
            n_vox,
            rl,
            tm.LevelPairs.concat,
            lambda m: m.level.size == 0,
            agg,
        )
        szm = [tm.glszm(u, n_levels, planar) for u in units]
        dzm = [tm.gldzm(u, n_levels, planar, m > 0) for u, m in zip(units, masks, strict=True)]
        ngl = [tm.ngldm(u, planar) for u in units]
        ngt = [tm.ngtdm(u, n_levels, planar) for u in units]
        for fam, mats in (("szm", szm), ("dzm", dzm), ("ngl", ngl)):
            per = [size_features(m, n_levels, n, fam) for m, n in zip(mats, n_vox, strict=True)]
            out |= _tag(fam, _mean(per), agg)
            if planar:
                out |= _tag(fam, size_features(tm.LevelPairs.concat(mats), n_levels, sum(n_vox), fam), "2_5D")
        out |= _tag("ngt", _mean([ngtdm_features(m) for m in ngt]), agg)
        if planar:
            merged = tm.NgtdmParts(np.sum([m.n for m in ngt], axis=0), np.sum([m.s for m in ngt], axis=0))
            out |= _tag("ngt", ngtdm_features(merged), "2_5D")
    return out
