"""Organ-at-risk dose constraint sets with their sources, and how one is chosen for a fractionation.

Every limit carries its source. Values transcribed from the publications (to be checked against them by the
physicist who commissions RadPlan, like any planning-system template):

* QUANTEC: Marks LB et al., Int J Radiat Oncol Biol Phys 2010;76(3 Suppl):S10-S19, with the organ papers
  (Kirkpatrick 2010 spinal cord S42; Marks 2010 lung S70; Gagliardi 2010 heart S77; Werner-Wasik 2010 oesophagus
  S86). Conventional fractionation (1.8-2 Gy per fraction).
* AAPM TG-101: Benedict SH et al., Med Phys 2010;37(8):4078-4101, Table III (1, 3 and 5 fractions).
* RTOG 0813 (central lung SBRT, 5 fractions) and RTOG 0915 (peripheral lung SBRT, 48 Gy in 4 fractions) protocol
  normal-tissue tables.
* Chest wall V30Gy < 30 cc: Dunlap NE et al., Int J Radiat Oncol Biol Phys 2010;76(3):796-801 (3-5 fractions).

Metrics: ``Dmax`` (Gy; evaluated as D0.03cc, TG-101's "point" of at most 0.035 cc; the true maximum below
0.03 cc), ``Dmean`` (Gy), ``D<v>cc`` (Gy to the hottest v cc), ``V<d>Gy`` (% or cc receiving at least d Gy)
and ``CV<d>Gy`` (cc receiving less than d Gy: the critical-volume lung constraints of SBRT, which must be at least
the limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CONSTRAINT_SETS",
    "ORGAN_ALIASES",
    "Constraint",
    "ConstraintSet",
    "constraint_set",
    "select_constraint_set",
]

Kind = Literal["max", "mean", "dcc", "vgy_pct", "vgy_cc", "critical_cc"]

#: Organ keys -> ROI names they match (case-insensitive). ``lungs`` is the union of the lungs minus every target.
ORGAN_ALIASES: dict[str, tuple[str, ...]] = {
    "spinal_cord": ("SpinalCord", "Spinal_Cord", "Cord", "SpinalCanal", "Spinal Cord"),
    "lungs": ("Lungs", "Lung_Total", "Lung_L", "Lung_R", "Lung_Left", "Lung_Right", "LungL", "LungR"),
    "heart": ("Heart", "Pericardium", "Heart+Pericardium"),
    "esophagus": ("Esophagus", "Oesophagus", "Esophagus_NOS"),
    "chest_wall": ("ChestWall", "Chest_Wall", "Chestwall", "Ribs"),
}
ORGAN_LABELS = {"spinal_cord": "Spinal cord", "lungs": "Lungs - GTV", "heart": "Heart", "esophagus": "Oesophagus",
                "chest_wall": "Chest wall"}  # fmt: skip


@dataclass(frozen=True)
class Constraint:
    """One limit. ``kind`` with ``parameter`` (cc for dcc, Gy for the V and CV metrics) defines the value; it must
    be <= ``limit`` (>= for critical volumes). A value beyond the limit but within ``warning_limit`` (the
    source's acceptable variation) is a warning, further is a failure. ``limit_fraction_of_rx``: the limit is that
    fraction of the prescription dose instead (e.g. 1.05 for '105 % of the prescription')."""

    organ: str
    metric: str
    kind: Kind
    limit: float
    unit: str
    source: str
    parameter: float = 0.0
    warning_limit: float | None = None
    limit_fraction_of_rx: float | None = None

    def limit_for(self, prescription_gy: float) -> float:
        return self.limit if self.limit_fraction_of_rx is None else self.limit_fraction_of_rx * prescription_gy

    def warning_for(self, prescription_gy: float) -> float | None:
        return self.warning_limit


@dataclass(frozen=True)
class ConstraintSet:
    identifier: str
    name: str
    fractions: tuple[int, ...]
    source: str
    constraints: tuple[Constraint, ...]


def _c(organ: str, metric: str, limit: float, unit: str, source: str, **kw: float | None) -> Constraint:
    kind: Kind
    parameter = 0.0
    if metric == "Dmax":
        kind = "max"
    elif metric == "Dmean":
        kind = "mean"
    elif metric.startswith("CV"):
        kind, parameter = "critical_cc", float(metric[2:-2])
    elif metric.startswith("V"):
        kind, parameter = ("vgy_pct" if unit == "%" else "vgy_cc"), float(metric[1:-2])
    else:
        kind, parameter = "dcc", float(metric[1:-2])
    return Constraint(organ, metric, kind, limit, unit, source, parameter, **kw)  # type: ignore[arg-type]


_Q = "QUANTEC (Marks et al. IJROBP 2010;76:S10)"
_QUANTEC = ConstraintSet(
    "quantec-conventional", "Conventional fractionation (QUANTEC)", tuple(range(10, 46)), _Q,
    (
        _c("spinal_cord", "Dmax", 50.0, "Gy", f"{_Q}; Kirkpatrick 2010 S42: 0.2 % myelopathy"),
        _c("lungs", "V20Gy", 30.0, "%", f"{_Q}; Marks 2010 S70: pneumonitis <= 20 %", warning_limit=35.0),
        _c("lungs", "Dmean", 20.0, "Gy", f"{_Q}; Marks 2010 S70: pneumonitis <= 20 %", warning_limit=23.0),
        _c("heart", "Dmean", 26.0, "Gy", f"{_Q}; Gagliardi 2010 S77: pericarditis < 15 %"),
        _c("heart", "V25Gy", 10.0, "%", f"{_Q}; Gagliardi 2010 S77: cardiac mortality < 1 %"),
        _c("esophagus", "Dmean", 34.0, "Gy", f"{_Q}; Werner-Wasik 2010 S86: grade >= 3 oesophagitis 5-20 %"),
    ),
)  # fmt: skip


def _tg101(n: int, cord: tuple[float, float, float], eso: tuple[float, float], heart: tuple[float, float],
           lung: tuple[float, float], chest_wall: bool) -> ConstraintSet:  # fmt: skip
    src = f"AAPM TG-101 (Benedict et al. Med Phys 2010;37:4078) Table III, {n} fraction{'s' if n > 1 else ''}"
    items = [
        _c("spinal_cord", "Dmax", cord[0], "Gy", src), _c("spinal_cord", "D0.35cc", cord[1], "Gy", src),
        _c("spinal_cord", "D1.2cc", cord[2], "Gy", src), _c("esophagus", "Dmax", eso[0], "Gy", src),
        _c("esophagus", "D5cc", eso[1], "Gy", src), _c("heart", "Dmax", heart[0], "Gy", src),
        _c("heart", "D15cc", heart[1], "Gy", src), _c("lungs", f"CV{lung[0]:g}Gy", 1500.0, "cc", src),
        _c("lungs", f"CV{lung[1]:g}Gy", 1000.0, "cc", src),
    ]  # fmt: skip
    if chest_wall:
        items.append(_c("chest_wall", "V30Gy", 30.0, "cc", "Dunlap et al. IJROBP 2010;76:796 (3-5 fractions)"))
    return ConstraintSet(f"tg101-{n}fx", f"SBRT {n} fraction{'s' if n > 1 else ''} (AAPM TG-101)", (n,), src,
                         tuple(items))  # fmt: skip


_R0813 = "RTOG 0813 (central lung SBRT, 5 fractions) normal-tissue table"
_R0915 = "RTOG 0915 (peripheral lung SBRT, 48 Gy in 4 fractions) normal-tissue table"
CONSTRAINT_SETS: dict[str, ConstraintSet] = {
    s.identifier: s
    for s in (
        _QUANTEC,
        _tg101(1, (14.0, 10.0, 7.0), (15.4, 11.9), (22.0, 16.0), (7.0, 7.4), chest_wall=False),
        _tg101(3, (21.9, 18.0, 12.3), (25.2, 17.7), (30.0, 24.0), (10.5, 11.4), chest_wall=True),
        _tg101(5, (30.0, 23.0, 14.5), (35.0, 19.5), (38.0, 32.0), (12.5, 13.5), chest_wall=True),
        ConstraintSet("rtog0813", "Central lung SBRT, 5 fractions (RTOG 0813)", (5,), _R0813, (
            _c("spinal_cord", "Dmax", 30.0, "Gy", _R0813), _c("spinal_cord", "D0.25cc", 22.5, "Gy", _R0813),
            _c("spinal_cord", "D0.5cc", 13.5, "Gy", _R0813),
            _c("esophagus", "Dmax", 0.0, "Gy", f"{_R0813}: 105 % of the PTV prescription", limit_fraction_of_rx=1.05),
            _c("esophagus", "D5cc", 27.5, "Gy", _R0813),
            _c("heart", "Dmax", 0.0, "Gy", f"{_R0813}: 105 % of the PTV prescription", limit_fraction_of_rx=1.05),
            _c("heart", "D15cc", 32.0, "Gy", _R0813),
            _c("lungs", "CV12.5Gy", 1500.0, "cc", _R0813), _c("lungs", "CV13.5Gy", 1000.0, "cc", _R0813),
            _c("chest_wall", "V30Gy", 30.0, "cc", "Dunlap et al. IJROBP 2010;76:796 (3-5 fractions)"),
        )),
        ConstraintSet("rtog0915", "Peripheral lung SBRT, 4 fractions (RTOG 0915)", (4,), _R0915, (
            _c("spinal_cord", "Dmax", 26.0, "Gy", _R0915), _c("spinal_cord", "D0.35cc", 20.8, "Gy", _R0915),
            _c("spinal_cord", "D1.2cc", 13.6, "Gy", _R0915), _c("esophagus", "Dmax", 30.0, "Gy", _R0915),
            _c("esophagus", "D5cc", 18.8, "Gy", _R0915), _c("heart", "Dmax", 34.0, "Gy", _R0915),
            _c("heart", "D15cc", 28.0, "Gy", _R0915),
            _c("lungs", "CV11.6Gy", 1500.0, "cc", _R0915), _c("lungs", "CV12.4Gy", 1000.0, "cc", _R0915),
            _c("chest_wall", "V30Gy", 30.0, "cc", "Dunlap et al. IJROBP 2010;76:796 (3-5 fractions)"),
        )),
    )
}  # fmt: skip


def constraint_set(identifier: str) -> ConstraintSet:
    """The set called ``identifier``; ValueError listing the known ones."""
    try:
        return CONSTRAINT_SETS[identifier]
    except KeyError:
        raise ValueError(f"unknown constraint set {identifier!r} (known: {', '.join(CONSTRAINT_SETS)})") from None


def select_constraint_set(fractions: int, technique: str, *, central: bool = False) -> ConstraintSet | None:
    """The default set for a fractionation: SBRT/SABR with 1, 3 or 5 fractions -> TG-101 (5 fractions of a central
    tumour -> RTOG 0813), 4 -> RTOG 0915; 10 or more fractions of a conventional technique -> QUANTEC. None when
    no validated set applies (the plan then says so)."""
    sbrt = technique.strip().upper() in {"SBRT", "SABR", "SRS"}
    if sbrt:
        if fractions == 5 and central:
            return CONSTRAINT_SETS["rtog0813"]
        if fractions == 4:
            return CONSTRAINT_SETS["rtog0915"]
        return CONSTRAINT_SETS.get(f"tg101-{fractions}fx")
    return _QUANTEC if fractions in _QUANTEC.fractions else None
