"""C-STORE responses encoded directly: the bytes pynetdicom would write, without building a pydicom Dataset.

A retrieve answers every received instance with a C-STORE-RSP. pynetdicom builds each one as a pydicom Dataset,
encodes it three times (twice for the group length) and converts it into P-DATA: about 0.3 ms of Python per
instance on the thread that also reads the next instance (bench/pacs_retrieve.py; 300 instances: ~0.09 CPU-s).
A C-STORE-RSP with only the mandatory fields (no error comment, no offending element) is a fixed layout of seven
Implicit VR Little Endian elements (PS3.7 9.3.1.2), so it is written with ``struct`` here; any other message, or
an association where someone listens to EVT_DIMSE_SENT, takes pynetdicom's own path. The test compares the bytes
with pynetdicom's for several statuses and UID lengths.
"""

from __future__ import annotations

import struct
import types
from typing import Any

from pynetdicom import evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

__all__ = ["encode_store_response", "fast_store_responses"]

_C_STORE_RSP = 0x8001
_NO_DATA_SET = 0x0101
_LAST_COMMAND_FRAGMENT = b"\x03"
_ORIGINAL_SEND = DIMSEServiceProvider.send_msg


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


def fast_store_responses(dimse: DIMSEServiceProvider) -> None:
    """Send this association's plain C-STORE responses with `encode_store_response` (everything else unchanged)."""
    dimse.send_msg = types.MethodType(_send_msg, dimse)  # type: ignore[method-assign]
