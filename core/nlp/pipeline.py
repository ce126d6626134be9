"""Clinical note → facts: a spaCy pipeline without downloaded models (blank English tokenizer, rule-based
sentences, EntityRuler terms, regular-expression values, ConText assertions) and the mapping to RadPlan facts.

Mentions that are negated, hypothetical or about a family member never become positive facts; a negated mention
of a yes/no concept (ILD, previous thoracic radiotherapy, operability) gives the opposite value. Historical
mentions count for facts that are history by nature (previous radiotherapy, smoking, ILD) and are ignored for the
current disease (histology, TNM, size, location, lobe). The first usable mention of a field wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from core.nlp.context import apply_context  # importing the module registers the clinical_sentences component
from core.nlp.patterns import LOBES, VALUE_PATTERNS, entity_ruler_patterns

__all__ = ["FIELDS", "Mention", "NoteFacts", "build_pipeline", "extract_note_facts"]

#: Fields extracted, with their units (empty: categorical).
FIELDS: dict[str, str] = {
    "histology": "", "t_stage": "", "n_stage": "", "m_stage": "", "p_t_stage": "", "p_n_stage": "",
    "ecog": "ECOG grade", "karnofsky": "%", "smoking_status": "", "pack_years": "pack-years",
    "prior_thoracic_rt": "", "ild": "", "fev1_percent": "% predicted", "dlco_percent": "% predicted", "egfr": "",
    "alk": "", "ros1": "", "pdl1_tps_percent": "%", "laterality": "", "lobe": "", "operable": "",
    "tumor_diameter_cm": "cm", "location": "",
}  # fmt: skip
_HISTORY_OK = {"PRIOR_RT", "SMOKING", "PACK_YEARS", "ILD"}
_BOOL_TERMS = {"ILD": "ild", "PRIOR_RT": "prior_thoracic_rt", "OPERABLE": "operable"}
_NON_THORACIC = re.compile(
    r"\b(prostate|pelvi\w*|rect\w*|cervi\w*|brain|whole[- ]brain|head and neck|larynx|laryngeal|bone|spine|spinal"
    r"|hip|femur|skin|bladder|uter\w*|endometri\w*|anal)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Mention:
    """One concept or value found in the note, with its assertions and where it is (character offsets)."""

    label: str
    text: str
    value: Any
    start: int
    end: int
    negated: bool
    hypothetical: bool
    historical: bool
    family: bool
    section: str


@dataclass
class NoteFacts:
    """Facts extracted from one note (field → value) and the evidence for each (field → mention)."""

    facts: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Mention] = field(default_factory=dict)
    mentions: list[Mention] = field(default_factory=list)


@lru_cache(maxsize=1)
def build_pipeline() -> Language:
    """spacy.blank('en') + clinical_sentences + entity_ruler (terms); built once per process."""
    nlp = spacy.blank("en")
    nlp.add_pipe("clinical_sentences")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    ruler.add_patterns(entity_ruler_patterns())  # type: ignore[attr-defined]
    return nlp


def _value(label: str, m: re.Match[str]) -> Any:
    g = m.groupdict()
    if label == "TNM":
        return {"prefix": (g["pt"] or "c").lower(), "t": f"T{g['t']}", "n": g["n"] and f"N{g['n']}",
                "m": g["m"] and f"M{g['m']}", "pn": g["pn"], "pm": g["pm"]}  # fmt: skip
    if label == "N_ONLY":
        return {"prefix": (g["pn"] or "c").lower(), "n": f"N{g['n']}"}
    if label == "M_ONLY":
        return {"prefix": (g["pm"] or "c").lower(), "m": f"M{g['m']}"}
    if label in ("EGFR", "ALK", "ROS1"):
        positive = any(g.get(k) is not None for k in ("pos", "pos2", "pos3", "pos4"))
        if label == "EGFR":
            return "mutated" if positive else "wild-type"
        return "positive" if positive else "negative"
    if label == "PDL1":
        below = g.get("lt") or g.get("lt2")
        number = float(g.get("v") or g.get("v2") or 0)
        return 0.0 if below and number <= 1 else number
    if label == "SIZE":
        number = float(g.get("v") or g.get("v2") or g.get("v3") or 0)
        unit = (g.get("u") or g.get("u2") or g.get("u3") or "").lower()
        return round(number / 10.0, 2) if unit == "mm" else number
    if label == "LATERALITY":
        return str(g["v"]).lower()
    if label == "LOCATION":
        word = next(v for k, v in g.items() if v is not None).lower()
        return "ultracentral" if word.startswith("ultra") else word
    number = next(float(v) for k, v in g.items() if k.startswith("v") and v is not None)
    return int(number) if label in ("ECOG", "KARNOFSKY") else number


def _mentions(doc: Doc) -> list[Mention]:
    spans: list[tuple[Span, str, Any]] = [(ent, ent.label_, ent.ent_id_) for ent in doc.ents]
    for label, pattern in VALUE_PATTERNS:
        for m in pattern.finditer(doc.text):
            span = doc.char_span(m.start(), m.end(), alignment_mode="expand")
            if span is not None and len(span) > 0:
                spans.append((span, label, _value(label, m)))
    out = []
    for span, label, value in spans:
        ctx = apply_context(doc, span)
        out.append(
            Mention(label, span.text, value, span.start_char, span.end_char, bool(ctx["negated"]),
                    bool(ctx["hypothetical"]), bool(ctx["historical"]), bool(ctx["family"]), str(ctx["section"]))
        )  # fmt: skip
    out.sort(key=lambda m: m.start)
    return out


def _set(result: NoteFacts, name: str, value: Any, mention: Mention) -> None:
    if name not in result.facts and value is not None:
        result.facts[name] = value
        result.evidence[name] = mention


def _tnm(result: NoteFacts, m: Mention) -> None:
    v = m.value
    pathological = v["prefix"].startswith(("p", "y"))
    if m.label == "TNM":
        _set(result, "p_t_stage" if pathological else "t_stage", v["t"], m)
    if v.get("n"):
        n_path = (v.get("pn") or v["prefix"]).startswith(("p", "y"))
        _set(result, "p_n_stage" if n_path else "n_stage", v["n"], m)
    if v.get("m") and not pathological:
        _set(result, "m_stage", v["m"], m)


def _apply(result: NoteFacts, m: Mention, text: str) -> None:
    if m.family or m.hypothetical:
        return
    if m.historical and m.label not in _HISTORY_OK:
        return
    if m.label == "PRIOR_RT":
        specific = any(w in m.text.lower() for w in ("thoracic", "chest", "mediastin", "lung", "mantle"))
        window = text[max(0, m.start - 60) : m.end + 40]
        if not specific and _NON_THORACIC.search(window):
            return
        if m.value == "bare":
            if m.negated:
                _set(result, "prior_thoracic_rt", False, m)
            elif m.historical:
                _set(result, "prior_thoracic_rt", True, m)
            return
    if m.label in _BOOL_TERMS:
        _set(result, _BOOL_TERMS[m.label], (m.value == "true") != m.negated, m)
        return
    if m.label == "SMOKING":
        _set(result, "smoking_status", "never" if m.negated else m.value, m)
        return
    if m.label in ("EGFR", "ALK", "ROS1"):
        _set(result, m.label.lower(), m.value, m)
        return
    if m.negated:
        return
    simple = {"HISTOLOGY": "histology", "ECOG": "ecog", "KARNOFSKY": "karnofsky", "PACK_YEARS": "pack_years",
              "FEV1": "fev1_percent", "DLCO": "dlco_percent", "PDL1": "pdl1_tps_percent",
              "SIZE": "tumor_diameter_cm", "LOCATION": "location", "LATERALITY": "laterality"}  # fmt: skip
    if m.label in simple:
        _set(result, simple[m.label], m.value, m)
    elif m.label == "LOBE":
        _set(result, "lobe", m.value, m)
        _set(result, "laterality", LOBES[m.value], m)
    elif m.label in ("TNM", "N_ONLY", "M_ONLY"):
        _tnm(result, m)
    elif m.label == "METASTASIS":
        _set(result, "m_stage", "M1", m)


def extract_note_facts(text: str) -> NoteFacts:
    """Run the pipeline on a note (plain text) and map its mentions to facts (see FIELDS for names and units)."""
    doc = build_pipeline()(text)
    result = NoteFacts(mentions=_mentions(doc))
    histologies = [m for m in result.mentions if m.label == "HISTOLOGY" and m.value != "nsclc nos"]
    ordered = sorted(result.mentions, key=lambda m: m.label == "HISTOLOGY" and m.value == "nsclc nos")
    ordered = ordered if histologies else result.mentions
    # precedence: a declined operation beats an operability statement; an explicit M category beats "metastases"
    declined = [m for m in ordered if m.label == "OPERABLE" and m.value == "declined"]
    rest = [m for m in ordered if m not in declined]
    ordered = declined + [m for m in rest if m.label != "METASTASIS"] + [m for m in rest if m.label == "METASTASIS"]
    for mention in ordered:
        if mention.label == "OPERABLE" and mention.value == "declined":
            if not (mention.negated or mention.hypothetical or mention.family):
                _set(result, "operable", False, mention)
            continue
        _apply(result, mention, text)
    return result
