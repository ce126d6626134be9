"""Similar previous patients: k-means on radiomics signatures of the patients with stored decisions.

The cohort is the decision-feedback table (core.rules.feedback): every patient there has facts (radiomics features
by IBSI tag among them) and a plan (the recommendation accepted, or what the clinician chose instead). Features are
the query patient's IBSI-tagged numeric facts; stored patients lacking any of them are left out. Features are
standardised on the cohort
(z-scores), clustered with k-means (scikit-learn, fixed seed) and ranked by Euclidean distance to the query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from core.rules.feedback import FeedbackError, feedback_rows
from core.security.session import Access
from core.store.store import Store

__all__ = ["IBSI_PREFIXES", "SimilarPatient", "radiomics_signature", "similar_patients"]

#: IBSI feature-family prefixes (morphology, statistics, intensity histogram, texture matrices, ...).
IBSI_PREFIXES = ("morph_", "loc_", "stat_", "ih_", "ivh_", "cm_", "rlm_", "szm_", "dzm_", "ngt_", "ngl_")


@dataclass(frozen=True)
class SimilarPatient:
    patient_id: str
    distance: float  # Euclidean distance in z-score units over the shared features
    cluster: int
    same_cluster: bool
    plan: Mapping[str, Any]
    decision: str
    rule_ids: tuple[str, ...]


def radiomics_signature(facts: Mapping[str, Any]) -> dict[str, float]:
    """The IBSI-tagged numeric features among the facts."""
    return {
        k: float(v)
        for k, v in facts.items()
        if k.startswith(IBSI_PREFIXES) and isinstance(v, int | float) and not isinstance(v, bool)
    }


def similar_patients(
    store: Store, access: Access, facts: Mapping[str, Any], *, k: int = 5, clusters: int = 3
) -> tuple[list[str], list[SimilarPatient]]:
    """(features used, the ``k`` most similar stored patients); audited as decision.similar_patients."""
    query = radiomics_signature(facts)
    if not query:
        raise FeedbackError("the patient's facts have no radiomics features (IBSI tags such as morph_sphericity)")
    rows = feedback_rows(store, access, "decision.similar_patients", features=sorted(query))
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["patient_id"]:
            latest[row["patient_id"]] = row  # rows come in id order: the last decision per patient wins
    names = sorted(query)
    cohort = [r for r in latest.values() if set(names) <= set(radiomics_signature(r["facts"]))]
    if not cohort:
        raise FeedbackError(f"no stored patient has all of these radiomics features: {', '.join(names)}")
    x = np.array([[float(r["facts"][n]) for n in names] for r in cohort])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    q = (np.array([query[n] for n in names]) - mean) / scale
    km = KMeans(n_clusters=min(clusters, len(cohort)), n_init=10, random_state=0).fit(z)
    q_cluster = int(km.predict(q.reshape(1, -1))[0])
    distances = np.linalg.norm(z - q, axis=1)
    out = []
    for i in np.argsort(distances, kind="stable")[:k]:
        row = cohort[int(i)]
        plan = row["chosen"] if row["decision"] == "override" and row["chosen"] else row["recommendation"]
        out.append(
            SimilarPatient(
                patient_id=row["patient_id"], distance=round(float(distances[i]), 4), cluster=int(km.labels_[i]),
                same_cluster=int(km.labels_[i]) == q_cluster, plan=plan, decision=row["decision"],
                rule_ids=tuple(row["rule_ids"]),
            )
        )  # fmt: skip
    return names, out
