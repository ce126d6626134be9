"""`radplan segment` (stored study through the worker, a series folder in-process, region growing), `radplan jobs`,
`radplan doctor`'s backend listing: real CLI subprocesses on a real store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from scipy import ndimage

from tests.conftest import PHYS, PHYS_PW, RAD, RAD_PW, Cli
from tests.engine.tiny_model import LABELS, TINY_MODEL

pytestmark = pytest.mark.slow
PASS = {"RADPLAN_PASSPHRASE": "store-passphrase-1"}
AS_RAD = {"RADPLAN_USER": RAD, "RADPLAN_PASSWORD": RAD_PW, **PASS}


def test_segment_study_through_the_worker(
    initialised: Cli, data_dir: Path, small_study: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    shutil.copytree(tiny_model_dir, data_dir / "models" / TINY_MODEL)
    initialised("import", str(small_study / "ct"), **AS_RAD)
    study_uid = json.loads(initialised("studies", "--json", **AS_RAD).stdout)[0]["study_uid"]
    out = tmp_path / "out"
    run = initialised("segment", "--study", study_uid, "--model", TINY_MODEL, "--out", str(out), **AS_RAD)
    assert "backend: onnxruntime (cpu, fp32) - auto picked onnxruntime (cpu, fp32)" in run.stdout
    assert "tensorrt/cuda:" in run.stdout  # says why the faster backends were not taken
    assert "stored in study" in run.stdout and "inference on onnxruntime" in run.stderr
    assert (out / "seg.dcm").is_file() and len(list(out.glob("*.nii.gz"))) == len(LABELS) - 1
    listed = json.loads(initialised("jobs", "list", "--json", **AS_RAD).stdout)
    assert [(j["kind"], j["status"], j["created_by"]) for j in listed] == [("segment", "done", RAD)]
    shown = initialised("jobs", "show", str(listed[0]["id"]), **AS_RAD).stdout
    assert f"job {listed[0]['id']} segment done 100%" in shown
    failed = initialised("jobs", "cancel", str(listed[0]["id"]), check=False, **AS_RAD)
    assert failed.returncode == 1 and "already done" in failed.stderr
    assert "done by worker pid" in initialised("jobs", "selftest", "--seconds", "0.5", **AS_RAD).stdout
    denied = initialised(
        "segment", "--study", study_uid, "--out", str(tmp_path / "x"), check=False,
        RADPLAN_USER=PHYS, RADPLAN_PASSWORD=PHYS_PW, **PASS,
    )  # fmt: skip
    assert denied.returncode == 3 and "run analysis" in denied.stderr


def test_segment_series_folder_and_region_grow(cli: Cli, data_dir: Path, small_study: Path, tiny_model_dir: Path,
                                               tmp_path: Path) -> None:  # fmt: skip
    shutil.copytree(tiny_model_dir, data_dir / "models" / TINY_MODEL)
    out = tmp_path / "model"
    run = cli("segment", "--input", str(small_study / "ct"), "--backend", "onnxruntime", "--model", TINY_MODEL,
              "--out", str(out), "--json")  # fmt: skip
    summary = json.loads(run.stdout)
    assert summary["backend"] == "onnxruntime (cpu, fp32)" and summary["timings_s"]["end_to_end"] > 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(f"{s}.nii.gz" for s in LABELS[1:])
    lung = sitk.GetArrayFromImage(sitk.ReadImage(str(small_study / "truth" / "lung_right.nii.gz"))).astype(bool)
    core = ndimage.binary_erosion(lung, iterations=1)
    z, y, x = (int(v) for v in np.argwhere(core)[len(np.argwhere(core)) // 2])
    grown_dir = tmp_path / "grown"
    cli("segment", "--input", str(small_study / "ct"), "--method", "region-grow", "--seed", f"{x},{y},{z}",
        "--label", "lung_right", "--out", str(grown_dir))  # fmt: skip
    grown = sitk.GetArrayFromImage(sitk.ReadImage(str(grown_dir / "lung_right.nii.gz"))).astype(bool)
    assert grown[z, y, x] and (grown & lung).sum() / grown.sum() > 0.9  # grown from the seed, inside the lung
    assert (grown_dir / "seg.dcm").is_file()
    usage = cli("segment", "--input", str(small_study / "ct"), "--method", "region-grow", "--out", str(tmp_path),
                check=False)  # fmt: skip
    assert usage.returncode == 2 and "needs --seed" in usage.stderr


def test_doctor_says_what_auto_picks(cli: Cli) -> None:
    report = json.loads(cli("doctor", "--json").stdout)
    trt = {b["name"]: b for b in report["inference_backends"]}["tensorrt"]
    assert report["auto_backend"] == ("tensorrt (cuda)" if trt["available"] else "onnxruntime (cpu)")
    if not trt["available"]:
        assert trt["detail"].startswith("unavailable: ")


def test_jobs_show_summarises_an_analysis_job(initialised: Cli, data_dir: Path) -> None:
    from core.jobs import JobQueue
    from core.store.store import Store

    result = {
        "features": [{"tag": "morph_volume", "pyradiomics": "", "value": 79.9}] * 3,
        "mentions": [{"label": "histology", "text": "adenocarcinoma"}],
        "radiomics_error": "",
        "recommendation": {
            "decision_support_notice": "Decision support only.",
            "recommendations": [{"intent": "curative", "modality": "SBRT", "total_dose_gy": 54, "fractions": 3,
                                 "rule_ids": ["NSCLC-R02"], "source": "ESTRO ACROP 2017"}],
            "rules_fired": ["NSCLC-R02", "STAGE-1"],
            "scores": [],
        },
    }  # fmt: skip
    store = Store.open(data_dir, passphrase=lambda _p: PASS["RADPLAN_PASSPHRASE"])
    try:
        queue = JobQueue(store)
        job_id = queue.submit("analyse", {"note": "probe"}, study_uid=None, created_by=RAD)
        claimed = queue.claim_next(worker_pid=1, kinds=["analyse"])
        assert claimed is not None and claimed.id == job_id
        queue.succeed(job_id, result)
    finally:
        store.close()
    shown = initialised("jobs", "show", str(job_id), **AS_RAD).stdout
    assert f"job {job_id} analyse done 100%" in shown
    assert "radiomics: 3 features" in shown and "note: 1 findings" in shown
    assert "recommendation: curative SBRT 54 Gy in 3 fractions (rules NSCLC-R02; ESTRO ACROP 2017)" in shown
    assert "rules fired: 2, model scores: 0" in shown and "Decision support only." in shown
    assert "backend:" not in shown  # not the segmentation summary
