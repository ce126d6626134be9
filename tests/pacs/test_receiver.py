"""The receive path's own file meta encoding equals pynetdicom's `event.encoded_dataset()` byte for byte."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta, encode_file_meta
from pynetdicom.events import Event

from core.pacs.receiver import encoded_instance, file_meta_bytes

_ROOT = "1.2.826.0.1.3680043.8.498."
UIDS = ["1.2.3", "1.2.34", "2.25.1", (_ROOT + "1" * 64)[:64], (_ROOT + "2" * 64)[:63]]  # odd/even, 64 characters


@pytest.mark.parametrize("sop_uid", UIDS)
@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless])
def test_file_meta_bytes_equal_pynetdicom(sop_uid: str, ts: str) -> None:
    expected = encode_file_meta(create_file_meta(sop_class_uid=CTImageStorage, sop_instance_uid=sop_uid,
                                                 transfer_syntax=ts))  # fmt: skip
    assert file_meta_bytes(str(CTImageStorage), sop_uid, str(ts)) == expected


def test_encoded_instance_equals_event_encoded_dataset() -> None:
    request = C_STORE()
    request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = CTImageStorage, UIDS[3]
    request.DataSet = io.BytesIO(b"\x08\x00\x16\x00UI\x1a\x00" + bytes(range(256)) * 300)
    context = SimpleNamespace(transfer_syntax=ExplicitVRLittleEndian)
    event = Event(SimpleNamespace(), ("EVT_C_STORE", "C-STORE request"), {"request": request, "context": context})  # type: ignore[arg-type]
    ours = encoded_instance(SimpleNamespace(request=request, context=context))
    assert ours == event.encoded_dataset(include_meta=True)
    request.DataSet.write(b"still writable")  # the buffer export was released
