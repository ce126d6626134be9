"""Risk models: synthetic cohort, reproducible training, validation metrics, registry with sha256, explanations."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.models.cohort import GENERATING_MODEL, generate_cohort
from core.models.registry import SHIPPED_MODELS, ModelError, find_models, load_model, sha256_file
from core.models.train import train_all


def test_cohort_is_deterministic_and_the_external_scanner_is_shifted() -> None:
    a, b = generate_cohort(500, 7), generate_cohort(500, 7)
    assert np.array_equal(a.rp_grade2, b.rp_grade2) and np.array_equal(a.features["age"], b.features["age"])
    ext = generate_cohort(4000, 7, external=True)
    dev = generate_cohort(4000, 8)
    shift = ext.features["ih_entropy"].mean() - dev.features["ih_entropy"].mean()
    assert 0.45 < shift < 0.75  # +0.6 scanner offset
    assert 0.05 < dev.rp_grade2.mean() < 0.4 and 0.4 < dev.local_control_2y.mean() < 0.95


def test_retraining_reproduces_the_shipped_files_byte_for_byte(tmp_path: Path) -> None:
    manifests = train_all(tmp_path)
    for model_id, manifest in manifests.items():
        shipped = SHIPPED_MODELS / model_id / manifest["version"]
        assert (tmp_path / model_id / manifest["version"] / "model.json").read_bytes() == (
            shipped / "model.json"
        ).read_bytes()
        assert json.loads((shipped / "manifest.json").read_text())["sha256"] == manifest["sha256"]


@pytest.mark.parametrize("model_id", ["rp_grade2", "local_control_2y"])
def test_validation_metrics_are_recorded_and_plausible(model_id: str) -> None:
    model = find_models()[model_id]
    dev, ext = model.manifest["metrics"]["development"], model.manifest["metrics"]["external"]
    assert dev["cv_folds"] == 5 and 0.7 < dev["cv_auc_mean"] < 0.95 and 0.05 < dev["cv_brier_mean"] < 0.25
    assert sum(b["n"] for b in dev["calibration_oof"]) == dev["n"] and len(dev["calibration_oof"]) == 10
    for b in dev["calibration_oof"]:  # out-of-fold predictions are calibrated within 0.1 per decile
        assert abs(b["mean_predicted"] - b["observed_rate"]) < 0.1
    assert ext["n"] == 1000 and 0.65 < ext["auc"] < 0.95
    card = (model.folder / "MODEL_CARD.md").read_text()
    assert "DEMONSTRATION MODEL TRAINED ON SYNTHETIC DATA" in card and f"{dev['cv_auc_mean']:.3f}" in card


def test_scanner_shift_miscalibrates_the_radiomics_model() -> None:
    lc = find_models()["local_control_2y"].manifest["metrics"]["external"]
    rp = find_models()["rp_grade2"].manifest["metrics"]["external"]
    assert lc["calibration_in_the_large"] < -0.05  # entropy reads higher -> control under-predicted
    assert abs(rp["calibration_in_the_large"]) < 0.03  # no radiomics feature: little shift


def test_learned_signs_match_the_generating_model() -> None:
    for model_id, model in find_models().items():
        for feature, coef in model.coefficients.items():
            assert math.copysign(1, coef) == math.copysign(1, GENERATING_MODEL[model_id][feature][0]), feature


def test_contributions_add_up_to_the_score_and_name_units() -> None:
    model = find_models()["rp_grade2"]
    facts = {"mean_lung_dose_gy": 20.0, "ild": 0.0, "dlco_percent": 40.0, "age": 80.0, "fev1_percent": 45.0}
    score = model.score(facts)
    total = model.intercept + sum(c.log_odds for c in score.contributions)
    assert score.probability == pytest.approx(1 / (1 + math.exp(-total)), abs=1e-3)
    assert score.probability > 0.5 > score.baseline_probability
    top = score.contributions[0]
    assert top.feature == "mean_lung_dose_gy" and top.log_odds > 0 and "Gy" in top.text and "raises" in top.text
    assert score.model_version == "1.0.0" and score.sha256 == sha256_file(model.folder / "model.json")


def test_missing_features_are_never_imputed() -> None:
    model = find_models()["rp_grade2"]
    assert model.missing({"age": 70}) == ["mean_lung_dose_gy", "ild", "dlco_percent", "fev1_percent"]
    with pytest.raises(ModelError, match="missing features mean_lung_dose_gy"):
        model.score({"age": 70})


def test_a_tampered_model_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "rp_grade2" / "1.0.0"
    shutil.copytree(SHIPPED_MODELS / "rp_grade2" / "1.0.0", folder)
    data = json.loads((folder / "model.json").read_text())
    data["intercept"] += 1
    (folder / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="does not match the manifest"):
        load_model(folder)


def test_a_site_model_is_a_file_drop(tmp_path: Path) -> None:
    folder = tmp_path / "rp_grade2" / "2.0.0"
    shutil.copytree(SHIPPED_MODELS / "rp_grade2" / "1.0.0", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(version="2.0.0", demonstration=False)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    models = find_models([tmp_path, SHIPPED_MODELS])
    assert models["rp_grade2"].version == "2.0.0" and not models["rp_grade2"].demonstration
    assert models["local_control_2y"].version == "1.0.0"  # the shipped one where the site has none
    (folder / "model.json").write_text("{}")
    with pytest.raises(ModelError):
        find_models([tmp_path, SHIPPED_MODELS])
