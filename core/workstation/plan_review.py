"""Plan-review arithmetic the GUI shows live: BED/EQD2 of an edited prescription, constraint colours, the DVH
cursor read-out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.plan.model import Prescription

__all__ = ["STATUS_COLOURS", "LiveBiology", "dvh_readout", "live_biology"]

#: Constraint status -> (background colour, text shown); colour-blind safe pair plus the word itself.
STATUS_COLOURS: dict[str, tuple[str, str]] = {
    "pass": ("#1b5e20", "PASS"),
    "warning": ("#8d6e00", "WARNING"),
    "fail": ("#b71c1c", "FAIL"),
    "not_evaluated": ("#424242", "NOT EVALUATED"),
}


@dataclass(frozen=True)
class LiveBiology:
    ok: bool
    message: str
    rows: tuple[dict[str, float], ...] = ()


def live_biology(
    total_dose_gy: float, fractions: int, technique: str, intent: str, alpha_betas: Sequence[float]
) -> LiveBiology:
    """BED and EQD2 for each alpha/beta, or ok=False with the reason (the prescription's own validation)."""
    try:
        rx = Prescription(float(total_dose_gy), int(fractions), technique, intent)
    except (ValueError, TypeError) as exc:
        return LiveBiology(False, str(exc))
    rows = tuple(rx.biological(float(ab)) for ab in alpha_betas)
    return LiveBiology(True, f"{rx.dose_per_fraction_gy:.2f} Gy per fraction", rows)


def dvh_readout(curves: Mapping[str, Sequence[Sequence[float]]], dose_gy: float) -> dict[str, float]:
    """Volume (%) receiving at least `dose_gy` for each structure's cumulative curve [[dose, volume %], ...]."""
    out = {}
    for name, curve in curves.items():
        if not curve:
            continue
        arr = np.asarray(curve, dtype=np.float64)
        out[name] = float(np.interp(dose_gy, arr[:, 0], arr[:, 1], left=float(arr[0, 1]), right=0.0))
    return out
