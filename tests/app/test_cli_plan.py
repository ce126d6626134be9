"""`radplan dvh` and `radplan plan ...` through the real CLI: the JSON contract, the workflow with signatures,
role refusals (exit 3), the PDF and the DICOM export."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pydicom
import pytest

from core.plan.dose_io import dvh_metrics, read_dose_file, read_struct_file
from tests.conftest import PHYS, PHYS_PW, RAD, RAD_PW, Cli

PASS = {"RADPLAN_PASSPHRASE": "store-passphrase-1"}
RAD_ENV = {"RADPLAN_USER": RAD, "RADPLAN_PASSWORD": RAD_PW, **PASS}
PHYS_ENV = {"RADPLAN_USER": PHYS, "RADPLAN_PASSWORD": PHYS_PW, **PASS}
KEYS = ["roi", "volume_cc", "min_gy", "max_gy", "mean_gy", "d99_gy", "d95_gy", "d5_gy", "d1_gy", "d0_03cc_gy"]


def test_dvh_json_contract(cli: Cli, tmp_path: Path) -> None:
    study = tmp_path / "study"
    cli("demo-data", str(study), "--seed", "4", "--shape", "96x96x24", "--spacing", "3.0x3.0x5.0")
    out = cli("dvh", "--dose", str(study / "rtdose.dcm"), "--struct", str(study / "rtstruct.dcm"), "--roi", "GTV",
              "--roi", "SpinalCord", "--json")  # fmt: skip
    rows = json.loads(out.stdout)
    assert [r["roi"] for r in rows] == ["GTV", "SpinalCord"]
    assert all(list(r) == KEYS for r in rows)
    expected = dvh_metrics(read_dose_file(study / "rtdose.dcm"), read_struct_file(study / "rtstruct.dcm"), ["GTV"])[0]
    for key in KEYS[1:]:
        assert rows[0][key] == pytest.approx(getattr(expected, key), abs=1e-4)
    assert rows[0]["min_gy"] <= rows[0]["d99_gy"] <= rows[0]["d95_gy"] <= rows[0]["mean_gy"] <= rows[0]["max_gy"]
    table = cli("dvh", "--dose", str(study / "rtdose.dcm"), "--struct", str(study / "rtstruct.dcm"),
                "--mask", f"cord_truth={study / 'truth' / 'spinal_cord.nii.gz'}")  # fmt: skip
    assert "Esophagus" in table.stdout and "D0.03cc" in table.stdout and "cord_truth" in table.stdout
    nothing = cli("dvh", "--dose", str(study / "rtdose.dcm"), check=False)
    assert nothing.returncode == 2 and "--struct" in nothing.stderr
    bad = cli("dvh", "--dose", str(study / "rtdose.dcm"), "--struct", str(study / "rtstruct.dcm"), "--roi", "Liver",
              check=False)  # fmt: skip
    assert bad.returncode == 1 and "no ROI 'Liver'" in bad.stderr and bad.stdout == ""
    swapped = cli("dvh", "--dose", str(study / "rtstruct.dcm"), "--struct", str(study / "rtdose.dcm"), check=False)
    assert swapped.returncode == 1 and "expected RTDOSE" in swapped.stderr


@pytest.mark.slow
def test_plan_workflow_through_the_cli(initialised: Cli, tmp_path: Path) -> None:
    cli = initialised
    study = tmp_path / "study"
    cli("demo-data", str(study), "--seed", "4", "--shape", "96x96x24", "--spacing", "3.0x3.0x5.0")
    uid = json.loads((study / "manifest.json").read_text())["study_instance_uid"]
    cli("import", str(study), **RAD_ENV)
    created = json.loads(cli("plan", "create", "--study", uid, "--dose-gy", "50", "--fractions", "5", "--json",
                             **RAD_ENV).stdout)  # fmt: skip
    plan = str(created["plan_id"])
    assert created["status"] == "draft" and created["dose_computed"] is True
    usage = cli("plan", "create", "--study", uid, check=False, **RAD_ENV)
    assert usage.returncode == 2 and "--from-recommendation" in usage.stderr
    denied = cli("plan", "create", "--study", uid, "--dose-gy", "50", "--fractions", "5", check=False, **PHYS_ENV)
    assert denied.returncode == 3 and "may not edit plans" in denied.stderr
    cli("plan", "review", plan, "--comment", "checked", RADPLAN_SIGN_PASSWORD=PHYS_PW, **PHYS_ENV)
    no = cli("plan", "approve", plan, check=False, RADPLAN_SIGN_PASSWORD=PHYS_PW, **PHYS_ENV)
    assert no.returncode == 3
    wrong = cli("plan", "approve", plan, check=False, RADPLAN_SIGN_PASSWORD="not-my-password", **RAD_ENV)
    assert wrong.returncode == 3
    cli("plan", "approve", plan, RADPLAN_SIGN_PASSWORD=RAD_PW, **RAD_ENV)
    shown = json.loads(cli("plan", "show", plan, "--json", **PHYS_ENV).stdout)
    assert shown["status"] == "approved"
    assert [(s["signer"], s["decision"]) for s in shown["signatures"]] == [(PHYS, "reviewed"), (RAD, "approved")]
    assert shown["prescription_biology"][0]["bed_gy"] == pytest.approx(100.0)
    assert shown["prescription_biology"][1]["eqd2_gy"] == pytest.approx(130.0)
    revised = json.loads(cli("plan", "create", "--study", uid, "--dose-gy", "54", "--fractions", "3", "--from", plan,
                             "--json", **RAD_ENV).stdout)  # fmt: skip
    assert revised["version"] == 2 and revised["status"] == "draft"
    listed = json.loads(cli("plan", "list", "--study", uid, "--json", **PHYS_ENV).stdout)
    assert [(p["version"], p["status"]) for p in listed] == [(1, "approved"), (2, "draft")]
    again = cli("plan", "reject", plan, "--reason", "too late", check=False, RADPLAN_SIGN_PASSWORD=RAD_PW, **RAD_ENV)
    assert again.returncode == 1 and "approved" in again.stderr
    cli("plan", "pdf", "--plan", plan, "--out", str(tmp_path / "plan.pdf"), **RAD_ENV)
    text = subprocess.run(["pdftotext", str(tmp_path / "plan.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    assert "APPROVED" in text and "requires clinician confirmation" in text
    out = cli("plan", "export", "--plan", plan, "--out", str(tmp_path / "dicom"), **RAD_ENV)
    paths = sorted((tmp_path / "dicom").glob("*.dcm"))
    assert sorted(pydicom.dcmread(p).Modality for p in paths) == ["DOC", "RTSTRUCT"]  # the PDF, the CTV/PTV
    assert all(str(p) in out.stdout for p in paths)
    assert "stored with the study" in out.stdout  # a radiologist may store: ready for 'pacs send --what pdf'
