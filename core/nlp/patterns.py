"""Terms (entity-ruler phrase patterns) and value patterns (regular expressions) for NSCLC notes.

Term patterns: label -> {value: [phrases]} matched case-insensitively on tokens by spaCy's EntityRuler.
Value patterns: (label, regex); the regex's named group ``v`` (and for TNM the groups below) carries the value.
"""

from __future__ import annotations

import re

__all__ = ["LOBES", "TERMS", "VALUE_PATTERNS", "entity_ruler_patterns"]

LOBES = {"RUL": "right", "RML": "right", "RLL": "right", "LUL": "left", "LLL": "left"}

TERMS: dict[str, dict[str, list[str]]] = {
    "HISTOLOGY": {
        "adenocarcinoma": ["adenocarcinoma", "adenocarcinomas", "adeno carcinoma", "lung adenocarcinoma",
                           "invasive adenocarcinoma", "mucinous adenocarcinoma"],
        "squamous cell carcinoma": ["squamous cell carcinoma", "squamous carcinoma", "squamous cell lung cancer",
                                    "squamous nsclc", "squamous non-small cell lung cancer", "scc"],
        "large cell carcinoma": ["large cell carcinoma", "large-cell carcinoma"],
        "adenosquamous carcinoma": ["adenosquamous carcinoma"],
        "nsclc nos": ["nsclc nos", "nsclc, nos", "non-small cell lung cancer not otherwise specified",
                      "non-small cell carcinoma nos", "nsclc not otherwise specified",
                      "non-small cell lung cancer, not otherwise specified",
                      "non-small cell carcinoma, not otherwise specified"],
    },
    "SMOKING": {
        "never": ["never smoker", "never-smoker", "never smoked", "lifelong non-smoker", "lifelong nonsmoker",
                  "non-smoker", "nonsmoker", "never used tobacco", "no smoking history", "no history of smoking",
                  "no tobacco history", "never a smoker", "denies smoking", "denies tobacco", "denies tobacco use",
                  "never-smoked"],
        "former": ["former smoker", "ex-smoker", "ex smoker", "quit smoking", "stopped smoking", "previous smoker",
                   "former heavy smoker", "formerly smoked", "gave up smoking", "past smoker"],
        "current": ["current smoker", "currently smokes", "active smoker", "still smokes", "continues to smoke",
                    "smokes daily", "current heavy smoker", "ongoing smoker", "smokes"],
    },
    "ILD": {
        "true": ["interstitial lung disease", "ild", "pulmonary fibrosis", "idiopathic pulmonary fibrosis", "ipf",
                 "usual interstitial pneumonia", "uip", "fibrotic lung disease", "interstitial fibrosis",
                 "fibrotic interstitial lung disease", "nonspecific interstitial pneumonia", "nsip"],
    },
    "PRIOR_RT": {
        "true": ["prior thoracic radiotherapy", "previous thoracic radiotherapy", "prior radiotherapy",
                 "previous radiotherapy", "prior radiation", "previous radiation", "prior chest radiotherapy",
                 "previous chest radiotherapy", "prior thoracic radiation", "previous thoracic radiation",
                 "prior mediastinal radiotherapy", "previous mediastinal radiotherapy", "prior sbrt", "previous sbrt",
                 "prior sabr", "previous sabr", "prior thoracic irradiation", "previous thoracic irradiation",
                 "prior irradiation", "previous irradiation", "prior lung radiotherapy", "previous lung radiotherapy",
                 "prior rt",
                 "previous rt", "prior thoracic rt", "previous thoracic rt", "radiation to the chest",
                 "radiotherapy to the chest", "radiotherapy to the mediastinum", "radiotherapy to the lung",
                 "mantle field radiotherapy", "mantle radiotherapy", "previously irradiated",
                 "completed concurrent chemoradiotherapy", "completed chemoradiotherapy", "completed radiotherapy",
                 "completed sbrt", "completed thoracic radiotherapy"],
        "false": ["radiotherapy-naive", "radiotherapy naive", "radiation-naive", "radiation naive", "rt-naive",
                  "rt naive", "previous radiotherapy: none", "prior radiotherapy: none"],
        # generic mentions: count only when negated ("no thoracic radiotherapy so far") or historical
        "bare": ["radiotherapy", "radiation therapy", "irradiation", "thoracic radiotherapy", "chest radiotherapy",
                 "mediastinal radiotherapy", "sbrt", "sabr", "chemoradiotherapy", "chemoradiation",
                 "stereotactic radiotherapy"],
    },
    "OPERABLE": {
        "true": ["medically operable", "operable", "fit for surgery", "suitable for surgery", "surgical candidate",
                 "candidate for surgery", "fit for resection", "suitable for resection", "fit for lobectomy",
                 "candidate for lobectomy", "surgically fit"],
        "false": ["medically inoperable", "inoperable", "unfit for surgery", "unsuitable for surgery",
                  "not fit for surgery", "unfit for resection", "not a surgical candidate", "non-operable",
                  "prohibitive surgical risk", "not suitable for surgery"],
        "declined": ["declined surgery", "declines surgery", "refused surgery", "refuses surgery", "declined resection",
                     "declines resection", "declined lobectomy", "declines lobectomy", "does not wish to have surgery",
                     "declined an operation", "declines an operation"],
    },
    "LOBE": {
        lobe: [f"{side} {part} lobe", lobe.lower(), f"{side} {part} lobectomy"]
        for lobe, side, part in (("RUL", "right", "upper"), ("RML", "right", "middle"), ("RLL", "right", "lower"),
                                 ("LUL", "left", "upper"), ("LLL", "left", "lower"))
    },
    "METASTASIS": {
        "true": ["metastatic disease", "distant metastases", "distant metastasis", "distant metastatic disease",
                 "metastases", "metastasis", "metastatic spread"],
    },
}  # fmt: skip

