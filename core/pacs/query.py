"""C-ECHO and C-FIND (Study Root) against a PACS node; every query that returns patient data is audited."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydicom.dataset import Dataset
from pynetdicom.association import Association

from core.errors import PermissionDeniedError
from core.logsafe import register_phi
from core.pacs.association import FIND_MODEL, VERIFICATION, LocalAE, open_association
from core.pacs.nodes import PacsError, PacsNode
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.store import Store
from core.store.users import record_access

__all__ = ["FindQuery", "FindResult", "FindResults", "count_instances", "echo", "find", "find_on", "list_instances"]

log = logging.getLogger(__name__)
Level = Literal["study", "series"]
_DATE_RANGE = re.compile(r"^(\d{8})?-?(\d{8})?$")
_PENDING = (0xFF00, 0xFF01)


def echo(local: LocalAE, node: PacsNode) -> float:
    """C-ECHO; returns the round trip in milliseconds, raises PacsError when the node does not answer 0x0000."""
    start = time.perf_counter()
    with open_association(local, node, query=[VERIFICATION]) as assoc:
        status = assoc.send_c_echo()
        if not status or int(status.get("Status", -1)) != 0:
            raise PacsError(f"PACS {node.name} answered C-ECHO with status {_status(status)}")
    return (time.perf_counter() - start) * 1000.0


@dataclass(frozen=True)
class FindQuery:
    """Filters; DICOM wildcards (* ?) are allowed in names and IDs; dates are 'YYYYMMDD', 'FROM-TO', 'FROM-' or
    '-TO'. limit: at most this many answers (the query is cancelled after it; FindResults.truncated says so)."""

    level: Level = "study"
    patient_id: str = ""
    patient_name: str = ""
    modality: str = ""
    date: str = ""
    accession: str = ""
    study_uid: str = ""
    limit: int = 1000

    def check(self) -> None:
        if self.date and not _DATE_RANGE.match(self.date):
            raise ValueError(f"date must be YYYYMMDD or FROM-TO (YYYYMMDD-YYYYMMDD), not {self.date!r}")
        if self.limit < 1:
            raise ValueError("limit must be at least 1")


@dataclass(frozen=True)
class FindResult:
    level: Level
    study_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    accession: str
    study_description: str
    modalities: tuple[str, ...]
    series_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    #: Number of series in the study (study level) and of instances in the study or series, as the PACS says.
    n_series: int | None = None
    n_instances: int | None = None


@dataclass(frozen=True)
class FindResults:
    results: list[FindResult]
    truncated: bool


def _status(status: Dataset | None) -> str:
    if status is None or "Status" not in status:
        return "none (association dropped or timed out)"
    return f"0x{int(status.Status):04X}"


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _c_find(assoc: Association, identifier: Dataset, limit: int) -> Iterator[Dataset]:
    """The matches, cancelling the query when `limit` is reached (caller notices the extra one)."""
    msg_id = 1
    count = 0
    responses = assoc.send_c_find(identifier, FIND_MODEL, msg_id=msg_id)
    for status, match in responses:
        code = int(status.Status) if status is not None and "Status" in status else None
        if code in _PENDING and match is not None:
            count += 1
            if count > limit:
                ctx = assoc._get_valid_context(FIND_MODEL, "", "scu")
                assoc.send_c_cancel(msg_id, ctx.context_id)
                yield match
                for _ in responses:  # drain to the final (cancelled) status
                    pass
                return
            yield match
        elif code == 0x0000:
            return
        else:
            raise PacsError(f"C-FIND failed with status {_status(status)}")


def _study_identifier(q: FindQuery) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientID = q.patient_id
    ds.PatientName = q.patient_name
    ds.StudyInstanceUID = q.study_uid
    ds.StudyDate = q.date
    ds.StudyTime = ""
    ds.AccessionNumber = q.accession
    ds.ModalitiesInStudy = q.modality
    ds.StudyDescription = ""
    ds.NumberOfStudyRelatedSeries = ""
    ds.NumberOfStudyRelatedInstances = ""
    return ds


def _series_identifier(study: FindResult, modality: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = ""
    ds.Modality = modality
    ds.SeriesNumber = ""
    ds.SeriesDescription = ""
    ds.NumberOfSeriesRelatedInstances = ""
    return ds


def _study_result(ds: Dataset) -> FindResult:
    mods = ds.get("ModalitiesInStudy", "")
    modalities = tuple(str(m) for m in mods) if not isinstance(mods, str) else tuple(filter(None, mods.split("\\")))
    result = FindResult(
        level="study",
        study_uid=str(ds.get("StudyInstanceUID", "")),
        patient_id=str(ds.get("PatientID", "")),
        patient_name=str(ds.get("PatientName", "")),
        study_date=str(ds.get("StudyDate", "")),
        accession=str(ds.get("AccessionNumber", "")),
        study_description=str(ds.get("StudyDescription", "")),
        modalities=modalities,
        n_series=_int(ds.get("NumberOfStudyRelatedSeries")),
        n_instances=_int(ds.get("NumberOfStudyRelatedInstances")),
    )
    register_phi(result.patient_id, result.patient_name)
    return result


def find_on(assoc: Association, query: FindQuery) -> FindResults:
    """Run the query on an open association (Study Root). At series level without a study UID the studies
    matching the filters are found first, then the series of each."""
    query.check()
    studies: list[FindResult] = []
    truncated = False
    for match in _c_find(assoc, _study_identifier(query), query.limit):
        if len(studies) == query.limit:
            truncated = True
            break
        studies.append(_study_result(match))
    if query.level == "study":
        return FindResults(studies, truncated)
    series: list[FindResult] = []
    for study in studies:
        for match in _c_find(assoc, _series_identifier(study, query.modality), query.limit):
            if len(series) == query.limit:
                return FindResults(series, True)
            series.append(
                FindResult(
                    level="series",
                    study_uid=study.study_uid,
                    patient_id=study.patient_id,
                    patient_name=study.patient_name,
                    study_date=study.study_date,
                    accession=study.accession,
                    study_description=study.study_description,
                    modalities=(str(match.get("Modality", "")),),
                    series_uid=str(match.get("SeriesInstanceUID", "")),
                    series_number=_int(match.get("SeriesNumber")),
                    series_description=str(match.get("SeriesDescription", "")),
                    n_instances=_int(match.get("NumberOfSeriesRelatedInstances")),
                )
            )
    return FindResults(series, truncated)


def find(store: Store, access: Access, local: LocalAE, node: PacsNode, query: FindQuery) -> FindResults:
    """C-FIND on `node`; audited as pacs.find (node, level, number of answers, which filters were used)."""
    if access.permission is not Permission.READ_PATIENT_DATA:
        raise PermissionDeniedError("querying a PACS needs the 'read_patient_data' permission")
    query.check()
    with open_association(local, node, query=[FIND_MODEL]) as assoc:
        results = find_on(assoc, query)
    with store.transaction() as conn:
        record_access(
            conn,
            access,
            "pacs.find",
            objects=[
                AuditObject("pacs_node", node.name),
                *(AuditObject("study", r.study_uid) for r in results.results),
            ],
            details={
                "level": query.level,
                "answers": len(results.results),
                "truncated": results.truncated,
                "filters": sorted(
                    k for k in ("patient_id", "patient_name", "modality", "date", "accession") if getattr(query, k)
                ),
            },
        )
    log.info("pacs find on %s: %d answers at %s level", node.name, len(results.results), query.level)
    return results


def list_instances(assoc: Association, study_uid: str, series_uid: str = "") -> dict[str, tuple[str, str]]:
    """SOP Instance UID -> (Series Instance UID, SOP Class UID) of every instance of the study (or series), from
    C-FIND at SERIES then IMAGE level on an open association."""
    series_uids = [series_uid] if series_uid else []
    if not series_uid:
        ident = Dataset()
        ident.QueryRetrieveLevel = "SERIES"
        ident.StudyInstanceUID = study_uid
        ident.SeriesInstanceUID = ""
        series_uids = [str(m.SeriesInstanceUID) for m in _c_find(assoc, ident, 1_000_000)]
    found: dict[str, tuple[str, str]] = {}
    for uid in series_uids:
        ident = Dataset()
        ident.QueryRetrieveLevel = "IMAGE"
        ident.StudyInstanceUID = study_uid
        ident.SeriesInstanceUID = uid
        ident.SOPInstanceUID = ""
        ident.SOPClassUID = ""
        for match in _c_find(assoc, ident, 10_000_000):
            found[str(match.SOPInstanceUID)] = (uid, str(match.get("SOPClassUID", "")))
    return found


def count_instances(assoc: Association, study_uid: str, series_uid: str = "") -> int:
    """Number of instances the PACS holds for the study (or series), from one C-FIND; 0 when it has none."""
    ident = Dataset()
    ident.StudyInstanceUID = study_uid
    if series_uid:
        ident.QueryRetrieveLevel = "SERIES"
        ident.SeriesInstanceUID = series_uid
        ident.NumberOfSeriesRelatedInstances = ""
    else:
        ident.QueryRetrieveLevel = "STUDY"
        ident.NumberOfStudyRelatedInstances = ""
    total = 0
    for match in _c_find(assoc, ident, 1_000_000):
        value = match.get("NumberOfSeriesRelatedInstances" if series_uid else "NumberOfStudyRelatedInstances")
        total += _int(value) or 0
    return total
