"""The analysis the GUI shows for an open study: radiomics of the GTV, NLP findings of the note, the rule-based
recommendation with model scores. `analyse` is a plain function so it can run in a separate process (the GUI
runs it in the engine-side process pool, never on the UI thread); heavy imports happen inside it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_RADIOMICS_CONFIG", "analyse", "highlight_spans", "parse_facts"]

DEFAULT_RADIOMICS_CONFIG = "ibsi-d"


def analyse(
    image: NDArray[np.float32],
    spacing_xyz_mm: tuple[float, float, float],
    mask: NDArray[np.uint8] | None,
    note: str | None,
    *,
    facts: dict[str, Any] | None = None,
    config: str = DEFAULT_RADIOMICS_CONFIG,
    model_roots: Sequence[Path] | None = None,
    site: str = "nsclc",
) -> dict[str, Any]:
    """{"features": [{"tag", "pyradiomics", "value"}], "mentions": [...], "recommendation": {...},
    "radiomics_error": str}. A missing or empty mask gives no features (and says why) but the rest still runs."""
    from core.models.registry import SHIPPED_MODELS
    from core.radiomics.extract import extract_features
    from core.radiomics.preprocess import RadiomicsInputError, Volume
    from core.rules.recommend import recommend
    from core.rules.rulebase import load_rulebase

    features: list[dict[str, Any]] = []
    radiomics_error = ""
    if mask is None or not np.any(mask):
        radiomics_error = "no GTV mask: run the segmentation (or draw the GTV) to get radiomics features"
    else:
        sx, sy, sz = spacing_xyz_mm
        vol = Volume(image=np.asarray(image, np.float64), mask=np.asarray(mask, bool), spacing_mm=(sz, sy, sx))
        try:
            features = [
                {"tag": f.ibsi_tag, "pyradiomics": f.pyradiomics, "value": float(f.value)}
                for f in extract_features(vol, config)
            ]
        except RadiomicsInputError as exc:
            radiomics_error = str(exc)
    mentions: list[dict[str, Any]] = []
    if note:
        from core.nlp.pipeline import extract_note_facts

        found = extract_note_facts(note)
        mentions = [
            {"label": m.label, "text": m.text, "value": str(m.value), "start": m.start, "end": m.end,
             "negated": m.negated, "hypothetical": m.hypothetical, "historical": m.historical, "family": m.family,
             "section": m.section}
            for m in found.mentions
        ]  # fmt: skip
    radiomics = {f["tag"]: f["value"] for f in features if np.isfinite(f["value"])}
    roots = list(model_roots) if model_roots is not None else [SHIPPED_MODELS]
    result = recommend(load_rulebase(site), dict(facts or {}), note, model_roots=roots, radiomics=radiomics)
    return {"features": features, "mentions": mentions, "recommendation": result, "radiomics_error": radiomics_error}


def highlight_spans(text: str, mentions: Sequence[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, kind) spans inside `text`; kind 'negated', 'uncertain' or 'finding'."""
    spans: list[tuple[int, int, str]] = []
    last_end = -1
    for m in sorted(mentions, key=lambda m: (int(m["start"]), -int(m["end"]))):
        start, end = int(m["start"]), int(m["end"])
        if start < last_end or not 0 <= start < end <= len(text):
            continue
        kind = "negated" if m.get("negated") else ("uncertain" if m.get("hypothetical") else "finding")
        spans.append((start, end, kind))
        last_end = end
    return spans


def parse_facts(text: str) -> dict[str, Any]:
    """'age=67, ecog=1, histology=adenocarcinoma' -> a facts dict (numbers become int/float, true/false bool)."""
    out: dict[str, Any] = {}
    for part in (p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        key, sep, raw = part.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise ValueError(f"{part!r}: write facts as name=value, separated by commas")
        value = raw.strip()
        parsed: Any = value
        if value.lower() in ("true", "yes"):
            parsed = True
        elif value.lower() in ("false", "no"):
            parsed = False
        else:
            try:
                parsed = int(value)
            except ValueError:
                try:
                    parsed = float(value)
                except ValueError:
                    parsed = value
        out[key.strip()] = parsed
    return out
