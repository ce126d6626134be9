"""C-STORE responses written by core.pacs.dimse_fast are byte for byte what pynetdicom writes, and anything else
still goes through pynetdicom."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE

from core.pacs.dimse_fast import encode_store_response

CT = "1.2.840.10008.5.1.4.1.1.2"


def _response(sop_instance: str, message_id: int, status: int) -> C_STORE:
    rsp = C_STORE()
    rsp.MessageID = message_id
    rsp.MessageIDBeingRespondedTo = message_id
    rsp.AffectedSOPClassUID = CT
    rsp.AffectedSOPInstanceUID = sop_instance
    rsp.Status = status
    return rsp


def _pynetdicom_pdvs(primitive: C_STORE, context_id: int = 3) -> list[list[tuple[int, bytes]]]:
    msg = C_STORE_RSP()
    msg.primitive_to_message(primitive)
    return [p.presentation_data_value_list for p in msg.encode_msg(context_id, 16384)]


@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xB000, 0xC211, 0x0122])
@pytest.mark.parametrize("uid", ["1.2.3.4", "1.2.3.45", "1.2.826.0.1.3680043.8.498." + "1" * 37])
@pytest.mark.parametrize("message_id", [1, 301, 65535])
def test_same_bytes_as_pynetdicom(status: int, uid: str, message_id: int) -> None:
    expected = _pynetdicom_pdvs(_response(uid, message_id, status))
    assert expected == [[(3, b"\x03" + encode_store_response(CT, uid, message_id, status))]]


def _store_once(handler_status: Any, *, listen_sent: bool) -> tuple[Any, list[Any], list[Any]]:
    """C-STORE one dataset to a pynetdicom storage SCP whose associations are tuned like ours; (the response's
    status dataset, the SCP's sent-message events, the SCP's associations' send_msg functions)."""
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    from pynetdicom import AE

    from core.pacs.association import tune_association

    sent: list[Any] = []
    send_fns: list[Any] = []

    def established(event: Any) -> None:
        tune_association(event.assoc)
        send_fns.append(event.assoc.dimse.send_msg)
        if listen_sent:
            event.assoc.bind(evt.EVT_DIMSE_SENT, lambda e: sent.append(e.message))

    scp = AE(ae_title="FASTSCP")
    scp.add_supported_context(CT, ExplicitVRLittleEndian)
    server = scp.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, lambda e: handler_status), (evt.EVT_ESTABLISHED, established)],
    )
    try:
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID, ds.PatientID = CT, generate_uid(), "FAST-1"
        ds.file_meta = Dataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        scu = AE(ae_title="FASTSCU")
        scu.add_requested_context(CT, ExplicitVRLittleEndian)
        assoc = scu.associate("127.0.0.1", server.server_address[1], ae_title="FASTSCP")
        assert assoc.is_established
        status = assoc.send_c_store(ds)
        assoc.release()
    finally:
        server.shutdown()
    return status, sent, send_fns


def test_a_real_storage_association_gets_the_fast_responses() -> None:
    from core.pacs.dimse_fast import _send_msg

    status, _, send_fns = _store_once(0x0000, listen_sent=False)
    assert status.Status == 0x0000 and "ErrorComment" not in status
    assert send_fns and all(f.__func__ is _send_msg for f in send_fns)
    status, _, _ = _store_once(0xA700, listen_sent=False)
    assert status.Status == 0xA700


def test_responses_with_more_fields_or_listeners_take_pynetdicoms_path() -> None:
    failure = Dataset()
    failure.Status, failure.ErrorComment = 0xC211, "disk full"
    status, _, _ = _store_once(failure, listen_sent=False)
    assert status.Status == 0xC211 and status.ErrorComment == "disk full"
    status, sent, _ = _store_once(0x0000, listen_sent=True)
    assert status.Status == 0x0000
    assert [m.__class__.__name__ for m in sent] == ["C_STORE_RSP"]  # the listener saw pynetdicom's message
