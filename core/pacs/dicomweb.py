"""DICOMweb as a second transport (QIDO-RS search, WADO-RS retrieve, STOW-RS store), standard library HTTP only.

The same guarantees as the DIMSE retrieve: the instances of the study are listed (QIDO-RS), those already stored
are skipped, the rest are fetched per series (WADO-RS multipart/related; application/dicom parts are the bytes
the server holds, stored unchanged through the importer's storage function), and the study is marked complete
only when every listed instance is in the store.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from core.dicom.importer import DamagedFileError, ImportReport, NotDicomError, parse_instance, store_instances
from core.errors import PermissionDeniedError
from core.pacs.nodes import PacsError
from core.pacs.query import FindQuery, FindResult, FindResults
from core.pacs.study_state import set_study_status, stored_sops
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.store import Store
from core.store.users import record_access

__all__ = ["qido_studies", "stow", "wado_retrieve_study"]

_DICOM_JSON = "application/dicom+json"


def _request(url: str, *, accept: str, data: bytes | None = None, content_type: str = "", timeout: float = 30) -> Any:
    if not url.startswith(("http://", "https://")):
        raise PacsError(f"DICOMweb URL must start with http:// or https://, not {url!r}")
    headers = {"Accept": accept} | ({"Content-Type": content_type} if content_type else {})
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")  # noqa: S310
    try:
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) checked above
    except urllib.error.HTTPError as exc:
        raise PacsError(f"DICOMweb {req.get_method()} {url} answered HTTP {exc.code} {exc.reason}") from exc
    except OSError as exc:
        raise PacsError(f"DICOMweb server at {url} cannot be reached: {exc}") from exc


def _value(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value", [])
    if not values:
        return ""
    first = values[0]
    if isinstance(first, dict):  # PN
        return str(first.get("Alphabetic", ""))
    return "\\".join(str(v) for v in values) if tag == "00080061" else str(first)


def _json(base: str, path: str, params: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v}, safe="*?,")
    with _request(f"{base.rstrip('/')}/{path}{'?' + query if query else ''}", accept=_DICOM_JSON, timeout=timeout) as r:
        body = r.read()
    return list(json.loads(body)) if body.strip() else []


def qido_studies(store: Store, access: Access, base_url: str, query: FindQuery, timeout: float = 30) -> FindResults:
    """QIDO-RS study search with the C-FIND filters; audited as pacs.find (transport dicomweb)."""
    if access.permission is not Permission.READ_PATIENT_DATA:
        raise PermissionDeniedError("querying a PACS needs the 'read_patient_data' permission")
    query.check()
    params = {
        "PatientID": query.patient_id, "PatientName": query.patient_name, "ModalitiesInStudy": query.modality,
        "StudyDate": query.date, "AccessionNumber": query.accession, "StudyInstanceUID": query.study_uid,
        "limit": str(query.limit + 1), "includefield": "00201206,00201208,00081030",
    }  # fmt: skip
    items = _json(base_url, "studies", params, timeout)
    results = [
        FindResult(
            level="study",
            study_uid=_value(i, "0020000D"),
            patient_id=_value(i, "00100020"),
            patient_name=_value(i, "00100010"),
            study_date=_value(i, "00080020"),
            accession=_value(i, "00080050"),
            study_description=_value(i, "00081030"),
            modalities=tuple(filter(None, _value(i, "00080061").split("\\"))),
            n_series=int(_value(i, "00201206") or 0) or None,
            n_instances=int(_value(i, "00201208") or 0) or None,
        )
        for i in items
    ]
    truncated = len(results) > query.limit
    results = results[: query.limit]
    with store.transaction() as conn:
        record_access(conn, access, "pacs.find", objects=[AuditObject("study", r.study_uid) for r in results],
                      details={"transport": "dicomweb", "level": "study", "answers": len(results)})  # fmt: skip
    return FindResults(results, truncated)


def _multipart(response: Any) -> Iterator[bytes]:
    """The parts of a multipart/related response body (whole body read; a study is fetched series by series)."""
    ctype = response.headers.get("Content-Type", "")
    params = dict(p.strip().split("=", 1) for p in ctype.split(";")[1:] if "=" in p)
    boundary = params.get("boundary", "").strip('"')
    if not boundary:
        raise PacsError(f"DICOMweb answer is not multipart/related ({ctype or 'no Content-Type'})")
    body = response.read()
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        _head, _, data = chunk.partition(b"\r\n\r\n")
        yield data[:-2] if data.endswith(b"\r\n") else data


def wado_retrieve_study(
    store: Store, access: Access, base_url: str, study_uid: str, timeout: float = 60
) -> ImportReport:
    """Fetch the missing instances of a study with WADO-RS; see the module docstring. Returns the storage report."""
    if access.permission is not Permission.IMPORT_STUDIES:
        raise PermissionDeniedError("retrieving studies needs the 'import_studies' permission")
    listed = _json(base_url, f"studies/{study_uid}/instances", {}, timeout)
    expected = {_value(i, "00080018"): _value(i, "0020000E") for i in listed}
    if not expected:
        raise PacsError(f"the DICOMweb server has no instances for study {study_uid}")
    present = stored_sops(store, expected)
    report = ImportReport(already_present=len(present))
    try:
        for series in sorted({s for sop, s in expected.items() if sop not in present}):
            url = f"{base_url.rstrip('/')}/studies/{study_uid}/series/{series}"
            with _request(url, accept='multipart/related; type="application/dicom"', timeout=timeout) as response:
                parsed = []
                for part in _multipart(response):
                    try:
                        inst = parse_instance("wado-rs part", part, header_only=True)
                    except (DamagedFileError, NotDicomError) as exc:
                        report.damaged.append(("wado-rs part", str(exc)))
                        continue
                    if inst.sop_uid not in present:
                        parsed.append(inst)
            store_instances(store, access, parsed, report, action="dicom.retrieve")
    finally:  # also when the server fails mid-way: the status says what is stored of what it listed
        have = stored_sops(store, expected)
        complete = have == set(expected)
        with store.transaction() as conn:
            if have:  # complete, or partial even when a file import had called it complete (core.pacs.study_state)
                set_study_status(conn, study_uid, "complete" if complete else "partial")
            record_access(conn, access, "pacs.retrieve", outcome="success" if complete else "minor_failure",
                          objects=[AuditObject("study", study_uid)],
                          details={"transport": "dicomweb", "total": len(expected), "stored": report.stored,
                                   "complete": complete})  # fmt: skip
    report.studies = [study_uid]
    if not complete:
        raise PacsError(f"DICOMweb retrieve of {study_uid} incomplete: {len(have)}/{len(expected)} stored; run again")
    return report


def stow(base_url: str, instances: Sequence[bytes], timeout: float = 60) -> int:
    """STOW-RS the Part 10 byte strings in one request; returns how many the server accepted."""
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n"
            for data in instances
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
    with _request(f"{base_url.rstrip('/')}/studies", accept=_DICOM_JSON, data=body, content_type=ctype,
                  timeout=timeout) as r:  # fmt: skip
        answer = json.loads(r.read() or b"{}")
    failed = answer.get("00081198", {}).get("Value", [])
    if failed:
        raise PacsError(f"STOW-RS: the server refused {len(failed)} of {len(instances)} instance(s)")
    return len(answer.get("00081199", {}).get("Value", []))
