"""C-STORE requests decoded and responses written by core.pacs.dimse_fast give what pynetdicom gives, and anything
else still goes through pynetdicom."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_messages import C_STORE_RQ, C_STORE_RSP, DIMSEMessage
from pynetdicom.dimse_primitives import C_STORE

from core.pacs.dimse_fast import _StoreRequestMessage, decode_store_request, encode_store_response

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


def _request(uid: str, message_id: int, originator: tuple[str, int] | None, data: bytes) -> C_STORE:
    req = C_STORE()
    req.MessageID, req.AffectedSOPClassUID, req.AffectedSOPInstanceUID, req.Priority = message_id, CT, uid, 2
    if originator is not None:
        req.MoveOriginatorApplicationEntityTitle, req.MoveOriginatorMessageID = originator
    req.DataSet = BytesIO(data)
    return req


_FIELDS = ("MessageID", "AffectedSOPClassUID", "AffectedSOPInstanceUID", "Priority",
           "MoveOriginatorApplicationEntityTitle", "MoveOriginatorMessageID", "_context_id")  # fmt: skip


@pytest.mark.parametrize("originator", [None, ("ORTHANC", 7), ("A B", 65535)])
@pytest.mark.parametrize("uid", ["1.2.3.4", "1.2.3.45", "1.2.826.0.1.3680043.8.498." + "1" * 37])
def test_requests_decode_to_what_pynetdicom_decodes(uid: str, originator: tuple[str, int] | None) -> None:
    data = bytes(range(256)) * 300  # a data set over several fragments
    msg = C_STORE_RQ()
    msg.primitive_to_message(_request(uid, 301, originator, data))
    pdatas = list(msg.encode_msg(5, 16384))
    theirs = DIMSEMessage()
    done = [theirs.decode_msg(p) for p in pdatas]
    assert done[-1] and not any(done[:-1])
    expected = theirs.message_to_primitive()

    (context_id, command), *rest = pdatas[0].presentation_data_value_list
    assert not rest and command[:1] == b"\x03"
    request = decode_store_request(command[1:])
    assert request is not None
    ours = _StoreRequestMessage(request, context_id)
    done = [ours.decode_msg(p) for p in pdatas[1:]]
    assert done[-1] and not any(done[:-1])
    got = ours.message_to_primitive()
    assert [getattr(got, f) for f in _FIELDS] == [getattr(expected, f) for f in _FIELDS]
    assert got.DataSet.getvalue() == expected.DataSet.getvalue() == data


def test_other_command_sets_are_left_to_pynetdicom() -> None:
    rsp = C_STORE_RSP()
    rsp.primitive_to_message(_response("1.2.3.4", 1, 0))
    response_command = next(iter(rsp.encode_msg(1, 16384))).presentation_data_value_list[0][1][1:]
    assert decode_store_request(response_command) is None  # a response, not a request
    msg = C_STORE_RQ()
    msg.primitive_to_message(_request("1.2.3.4", 2, None, b"xx"))
    command = next(iter(msg.encode_msg(1, 16384))).presentation_data_value_list[0][1][1:]
    assert decode_store_request(command) is not None
    extra = command + b"\x00\x00\x02\x09" + (4).to_bytes(4, "little") + b"\x00\x00\x00\x00"  # (0000,0902)
    assert decode_store_request(extra) is None  # an element a request does not define
    assert decode_store_request(command[:-3]) is None  # truncated


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
        send_fns.append(event.assoc.dimse)
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
    from core.pacs.dimse_fast import _receive_primitive, _send_msg

    status, _, providers = _store_once(0x0000, listen_sent=False)
    assert status.Status == 0x0000 and "ErrorComment" not in status
    assert providers and all(d.send_msg.__func__ is _send_msg for d in providers)
    assert all(d.receive_primitive.__func__ is _receive_primitive for d in providers)
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


class _RecordingSocket:
    """Hands out `data` in reads of at most `step` bytes and records every setsockopt call."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.calls = data, step, []  # type: ignore[var-annotated]

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.calls.append(("opt", level, option, value))

    def recv_into(self, view: memoryview, size: int) -> int:
        n = min(size, self.step, len(self.data))
        view[:n] = self.data[:n]
        self.data = self.data[n:]
        self.calls.append(("read", n))
        return n


def test_every_read_asks_for_an_immediate_ack() -> None:
    """TCP_QUICKACK before each read: a PACS sending with Nagle's algorithm holds the short end of each message
    until it is acknowledged, and Linux delays ACKs up to 40 ms (Orthanc's C-MOVE: ~45 ms on 1 instance in 10)."""
    import socket

    from core.pacs.association import _recv_exactly

    if not hasattr(socket, "TCP_QUICKACK"):
        pytest.skip("TCP_QUICKACK is Linux-only")
    sock = _RecordingSocket(bytes(range(256)) * 40, step=4000)
    transport = type("T", (), {"socket": sock})()
    assert bytes(_recv_exactly(transport, 10240)) == (bytes(range(256)) * 40)
    quick = ("opt", socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    reads = [c for c in sock.calls if c[0] == "read"]
    assert len(reads) == 3 and sock.calls == [quick, reads[0], quick, reads[1], quick, reads[2]]
    short = _RecordingSocket(b"abc", step=10)
    assert bytes(_recv_exactly(type("T", (), {"socket": short})(), 6)) == b"abc"  # closed early: what came
