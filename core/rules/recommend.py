"""`recommend`: facts (JSON) + optional clinical note → rule-based recommendation with model scores.

Order: validate the JSON facts; extract the note's facts and let them fill only keys the JSON leaves out (the JSON
wins; disagreements are reported); run the rule base; score every registered risk model whose features are all
known (BED10 of the leading radiotherapy recommendation is derived for local-control models); run the rule base
again with the scores so score-based flags fire. Nothing is imputed: missing facts and features are questions.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.models.registry import SHIPPED_MODELS, RiskModel, RiskScore, find_models
from core.nlp.pipeline import extract_note_facts
from core.rules.decide import DISCLAIMER, Decision, decide
from core.rules.facts import FactsError, validate_facts
from core.rules.rulebase import RuleBase

__all__ = ["bed10_gy", "read_radiomics_csv", "recommend"]

#: Note fields that are rule facts (others, e.g. smoking, are shown but not used by the rules).
_NOTE_TO_FACT = (
    "histology", "t_stage", "n_stage", "m_stage", "ecog", "operable", "ild", "prior_thoracic_rt", "fev1_percent",
    "dlco_percent", "tumor_diameter_cm", "location", "egfr", "alk",
)  # fmt: skip


def read_radiomics_csv(text: str) -> dict[str, float]:
    """IBSI tag → value from a ``radplan radiomics`` CSV (columns ibsi_tag, feature, value); raises FactsError."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and not {"ibsi_tag", "value"} <= set(rows[0]):
        raise FactsError("radiomics CSV: expected the columns ibsi_tag, feature, value")
    out: dict[str, float] = {}
    for i, row in enumerate(rows, start=2):
        tag = (row.get("ibsi_tag") or "").strip()
        try:
            value = float(row.get("value") or "")
        except ValueError:
            raise FactsError(f"radiomics CSV line {i}: value {row.get('value')!r} is not a number") from None
        if tag and math.isfinite(value):
            out[tag] = value
    return out


def bed10_gy(total_dose_gy: float, fractions: int) -> float:
    """Biologically effective dose with alpha/beta = 10 Gy: D (1 + d / 10), d = dose per fraction (Gy)."""
    return round(total_dose_gy * (1 + total_dose_gy / fractions / 10.0), 2)


def _merge_note(facts: dict[str, Any], note: str, rulebase: RuleBase) -> tuple[dict[str, Any], dict[str, Any]]:
    extracted = extract_note_facts(note)
    usable = {k: v for k, v in extracted.facts.items() if k in _NOTE_TO_FACT}
    note_facts = validate_facts(usable, rulebase.facts)
    conflicts = []
    provenance: dict[str, str] = {}
    for key, value in note_facts.items():
        if key in facts:
            if facts[key] != value:
                conflicts.append({"fact": key, "json": facts[key], "note": value, "used": "json"})
        else:
            facts[key] = value
            provenance[key] = "note"
    report = {
        "facts": extracted.facts,
        "evidence": {k: {"text": m.text, "start": m.start, "end": m.end} for k, m in extracted.evidence.items()},
        "ignored_mentions": [
            {"label": m.label, "text": m.text, "start": m.start,
             "because": [a for a in ("negated", "hypothetical", "historical", "family") if getattr(m, a)]}
            for m in extracted.mentions if m.negated or m.hypothetical or m.family or m.historical
        ],
        "conflicts_with_json": conflicts,
        "filled": sorted(provenance),
    }  # fmt: skip
    return facts, report


