"""Precision, recall and F1 per field of the note extractor against annotated notes (slot filling).

For each note and field: a correct value is a true positive; a wrong value is a false positive and a false
negative; a value where the annotation has none is a false positive; a missing value where the annotation has
one is a false negative. Numbers match within 0.01.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.nlp.pipeline import FIELDS, extract_note_facts

__all__ = ["Evaluation", "FieldScore", "evaluate_notes"]


@dataclass
class FieldScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Evaluation:
    fields: dict[str, FieldScore] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: int = 0

    @property
    def overall(self) -> FieldScore:
        total = FieldScore()
        for s in self.fields.values():
            total.tp, total.fp, total.fn = total.tp + s.tp, total.fp + s.fp, total.fn + s.fn
        return total

    def table(self) -> list[dict[str, Any]]:
        rows = [
            {"field": k, "tp": s.tp, "fp": s.fp, "fn": s.fn, "precision": round(s.precision, 3),
             "recall": round(s.recall, 3), "f1": round(s.f1, 3)}
            for k, s in sorted(self.fields.items())
        ]  # fmt: skip
        o = self.overall
        rows.append({"field": "overall", "tp": o.tp, "fp": o.fp, "fn": o.fn, "precision": round(o.precision, 3),
                     "recall": round(o.recall, 3), "f1": round(o.f1, 3)})  # fmt: skip
        return rows


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) < 0.01
    return bool(a == b)


def evaluate_notes(folder: Path, gold: Mapping[str, Mapping[str, Any]] | None = None) -> Evaluation:
    """Score every note named in ``folder/gold.json`` (file name → {field: value})."""
    gold = gold if gold is not None else json.loads((folder / "gold.json").read_text(encoding="utf-8"))
    result = Evaluation(fields={name: FieldScore() for name in FIELDS})
    for name, truth in sorted(gold.items()):
        found = extract_note_facts((folder / name).read_text(encoding="utf-8")).facts
        result.notes += 1
        for f in FIELDS:
            score = result.fields[f]
            want, got = truth.get(f), found.get(f)
            if want is None and got is None:
                continue
            if want is not None and got is not None and _same(want, got):
                score.tp += 1
                continue
            if got is not None:
                score.fp += 1
            if want is not None:
                score.fn += 1
            result.errors.append(f"{name}: {f}: expected {want!r}, got {got!r}")
    return result
