"""Linear-quadratic radiobiology: BED and EQD2 for a prescription and for DVH dose points.

For a total dose D (Gy) given in n equal fractions of d = D / n (Gy), with the tissue's alpha/beta ratio (Gy)::

    BED  = D * (1 + d / (alpha/beta))                       (Gy)
    EQD2 = BED / (1 + 2 / (alpha/beta)) = D * (d + a/b) / (2 + a/b)   (Gy, the dose in 2 Gy fractions)

(Fowler 1989, Br J Radiol 62:679; Joiner & van der Kogel, Basic Clinical Radiobiology.) No repopulation or
incomplete-repair terms. A DVH point with total dose D_i over the same n fractions has d_i = D_i / n.
Defaults: tumour alpha/beta 10 Gy, late-responding normal tissue 3 Gy; every value is editable per structure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_ALPHA_BETA_GY",
    "LATE_NORMAL_TISSUE_ALPHA_BETA_GY",
    "TUMOUR_ALPHA_BETA_GY",
    "AlphaBetaTable",
    "BiologicalDose",
    "bed_gy",
    "biological_dose",
    "eqd2_gy",
]

TUMOUR_ALPHA_BETA_GY = 10.0
LATE_NORMAL_TISSUE_ALPHA_BETA_GY = 3.0
#: RT ROI Interpreted Types treated as tumour (alpha/beta 10 Gy); anything else is late-responding (3 Gy).
_TARGET_TYPES = frozenset({"GTV", "CTV", "PTV", "ITV"})
DEFAULT_ALPHA_BETA_GY: Mapping[str, float] = {
    "tumour": TUMOUR_ALPHA_BETA_GY,
    "normal": LATE_NORMAL_TISSUE_ALPHA_BETA_GY,
}


def _check(total: NDArray[np.float64], fractions: int, alpha_beta_gy: float) -> None:
    if isinstance(fractions, bool) or int(fractions) != fractions or fractions < 1:
        raise ValueError(f"the number of fractions must be a positive integer, not {fractions!r}")
    if not np.isfinite(alpha_beta_gy) or alpha_beta_gy <= 0.0:
        raise ValueError(f"alpha/beta must be a positive number of Gy, not {alpha_beta_gy!r}")
    if not np.all(np.isfinite(total)) or np.any(total < 0.0):
        raise ValueError("total doses must be finite and non-negative (Gy)")


def bed_gy(total_dose_gy: ArrayLike, fractions: int, alpha_beta_gy: float) -> NDArray[np.float64]:
    """Biologically effective dose (Gy) of ``total_dose_gy`` (Gy, scalar or array) in ``fractions`` equal
    fractions for tissue with ``alpha_beta_gy`` (Gy): D * (1 + D / (n * alpha/beta))."""
    total = np.asarray(total_dose_gy, dtype=np.float64)
    _check(total, fractions, alpha_beta_gy)
    return np.asarray(total * (1.0 + total / (fractions * alpha_beta_gy)), dtype=np.float64)


def eqd2_gy(total_dose_gy: ArrayLike, fractions: int, alpha_beta_gy: float) -> NDArray[np.float64]:
    """Equivalent dose in 2 Gy fractions (Gy): BED / (1 + 2 / alpha/beta)."""
    return np.asarray(bed_gy(total_dose_gy, fractions, alpha_beta_gy) / (1.0 + 2.0 / alpha_beta_gy), dtype=np.float64)


@dataclass(frozen=True)
class BiologicalDose:
    """A physical dose with its BED and EQD2 (all Gy) for ``fractions`` and ``alpha_beta_gy``."""

    physical_gy: float
    fractions: int
    alpha_beta_gy: float
    bed_gy: float
    eqd2_gy: float


def biological_dose(total_dose_gy: float, fractions: int, alpha_beta_gy: float) -> BiologicalDose:
    """BED and EQD2 of one total dose (Gy)."""
    return BiologicalDose(
        physical_gy=float(total_dose_gy),
        fractions=int(fractions),
        alpha_beta_gy=float(alpha_beta_gy),
        bed_gy=float(bed_gy(total_dose_gy, fractions, alpha_beta_gy)),
        eqd2_gy=float(eqd2_gy(total_dose_gy, fractions, alpha_beta_gy)),
    )


@dataclass(frozen=True)
class AlphaBetaTable:
    """alpha/beta (Gy) per structure: explicit ``overrides`` by ROI name (case-insensitive), else 10 Gy for
    targets (GTV/CTV/PTV/ITV by interpreted type or name prefix) and 3 Gy for everything else."""

    tumour_gy: float = TUMOUR_ALPHA_BETA_GY
    normal_gy: float = LATE_NORMAL_TISSUE_ALPHA_BETA_GY
    overrides: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in {"tumour": self.tumour_gy, "normal": self.normal_gy, **self.overrides}.items():
            if not np.isfinite(value) or value <= 0.0:
                raise ValueError(f"alpha/beta for {name!r} must be a positive number of Gy, not {value!r}")

    def for_structure(self, name: str, interpreted_type: str = "") -> float:
        """alpha/beta (Gy) of ROI ``name`` with RT ROI Interpreted Type ``interpreted_type``."""
        lowered = {k.lower(): v for k, v in self.overrides.items()}
        if name.lower() in lowered:
            return float(lowered[name.lower()])
        if interpreted_type.upper() in _TARGET_TYPES or name.upper()[:3] in _TARGET_TYPES:
            return self.tumour_gy
        return self.normal_gy
