"""The plan PDF's decision-support content when it is there: model scores (names, versions, probabilities) with
per-feature contribution charts, rules fired with citations and radiomics highlights, all from a real
``recommend`` result accepted by a clinician; and the "not available" path of a plan made without one."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from core.demo import generate_demo_study
from core.dicom.importer import import_paths
from core.plan import repository as repo
from core.plan.builder import PlanOptions, build_plan_content, recommended_prescription
from core.plan.model import PlanContent
from core.plan.report import render_plan_pdf
from core.plan.report_charts import contributions_png
from core.rules.feedback import record_feedback
from core.rules.recommend import recommend
from core.rules.rulebase import load_rulebase
from core.security.roles import Permission, Role
from core.security.session import Access
from core.store.store import Store
from core.store.users import UserRepository

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")

# Stage III, ILD and poor lung function: the accepted recommendation (NSCLC-R05) plus flags that fire with it.
FACTS = {"t_stage": "T3", "n_stage": "N2", "m_stage": "M0", "ecog": 1, "age": 80, "ild": True, "operable": False,
         "histology": "adenocarcinoma", "tumor_diameter_cm": 5.5, "location": "peripheral", "dlco_percent": 35,
         "fev1_percent": 40, "mean_lung_dose_gy": 20, "prior_thoracic_rt": False}  # fmt: skip
RADIOMICS = {"morph_sphericity": 0.62, "ih_entropy": 4.35, "morph_volume": 48250.0}


@dataclass
class Made:
    result: dict[str, object]
    content: PlanContent
    record: repo.PlanRecord


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    root = tmp_path_factory.mktemp("decision")
    manifest = generate_demo_study(root / "study", seed=11, shape=(64, 64, 12), spacing_mm=(4.0, 4.0, 8.0))
    store = Store.create(root / "store", key_mode="passphrase", passphrase=lambda _p: "store-passphrase-1")
    users = UserRepository(store)
    admin = Access(users.create_first_admin("admin", "admin-password-1"), Permission.MANAGE_USERS)
    rad = users.add(admin, "rad1", Role.RADIOLOGIST, "radiologist-pw-1")
    import_paths(store, Access(rad, Permission.IMPORT_STUDIES), [root / "study"])
    result = recommend(load_rulebase("nsclc"), FACTS, radiomics=RADIOMICS)
    edit = Access(rad, Permission.EDIT_PLANS)
    record_feedback(store, edit, result, "accept", patient_id=manifest.patient_id)
    rx = recommended_prescription(store, edit, manifest.study_instance_uid)
    content = build_plan_content(store, edit, manifest.study_instance_uid, rx, PlanOptions())
    yield Made(result, content, repo.create_plan(store, edit, content))
    store.close()


def _pdf(record: repo.PlanRecord, out: Path) -> tuple[str, list[Path]]:
    pdf = out / "plan.pdf"
    pdf.write_bytes(render_plan_pdf(record, None))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(out / "page")], check=True)
    return " ".join(text.split()), sorted(out.glob("page-*.png"))


def test_the_plan_keeps_scores_contributions_rules_and_radiomics(made: Made) -> None:
    c = made.content
    assert c.model_scores is not None and c.rules_fired is not None and c.radiomics is not None
    expected = {s["model"]: s for s in made.result["scores"]}  # type: ignore[attr-defined]
    assert {m["model"] for m in c.model_scores} == set(expected) == {"local_control_2y", "rp_grade2"}
    for m in c.model_scores:
        s = expected[m["model"]]
        assert m["version"] == s["model_version"] and m["probability"] == s["probability"]
        assert m["unit"] == "probability (0-1)"
        assert len(m["contributions"]) == len(s["contributions"]) >= 5
        assert {(k["feature"], k["log_odds"], k["unit"]) for k in m["contributions"]} == {
            (k["feature"], k["log_odds"], k["unit"]) for k in s["contributions"]
        }
    rules = {r["rule"]: r for r in c.rules_fired}
    fired = {r["id"]: r for r in made.result["rules_fired"]}  # type: ignore[attr-defined]
    assert set(rules) == set(fired) and len(rules) >= 2 and c.rules_fired[0]["rule"] == "NSCLC-R05"
    for rule_id, r in rules.items():
        assert (r["title"], r["version"], r["citation"]) == (
            fired[rule_id]["title"],
            fired[rule_id]["version"],
            fired[rule_id]["source"],
        )
    tags = {r["tag"]: r for r in c.radiomics}
    assert set(tags) == set(RADIOMICS)
    assert tags["morph_volume"]["unit"] == "mm^3" and tags["ih_entropy"]["value"] == 4.35
    assert PlanContent.from_json(c.to_json()) == c


def test_pdf_shows_models_versions_probabilities_rules_citations_and_features(made: Made, tmp_path: Path) -> None:
    flat, pages = _pdf(made.record, tmp_path)
    c = made.content
    assert c.model_scores and c.rules_fired and c.radiomics
    for m in c.model_scores:
        assert m["model"] in flat and m["version"] in flat
        assert f"{100 * m['probability']:.1f} %" in flat, m
        assert f"Per-feature contributions: {m['model']} v{m['version']}" in flat
    for r in c.rules_fired:
        assert r["rule"] in flat and r["version"] in flat
        assert " ".join(r["citation"].split())[:40] in flat, r["citation"]
    for tag in RADIOMICS:
        assert tag in flat
    assert "morph_volume 48250 mm^3" in flat and "ih_entropy 4.35 bits" in flat
    for absent in ("Radiomics: not available", "Model scores, contributions and model versions: not available",
                   "Rules fired with citations: not available"):  # fmt: skip
        assert absent not in flat
    # the page with the contribution charts holds red (raises) and blue (lowers) bars
    text_pages = [
        subprocess.run(["pdftotext", "-layout", "-f", str(n), "-l", str(n), str(tmp_path / "plan.pdf"), "-"],
                       capture_output=True, text=True, check=True).stdout
        for n in range(1, len(pages) + 1)
    ]  # fmt: skip
    chart_pages = [p for p, t in zip(pages, text_pages, strict=True) if "Per-feature contributions" in t]
    assert chart_pages
    pixels = np.concatenate([np.asarray(PILImage.open(p).convert("RGB")).reshape(-1, 3) for p in chart_pages])
    ch_r, ch_g, ch_b = (pixels[:, i].astype(int) for i in range(3))
    red = (ch_r > 170) & (ch_g < 90) & (ch_b < 90)
    blue = (ch_b > 140) & (ch_r < 80) & (ch_g < 160) & (ch_b - ch_r > 80)
    assert red.sum() > 50 and blue.sum() > 50, (red.sum(), blue.sum())


def test_chart_colours_follow_the_sign() -> None:
    model = {"model": "m", "version": "1", "probability": 0.3, "baseline_probability": 0.2,
             "contributions": [{"feature": "a", "value": 1.0, "unit": "Gy", "log_odds": 0.8},
                               {"feature": "b", "value": 2.0, "unit": "cm", "log_odds": -0.5}]}  # fmt: skip
    pixels = np.asarray(PILImage.open(io.BytesIO(contributions_png(model))).convert("RGB")).reshape(-1, 3).astype(int)
    assert np.all(np.abs(pixels - (214, 39, 40)) <= 3, axis=1).sum() > 100
    assert np.all(np.abs(pixels - (31, 119, 180)) <= 3, axis=1).sum() > 100


def test_without_results_the_sections_say_not_available(made: Made, tmp_path: Path) -> None:
    bare = replace(made.content, model_scores=None, rules_fired=None, radiomics=None, recommendation=None)
    flat, _ = _pdf(replace(made.record, content=bare), tmp_path)
    for expected in ("Radiomics: not available", "Model scores, contributions and model versions: not available",
                     "Rules fired with citations: not available"):  # fmt: skip
        assert expected in flat, expected
    assert "Per-feature contributions" not in flat


def test_pdf_prints_the_features_with_units_and_counts_the_rest(made: Made, tmp_path: Path) -> None:
    assert made.content.radiomics is not None
    unitless = tuple(
        {"tag": tag, "value": 0.5 + n, "unit": ""}
        for n, tag in enumerate(("cm_contrast_3D_avg", "wavelet-LLH:stat_mean", "log-sigma-1-0-mm-3D:ih_entropy"))
    )
    content = replace(made.content, radiomics=made.content.radiomics + unitless)
    flat, _ = _pdf(replace(made.record, content=content), tmp_path)
    assert "morph_volume 48250 mm^3" in flat and "ih_entropy 4.35 bits" in flat  # with units: printed
    for row in unitless:
        assert row["tag"] not in flat  # no unit: counted, not printed
    assert "3 further features without a physical unit" in flat and "unit not recorded" not in flat
    assert "Fractions Dose/fraction" in flat  # the prescription headers are not broken mid-word
