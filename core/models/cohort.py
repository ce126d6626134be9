"""Synthetic patient cohorts with a written-down generating model, for demonstrating the risk-model machinery.

THERE IS NO REAL OUTCOME DATA HERE. Every number below is invented to be clinically plausible; the models trained
on these cohorts are demonstrations, not clinical tools.

Patient variables (development cohort; units in the names):
    age ~ N(68, 9) clipped to [40, 90] years; ild ~ Bernoulli(0.07); squamous ~ Bernoulli(0.4);
    fev1_percent ~ N(72, 18) clipped [20, 120]; dlco_percent ~ N(66, 17) clipped [20, 120] (% predicted);
    tumor_diameter_cm ~ LogNormal(log 3.0, 0.45) clipped [0.8, 9];
    sbrt = diameter <= 5 cm and Bernoulli(0.7); regimen BED10 (Gy): SBRT one of 151.2 (54/3), 105.6 (48/4),
    100 (50/5), 105 (60/8), equally likely; else 72 (60/30);
    mean_lung_dose_gy ~ N(6 + 1.2 * diameter + 6 * (not sbrt), 2.5) clipped [1, 25];
    radiomics (true tissue values): morph_sphericity ~ Beta(7, 3); ih_entropy ~ N(4.5 + 0.25 * (diameter - 3), 0.5).
Scanner model (what is measured): ih_entropy_measured = ih_entropy + offset + N(0, noise); development scanner
offset 0, noise 0.1; the external cohort's scanner (sharper kernel, thinner slices): offset +0.6, noise 0.35,
sphericity measured x 0.93. The external cohort is also older (age mean 72).

Outcomes (Bernoulli with p = sigmoid(logit + N(0, 0.4)), the N(0, 0.4) term being unobserved heterogeneity):
    RP grade >= 2: logit = -2.0 + 0.17 (MLD - 12) + 1.5 ild - 0.02 (dlco - 66) + 0.015 (age - 68)
                   - 0.01 (fev1 - 72)
    2-year local control: logit = 1.5 + 0.03 (BED10 - 100) - 0.35 (diameter - 3) - 0.4 squamous
                   + 2.0 (sphericity - 0.7) - 0.6 (ih_entropy - 4.5)      [true, not measured, entropy]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["GENERATING_MODEL", "Cohort", "generate_cohort"]

#: The true coefficients, as written in the module docstring (feature → log-odds per unit, centre).
GENERATING_MODEL: dict[str, dict[str, tuple[float, float]]] = {
    "rp_grade2": {"intercept": (-2.0, 0.0), "mean_lung_dose_gy": (0.17, 12.0), "ild": (1.5, 0.0),
                  "dlco_percent": (-0.02, 66.0), "age": (0.015, 68.0), "fev1_percent": (-0.01, 72.0)},
    "local_control_2y": {"intercept": (1.5, 0.0), "bed10_gy": (0.03, 100.0), "tumor_diameter_cm": (-0.35, 3.0),
                         "squamous": (-0.4, 0.0), "morph_sphericity": (2.0, 0.7), "ih_entropy": (-0.6, 4.5)},
}  # fmt: skip
_HETEROGENEITY_SD = 0.4


@dataclass(frozen=True)
class Cohort:
    """Feature columns (name → array) and the two binary outcomes."""

    features: dict[str, NDArray[np.float64]]
    rp_grade2: NDArray[np.int64]
    local_control_2y: NDArray[np.int64]

    @property
    def size(self) -> int:
        return int(self.rp_grade2.shape[0])


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _logit(model: str, values: dict[str, NDArray[np.float64]], n: int) -> NDArray[np.float64]:
    out = np.full(n, GENERATING_MODEL[model]["intercept"][0])
    for name, (coef, centre) in GENERATING_MODEL[model].items():
        if name != "intercept":
            out = out + coef * (values[name] - centre)
    return out


def generate_cohort(n: int, seed: int, *, external: bool = False) -> Cohort:
    """A cohort of ``n`` synthetic patients; ``external`` uses the shifted scanner and case mix."""
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(72.0 if external else 68.0, 9.0, n), 40, 90)
    ild = (rng.random(n) < 0.07).astype(np.float64)
    squamous = (rng.random(n) < 0.4).astype(np.float64)
    fev1 = np.clip(rng.normal(72, 18, n), 20, 120)
    dlco = np.clip(rng.normal(66, 17, n), 20, 120)
    diameter = np.clip(rng.lognormal(np.log(3.0), 0.45, n), 0.8, 9.0)
    sbrt = (diameter <= 5.0) & (rng.random(n) < 0.7)
    bed10 = np.where(sbrt, rng.choice([151.2, 105.6, 100.0, 105.0], n), 72.0)
    mld = np.clip(rng.normal(6 + 1.2 * diameter + 6 * (~sbrt), 2.5), 1, 25)
    sphericity = rng.beta(7, 3, n)
    entropy = rng.normal(4.5 + 0.25 * (diameter - 3), 0.5)
    offset, noise, sph_scale = (0.6, 0.35, 0.93) if external else (0.0, 0.1, 1.0)
    measured = {
        "age": age, "ild": ild, "squamous": squamous, "fev1_percent": fev1, "dlco_percent": dlco,
        "tumor_diameter_cm": diameter, "bed10_gy": bed10, "mean_lung_dose_gy": mld,
        "morph_sphericity": np.clip(sphericity * sph_scale, 0, 1),
        "ih_entropy": entropy + offset + rng.normal(0, noise, n),
    }  # fmt: skip
    truth = {**measured, "morph_sphericity": sphericity, "ih_entropy": entropy}
    outcomes = {}
    for model in GENERATING_MODEL:
        p = _sigmoid(_logit(model, truth, n) + rng.normal(0, _HETEROGENEITY_SD, n))
        outcomes[model] = (rng.random(n) < p).astype(np.int64)
    return Cohort(measured, outcomes["rp_grade2"], outcomes["local_control_2y"])
