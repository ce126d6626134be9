"""C-STORE of our stored results (DICOM SEG, RTSTRUCT, Encapsulated PDF) back to a PACS node (audited)."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Literal

import pydicom
from pydicom.uid import UID, EncapsulatedPDFStorage, RTStructureSetStorage, SegmentationStorage

from core.errors import PermissionDeniedError
from core.pacs.association import LocalAE, open_association
from core.pacs.nodes import PacsError, PacsNode
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.blobs import stored_bytes
from core.store.store import Store
from core.store.users import record_access

__all__ = ["RESULT_CLASSES", "SendReport", "What", "send_results", "send_results_web"]

log = logging.getLogger(__name__)
What = Literal["seg", "rtstruct", "pdf", "all"]
RESULT_CLASSES: dict[str, str] = {
    "seg": str(SegmentationStorage),
    "rtstruct": str(RTStructureSetStorage),
    "pdf": str(EncapsulatedPDFStorage),
}


@dataclass
class SendReport:
    sent: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    #: Kinds asked for of which the study has nothing stored (e.g. no PDF report written yet).
    none_stored: list[str] = field(default_factory=list)


def send_results(
    store: Store, access: Access, local: LocalAE, node: PacsNode, study_uid: str, what: What
) -> SendReport:
    """Send the stored instances of `what` in the study; raises PacsError when there is nothing at all to send."""
    rows, classes, report = _select(store, access, node, study_uid, what, "dimse")
    with open_association(local, node, storage_scu=sorted({UID(str(r[1])) for r in rows})) as assoc:
        for sop_uid, sop_class, data in rows:
            ds = pydicom.dcmread(io.BytesIO(data))
            status = assoc.send_c_store(ds)
            code = int(status.Status) if status is not None and "Status" in status else None
            if code is None:
                raise PacsError(f"the association with {node.name} dropped while sending {sop_uid}")
            if code in (0x0000, 0xB000, 0xB007, 0xB006):
                report.sent[classes[str(sop_class)]] += 1
            else:
                report.failed.append(f"{sop_uid}: status 0x{code:04X}")
    log.info("sent %s of study %s to %s", report.sent, study_uid, node.name)
    return report


def send_results_web(
    store: Store, access: Access, node: PacsNode, base_url: str, study_uid: str, what: What, *, timeout: float = 60
) -> SendReport:
    """STOW-RS the stored instances of `what` in the study to the node's DICOMweb URL (bytes as stored, one request
    per kind); PacsError when there is nothing to send or the server refuses any instance."""
    from core.pacs.dicomweb import stow

    rows, classes, report = _select(store, access, node, study_uid, what, "dicomweb")
    for kind in report.sent:
        blobs = [data for _, sop_class, data in rows if classes[sop_class] == kind]
        if blobs:
            report.sent[kind] = stow(base_url, blobs, timeout=timeout)
    log.info("sent %s of study %s to %s by STOW-RS", report.sent, study_uid, node.name)
    return report


def _select(
    store: Store, access: Access, node: PacsNode, study_uid: str, what: What, transport: str
) -> tuple[list[tuple[str, str, bytes]], dict[str, str], SendReport]:
    """The stored instances to send (audited as pacs.send), their kinds and an empty report."""
    if access.permission is not Permission.READ_PATIENT_DATA:
        raise PermissionDeniedError("sending results to a PACS needs the 'read_patient_data' permission")
    kinds = list(RESULT_CLASSES) if what == "all" else [what]
    classes = {RESULT_CLASSES[k]: k for k in kinds}
    marks = ",".join("?" * len(classes))
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT i.sop_uid, i.sop_class_uid, i.blob, d.data FROM instances i "
            "LEFT JOIN instance_data d ON d.instance_fk = i.id "
            "JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk "
            f"WHERE st.study_uid = ? AND i.sop_class_uid IN ({marks}) ORDER BY i.id",
            (study_uid, *classes),
        ).fetchall()
        if rows:
            record_access(
                conn,
                access,
                "pacs.send",
                objects=[AuditObject("pacs_node", node.name), AuditObject("study", study_uid)],
                details={"what": what, "instances": len(rows), "transport": transport},
            )
    report = SendReport(sent=dict.fromkeys(kinds, 0))
    present = {classes[str(r[1])] for r in rows}
    report.none_stored = [k for k in kinds if k not in present]
    if not rows:
        raise PacsError(
            f"nothing to send: study {study_uid} has no stored {' / '.join(kinds)} result "
            "(create the result first; nothing was sent)"
        )
    return [(str(r[0]), str(r[1]), stored_bytes(store.conn, r[2], r[3])) for r in rows], classes, report
