"""Reproducible training of the demonstration risk models on the synthetic cohorts (core.models.cohort).

``python -m core.models.train [--out resources/models/risk]`` writes, per model, ``<id>/<version>/model.json``,
``manifest.json`` (sha256, metadata, metrics) and ``MODEL_CARD.md``. Metrics: stratified 5-fold cross-validated
AUC and Brier score (mean and SD over folds), calibration data (10 quantile bins of out-of-fold predictions:
mean predicted vs observed rate), and external validation on a cohort from a shifted scanner (AUC, Brier,
calibration-in-the-large = mean predicted - observed rate, calibration slope).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from core.models.cohort import GENERATING_MODEL, Cohort, generate_cohort
from core.models.registry import SHIPPED_MODELS, sha256_file

__all__ = ["MODEL_SPECS", "ModelSpec", "train_all", "train_model"]

DEV_SEED, EXTERNAL_SEED, DEV_N, EXTERNAL_N, FOLDS = 20260101, 20260202, 2000, 1000, 5
UNITS = {
    "age": "years", "ild": "(1 = yes)", "squamous": "(1 = yes)", "fev1_percent": "% predicted",
    "dlco_percent": "% predicted", "tumor_diameter_cm": "cm", "bed10_gy": "Gy (BED, alpha/beta 10 Gy)",
    "mean_lung_dose_gy": "Gy", "morph_sphericity": "(unitless, IBSI morphology: sphericity)",
    "ih_entropy": "bits (IBSI intensity histogram entropy)",
}  # fmt: skip


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    version: str
    outcome: str
    features: tuple[str, ...]
    title: str


MODEL_SPECS = (
    ModelSpec("rp_grade2", "1.0.0", "rp_grade2",
              ("mean_lung_dose_gy", "ild", "dlco_percent", "age", "fev1_percent"),
              "Risk of grade >= 2 radiation pneumonitis (CTCAE) within 12 months"),
    ModelSpec("local_control_2y", "1.0.0", "local_control_2y",
              ("bed10_gy", "tumor_diameter_cm", "squamous", "morph_sphericity", "ih_entropy"),
              "Probability of local control at 2 years"),
)  # fmt: skip


def _matrix(cohort: Cohort, features: tuple[str, ...]) -> NDArray[np.float64]:
    return np.column_stack([cohort.features[f] for f in features])


def _fit(x: NDArray[np.float64], y: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64], Any]:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y)
    return mean, scale, clf


def _predict(fitted: tuple[Any, Any, Any], x: NDArray[np.float64]) -> NDArray[np.float64]:
    mean, scale, clf = fitted
    return np.asarray(clf.predict_proba((x - mean) / scale)[:, 1], dtype=np.float64)


def _calibration(p: NDArray[np.float64], y: NDArray[np.int64], bins: int = 10) -> list[dict[str, float]]:
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    return [
        {"bin": b, "n": int((idx == b).sum()), "mean_predicted": round(float(p[idx == b].mean()), 4),
         "observed_rate": round(float(y[idx == b].mean()), 4)}
        for b in range(bins) if (idx == b).any()
    ]  # fmt: skip


def _slope(p: NDArray[np.float64], y: NDArray[np.int64]) -> float:
    lp = np.log(p / (1 - p)).reshape(-1, 1)
    return float(LogisticRegression(C=1e6, max_iter=1000).fit(lp, y).coef_[0, 0])


def train_model(spec: ModelSpec, dev: Cohort, external: Cohort) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model.json content, metrics) for one model."""
    x, y = _matrix(dev, spec.features), getattr(dev, spec.outcome)
    oof = np.zeros(y.shape[0])
    aucs, briers = [], []
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(x, y):
        fitted = _fit(x[train], y[train])
        oof[test] = _predict(fitted, x[test])
        aucs.append(roc_auc_score(y[test], oof[test]))
        briers.append(brier_score_loss(y[test], oof[test]))
    mean, scale, clf = fitted_all = _fit(x, y)
    xe, ye = _matrix(external, spec.features), getattr(external, spec.outcome)
    pe = _predict(fitted_all, xe)
    pd_ = _predict(fitted_all, x)
    metrics = {
        "development": {"n": int(y.size), "event_rate": round(float(y.mean()), 4),
                        "cv_folds": FOLDS, "cv_auc_mean": round(float(np.mean(aucs)), 4),
                        "cv_auc_sd": round(float(np.std(aucs)), 4), "cv_brier_mean": round(float(np.mean(briers)), 4),
                        "cv_brier_sd": round(float(np.std(briers)), 4),
                        "apparent_auc": round(float(roc_auc_score(y, pd_)), 4),
                        "calibration_oof": _calibration(oof, y)},
        "external": {"n": int(ye.size), "event_rate": round(float(ye.mean()), 4),
                     "auc": round(float(roc_auc_score(ye, pe)), 4), "brier": round(float(brier_score_loss(ye, pe)), 4),
                     "calibration_in_the_large": round(float(pe.mean() - ye.mean()), 4),
                     "calibration_slope": round(_slope(pe, ye), 3), "calibration": _calibration(pe, ye)},
    }  # fmt: skip
    model = {
        "format": "radplan-standardised-logistic/1",
        "intercept": round(float(clf.intercept_[0]), 6),
        "features": [
            {"name": f, "unit": UNITS[f], "mean": round(float(mean[i]), 6), "scale": round(float(scale[i]), 6),
             "coef": round(float(clf.coef_[0, i]), 6)}
            for i, f in enumerate(spec.features)
        ],
    }  # fmt: skip
    return model, metrics


