"""Seed-dependent radiation-oncology consultation note for the demo patient, and the facts it states.

The facts (:class:`NoteFacts`) are drawn first and the English text is rendered from them, so tests of clinical
text extraction can compare what they find with the truth. Staging follows the AJCC 8th edition: the T category
comes from the longest tumour diameter as reported (cm, one decimal), the stage group from T, N and M.
Operability is a simplified rule: medically operable when ECOG <= 1, FEV1 >= 60 % and DLCO >= 60 % predicted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LOBE_NAMES", "NoteFacts", "draw_note_facts", "render_note", "stage_group", "t_category"]

LOBE_NAMES = {
    "RUL": "right upper lobe", "RML": "right middle lobe", "RLL": "right lower lobe",
    "LUL": "left upper lobe", "LLL": "left lower lobe",
}  # fmt: skip
_STAGE_N0 = {"T1a": "IA1", "T1b": "IA2", "T1c": "IA3", "T2a": "IB", "T2b": "IIA", "T3": "IIB", "T4": "IIIA"}
_STAGE_N1 = {"T3": "IIIA", "T4": "IIIA"}
_STAGE_N2 = {"T3": "IIIB", "T4": "IIIB"}


def t_category(longest_diameter_cm: float) -> str:
    """AJCC 8 T category of an invasive lung tumour from its longest diameter in cm (no T3/T4 features)."""
    for limit, category in ((1.0, "T1a"), (2.0, "T1b"), (3.0, "T1c"), (4.0, "T2a"), (5.0, "T2b"), (7.0, "T3")):
        if longest_diameter_cm <= limit:
            return category
    return "T4"


def stage_group(t: str, n: str, m: str) -> str:
    """AJCC 8 stage group for T1a-T4, N0-N2, M0/M1b."""
    if m == "M1b":
        return "IVA"
    if n == "N0":
        return _STAGE_N0[t]
    if n == "N1":
        return _STAGE_N1.get(t, "IIB")
    return _STAGE_N2.get(t, "IIIA")


@dataclass(frozen=True)
class NoteFacts:
    """The clinical facts stated in the note; lung function in % predicted, tumour size in cm."""

    age_years: int
    sex: str
    histology: str  # "adenocarcinoma" or "squamous cell carcinoma"
    laterality: str  # "left" or "right"
    lobe: str  # RUL, RML, RLL, LUL or LLL
    lobe_name: str
    tumour_size_cm: float
    t_stage: str
    n_stage: str
    m_stage: str
    stage_group: str
    ecog: int
    smoking_status: str  # "current", "former" or "never"
    pack_years: int
    fev1_pct: int
    dlco_pct: int
    egfr: str  # "wild-type", "exon 19 deletion" or "L858R mutation"
    alk: str  # "negative" or "positive"
    pdl1_tps_pct: int
    operable: bool
    operability_statement: str
    states_no_distant_metastases: bool  # the note contains "no evidence of distant metastatic disease"
    recommendation: str
    prescription: str


def _choice(rng: np.random.Generator, options: tuple[str, ...], p: tuple[float, ...]) -> str:
    return options[int(rng.choice(len(options), p=np.asarray(p) / sum(p)))]


def draw_note_facts(
    rng: np.random.Generator, *, age_years: int, sex: str, longest_diameter_mm: float, lobe: str
) -> NoteFacts:
    """Draw histology, nodal and metastatic status, performance, smoking, lung function and biomarkers."""
    size_cm = round(longest_diameter_mm / 10.0, 1)
    histology = _choice(rng, ("adenocarcinoma", "squamous cell carcinoma"), (0.55, 0.45))
    adeno = histology == "adenocarcinoma"
    smoking = _choice(rng, ("current", "former", "never"), (0.3, 0.5, 0.2) if adeno else (0.45, 0.55, 0.0))
    pack_years = 0 if smoking == "never" else int(rng.integers(10, 71))
    egfr, alk = "wild-type", "negative"
    if adeno and rng.random() < (0.5 if smoking == "never" else 0.12):
        egfr = _choice(rng, ("exon 19 deletion", "L858R mutation"), (0.5, 0.5))
    elif adeno and rng.random() < (0.15 if smoking == "never" else 0.04):
        alk = "positive"
    pdl1_band = _choice(rng, ("<1", "1-49", ">=50"), (0.3, 0.35, 0.35))
    pdl1 = {"<1": 0, "1-49": int(rng.integers(1, 50)), ">=50": int(rng.integers(10, 20)) * 5}[pdl1_band]
    t = t_category(size_cm)
    n = _choice(rng, ("N0", "N1", "N2"), (0.5, 0.2, 0.3))
    m = "M1b" if rng.random() < 0.1 else "M0"
    states_no_mets = m == "M0" and rng.random() < 0.6
    ecog = int(rng.choice(3, p=[0.35, 0.45, 0.2]))
    fev1 = int(rng.integers(70, 106)) if smoking == "never" else int(rng.integers(35, 96))
    dlco = int(rng.integers(65, 101)) if smoking == "never" else int(rng.integers(30, 91))
    operable = ecog <= 1 and fev1 >= 60 and dlco >= 60
    if operable:
        operability = "From a cardiopulmonary standpoint the patient is considered medically operable."
    else:
        reasons = [
            r for r, bad in (("performance status", ecog >= 2), ("pulmonary reserve", fev1 < 60 or dlco < 60)) if bad
        ]
        operability = f"The patient is considered medically inoperable owing to limited {' and '.join(reasons)}."
    group = stage_group(t, n, m)
    if m == "M1b":
        recommendation = "first-line systemic therapy with consolidative thoracic radiotherapy to be considered"
        prescription = "60 Gy in 30 fractions (if consolidative radiotherapy is given)"
    elif group.startswith("I") and not group.startswith("III") and n == "N0" and t != "T3":
        recommendation = "anatomical lobectomy" if operable else "stereotactic body radiotherapy (SBRT)"
        prescription = "60 Gy in 8 fractions" + (" (SBRT offered if surgery is declined)" if operable else "")
    else:
        recommendation = "concurrent chemoradiotherapy followed by consolidation durvalumab"
        prescription = "60 Gy in 30 fractions"
    return NoteFacts(
        age_years=age_years, sex=sex, histology=histology, laterality="right" if lobe[0] == "R" else "left",
        lobe=lobe, lobe_name=LOBE_NAMES[lobe], tumour_size_cm=size_cm, t_stage=t, n_stage=n, m_stage=m,
        stage_group=group, ecog=ecog, smoking_status=smoking, pack_years=pack_years, fev1_pct=fev1, dlco_pct=dlco,
        egfr=egfr, alk=alk, pdl1_tps_pct=pdl1, operable=operable, operability_statement=operability,
        states_no_distant_metastases=states_no_mets, recommendation=recommendation, prescription=prescription,
    )  # fmt: skip


_NODES = {
    "N0": "There is no FDG-avid hilar or mediastinal lymphadenopathy (N0).",
    "N1": "There is an FDG-avid ipsilateral hilar lymph node, confirmed on EBUS-TBNA (N1).",
    "N2": "EBUS-TBNA confirmed metastatic carcinoma in an ipsilateral mediastinal lymph node station (N2).",
}


def render_note(facts: NoteFacts, *, patient_name: str, patient_id: str, birth_date: str, visit_date: str) -> str:
    """The consultation note (plain text, LF line ends); dates as YYYY-MM-DD."""
    man = facts.sex == "M"
    he, his = ("He", "his") if man else ("She", "her")
    family, _, given = patient_name.partition("^")
    if facts.smoking_status == "never":
        smoking = "Never smoker."
    else:
        smoking = f"{facts.smoking_status.capitalize()} smoker, {facts.pack_years} pack-years."
    if facts.m_stage == "M1b":
        distant = "PET-CT also shows a solitary FDG-avid left adrenal lesion; biopsy confirmed metastasis (M1b)."
    elif facts.states_no_distant_metastases:
        distant = "Staging PET-CT and brain MRI show no evidence of distant metastatic disease."
    else:
        distant = "Brain MRI is negative and PET-CT shows no FDG-avid lesions outside the chest (M0)."
    pdl1 = "<1%" if facts.pdl1_tps_pct == 0 else f"{facts.pdl1_tps_pct}%"
    alk = "ALK rearrangement positive" if facts.alk == "positive" else "ALK negative"
    lines = [
        "RADIATION ONCOLOGY CONSULTATION",
        "",
        f"Patient: {family}, {given}    MRN: {patient_id}    DOB: {birth_date}    Sex: {facts.sex}",
        f"Date of consultation: {visit_date}",
        "Referring physician: Dr. A. Pulmo, Thoracic Oncology",
        "",
        "REASON FOR REFERRAL",
        f"{facts.age_years}-year-old {'man' if man else 'woman'} with newly diagnosed {facts.histology} of the "
        f"{facts.lobe_name}, referred for an opinion on radiotherapy.",
        "",
        "HISTORY OF PRESENT ILLNESS",
        f"{he} presented with a persistent cough and exertional dyspnoea. CT of the chest demonstrated a "
        f"{facts.tumour_size_cm:.1f} cm lobulated mass in the {facts.lobe_name}. Biopsy confirmed "
        f"{facts.histology}. Molecular testing: EGFR {facts.egfr}, {alk}, PD-L1 TPS {pdl1}.",
        f"{_NODES[facts.n_stage]} {distant}",
        "",
        "SOCIAL HISTORY",
        smoking,
        "",
        "EXAMINATION AND FUNCTION",
        f"ECOG performance status {facts.ecog}. Pulmonary function tests: FEV1 {facts.fev1_pct}% predicted, "
        f"DLCO {facts.dlco_pct}% predicted.",
        "",
        "ASSESSMENT",
        f"{facts.histology.capitalize()} of the {facts.lobe_name}, clinical stage c{facts.t_stage} "
        f"{facts.n_stage} {facts.m_stage}, stage {facts.stage_group} (AJCC 8th edition).",
        facts.operability_statement,
        "",
        "PLAN",
        f"Discussed at the thoracic multidisciplinary tumour board. Recommendation: {facts.recommendation}; "
        f"radiotherapy prescription {facts.prescription}. {he} understands the treatment options and "
        f"{his} questions were answered.",
        "",
    ]
    return "\n".join(lines)