def _features(facts: Mapping[str, Any], decision: Decision) -> tuple[dict[str, Any], dict[str, str]]:
    out: dict[str, Any] = {k: v for k, v in facts.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    derived: dict[str, str] = {}
    for key in ("ild", "prior_thoracic_rt"):
        if isinstance(facts.get(key), bool):
            out[key] = 1.0 if facts[key] else 0.0
    if isinstance(facts.get("histology"), str):
        out["squamous"] = 1.0 if facts["histology"] == "squamous cell carcinoma" else 0.0
        derived["squamous"] = f"from histology {facts['histology']!r}"
    if "bed10_gy" not in out:
        for rec in decision.recommendations:
            if rec["total_dose_gy"] and rec["fractions"]:
                out["bed10_gy"] = bed10_gy(rec["total_dose_gy"], rec["fractions"])
                derived["bed10_gy"] = (
                    f"from the recommended {rec['total_dose_gy']:g} Gy in {rec['fractions']} fractions "
                    f"({', '.join(rec['rule_ids'])}), alpha/beta 10 Gy"
                )
                break
    return out, derived


def _score_json(score: RiskScore, model: RiskModel, derived: Mapping[str, str]) -> dict[str, Any]:
    return {
        "model": score.model_id, "model_version": score.model_version, "sha256": score.sha256,
        "outcome": score.outcome, "title": model.manifest.get("title", ""), "probability": score.probability,
        "unit": "probability (0-1)", "baseline_probability": score.baseline_probability,
        "demonstration": score.demonstration,
        "note": "Demonstration model trained on synthetic data; not validated on patients." if score.demonstration
        else "Site model: see its model card.",
        "contributions": [
            {"feature": c.feature, "value": c.value, "unit": c.unit, "cohort_mean": c.cohort_mean,
             "log_odds": c.log_odds, "text": c.text,
             **({"derived": derived[c.feature]} if c.feature in derived else {})}
            for c in score.contributions
        ],
    }  # fmt: skip


def _merge_questions(rules: list[dict[str, Any]], models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One question per fact: a fact both a rule and a model need keeps the rule's wording and lists both."""
    merged = {q["fact"]: {**q, "needed_by": list(q["needed_by"])} for q in rules}
    for q in models:
        if q["fact"] in merged:
            merged[q["fact"]]["needed_by"] += q["needed_by"]
        else:
            merged[q["fact"]] = q
    return list(merged.values())


def recommend(
    rulebase: RuleBase,
    raw_facts: Mapping[str, Any],
    note: str | None = None,
    model_roots: Sequence[Path] = (SHIPPED_MODELS,),
    radiomics: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The full recommendation as a JSON-ready dict (field reference: docs/decision-support.md).

    Precedence: the JSON facts, then ``radiomics`` (IBSI tag → value, e.g. from read_radiomics_csv), then the note.
    """
    facts = validate_facts(raw_facts, rulebase.facts)
    provenance = dict.fromkeys(facts, "json")
    for tag, value in (radiomics or {}).items():
        if tag in rulebase.facts:
            raise FactsError(f"radiomics: {tag!r} is a clinical fact, not a radiomics feature")
        if tag not in facts:
            facts[tag] = float(value)
            provenance[tag] = "radiomics"
    note_report = None
    if note is not None:
        facts, note_report = _merge_note(facts, note, rulebase)
        provenance.update(dict.fromkeys(note_report["filled"], "note"))
    first = decide(rulebase, facts)
    features, derived = _features(first.facts, first)
    models = find_models(model_roots)
    scores, model_questions, values = [], [], {}
    for model_id, model in sorted(models.items()):
        missing = model.missing(features)
        if missing:
            for f in missing:
                model_questions.append({"fact": f, "question": f"{f} ({model.units.get(f, '')}) is needed by the "
                                        f"{model.manifest.get('title', model_id)} model", "needed_by":
                                        [f"model:{model_id}@{model.version}"]})  # fmt: skip
            continue
        score = model.score(features)
        values[f"score_{model.outcome}"] = score.probability
        scores.append(_score_json(score, model, derived))
    decision = decide(rulebase, facts, values)
    for key in decision.facts:
        provenance.setdefault(key, "derived")
    out: dict[str, Any] = {
        "decision_support_notice": DISCLAIMER,
        "site": rulebase.site,
        "recommendations": decision.recommendations,
        "flags": decision.flags,
        "questions": _merge_questions(decision.questions, model_questions),
        "scores": scores,
        "rules_fired": decision.rules_fired,
        "conflicts": decision.conflicts,
        "facts": {k: {"value": v, "source": provenance[k]} for k, v in sorted(decision.facts.items())},
    }
    if note_report is not None:
        out["fact_conflicts"] = note_report["conflicts_with_json"]
        out["note"] = note_report
    return out
