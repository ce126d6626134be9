"""The 'analyse' job: IBSI radiomics of the GTV, NLP findings of the clinical note, the rule-based recommendation
with model scores (core.workstation.analysis.analyse), for the CT series the GUI has open.

The worker reads the CT series from the encrypted store itself, as the job's user (read_patient_data, audited), so
no pixel data travels in the job row; the GTV mask comes in the payload (`encode_mask`: it may hold edits that are
not saved yet) and must fit that series. Progress is reported, and cancellation honoured, between the steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import RadPlanError
from core.jobs import JobCancelledError
from core.radiomics.configs import CONFIGS
from core.security.roles import Permission
from core.segmentation.service import access_for_user, load_ct_series
from core.store.store import Store
from core.workstation.analysis import ANALYSE_JOB, DEFAULT_RADIOMICS_CONFIG, analyse, decode_mask

if TYPE_CHECKING:
    from engines.jobs import JobContext

__all__ = ["ANALYSE_JOB", "run_analyse"]


def _as_stored(result: dict[str, Any]) -> dict[str, Any]:
    """The result as JobQueue stores it (JSON; NaN kept as NaN): what the GUI gets back, checked here."""
    try:
        stored: dict[str, Any] = json.loads(json.dumps(result, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise RadPlanError(f"the analysis result cannot be stored with the job ({exc})") from exc
    return stored


def run_analyse(store: Store, ctx: JobContext, data_dir: Path) -> dict[str, Any]:
    """payload: study_uid, series_uid, mask (encode_mask or null), note, facts, config; result: analyse()'s dict."""
    del data_dir
    job, payload = ctx.job, ctx.job.payload

    def step(fraction: float, message: str) -> None:
        if ctx.cancelled():
            raise JobCancelledError("the analysis was cancelled")
        ctx.progress(fraction, message)

    facts = payload.get("facts") or {}
    if not isinstance(facts, dict):
        raise RadPlanError("the analysis job's facts must be name=value pairs")
    config = str(payload.get("config") or DEFAULT_RADIOMICS_CONFIG)
    if config not in CONFIGS:
        raise RadPlanError(f"unknown radiomics configuration {config!r}; known: {', '.join(sorted(CONFIGS))}")
    step(0.0, "loading the CT series")
    ct = load_ct_series(
        store,
        access_for_user(store, job.created_by, Permission.READ_PATIENT_DATA),
        str(payload["study_uid"]),
        payload.get("series_uid"),
        purpose="analysis",
    )
    volume = ct.volume
    encoded = payload.get("mask")
    mask = None if encoded is None else decode_mask(encoded, volume.array.shape)
    step(0.05, f"CT series loaded ({volume.array.shape[0]} slices)")
    result = analyse(
        volume.array,
        volume.spacing_mm,
        mask,
        payload.get("note") or None,
        facts=facts,
        config=config,
        on_step=lambda f, m: step(0.05 + 0.9 * f, m),
    )
    step(0.99, "storing the result")
    return _as_stored(result)
