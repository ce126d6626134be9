"""IBSI 1 digital phantom compliance check: our features against the IBSI consensus reference values.

Pass rule: |ours - reference| <= max(tolerance, rounding), where rounding is half a unit of the reference's third
significant digit (IBSI publishes most digital-phantom values to 3 significant digits with tolerance 0) and
0.0005 for a reference of 0. Features without a reference value are listed as "n/a" and not counted.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from core.radiomics.configs import get_config
from core.radiomics.extract import compute_ibsi, load_volume

__all__ = ["DEFAULT_PHANTOM_DIR", "CheckRow", "allowed_difference", "check_phantom", "read_reference"]

#: The phantom shipped with the repository (copied from the IBSI, CC BY 4.0; see its ATTRIBUTION.md).
DEFAULT_PHANTOM_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "ibsi1-digital-phantom"


@dataclass(frozen=True)
class CheckRow:
    tag: str
    reference: float | None
    tolerance: float | None
    ours: float | None
    passed: bool | None  # None: no reference value


def read_reference(path: Path) -> list[tuple[str, float | None, float | None]]:
    """(tag, reference, tolerance) rows of an IBSI ``reference_values.csv`` (';'-separated)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    out: list[tuple[str, float | None, float | None]] = []
    for r in rows:
        ref, tol = r["reference value"].strip(), r["tolerance"].strip()
        out.append((r["tag"].strip(), float(ref) if ref else None, float(tol) if tol else None))
    return out


def allowed_difference(reference: float, tolerance: float) -> float:
    if reference == 0:
        return max(tolerance, 5e-4)
    rounding = 0.5 * 10 ** (math.floor(math.log10(abs(reference))) - 2)
    return float(max(tolerance, rounding) * (1 + 1e-9))


def check_phantom(phantom_dir: Path = DEFAULT_PHANTOM_DIR) -> list[CheckRow]:
    """Compute every feature on the phantom (config ``ibsi-digital-phantom``) and compare with the references."""
    vol = load_volume(phantom_dir / "image.nii.gz", phantom_dir / "mask.nii.gz")
    ours = compute_ibsi(vol, get_config("ibsi-digital-phantom"))
    rows: list[CheckRow] = []
    for tag, ref, tol in read_reference(phantom_dir / "reference_values.csv"):
        value = ours.get(tag)
        if ref is None:
            rows.append(CheckRow(tag, None, None, value, None))
            continue
        ok = value is not None and math.isfinite(value) and abs(value - ref) <= allowed_difference(ref, tol or 0.0)
        rows.append(CheckRow(tag, ref, tol, value, ok))
    return rows
