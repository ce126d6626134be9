"""Worklist logic: the PACS query form and the local study search."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.store.studies import StudySummary

__all__ = ["PacsQueryForm", "filter_studies"]


@dataclass(frozen=True)
class PacsQueryForm:
    """What the person typed; `query()` gives the checked core.pacs.query.FindQuery (raises ValueError)."""

    patient_id: str = ""
    patient_name: str = ""
    modality: str = ""
    date_from: str = ""
    date_to: str = ""
    accession: str = ""
    limit: int = 200

    def date(self) -> str:
        a, b = self.date_from.strip().replace("-", ""), self.date_to.strip().replace("-", "")
        for value, what in ((a, "from"), (b, "to")):
            if value and (len(value) != 8 or not value.isdigit()):
                raise ValueError(f"the '{what}' date must be YYYYMMDD or YYYY-MM-DD, not {value!r}")
        if a and b and a > b:
            raise ValueError("the 'from' date is after the 'to' date")
        if a and b:
            return a if a == b else f"{a}-{b}"
        return f"{a}-" if a else (f"-{b}" if b else "")

    def query(self) -> object:
        from core.pacs.query import FindQuery  # pynetdicom loads only when a query is made

        q = FindQuery(
            level="study",
            patient_id=self.patient_id.strip(),
            patient_name=self.patient_name.strip(),
            modality=self.modality.strip().upper(),
            date=self.date(),
            accession=self.accession.strip(),
            limit=self.limit,
        )
        q.check()
        return q


def filter_studies(studies: Sequence[StudySummary], text: str) -> list[StudySummary]:
    """Studies whose patient id, name, date, description, accession, modality or UID contain every word."""
    words = [w.casefold() for w in text.split()]
    out = []
    for s in studies:
        hay = " ".join(
            (s.patient_id, s.patient_name, s.study_date, s.description, s.accession, s.study_uid, *s.modalities)
        ).casefold()
        if all(w in hay for w in words):
            out.append(s)
    return out
