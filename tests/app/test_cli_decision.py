"""CLI: `radplan recommend`, `radplan rules list|test`, `radplan risk-model list`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.models.registry import SHIPPED_MODELS
from tests.conftest import ADMIN, ADMIN_PW, PHYS, PHYS_PW, RAD, RAD_PW, Cli

NOTES = Path(__file__).resolve().parents[1] / "data" / "notes"
STAGE_I = {
    "age": 74, "sex": "M", "ecog": 1, "histology": "adenocarcinoma", "t_stage": "T1c", "n_stage": "N0",
    "m_stage": "M0", "tumor_diameter_cm": 2.1, "location": "peripheral", "operable": False, "ild": False,
    "prior_thoracic_rt": False, "fev1_percent": 48, "dlco_percent": 41, "mean_lung_dose_gy": 6.5,
    "morph_sphericity": 0.72, "ih_entropy": 4.4,
}  # fmt: skip


def _facts(tmp_path: Path, facts: object, name: str = "facts.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(facts))
    return str(path)


def test_recommend_json_contract(cli: Cli, tmp_path: Path) -> None:
    out = json.loads(cli("recommend", "--facts", _facts(tmp_path, STAGE_I), "--json").stdout)
    assert {"recommendations", "flags", "questions", "scores", "rules_fired"} <= set(out)
    (rec,) = out["recommendations"]
    keys = ("intent", "modality", "total_dose_gy", "fractions", "concurrent_chemo", "rule_ids")
    assert {k: rec[k] for k in keys} == {
        "intent": "curative", "modality": "SBRT", "total_dose_gy": 54.0, "fractions": 3, "concurrent_chemo": False,
        "rule_ids": ["NSCLC-R02"],
    }  # fmt: skip
    assert rec["oar_constraints"]["id"] == "sbrt_3fx"
    assert [f["id"] for f in out["flags"]] == []  # FEV1 48 % and DLCO 41 %: above the 40 % flag
    scores = {s["model"]: s for s in out["scores"]}
    assert set(scores) == {"rp_grade2", "local_control_2y"}
    for s in scores.values():
        assert s["model_version"] == "1.0.0" and len(s["sha256"]) == 64 and s["demonstration"] is True
        assert 0 < s["probability"] < 1 and s["contributions"] and all("text" in c for c in s["contributions"])
    bed = next(c for c in scores["local_control_2y"]["contributions"] if c["feature"] == "bed10_gy")
    assert bed["value"] == 151.2 and "54 Gy in 3 fractions" in bed["derived"]
    assert out["rules_fired"] == [
        {"id": "NSCLC-R02", "title": out["rules_fired"][0]["title"], "version": "1.0",
         "source": out["rules_fired"][0]["source"], "salience": 10, "kind": "recommendation"}
    ]  # fmt: skip
    assert "RTOG 0236" in out["rules_fired"][0]["source"]
    assert "not a diagnosis" in out["decision_support_notice"]


def test_note_fills_missing_facts_and_the_json_wins(cli: Cli, tmp_path: Path) -> None:
    facts = {"t_stage": "T1c", "n_stage": "N0", "m_stage": "M0", "ecog": 2, "location": "peripheral"}
    out = json.loads(
        cli("recommend", "--facts", _facts(tmp_path, facts), "--note", str(NOTES / "n01.txt"), "--json").stdout
    )
    assert out["facts"]["operable"] == {"value": False, "source": "note"}
    assert out["facts"]["tumor_diameter_cm"] == {"value": 2.1, "source": "note"}
    assert out["facts"]["ecog"] == {"value": 2, "source": "json"}
    assert out["fact_conflicts"] == [{"fact": "ecog", "json": 2, "note": 1, "used": "json"}]
    assert out["recommendations"][0]["total_dose_gy"] == 54.0
    text = cli("recommend", "--facts", _facts(tmp_path, facts), "--note", str(NOTES / "n01.txt")).stdout
    assert "note disagrees on ecog: FACTS.json 2, note 1 (FACTS.json used)" in text
    assert any(m["label"] == "METASTASIS" and m["because"] == ["negated"] for m in out["note"]["ignored_mentions"])


def test_radiomics_csv_from_the_radiomics_command(cli: Cli, tmp_path: Path) -> None:
    features = tmp_path / "features.csv"
    features.write_text("ibsi_tag,feature,value\nmorph_sphericity,Sphericity,0.9\nih_entropy,Entropy,3.9\n")
    facts = {k: v for k, v in STAGE_I.items() if k not in ("morph_sphericity", "ih_entropy")}
    out = json.loads(
        cli("recommend", "--facts", _facts(tmp_path, facts), "--radiomics", str(features), "--json").stdout
    )
    assert out["facts"]["morph_sphericity"] == {"value": 0.9, "source": "radiomics"}
    lc = next(s for s in out["scores"] if s["model"] == "local_control_2y")
    assert {c["feature"]: c["value"] for c in lc["contributions"]}["ih_entropy"] == 3.9
    features.write_text("ibsi_tag,feature,value\nmorph_sphericity,Sphericity,high\n")
    bad = cli("recommend", "--facts", _facts(tmp_path, facts), "--radiomics", str(features), check=False)
    assert bad.returncode == 1 and "is not a number" in bad.stderr


def test_missing_facts_are_questions_not_guesses(cli: Cli, tmp_path: Path) -> None:
    out = json.loads(cli("recommend", "--facts", _facts(tmp_path, {"t_stage": "T2a"}), "--json").stdout)
    assert out["recommendations"] == []
    asked = {q["fact"] for q in out["questions"]}
    assert {"n_stage", "m_stage", "operable", "mean_lung_dose_gy"} <= asked
    assert out["scores"] == []


def test_recommend_text_output_names_conflicts_and_flags(cli: Cli, tmp_path: Path) -> None:
    facts = {"t_stage": "T4", "n_stage": "N3", "m_stage": "M0", "ecog": 3, "ild": True}
    text = cli("recommend", "--facts", _facts(tmp_path, facts)).stdout
    assert "palliative conventional: 20 Gy in 5 fractions [NSCLC-R08]" in text
    assert "conflict: NSCLC-R08 (salience 30) overrides NSCLC-R05 (salience 10)" in text
    assert "flag (high) NSCLC-F01" in text and "question:" in text


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        ("{not json", 1, "not valid JSON"),
        ("[1, 2]", 1, "must be a JSON object"),
        ('{"ecog": 9, "location": "left"}', 1, "ecog: must be between 0 and 4"),
        ('{"favourite_colour": "blue"}', 1, "favourite_colour: unknown fact"),
    ],
)
def test_bad_facts_are_clear_errors(cli: Cli, tmp_path: Path, content: str, code: int, message: str) -> None:
    path = tmp_path / "facts.json"
    path.write_text(content)
    result = cli("recommend", "--facts", str(path), "--json", check=False)
    assert result.returncode == code and message in result.stderr and result.stdout == ""


def test_missing_files_and_bad_note_encoding(cli: Cli, tmp_path: Path) -> None:
    missing = cli("recommend", "--facts", str(tmp_path / "nope.json"), check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    note = tmp_path / "note.txt"
    note.write_bytes(b"\xff\xfe ECOG \xff")
    bad = cli("recommend", "--facts", _facts(tmp_path, {}), "--note", str(note), check=False)
    assert bad.returncode == 1 and "not UTF-8" in bad.stderr


def test_rules_list_prints_every_rule_with_its_source(cli: Cli) -> None:
    text = cli("rules", "list").stdout
    listed = json.loads(cli("rules", "list", "--json").stdout)
    ids = [r["id"] for r in listed["rules"]]
    assert len(ids) >= 15 and all(i in text for i in ids)
    assert all(r["source"] for r in listed["rules"]) and text.count("source:") == len(ids) + len(
        listed["constraint_sets"]
    )
    assert "AAPM Task Group 101" in text and "QUANTEC" in text and "RTOG 0813" in text


def test_rules_test_runs_the_vignettes(cli: Cli) -> None:
    result = cli("rules", "test")
    assert result.stdout.strip().endswith("30/30 vignettes passed")
    data = json.loads(cli("rules", "test", "--json").stdout)
    assert data["passed"] == 30 and data["failed"] == 0


def test_rules_test_fails_on_a_broken_rule_base(cli: Cli) -> None:
    result = cli("rules", "test", "--site", "no-such-site", check=False)
    assert result.returncode == 1 and "no rule base for site 'no-such-site'" in result.stderr


def test_risk_model_show_prints_the_card_and_calibration(cli: Cli) -> None:
    text = cli("risk-model", "show", "local_control_2y").stdout
    assert "DEMONSTRATION MODEL TRAINED ON SYNTHETIC DATA" in text
    assert text.count("calibration, ") == 2 and len([ln for ln in text.splitlines() if ln.startswith("     ")]) == 20
    manifest = json.loads(cli("risk-model", "show", "rp_grade2", "--json").stdout)
    assert manifest["model_id"] == "rp_grade2" and len(manifest["metrics"]["external"]["calibration"]) == 10
    missing = cli("risk-model", "show", "nope", check=False)
    assert missing.returncode == 1 and "no risk model 'nope'" in missing.stderr


def test_risk_model_list_and_a_site_drop(cli: Cli, data_dir: Path) -> None:
    rows = json.loads(cli("risk-model", "list", "--json").stdout)
    assert {r["model"] for r in rows} == {"rp_grade2", "local_control_2y"} and all(r["demonstration"] for r in rows)
    site = data_dir / "models" / "risk" / "rp_grade2" / "1.1.0"
    shutil.copytree(SHIPPED_MODELS / "rp_grade2" / "1.0.0", site)
    manifest = json.loads((site / "manifest.json").read_text())
    (site / "manifest.json").write_text(json.dumps({**manifest, "version": "1.1.0", "demonstration": False}))
    rows = {r["model"]: r for r in json.loads(cli("risk-model", "list", "--json").stdout)}
    assert rows["rp_grade2"]["version"] == "1.1.0" and rows["rp_grade2"]["folder"] == str(site)


@pytest.mark.slow
def test_feedback_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    env = {"RADPLAN_PASSPHRASE": "store-passphrase-1"}
    cli("init", "--admin", ADMIN, "--key-mode", "passphrase", RADPLAN_PASSWORD=ADMIN_PW, **env)
    for name, role, pw in ((RAD, "radiologist", RAD_PW), (PHYS, "physicist", PHYS_PW)):
        cli("user", "add", name, "--role", role, RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW,
            RADPLAN_NEW_PASSWORD=pw, **env)  # fmt: skip
    rad = {"RADPLAN_USER": RAD, "RADPLAN_PASSWORD": RAD_PW, **env}
    phys = {"RADPLAN_USER": PHYS, "RADPLAN_PASSWORD": PHYS_PW, **env}
    result = tmp_path / "result.json"
    result.write_text(cli("recommend", "--facts", _facts(tmp_path, STAGE_I), "--json").stdout)
    assert (
        "feedback 1 recorded (accept)"
        in cli("feedback", "record", str(result), "accept", "--patient-id", "P1", **rad).stdout
    )
    short = cli("feedback", "record", str(result), "override", "--reason", "no", check=False, **rad)
    assert short.returncode == 1 and "reason of at least 10" in short.stderr
    chosen = _facts(tmp_path, {"total_dose_gy": 48.0, "fractions": 4}, "chosen.json")
    cli("feedback", "record", str(result), "override", "--reason", "rib abutting: 48 Gy/4", "--chosen", chosen, **rad)
    denied = cli("feedback", "record", str(result), "accept", check=False, **phys)
    assert denied.returncode == 3
    rows = {r["key"]: r for r in json.loads(cli("feedback", "report", "--json", **phys).stdout)}
    assert rows["NSCLC-R02"]["override_rate"] == 0.5 and rows["rp_grade2@1.0.0"]["overridden"] == 1
    similar = json.loads(cli("feedback", "similar", "--facts", _facts(tmp_path, STAGE_I), "--json", **phys).stdout)
    assert similar["features"] == ["ih_entropy", "morph_sphericity"]
    assert [(p["patient_id"], p["distance"], p["plan"]["total_dose_gy"]) for p in similar["patients"]] == [
        ("P1", 0.0, 54.0)
    ]
    out = tmp_path / "feedback.jsonl"
    assert "2 feedback rows written" in cli("feedback", "export", str(out), **phys).stdout
    assert len(out.read_text().splitlines()) == 2
    audit = cli(
        "audit", "list", "--action", "decision.*", "--json", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW, **env
    )
    actions = [e["action"] for e in json.loads(audit.stdout)]
    assert actions == [
        "decision.accept", "decision.override", "decision.feedback_report", "decision.similar_patients",
        "decision.feedback_export",
    ]  # fmt: skip
