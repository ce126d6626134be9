"""C-STORE requests decoded and responses encoded directly, without a pydicom Dataset per message.

A retrieve receives a C-STORE-RQ per instance and answers each with a C-STORE-RSP. pynetdicom decodes every
command set into a pydicom Dataset and copies it element by element into the request primitive (~0.12 ms of
Python per instance on the DUL thread, which also reads the network), and builds each response as a Dataset that
it encodes three times (~0.3 ms on the thread that handles the next instance). Both command sets are a handful of
Implicit VR Little Endian elements (PS3.7 9.3.1.1 and 9.3.1.2), handled with ``struct`` here:

* requests: a P-DATA holding just the last command fragment of a C-STORE-RQ whose elements are all ones the
  request defines becomes a request primitive with the same values pynetdicom would set (its own setters check
  them); the data set fragments that follow go through pynetdicom as before;
* responses: a C-STORE-RSP with only the mandatory fields (no error comment, no offending element) is written
  byte for byte as pynetdicom writes it.

Anything else (another message, a request split over several command fragments or sharing its P-DATA with data,
unexpected elements, pynetdicom's chunked-dataset mode, an association where someone listens to EVT_DIMSE_RECV or
EVT_DIMSE_SENT) takes pynetdicom's own path. The tests compare requests and responses with pynetdicom's.
"""

from __future__ import annotations

import struct
import types
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import _config, evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

__all__ = ["StoreRequest", "decode_store_request", "encode_store_response", "fast_store_messages"]

_C_STORE_RSP = 0x8001
_NO_DATA_SET = 0x0101
_LAST_COMMAND_FRAGMENT = b"\x03"
_ORIGINAL_SEND = DIMSEServiceProvider.send_msg
_ORIGINAL_RECEIVE = DIMSEServiceProvider.receive_primitive
_C_STORE_RQ = 0x0001
#: The elements a C-STORE-RQ command set may hold (PS3.7 table 9.3-1): group length, affected SOP class, command
#: field, message ID, priority, data set type, affected SOP instance, move originator AE title and message ID.
_REQUEST_ELEMENTS = frozenset({0x0000, 0x0002, 0x0100, 0x0110, 0x0700, 0x0800, 0x1000, 0x1030, 0x1031})
_US_ELEMENTS = frozenset({0x0100, 0x0110, 0x0700, 0x0800, 0x1031})


@dataclass(frozen=True)
class StoreRequest:
    """The command set of a C-STORE-RQ."""

    message_id: int
    sop_class: str
    sop_instance: str
    priority: int
    move_originator_aet: str | None = None
    move_originator_id: int | None = None


def decode_store_request(command: bytes) -> StoreRequest | None:
    """A C-STORE-RQ command set (Implicit VR Little Endian), or None when it is anything else or holds an element a
    request does not define (pynetdicom then decodes it)."""
    values: dict[int, bytes] = {}
    pos, end = 0, len(command)
    while pos < end:
        if pos + 8 > end:
            return None
        group, element, length = struct.unpack_from("<HHI", command, pos)
        pos += 8
        if group != 0x0000 or element not in _REQUEST_ELEMENTS or pos + length > end:
            return None
        values[element] = command[pos : pos + length]
        pos += length
    if any(len(values[e]) != 2 for e in _US_ELEMENTS if e in values):
        return None
    ushort = {e: struct.unpack("<H", values[e])[0] for e in _US_ELEMENTS if e in values}
    if ushort.get(0x0100) != _C_STORE_RQ or ushort.get(0x0800, _NO_DATA_SET) == _NO_DATA_SET:
        return None
    if not all(e in values for e in (0x0002, 0x0110, 0x0700, 0x1000)):
        return None
    try:
        sop_class, sop_instance = (values[e].rstrip(b"\x00 ").decode("ascii") for e in (0x0002, 0x1000))
        aet = values[0x1030].decode("ascii").strip() if 0x1030 in values else None
    except UnicodeDecodeError:
        return None
    return StoreRequest(
        message_id=ushort[0x0110],
        sop_class=sop_class,
        sop_instance=sop_instance,
        priority=ushort[0x0700],
        move_originator_aet=aet or None,
        move_originator_id=ushort.get(0x1031),
    )


