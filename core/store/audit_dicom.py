"""DICOM PS3.15 Annex A.5 audit messages (XML) from the audit trail, for a hospital audit record repository.

Each entry becomes one <AuditMessage> with EventIdentification (EventID, EventActionCode, EventDateTime,
EventOutcomeIndicator, EventTypeCode where defined), the user as ActiveParticipant (requestor), the application as a
second ActiveParticipant, AuditSourceIdentification, and one ParticipantObjectIdentification per touched object.
Codes are from PS3.16 (DCM) and RFC 3881 / PS3.15 A.5.2.
"""

from __future__ import annotations

import re
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
    "user.password": EventCode("110113", "Security Alert", "E", ("110137", "User Security Attributes Changed")),
    "access.denied": EventCode("110113", "Security Alert", "E", ("110132", "Use of Restricted Function")),
    "access.break_glass": EventCode("110113", "Security Alert", "E", ("110127", "Emergency Override Started")),
    "audit.export": EventCode("110101", "Audit Log Used", "R"),
    "audit.verify": EventCode("110101", "Audit Log Used", "R"),
    "store.init": EventCode("110100", "Application Activity", "E", ("110120", "Application Start")),
    "store.backup": EventCode("110106", "Export", "R"),
    "store.restore": EventCode("110107", "Import", "C"),
    "store.rekey": EventCode("110113", "Security Alert", "E", ("110129", "Security Configuration")),
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


# RoleIDCode of the person who did it, where PS3.15 A.5.3 prescribes one (Data Import/Export, Application Activity);
# elsewhere the RadPlan role is given as a local code. (110150 "Application" is the role of the application.)
_USER_ROLES: dict[str, tuple[str, str, str]] = {
    "dicom.import": ("110152", "DCM", "Destination Role ID"),
    "store.restore": ("110152", "DCM", "Destination Role ID"),
    "dicom.export": ("110153", "DCM", "Source Role ID"),
    "store.backup": ("110153", "DCM", "Source Role ID"),
    "store.init": ("110151", "DCM", "Application Launcher"),
}
LOCAL_CODE_SYSTEM = "99RADPLAN"

# Characters XML 1.0 cannot carry at all (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF): a name typed at a
# failed login is recorded as typed, and must not make the message unparseable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def event_code_for(action: str) -> EventCode:
    return _EVENTS.get(action, _DEFAULT)


def _coded(parent: ET.Element, tag: str, code: str, scheme: str, meaning: str) -> ET.Element:
    return ET.SubElement(
        parent, tag, {"csd-code": _xml_text(code), "codeSystemName": scheme, "originalText": _xml_text(meaning)}
    )


def audit_message(entry: AuditEntry, *, source_id: str | None = None) -> ET.Element:
    event = event_code_for(entry.action)
    msg = ET.Element("AuditMessage")
    ident = ET.SubElement(
        msg,
        "EventIdentification",
        {
            "EventActionCode": event.action,
            "EventDateTime": _xml_text(entry.ts),
            "EventOutcomeIndicator": _OUTCOME[entry.outcome],
        },
    )
    _coded(ident, "EventID", event.code, "DCM", event.meaning)
    if event.type_code is not None:
        _coded(ident, "EventTypeCode", event.type_code[0], "DCM", event.type_code[1])
    if entry.break_glass:
        _coded(ident, "EventTypeCode", "110127", "DCM", "Emergency Override Started")
    ET.SubElement(ident, "EventOutcomeDescription").text = _xml_text(f"radplan:{entry.action} seq={entry.seq}")
    host = source_id or socket.gethostname()
    user = ET.SubElement(
        msg,
        "ActiveParticipant",
        {
            "UserID": _xml_text(entry.actor) or "unknown",
            "UserIsRequestor": "true",
            "NetworkAccessPointID": host,
            "NetworkAccessPointTypeCode": "1",
        },
    )
    if entry.action in _USER_ROLES:
        _coded(user, "RoleIDCode", *_USER_ROLES[entry.action])
    elif entry.role:
        _coded(user, "RoleIDCode", entry.role, LOCAL_CODE_SYSTEM, entry.role)
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
            "ParticipantObjectID": _xml_text(obj.identifier),
            "ParticipantObjectTypeCode": type_code,
            "ParticipantObjectTypeCodeRole": role,
        },
    )
    _coded(elem, "ParticipantObjectIDTypeCode", id_code, id_scheme, id_meaning)
    if obj.description:
        ET.SubElement(elem, "ParticipantObjectDescription").text = _xml_text(obj.description)


def audit_message_xml(entries: Iterable[AuditEntry], *, source_id: str | None = None) -> list[bytes]:
    """One standalone UTF-8 XML document per entry (the unit a syslog audit repository receives)."""
    out = []
    for entry in entries:
        element = audit_message(entry, source_id=source_id)
        ET.indent(element)
        out.append(ET.tostring(element, encoding="utf-8", xml_declaration=True))
    return out
