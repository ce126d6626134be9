"""AJCC 8th edition stage group of NSCLC from the T, N and M categories (derived fact ``stage_group``)."""

from __future__ import annotations

__all__ = ["stage_group"]

_T_ORDER = {"T1mi": 0, "T1": 1, "T1a": 1, "T1b": 2, "T1c": 3, "T2": 4, "T2a": 4, "T2b": 5, "T3": 6, "T4": 7}
_N0 = {0: "IA1", 1: "IA1", 2: "IA2", 3: "IA3", 4: "IB", 5: "IIA", 6: "IIB", 7: "IIIA"}


def stage_group(t: str | None, n: str | None, m: str | None) -> str | None:
    """The stage group (e.g. "IA2", "IIIB", "IVA"), or None when a category is missing or indeterminate (TX/NX/MX).

    "T1" without a letter is staged as T1a (the lowest T1 subgroup) only for N1-N3, where all T1 share one group;
    with N0 an unlettered T1 or T2 gives None rather than a guess.
    """
    if m in ("M1a", "M1b"):
        return "IVA"
    if m in ("M1c",):
        return "IVB"
    if m == "M1":
        return None  # IVA or IVB: the subcategory decides
    if m != "M0" or t not in _T_ORDER or n not in ("N0", "N1", "N2", "N3"):
        return None
    rank = _T_ORDER[t]
    big = rank >= 6  # T3 or T4
    if n == "N0":
        if t in ("T1", "T2"):
            return None
        return _N0[rank]
    if n == "N1":
        return "IIIA" if big else "IIB"
    if n == "N2":
        return "IIIB" if big else "IIIA"
    return "IIIC" if big else "IIIB"