_NUM = r"(?P<v>\d{1,3}(?:\.\d+)?)"
_TUMOUR = r"(?:mass|nodule|lesion|tumou?r|opacity|primary|(?:adeno)?carcinoma)"
_SIZE = r"(?P<v>\d{1,3}(?:\.\d+)?)(?:\s*(?:x|×|by)\s*\d{1,3}(?:\.\d+)?)*\s*"
_BIOMARKER_POS = (
    r"(?:mutat\w*|mutant|positive|\+|exon\s*19\s*del\w*|exon\s*21|l858r|t790m|g719\w*|exon\s*20\s*ins\w*"
    r"|rearrange\w*|fusion|translocation|detected)"
)
_BIOMARKER_NEG = (
    r"(?:wild[- ]?type|wt\b|negative|not\s+(?:detected|rearranged|mutated)"
    r"|no\s+\w*\s*(?:mutation|rearrangement|fusion)|non-?mutated)"
)


def _biomarker(gene: str, fusion: str = r"(?!)") -> str:
    return (
        rf"\b{gene}(?:\s*(?:gene|status|testing|test|result|analysis|sequencing|ngs|fish|ihc))*(?:\s*\([^)]{{0,20}}\))?"
        rf"(?:\s*mutation(?:al)?(?:\s*status)?)?\s*(?:[:,=-]|is|was|"
        rf"shows?|showed|revealed|returned)?\s*(?:an?\s+)?(?:(?P<neg>{_BIOMARKER_NEG})|(?P<pos>{_BIOMARKER_POS}))"
        rf"|(?:(?P<pos2>{_BIOMARKER_POS})|(?P<neg2>negative for|no))\s+(?:an?\s+)?(?:\w+\s+)?{gene}\b"
        rf"|\b{gene}[- ](?P<pos3>mutant|mutated|positive|rearranged|driven|altered)"
        rf"|\b(?:{fusion})(?P<pos4>)"
    )


VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "TNM",
        re.compile(
            r"(?<![A-Za-z0-9])(?P<pt>[cpy]{1,2})?T(?P<t>is|X|[0-4](?:mi|[abc])?)\s*,?\s*(?:(?P<pn>[cpy]{1,2})?"
            r"N(?P<n>[0-3X]))?\s*,?\s*(?:(?P<pm>[cpy]{1,2})?M(?P<m>[01X][abc]?))?(?![A-Za-z0-9])"
        ),
    ),
    ("N_ONLY", re.compile(r"(?<![A-Za-z0-9])\(?(?P<pn>[cp])?N(?P<n>[0-3])\)?(?:\s+disease)?(?![A-Za-z0-9])")),
    ("M_ONLY", re.compile(r"(?<![A-Za-z0-9])\(?(?P<pm>[cp])?M(?P<m>0|1[abc]?)\)?(?![A-Za-z0-9])")),
    (
        "ECOG",
        re.compile(
            r"\b(?:ECOG|(?-i:WHO)|Zubrod)(?:\s*(?:performance\s+(?:status|score)|PS))?\s*(?:\(ECOG\))?\s*(?:of|is|was|"
            r"score|grade)?\s*[:=]?\s*(?P<v>[0-4])(?![0-9-])|\bperformance\s+status\s*(?:\(ECOG\)|\(WHO\))?"
            r"\s*(?:of|is|was)?\s*[:=]?\s*(?P<v2>[0-4])(?![0-9%-])|\b(?-i:PS)\s*[:=]?\s*(?P<v3>[0-4])(?![0-9%-])",
            re.IGNORECASE,
        ),
    ),
    (
        "KARNOFSKY",
        re.compile(
            r"\b(?:Karnofsky(?:\s+performance\s+(?:status|score))?|KPS)\s*(?:of|is|was|score)?\s*[:=]?\s*"
            r"(?P<v>100|[1-9]0)\s*%?",
            re.IGNORECASE,
        ),
    ),
    (
        "PACK_YEARS",
        re.compile(
            rf"{_NUM}\s*[- ]?(?:pack[- ]?years?|pack[- ]?yrs?|py\b|PY\b)|pack[- ]year\s+(?:history|exposure)\s+"
            rf"(?:of\s+)?(?P<v2>\d{{1,3}}(?:\.\d+)?)|pack[- ]years?\s*[:=]\s*(?P<v3>\d{{1,3}}(?:\.\d+)?)",
            re.IGNORECASE,
        ),
    ),
    ("FEV1", re.compile(rf"\bFEV1?(?!\s*/)(?![0-9])[^;\n%]{{0,30}}?{_NUM}\s*%", re.IGNORECASE)),
    (
        "DLCO",
        re.compile(rf"\b(?:DLCO|DLco|TLCO|diffusing\s+capacity)(?!\s*/)[^;\n%]{{0,30}}?{_NUM}\s*%", re.IGNORECASE),
    ),
    ("EGFR", re.compile(_biomarker("EGFR"), re.IGNORECASE)),
    ("ALK", re.compile(_biomarker("ALK", r"eml4-alk"), re.IGNORECASE)),
    ("ROS1", re.compile(_biomarker("ROS-?1", r"cd74-ros1"), re.IGNORECASE)),
    (
        "PDL1",
        re.compile(
            r"\bPD-?L1\b[^.;\n%]{0,30}?(?P<lt><\s*)?(?P<v>\d{1,3}(?:\.\d+)?)\s*%|\b(?:TPS|tumou?r proportion "
            r"score)\s*(?:of\s*)?(?P<lt2><\s*)?(?P<v2>\d{1,3}(?:\.\d+)?)\s*%",
            re.IGNORECASE,
        ),
    ),
    (
        "SIZE",
        re.compile(
            rf"{_SIZE}(?P<u>cm|mm)\s+(?:[\w-]+\s+){{0,5}}?{_TUMOUR}\b"
            rf"|\b{_TUMOUR}\s+(?:[\w-]+\s+){{0,3}}?(?:(?:measuring|measures|of|sized|size)\s+)?(?:up\s+to\s+)?"
            rf"{_SIZE.replace('(?P<v>', '(?P<v2>')}(?P<u2>cm|mm)\b"
            rf"|\b{_TUMOUR}\b[^.;\n]{{0,80}}?[,(:]\s*{_SIZE.replace('(?P<v>', '(?P<v3>')}(?P<u3>cm|mm)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "LOCATION",
        re.compile(
            rf"\b(?P<v>ultra-?\s?central)\b|\b(?P<v2>central|peripheral)\s+(?:[\w-]+\s+){{0,3}}?(?:{_TUMOUR}|nsclc|"
            rf"location)\b|\b(?P<v3>central|peripheral)ly\s+located|\blocated\s+(?P<v4>central|peripheral)ly\b",
            re.IGNORECASE,
        ),
    ),
    (
        "LATERALITY",
        re.compile(
            r"\b(?P<v>left|right)\s+(?:lung|hilum|hilar|hemithorax|main\s*(?:stem|bronchus)|lower|upper|middle)",
            re.IGNORECASE,
        ),
    ),
)


TERMS["LOBE"]["LUL"] += ["lingula", "lingular"]


def entity_ruler_patterns() -> list[dict[str, object]]:
    """Phrase patterns for spaCy's EntityRuler: label = concept, id = value."""
    return [
        {"label": label, "id": value, "pattern": phrase}
        for label, values in TERMS.items()
        for value, phrases in values.items()
        for phrase in phrases
    ]
