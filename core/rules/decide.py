"""From facts and scores to a checked decision: the engine's conclusions turned into recommendations, flags,
questions, conflicts and the rules fired, each traceable to its rule file entry and citation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.rules.engine import run_engine
from core.rules.facts import derive_facts
from core.rules.rulebase import RuleBase, RuleSpec

__all__ = ["DISCLAIMER", "Decision", "decide"]

DISCLAIMER = (
    "Decision support, not a diagnosis: every recommendation must be checked by a qualified clinician "
    "against the full clinical picture and the local protocol."
)


@dataclass
class Decision:
    """JSON-ready conclusions (see docs/decision-support.md for every field)."""

    recommendations: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    rules_fired: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def _recommendation(rulebase: RuleBase, spec: RuleSpec) -> dict[str, Any]:
    then = spec.then
    dose, fractions = then.get("total_dose_gy"), then.get("fractions")
    out: dict[str, Any] = {
        "intent": then["intent"],
        "modality": then["modality"],
        "total_dose_gy": dose,
        "fractions": fractions,
        "dose_per_fraction_gy": round(dose / fractions, 3) if dose is not None and fractions else None,
        "concurrent_chemo": bool(then.get("concurrent_chemo", False)),
        "rule_ids": [spec.id],
        "note": then.get("note", ""),
        "source": spec.source,
    }
    set_id = then.get("constraint_set")
    if set_id is not None:
        cs = rulebase.constraint_sets[set_id]
        out["oar_constraints"] = {
            "id": cs.id,
            "title": cs.title,
            "source": cs.source,
            "constraints": [c.__dict__ for c in cs.constraints],
        }
    return out


def _questions(rulebase: RuleBase, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_fact: dict[str, list[str]] = {}
    for q in raw:
        for name in q["facts"]:
            if rulebase.facts[name].ask:
                by_fact.setdefault(name, [])
                if q["rule_id"] not in by_fact[name]:
                    by_fact[name].append(q["rule_id"])
    return [
        {"fact": name, "question": rulebase.facts[name].question, "needed_by": sorted(ids)}
        for name, ids in sorted(by_fact.items())
    ]


def decide(rulebase: RuleBase, facts: Mapping[str, Any], scores: Mapping[str, float] | None = None) -> Decision:
    """Run the rule base on validated facts (see core.rules.facts.validate_facts) and model scores."""
    full = derive_facts(facts)
    result = run_engine(rulebase, full, dict(scores or {}))
    decision = Decision(facts=full)
    decision.recommendations = [_recommendation(rulebase, rulebase.rule(c["rule_id"])) for c in result.candidates]
    for f in result.flags:
        spec = rulebase.rule(f["rule_id"])
        decision.flags.append(
            {
                "id": spec.id,
                "severity": spec.severity,
                "title": spec.title,
                "message": spec.message,
                "source": spec.source,
            }
        )
    severity_rank = {"high": 0, "caution": 1, "info": 2}
    decision.flags.sort(key=lambda f: (severity_rank.get(f["severity"], 3), f["id"]))
    decision.questions = _questions(rulebase, result.questions)
    decision.conflicts = result.conflicts
    overridden = {o["rule_id"]: o["by"] for o in result.overridden}
    for rule_id in result.fired:
        spec = rulebase.rule(rule_id)
        entry = {
            "id": spec.id,
            "title": spec.title,
            "version": spec.version,
            "source": spec.source,
            "salience": spec.salience,
            "kind": spec.kind,
        }
        if rule_id in overridden:
            entry["overridden_by"] = overridden[rule_id]
        decision.rules_fired.append(entry)
    return decision
