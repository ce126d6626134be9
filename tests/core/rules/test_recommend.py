"""recommend(): JSON facts + note, the JSON winning, model scores, and the demo generator's notes end to end."""

from __future__ import annotations

import numpy as np
import pytest

from core.demo.note import draw_note_facts, render_note
from core.rules.facts import FactsError
from core.rules.recommend import bed10_gy, read_radiomics_csv, recommend
from core.rules.rulebase import load_rulebase

RB = load_rulebase("nsclc")


def test_bed10() -> None:
    assert bed10_gy(54.0, 3) == 151.2 and bed10_gy(60.0, 30) == 72.0 and bed10_gy(50.0, 5) == 100.0


def test_json_wins_and_note_fills() -> None:
    note = "Adenocarcinoma, cT1b N0 M0, 1.8 cm peripheral nodule. ECOG 1. He is medically inoperable. No ILD."
    out = recommend(RB, {"ecog": 2, "tumor_diameter_cm": 1.9}, note)
    assert out["facts"]["ecog"] == {"value": 2, "source": "json"}
    assert out["facts"]["operable"] == {"value": False, "source": "note"}
    assert out["facts"]["stage_group"] == {"value": "IA2", "source": "derived"}
    assert {c["fact"] for c in out["fact_conflicts"]} == {"ecog", "tumor_diameter_cm"}
    assert out["recommendations"][0]["total_dose_gy"] == 54.0 and out["facts"]["ild"]["value"] is False


def test_scores_enter_the_rules_as_facts() -> None:
    facts = {"t_stage": "T3", "n_stage": "N2", "m_stage": "M0", "ecog": 1, "age": 80, "ild": True,
             "dlco_percent": 35, "fev1_percent": 40, "mean_lung_dose_gy": 20}  # fmt: skip
    out = recommend(RB, facts)
    rp = next(s for s in out["scores"] if s["model"] == "rp_grade2")
    assert rp["probability"] >= 0.2 and "NSCLC-F03" in [f["id"] for f in out["flags"]]
    low = recommend(RB, {**facts, "ild": False, "mean_lung_dose_gy": 5, "dlco_percent": 90, "age": 50})
    assert "NSCLC-F03" not in [f["id"] for f in low["flags"]]
    questions = {q["fact"]: q for q in out["questions"]}
    assert questions["morph_sphericity"]["needed_by"] == ["model:local_control_2y@1.0.0"]


def test_invalid_note_facts_do_not_slip_through() -> None:
    with pytest.raises(FactsError, match="ecog"):
        recommend(RB, {"ecog": "one"})


@pytest.mark.parametrize("seed", range(12))
def test_demo_generator_notes_end_to_end(seed: int) -> None:
    truth = draw_note_facts(np.random.default_rng(seed), age_years=72, sex="M", longest_diameter_mm=15 + 4 * seed,
                            lobe="RUL")  # fmt: skip
    note = render_note(truth, patient_name="Doe^J", patient_id="P", birth_date="1950-01-01", visit_date="2020-01-01")
    out = recommend(RB, {}, note)
    recs = out["recommendations"]
    metastatic = truth.m_stage != "M0"
    advanced = truth.n_stage != "N0" or truth.t_stage in ("T3", "T4")
    if metastatic:
        assert recs[0]["intent"] == "palliative" and recs[0]["total_dose_gy"] == 30.0
    elif advanced:
        assert (recs[0]["total_dose_gy"], recs[0]["fractions"]) == (60.0, 30)
        assert recs[0]["concurrent_chemo"] is (truth.ecog <= 1)
    elif truth.operable:
        assert recs[0]["modality"] == "surgery"
    else:  # inoperable early stage: SBRT fractionation depends on location, which the demo note does not state
        assert recs == [] and "location" in [q["fact"] for q in out["questions"]]


def test_radiomics_csv_fills_features_and_the_json_wins() -> None:
    csv_text = "ibsi_tag,feature,value\nmorph_sphericity,Sphericity,0.61\nih_entropy,Entropy,5.2\nstat_mean,Mean,nan\n"
    radiomics = read_radiomics_csv(csv_text)
    assert radiomics == {"morph_sphericity": 0.61, "ih_entropy": 5.2}  # NaN dropped, not guessed
    facts = {"t_stage": "T1b", "n_stage": "N0", "m_stage": "M0", "operable": False, "location": "peripheral",
             "tumor_diameter_cm": 1.5, "histology": "adenocarcinoma", "ih_entropy": 4.0}  # fmt: skip
    out = recommend(RB, facts, radiomics=radiomics)
    assert out["facts"]["morph_sphericity"] == {"value": 0.61, "source": "radiomics"}
    assert out["facts"]["ih_entropy"] == {"value": 4.0, "source": "json"}
    assert [s["model"] for s in out["scores"]] == ["local_control_2y"]
    with pytest.raises(FactsError, match="line 2: value 'x' is not a number"):
        read_radiomics_csv("ibsi_tag,feature,value\nmorph_sphericity,Sphericity,x\n")
    with pytest.raises(FactsError, match="expected the columns"):
        read_radiomics_csv("a,b\n1,2\n")
    with pytest.raises(FactsError, match="clinical fact"):
        recommend(RB, {}, radiomics={"ecog": 1.0})


def test_a_fact_needed_by_a_rule_and_a_model_is_asked_once() -> None:
    out = recommend(RB, {"t_stage": "T2a", "n_stage": "N2", "m_stage": "M0", "ecog": 1})
    ild = [q for q in out["questions"] if q["fact"] == "ild"]
    assert len(ild) == 1 and ild[0]["needed_by"] == ["NSCLC-F01", "model:rp_grade2@1.0.0"]
    assert ild[0]["question"].startswith("Does the patient have interstitial lung disease")
