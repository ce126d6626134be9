"""DICOM PS3.15 Annex A.5 audit messages (XML) from the audit trail, for a hospital audit record repository.

Each entry becomes one <AuditMessage> with EventIdentification (EventID, EventActionCode, EventDateTime,
EventOutcomeIndicator, EventTypeCode where defined), the user as ActiveParticipant (requestor), the application as a
second ActiveParticipant, AuditSourceIdentification, and one ParticipantObjectIdentification per touched object.
Codes are from PS3.16 (DCM) and RFC 3881 / PS3.15 A.5.2.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

from core.store.audit import AuditEntry, AuditObject

__all__ = ["EventCode", "audit_message", "audit_message_xml", "event_code_for"]


@dataclass(frozen=True)
class EventCode:
    code: str
    meaning: str
    action: str  # C, R, U, D or E
    type_code: tuple[str, str] | None = None


_EVENTS: dict[str, EventCode] = {
    "dicom.import": EventCode("110107", "Import", "C"),
    "dicom.export": EventCode("110106", "Export", "R"),
    "study.query": EventCode("110112", "Query", "E"),
    "study.read": EventCode("110103", "DICOM Instances Accessed", "R"),
    "patient.read": EventCode("110110", "Patient Record", "R"),
    "user.login": EventCode("110114", "User Authentication", "E", ("110122", "Login")),
    "user.logout": EventCode("110114", "User Authentication", "E", ("110123", "Logout")),
    "user.create": EventCode("110113", "Security Alert", "E", ("110136", "Security Roles Changed")),
    "user.enable": EventCode("110113", "Security Alert", "E", ("110136", "Security Roles Changed")),
    "user.disable": EventCode("110113", "Security Alert", "E", ("110136", "Security Roles Changed")),
    "user.password": EventCode("110113", "Security Alert", "E", ("110139", "Security Attributes Changed")),
    "audit.export": EventCode("110101", "Audit Log Used", "R"),
    "audit.verify": EventCode("110101", "Audit Log Used", "R"),
    "store.init": EventCode("110100", "Application Activity", "E", ("110120", "Application Start")),
    "store.backup": EventCode("110106", "Export", "R"),
    "store.restore": EventCode("110107", "Import", "C"),
    "store.rekey": EventCode("110113", "Security Alert", "E", ("110139", "Security Attributes Changed")),
}
_DEFAULT = EventCode("110100", "Application Activity", "E")
_OUTCOME = {"success": "0", "minor_failure": "4", "serious_failure": "8", "major_failure": "12"}

# ParticipantObjectTypeCode, ParticipantObjectTypeCodeRole, ParticipantObjectIDTypeCode (code, scheme, meaning)
_OBJECT_CODES: dict[str, tuple[str, str, tuple[str, str, str]]] = {
    "patient": ("1", "1", ("2", "RFC-3881", "Patient Number")),
    "study": ("2", "3", ("110180", "DCM", "Study Instance UID")),
    "series": ("2", "3", ("110180", "DCM", "Study Instance UID")),
    "user": ("1", "11", ("11", "RFC-3881", "User Identifier")),
    "plan": ("2", "3", ("12", "RFC-3881", "URI")),
}


def event_code_for(action: str) -> EventCode:
    return _EVENTS.get(action, _DEFAULT)


def _coded(parent: ET.Element, tag: str, code: str, scheme: str, meaning: str) -> ET.Element:
    return ET.SubElement(parent, tag, {"csd-code": code, "codeSystemName": scheme, "originalText": meaning})


def audit_message(entry: AuditEntry, *, source_id: str | None = None) -> ET.Element:
    event = event_code_for(entry.action)
    msg = ET.Element("AuditMessage")
    ident = ET.SubElement(
        msg,
        "EventIdentification",
        {
            "EventActionCode": event.action,
            "EventDateTime": entry.ts,
            "EventOutcomeIndicator": _OUTCOME[entry.outcome],
        },
    )
    _coded(ident, "EventID", event.code, "DCM", event.meaning)
    if event.type_code is not None:
        _coded(ident, "EventTypeCode", event.type_code[0], "DCM", event.type_code[1])
    if entry.break_glass:
        _coded(ident, "EventTypeCode", "110127", "DCM", "Emergency Override Started")
    ET.SubElement(ident, "EventOutcomeDescription").text = f"radplan:{entry.action} seq={entry.seq}"
    host = source_id or socket.gethostname()
    user = ET.SubElement(
        msg,
        "ActiveParticipant",
        {
            "UserID": entry.actor or "unknown",
            "UserIsRequestor": "true",
            "NetworkAccessPointID": host,
            "NetworkAccessPointTypeCode": "1",
        },
    )
    if entry.role:
        _coded(
            user,
            "RoleIDCode",
            "110153" if entry.action.startswith("dicom.") else "110150",
            "DCM",
            "Source Role ID" if entry.action.startswith("dicom.") else "Application",
        )
    app = ET.SubElement(
        msg,
        "ActiveParticipant",
        {
            "UserID": "radplan",
            "AlternativeUserID": str(entry.seq),
            "UserIsRequestor": "false",
            "NetworkAccessPointID": host,
            "NetworkAccessPointTypeCode": "1",
        },
    )
    _coded(app, "RoleIDCode", "110150", "DCM", "Application")
    source = ET.SubElement(msg, "AuditSourceIdentification", {"AuditSourceID": host})
    ET.SubElement(
        source,
        "AuditSourceTypeCode",
        {"csd-code": "4", "codeSystemName": "DCM", "originalText": "Application Server Process"},
    )
    for obj in entry.objects:
        _participant_object(msg, obj)
    return msg


def _participant_object(msg: ET.Element, obj: AuditObject) -> None:
    type_code, role, (id_code, id_scheme, id_meaning) = _OBJECT_CODES.get(
        obj.kind, ("2", "4", ("12", "RFC-3881", "URI"))
    )
    elem = ET.SubElement(
        msg,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": obj.identifier,
            "ParticipantObjectTypeCode": type_code,
            "ParticipantObjectTypeCodeRole": role,
        },
    )
    _coded(elem, "ParticipantObjectIDTypeCode", id_code, id_scheme, id_meaning)
    if obj.description:
        ET.SubElement(elem, "ParticipantObjectDescription").text = obj.description


def audit_message_xml(entries: Iterable[AuditEntry], *, source_id: str | None = None) -> list[bytes]:
    """One standalone UTF-8 XML document per entry (the unit a syslog audit repository receives)."""
    out = []
    for entry in entries:
        element = audit_message(entry, source_id=source_id)
        ET.indent(element)
        out.append(ET.tostring(element, encoding="utf-8", xml_declaration=True))
    return out