class _StoreRequestMessage(DIMSEMessage):
    """A C-STORE-RQ whose command set was decoded by `decode_store_request`; its data set fragments are collected
    by pynetdicom's ``decode_msg`` as usual."""

    def __init__(self, request: StoreRequest, context_id: int) -> None:  # no Dataset-building DIMSEMessage init
        self.context_id = context_id
        self.encoded_command_set = BytesIO()
        self.data_set = BytesIO()
        self.command_set = Dataset()
        self._data_set_path = None
        self._data_set_file = None
        self.request = request

    def message_to_primitive(self) -> Any:
        req, primitive = self.request, C_STORE()
        primitive.MessageID = req.message_id
        primitive.AffectedSOPClassUID = req.sop_class
        primitive.AffectedSOPInstanceUID = req.sop_instance
        primitive.Priority = req.priority
        if req.move_originator_aet is not None:
            primitive.MoveOriginatorApplicationEntityTitle = req.move_originator_aet
        if req.move_originator_id is not None:
            primitive.MoveOriginatorMessageID = req.move_originator_id
        primitive.DataSet = self.data_set
        primitive._context_id = self.context_id
        primitive._dataset_path = None
        primitive._dataset_file = None
        return primitive


def _receive_primitive(self: DIMSEServiceProvider, primitive: Any) -> None:
    if self.message is None and not _config.STORE_RECV_CHUNKED_DATASET and type(primitive) is P_DATA:
        pdvs = primitive.presentation_data_value_list
        if len(pdvs) == 1 and pdvs[0][1][:1] == _LAST_COMMAND_FRAGMENT:
            request = decode_store_request(pdvs[0][1][1:])
            if request is not None and not self.assoc.get_handlers(evt.EVT_DIMSE_RECV):
                self.message = _StoreRequestMessage(request, pdvs[0][0])
                return
    _ORIGINAL_RECEIVE(self, primitive)


def _ui(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


def encode_store_response(sop_class: str, sop_instance: str, message_id: int, status: int) -> bytes:
    """The command set of a C-STORE-RSP (Implicit VR Little Endian), group length included."""
    body = b"".join(
        (
            _element(0x0002, _ui(sop_class)),  # Affected SOP Class UID
            _element(0x0100, struct.pack("<H", _C_STORE_RSP)),  # Command Field
            _element(0x0120, struct.pack("<H", message_id)),  # Message ID Being Responded To
            _element(0x0800, struct.pack("<H", _NO_DATA_SET)),  # Command Data Set Type
            _element(0x0900, struct.pack("<H", status)),  # Status
            _element(0x1000, _ui(sop_instance)),  # Affected SOP Instance UID
        )
    )
    return _element(0x0000, struct.pack("<I", len(body))) + body


def _plain_store_response(primitive: Any) -> bool:
    return (
        type(primitive) is C_STORE
        and primitive.MessageIDBeingRespondedTo is not None
        and isinstance(primitive.Status, int)
        and primitive.AffectedSOPClassUID is not None
        and primitive.AffectedSOPInstanceUID is not None
        and all(getattr(primitive, k) is None for k in C_STORE.STATUS_OPTIONAL_KEYWORDS)
    )


def _send_msg(self: DIMSEServiceProvider, primitive: Any, context_id: int) -> None:
    if not _plain_store_response(primitive) or self.assoc.get_handlers(evt.EVT_DIMSE_SENT):
        _ORIGINAL_SEND(self, primitive, context_id)
        return
    command = encode_store_response(
        str(primitive.AffectedSOPClassUID),
        str(primitive.AffectedSOPInstanceUID),
        int(primitive.MessageIDBeingRespondedTo),
        int(primitive.Status),
    )
    if self.maximum_pdu_size and len(command) + 6 > self.maximum_pdu_size:  # would need fragments: pynetdicom's
        _ORIGINAL_SEND(self, primitive, context_id)
        return
    pdata = P_DATA()
    pdata.presentation_data_value_list.append((context_id, _LAST_COMMAND_FRAGMENT + command))
    self.dul.send_pdu(pdata)


def fast_store_messages(dimse: DIMSEServiceProvider) -> None:
    """Decode this association's C-STORE requests with `decode_store_request` and send its plain C-STORE responses
    with `encode_store_response` (everything else unchanged)."""
    dimse.receive_primitive = types.MethodType(_receive_primitive, dimse)  # type: ignore[method-assign]
    dimse.send_msg = types.MethodType(_send_msg, dimse)  # type: ignore[method-assign]
