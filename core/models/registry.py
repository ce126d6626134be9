"""Risk-model registry: versioned model files with sha256 and metadata, scoring with per-feature contributions.

Layout (shipped under ``resources/models/risk/``; a site drops its own under ``<data dir>/models/risk/`` and it
takes precedence at an equal or higher version): ``<model_id>/<version>/model.json`` (a standardised logistic
model: feature means, scales, coefficients, intercept), ``manifest.json`` (model id, version, sha256 of
model.json, outcome, training data, metrics) and ``MODEL_CARD.md``. A model whose sha256 does not match its
manifest is refused. Models are JSON, never pickles: nothing executable is loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import RadPlanError
from core.resources import resource_path

__all__ = [
    "SHIPPED_MODELS",
    "Contribution",
    "ModelError",
    "RiskModel",
    "RiskScore",
    "find_models",
    "load_model",
    "sha256_file",
]

SHIPPED_MODELS = resource_path("models", "risk")


class ModelError(RadPlanError):
    """A model file is missing, malformed or does not match its manifest's sha256."""


@dataclass(frozen=True)
class Contribution:
    """One feature's push on the log-odds for this patient, relative to the training cohort's average patient."""

    feature: str
    value: float
    unit: str
    cohort_mean: float
    log_odds: float

    @property
    def text(self) -> str:
        way = "raises" if self.log_odds > 0 else "lowers"
        return (
            f"{self.feature} = {self.value:g} {self.unit} (cohort mean {self.cohort_mean:.3g}): "
            f"{self.log_odds:+.2f} log-odds, {way} the predicted probability"
        )


@dataclass(frozen=True)
class RiskScore:
    model_id: str
    model_version: str
    sha256: str
    outcome: str
    probability: float
    baseline_probability: float
    contributions: tuple[Contribution, ...]
    demonstration: bool


@dataclass(frozen=True)
class RiskModel:
    model_id: str
    version: str
    sha256: str
    folder: Path
    outcome: str
    features: tuple[str, ...]
    units: Mapping[str, str]
    means: Mapping[str, float]
    scales: Mapping[str, float]
    coefficients: Mapping[str, float]
    intercept: float
    manifest: Mapping[str, Any]

    @property
    def demonstration(self) -> bool:
        return bool(self.manifest.get("demonstration", True))

    def missing(self, facts: Mapping[str, Any]) -> list[str]:
        return [f for f in self.features if not isinstance(facts.get(f), int | float)]

    def score(self, facts: Mapping[str, Any]) -> RiskScore:
        """Probability and contributions; raises ModelError naming missing features (never imputed)."""
        missing = self.missing(facts)
        if missing:
            raise ModelError(f"{self.model_id}: missing features {', '.join(missing)}")
        contributions = []
        for f in self.features:
            value = float(facts[f])
            log_odds = self.coefficients[f] * (value - self.means[f]) / self.scales[f]
            contributions.append(Contribution(f, value, self.units.get(f, ""), self.means[f], round(log_odds, 4)))
        total = self.intercept + sum(c.log_odds for c in contributions)
        ordered = tuple(sorted(contributions, key=lambda c: -abs(c.log_odds)))
        return RiskScore(
            self.model_id, self.version, self.sha256, self.outcome, round(_sigmoid(total), 4),
            round(_sigmoid(self.intercept), 4), ordered, self.demonstration,
        )  # fmt: skip


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (-1,)


def load_model(folder: Path) -> RiskModel:
    """Load one model version folder, verifying model.json against the manifest's sha256."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        model_path = folder / "model.json"
        digest = sha256_file(model_path)
        data = json.loads(model_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}: cannot read model: {exc}") from exc
    if manifest.get("sha256") != digest:
        raise ModelError(f"{folder}: model.json sha256 {digest[:12]}… does not match the manifest")
    try:
        feats = data["features"]
        return RiskModel(
            model_id=manifest["model_id"], version=manifest["version"], sha256=digest, folder=folder,
            outcome=manifest["outcome"], features=tuple(f["name"] for f in feats),
            units={f["name"]: f.get("unit", "") for f in feats}, means={f["name"]: f["mean"] for f in feats},
            scales={f["name"]: f["scale"] for f in feats}, coefficients={f["name"]: f["coef"] for f in feats},
            intercept=float(data["intercept"]), manifest=manifest,
        )  # fmt: skip
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{folder}: malformed model.json or manifest ({exc})") from exc


def find_models(roots: Sequence[Path] = (SHIPPED_MODELS,)) -> dict[str, RiskModel]:
    """The newest version of each model id across the roots; on equal versions the earlier root wins."""
    best: dict[str, RiskModel] = {}
    for root in reversed(list(roots)):
        if not root.is_dir():
            continue
        for manifest in sorted(root.glob("*/*/manifest.json")):
            model = load_model(manifest.parent)
            current = best.get(model.model_id)
            if current is None or _version_key(model.version) >= _version_key(current.version):
                best[model.model_id] = model
    return best
