"""Validation of patient facts against a site's vocabulary (``facts.toml``), and derived facts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import RadPlanError
from core.rules.rulebase import FactSpec
from core.rules.staging import stage_group

__all__ = ["FactsError", "derive_facts", "validate_facts"]


class FactsError(RadPlanError):
    """Patient facts that are not understood: every problem is listed, nothing is dropped silently."""


def _check(spec: FactSpec, value: Any) -> tuple[Any, str | None]:
    if spec.kind == "bool":
        return (value, None) if isinstance(value, bool) else (None, "must be true or false")
    if spec.kind == "enum":
        if not isinstance(value, str):
            return None, f"must be one of {', '.join(spec.values)}"
        for allowed in spec.values:
            if value.strip().lower() == allowed.lower():
                return allowed, None
        return None, f"must be one of {', '.join(spec.values)} (got {value!r})"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"must be a number ({spec.unit or 'no unit'})"
    if spec.kind == "int" and float(value) != int(value):
        return None, "must be a whole number"
    number: float | int = int(value) if spec.kind == "int" else float(value)
    if (spec.minimum is not None and number < spec.minimum) or (spec.maximum is not None and number > spec.maximum):
        return None, f"must be between {spec.minimum:g} and {spec.maximum:g} {spec.unit}".rstrip()
    return number, None


def validate_facts(raw: Mapping[str, Any], vocabulary: Mapping[str, FactSpec]) -> dict[str, Any]:
    """Normalised facts (enum spelling, int/float); None values are dropped (= unknown).

    Keys outside the vocabulary are kept when numeric (radiomics features by IBSI tag, dosimetric features);
    anything else unknown is an error.
    """
    out: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        if value is None:
            continue
        spec = vocabulary.get(key)
        if spec is None:
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = float(value)
            else:
                problems.append(f"{key}: unknown fact (feature values must be numbers)")
            continue
        if not spec.ask and key.startswith("score_"):
            problems.append(f"{key}: model scores are computed, not supplied")
            continue
        norm, problem = _check(spec, value)
        if problem:
            problems.append(f"{key}: {problem}")
        else:
            out[key] = norm
    if problems:
        raise FactsError("invalid facts: " + "; ".join(problems))
    return out


def derive_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Add ``stage_group`` (AJCC 8) when T, N and M determine it; a given stage_group is kept."""
    out = dict(facts)
    if "stage_group" not in out:
        group = stage_group(out.get("t_stage"), out.get("n_stage"), out.get("m_stage"))
        if group is not None:
            out["stage_group"] = group
    return out