def _card(spec: ModelSpec, manifest: dict[str, Any]) -> str:
    d, e = manifest["metrics"]["development"], manifest["metrics"]["external"]
    truth = ", ".join(f"{k} {c:+g} per unit (centred at {m:g})" for k, (c, m) in GENERATING_MODEL[spec.outcome].items())
    return f"""# Model card: {spec.model_id} {spec.version}

**DEMONSTRATION MODEL TRAINED ON SYNTHETIC DATA. Not validated on patients; not for clinical decisions.**
It exists to prove the RadPlan model machinery (training, validation, registry, explanations). Replace it with a
site-trained model (same file layout, see docs/decision-support.md) before any clinical use.

- Predicts: {spec.title} (outcome `{spec.outcome}`), a probability.
- Model: logistic regression on standardised features (scikit-learn, C = 1.0); stored as JSON, sha256 in the manifest.
- Features (units): {", ".join(f"`{f}` ({UNITS[f]})" for f in spec.features)}. None is imputed: a missing feature
  means no score, and the missing features are reported as questions.
- Training data: {d["n"]} synthetic patients from `core.models.cohort.generate_cohort(seed={DEV_SEED})`, event rate
  {d["event_rate"]:.3f}. Generating model (log-odds): {truth}; plus N(0, 0.4) unobserved heterogeneity.
- Internal validation ({d["cv_folds"]}-fold stratified CV): AUC {d["cv_auc_mean"]:.3f} ± {d["cv_auc_sd"]:.3f},
  Brier {d["cv_brier_mean"]:.3f} ± {d["cv_brier_sd"]:.3f}. Calibration bins in manifest.json.
- External validation: {e["n"]} synthetic patients, shifted scanner (entropy offset +0.6, more noise, sphericity
  ×0.93) and older case mix (seed {EXTERNAL_SEED}): AUC {e["auc"]:.3f}, Brier {e["brier"]:.3f}, calibration-in-the-large
  {e["calibration_in_the_large"]:+.3f}, calibration slope {e["calibration_slope"]:.2f}.
- Explanations: each score lists per-feature contributions in log-odds relative to the training cohort mean
  (exact for a linear model).
- Limitations: synthetic data only; the generating model is an invention; radiomics features are sensitive to
  scanner and reconstruction settings (see the external validation).
- Reproduce: `.venv/bin/python -m core.models.train --out resources/models/risk`.
"""


def train_all(out: Path = SHIPPED_MODELS) -> dict[str, dict[str, Any]]:
    """Generate the cohorts, train every model and write its files; returns the manifests."""
    dev = generate_cohort(DEV_N, DEV_SEED)
    external = generate_cohort(EXTERNAL_N, EXTERNAL_SEED, external=True)
    manifests = {}
    for spec in MODEL_SPECS:
        model, metrics = train_model(spec, dev, external)
        folder = out / spec.model_id / spec.version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.json").write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
        manifest = {
            "model_id": spec.model_id, "version": spec.version, "title": spec.title, "outcome": spec.outcome,
            "sha256": sha256_file(folder / "model.json"), "demonstration": True,
            "training_data": f"synthetic: core.models.cohort dev seed {DEV_SEED} n={DEV_N}; external seed "
                             f"{EXTERNAL_SEED} n={EXTERNAL_N} (shifted scanner)",
            "trained_with": "scikit-learn LogisticRegression(C=1.0) on standardised features",
            "metrics": metrics,
        }  # fmt: skip
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        (folder / "MODEL_CARD.md").write_text(_card(spec, manifest), encoding="utf-8")
        manifests[spec.model_id] = manifest
    return manifests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=SHIPPED_MODELS)
    args = parser.parse_args(argv)
    for model_id, manifest in train_all(args.out).items():
        d, e = manifest["metrics"]["development"], manifest["metrics"]["external"]
        print(
            f"{model_id}: CV AUC {d['cv_auc_mean']:.3f}±{d['cv_auc_sd']:.3f} Brier {d['cv_brier_mean']:.3f}; "
            f"external AUC {e['auc']:.3f} Brier {e['brier']:.3f} CITL {e['calibration_in_the_large']:+.3f} "
            f"slope {e['calibration_slope']:.2f}"
        )


if __name__ == "__main__":
    main()
