"""Running the clinical vignettes of a rule base: each states patient facts and the expected decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.rules.decide import Decision, decide
from core.rules.facts import validate_facts
from core.rules.rulebase import RuleBase

__all__ = ["VignetteResult", "check_vignette", "run_vignettes"]

_FIRST = ("intent", "modality", "total_dose_gy", "fractions", "concurrent_chemo")


@dataclass(frozen=True)
class VignetteResult:
    id: str
    title: str
    source: str
    passed: bool
    failures: tuple[str, ...]


def _check(expect: Mapping[str, Any], decision: Decision) -> list[str]:
    failures: list[str] = []
    recs = decision.recommendations
    first = recs[0] if recs else None
    if expect.get("no_recommendation") and recs:
        failures.append(f"expected no recommendation, got {[r['rule_ids'] for r in recs]}")
    for key in _FIRST:
        if key in expect:
            got = first.get(key) if first else None
            if got != expect[key]:
                failures.append(f"{key}: expected {expect[key]!r}, got {got!r}")
    if "constraint_set" in expect:
        got = (first or {}).get("oar_constraints", {}).get("id")
        if got != expect["constraint_set"]:
            failures.append(f"constraint_set: expected {expect['constraint_set']!r}, got {got!r}")
    fired = [r["id"] for r in decision.rules_fired]
    overridden = sorted(r["id"] for r in decision.rules_fired if "overridden_by" in r)
    flags = [f["id"] for f in decision.flags]
    asked = [q["fact"] for q in decision.questions]
    checks = (("rules_fired", fired, True), ("flags", flags, True), ("questions", asked, True))
    for key, got_list, must in (*checks, ("not_flags", flags, False), ("not_questions", asked, False)):
        for item in expect.get(key, []):
            if (item in got_list) != must:
                failures.append(f"{key}: {item} {'missing' if must else 'present'} (got {got_list})")
    if "overridden" in expect and sorted(expect["overridden"]) != overridden:
        failures.append(f"overridden: expected {sorted(expect['overridden'])}, got {overridden}")
    return failures


def check_vignette(rulebase: RuleBase, vignette: Mapping[str, Any]) -> VignetteResult:
    """Decide on the vignette's facts (and scores) and compare with its expectations."""
    facts = validate_facts(vignette.get("facts", {}), rulebase.facts)
    decision = decide(rulebase, facts, vignette.get("scores", {}))
    failures = _check(vignette.get("expect", {}), decision)
    return VignetteResult(vignette["id"], vignette["title"], vignette.get("source", ""), not failures, tuple(failures))


def run_vignettes(rulebase: RuleBase) -> list[VignetteResult]:
    return [check_vignette(rulebase, v) for v in rulebase.vignettes]
