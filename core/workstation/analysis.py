"""The analysis the GUI shows for an open study: radiomics of the GTV, NLP findings of the note, the rule-based
recommendation with model scores. `analyse` is a plain function: the engine worker runs it as an 'analyse' job
(engines/analysis_job.py; the GUI sends the GTV mask in the job's payload with `encode_mask`, the worker reads the
CT series from the store and `decode_mask`s the mask onto it); without a worker the GUI runs it in a one-off
process. Never on the UI thread; heavy imports happen inside it."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from core.errors import RadPlanError

if TYPE_CHECKING:
    from core.security.session import Access
    from core.store.store import Store

__all__ = [
    "ANALYSE_JOB",
    "DEFAULT_RADIOMICS_CONFIG",
    "MaskCodecError",
    "analyse",
    "analysis_job_payload",
    "decode_mask",
    "encode_mask",
    "highlight_spans",
    "parse_facts",
    "record_decision",
]

DEFAULT_RADIOMICS_CONFIG = "ibsi-d"
ANALYSE_JOB = "analyse"


class MaskCodecError(RadPlanError):
    """An encoded mask is damaged or does not fit the CT series it is meant for; the message says which."""


def encode_mask(mask: NDArray[Any]) -> dict[str, Any]:
    """A 3-D mask (z, y, x; nonzero = inside) as a small JSON value for a job payload: {"shape": [z, y, x],
    "box": [[z0, y0, x0], [z1, y1, x1]] (high corner exclusive; null for an empty mask), "bits": base64 of
    np.packbits of the voxels inside the box, C order}. `decode_mask` is the inverse."""
    on = np.asarray(mask) != 0
    if on.ndim != 3:
        raise ValueError(f"a mask must be 3-D (slices, rows, columns), not {on.ndim}-D")
    from core.segmentation.edit import bounding_box

    shape = [int(n) for n in on.shape]
    box = bounding_box(on)
    if box is None:
        return {"shape": shape, "box": None, "bits": ""}
    bits = np.packbits(on[box], axis=None)
    corners = [[int(b.start) for b in box], [int(b.stop) for b in box]]
    return {"shape": shape, "box": corners, "bits": base64.b64encode(bits.tobytes()).decode()}


def _dims(shape: Sequence[int]) -> str:
    return " x ".join(str(n) for n in shape)


def decode_mask(encoded: Mapping[str, Any], shape: Sequence[int]) -> NDArray[np.uint8]:
    """The uint8 mask (0/1) of `encode_mask`'s value on a volume of `shape` (z, y, x). MaskCodecError when the
    mask was made for a volume of another shape, or the value is damaged."""
    expected = tuple(int(n) for n in shape)
    damaged = "the GTV mask sent with the analysis is damaged"
    try:
        got = tuple(int(n) for n in encoded["shape"])
        box = encoded.get("box")
        bits = str(encoded.get("bits") or "")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MaskCodecError(f"{damaged} ({type(exc).__name__}): run the analysis again") from exc
    if got != expected:
        raise MaskCodecError(
            f"the GTV mask ({_dims(got)} voxels, slices x rows x columns) does not fit the CT series "
            f"({_dims(expected)} voxels): it was drawn on another series. Open the study again and rerun the analysis"
        )
    out = np.zeros(expected, np.uint8)
    if box is None:
        return out
    try:
        lo = [int(v) for v in box[0]]
        hi = [int(v) for v in box[1]]
        raw = base64.b64decode(bits, validate=True)
    except (IndexError, TypeError, ValueError, binascii.Error) as exc:
        raise MaskCodecError(f"{damaged} ({type(exc).__name__}): run the analysis again") from exc
    if len(lo) != 3 or len(hi) != 3 or not all(0 <= a < b <= n for a, b, n in zip(lo, hi, expected, strict=True)):
        raise MaskCodecError(f"{damaged} (its box lies outside the volume): run the analysis again")
    dims = tuple(b - a for a, b in zip(lo, hi, strict=True))
    count = math.prod(dims)
    if len(raw) != (count + 7) // 8:
        raise MaskCodecError(f"{damaged} ({len(raw)} bytes for {count} voxels): run the analysis again")
    crop = np.unpackbits(np.frombuffer(raw, np.uint8), count=count).reshape(dims)
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = crop
    return out


def analysis_job_payload(
    *,
    study_uid: str,
    series_uid: str,
    mask: NDArray[Any] | None,
    note: str | None,
    facts: Mapping[str, Any] | None = None,
    config: str = DEFAULT_RADIOMICS_CONFIG,
) -> dict[str, Any]:
    """The payload of an 'analyse' job (checked here, so a bad request fails at submission, not in the worker).
    No pixel data: the worker reads the CT series from the store; the mask travels encoded (it may hold edits
    that are not saved yet)."""
    from core.radiomics.configs import CONFIGS

    if config not in CONFIGS:
        raise ValueError(f"unknown radiomics configuration {config!r}; known: {', '.join(sorted(CONFIGS))}")
    return {
        "study_uid": study_uid,
        "series_uid": series_uid,
        "mask": None if mask is None else encode_mask(mask),
        "note": note or None,
        "facts": dict(facts or {}),
        "config": config,
    }


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
    on_step: Callable[[float, str], None] | None = None,
) -> dict[str, Any]:
    """{"features": [{"tag", "pyradiomics", "value"}], "mentions": [...], "recommendation": {...},
    "radiomics_error": str}. A missing or empty mask gives no features (and says why) but the rest still runs.
    on_step(fraction, message) is called before each step (radiomics, NLP, rules): the engine job reports its
    progress there and stops there (by raising) when it is cancelled."""
    step = on_step or (lambda _f, _m: None)
    from core.models.registry import SHIPPED_MODELS
    from core.radiomics.extract import extract_features
    from core.radiomics.preprocess import RadiomicsInputError, Volume
    from core.rules.recommend import recommend
    from core.rules.rulebase import load_rulebase

    features: list[dict[str, Any]] = []
    radiomics_error = ""
    step(0.1, f"radiomics of the GTV ({config})")
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
    step(0.6, "NLP of the clinical note")
    if note:
        from core.nlp.pipeline import extract_note_facts

        found = extract_note_facts(note)
        mentions = [
            {"label": m.label, "text": m.text, "value": str(m.value), "start": m.start, "end": m.end,
             "negated": m.negated, "hypothetical": m.hypothetical, "historical": m.historical, "family": m.family,
             "section": m.section}
            for m in found.mentions
        ]  # fmt: skip
    step(0.8, "rules and model scores")
    radiomics = {f["tag"]: f["value"] for f in features if np.isfinite(f["value"])}
    roots = list(model_roots) if model_roots is not None else [SHIPPED_MODELS]
    result = recommend(load_rulebase(site), dict(facts or {}), note, model_roots=roots, radiomics=radiomics)
    return {"features": features, "mentions": mentions, "recommendation": result, "radiomics_error": radiomics_error}


def record_decision(
    store: Store,
    read: Access,
    edit: Access,
    result: Mapping[str, Any],
    decision: str,
    *,
    study_uid: str,
    reason: str = "",
) -> tuple[int, str]:
    """Record the clinician's accept or override of the analysis's first recommendation (core.rules.feedback) for the
    patient of this study, so the patient joins the cohort that similar_patients searches: (feedback row id, patient
    ID). read (read_patient_data) finds the study's patient; edit (edit_plans) records the decision; both audited.
    FeedbackError when there is nothing to decide on or an override has no reason (at least 10 characters)."""
    from core.rules.feedback import FeedbackError, record_feedback
    from core.store.studies import list_studies

    if decision not in ("accept", "override"):
        raise FeedbackError(f"decision must be accept or override, not {decision!r}")
    patient_id = next((s.patient_id for s in list_studies(store, read) if s.study_uid == study_uid), "")
    if not patient_id:
        raise FeedbackError(f"study {study_uid} is not in the store, so the decision has no patient to belong to")
    rec = result.get("recommendation", {})
    row = record_feedback(store, edit, rec, "accept" if decision == "accept" else "override", reason=reason,
                          patient_id=patient_id)  # fmt: skip
    return row, patient_id


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
