"""The whole chain in-process on a small demo study (folder source), with a stand-in for the engine worker: the plan,
PDF, results and audit trail it leaves; resume after a failed step; no duplicates on a re-run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import Study, TruthSegmenter, authorize

from core.pipeline.context import PipelineContext, StepError
from core.pipeline.graph import PIPELINE, run_pipeline
from core.pipeline.runs import latest_run
from core.store.store import Store

pytestmark = pytest.mark.slow


def _ctx(store: Store, study: Study, out: Path, segmenter: TruthSegmenter) -> PipelineContext:
    return PipelineContext(store=store, authorize=authorize, study_uid=study.uid, out_dir=out, segmenter=segmenter,
                           input_dir=study.folder)  # fmt: skip


def _count(store: Store, sql: str, *params: object) -> int:
    return int(str(store.query(sql, tuple(params))[0][0]))


def test_the_pipeline_makes_a_plan_pdf_results_and_audits_every_step(
    small_study: Study, store: Store, tmp_path: Path
) -> None:
    segmenter = TruthSegmenter(small_study.folder / "truth")
    summary = run_pipeline(_ctx(store, small_study, tmp_path / "out", segmenter))

    assert summary.status == "done" and set(summary.seconds) == {s.name for s in PIPELINE}
    rec = summary.recommendation
    assert rec is not None and rec["modality"] == "SBRT" and rec["rule_ids"] == ["NSCLC-R02"]
    assert (rec["total_dose_gy"], rec["fractions"]) == (54.0, 3)
    facts = summary.outputs["facts"]
    assert facts["location"] == "peripheral" and "tumor_diameter_cm" not in facts  # the note states the size
    plan = store.query("SELECT payload, status FROM plans")
    assert len(plan) == 1 and plan[0][1] == "draft"
    content = json.loads(str(plan[0][0]))
    assert content["prescription"]["total_dose_gy"] == 54.0 and content["prescription"]["fractions"] == 3
    assert content["dose"] is not None and {"GTV", "CTV", "PTV"} <= {s["name"] for s in content["structures"]}
    assert content["recommendation"]["rule_ids"] == ["NSCLC-R02"] and content["model_scores"]

    pdf = Path(str(summary.pdf))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert small_study.manifest.patient_id in text and "54 Gy in 3 fractions" in text

    kinds = {str(r[0]) for r in store.query("SELECT kind FROM results")}
    assert kinds == {"features", "nlp", "scores", "recommendation"}
    modalities = {str(r[0]) for r in store.query("SELECT se.modality FROM series se")}
    assert {"CT", "RTDOSE", "SEG", "RTSTRUCT", "SR", "DOC"} <= modalities
    steps = [
        json.loads(str(r[0]))["step"] for r in store.query("SELECT details FROM audit WHERE action = 'pipeline.step'")
    ]
    assert steps == [s.name for s in PIPELINE]
    assert _count(store, "SELECT count(*) FROM audit WHERE action = 'pipeline.run.done'") == 1


def test_a_failed_step_is_resumed_and_nothing_is_duplicated(small_study: Study, store: Store, tmp_path: Path) -> None:
    segmenter = TruthSegmenter(small_study.folder / "truth", fail_first=True)
    ctx = _ctx(store, small_study, tmp_path / "out", segmenter)
    with pytest.raises(StepError, match="worker died") as failed:
        run_pipeline(ctx)
    assert failed.value.step == "segment"
    run = latest_run(store, small_study.uid)
    assert run is not None and run.status == "failed" and run.failed_step == "segment"
    assert set(run.steps) == {"retrieve", "select_ct"}

    summary = run_pipeline(ctx)
    assert summary.run_id == run.run_id and summary.resumed == ("retrieve", "select_ct")
    assert summary.seconds["retrieve"] is None and summary.seconds["segment"] is not None
    assert segmenter.calls == 2

    again = run_pipeline(ctx)  # finished: nothing runs again
    assert again.already_done and again.run_id == run.run_id and segmenter.calls == 2
    for table, expected in (("plans", 1), ("results", 4)):
        assert _count(store, f"SELECT count(*) FROM {table}") == expected
    for description in ("RadPlan AI segmentation", "RadPlan AI structures", "RadPlan draft plan (PDF)"):
        assert _count(store, "SELECT count(*) FROM instances i JOIN series se ON se.id = i.series_fk "
                      "WHERE se.description = ?", description) == 1, description  # fmt: skip
    assert _count(store, "SELECT count(*) FROM audit WHERE action = 'pipeline.run.failed'") == 1


def test_a_fresh_run_reuses_the_stored_segmentation(small_study: Study, store: Store, tmp_path: Path) -> None:
    segmenter = TruthSegmenter(small_study.folder / "truth")
    first = run_pipeline(_ctx(store, small_study, tmp_path / "a", segmenter))
    second = run_pipeline(_ctx(store, small_study, tmp_path / "b", segmenter), fresh=True)
    assert second.run_id != first.run_id and segmenter.calls == 1
    assert second.outputs["seg_sop_instance_uid"] == first.outputs["seg_sop_instance_uid"]
    assert second.outputs["rtstruct_sop_instance_uid"] == first.outputs["rtstruct_sop_instance_uid"]
    assert _count(store, "SELECT count(*) FROM instances WHERE sop_class_uid = '1.2.840.10008.5.1.4.1.1.66.4'") == 1
