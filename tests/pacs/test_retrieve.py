"""C-GET / C-MOVE retrieve from a real Orthanc into the encrypted store: complete, resumable, no duplicates."""

from __future__ import annotations

import io
import threading

import pydicom
import pytest
from conftest import IMPORTER, DemoStudy, node_for
from orthanc_server import OrthancServer

from core.pacs.association import LocalAE
from core.pacs.nodes import PacsError
from core.pacs.retrieve import RetrieveCancelledError, RetrieveProgress, retrieve_study
from core.store.blobs import stored_bytes
from core.store.store import Store

pytestmark = pytest.mark.pacs


def stored_sops(store: Store) -> list[str]:
    return [str(r[0]) for r in store.query("SELECT sop_uid FROM instances ORDER BY sop_uid")]


def study_status(store: Store, uid: str) -> str:
    return str(store.query("SELECT status FROM studies WHERE study_uid = ?", (uid,))[0][0])


def assert_same_as_source(store: Store, demo: DemoStudy) -> None:
    """Every source instance is stored once, with the same data set (element by element, pixels included)."""
    source = {str(pydicom.dcmread(p).SOPInstanceUID): pydicom.dcmread(p) for p in demo.files}
    assert stored_sops(store) == sorted(source)
    for sop, blob, inline in store.query(
        "SELECT i.sop_uid, i.blob, d.data FROM instances i LEFT JOIN instance_data d ON d.instance_fk = i.id"
    ):
        got = pydicom.dcmread(io.BytesIO(stored_bytes(store.conn, blob, inline)))
        want = source[str(sop)]
        assert got == want, f"{sop} differs from the uploaded file"


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieve_complete_then_again_adds_nothing(
    passphrase_store: Store, orthanc: OrthancServer, demo_study: DemoStudy, local: LocalAE, method: str
) -> None:
    seen: list[RetrieveProgress] = []
    report = retrieve_study(
        passphrase_store,
        IMPORTER,
        local,
        node_for(orthanc),
        demo_study.study_uid,
        method=method,  # type: ignore[arg-type]
        progress=seen.append,
    )
    n = len(demo_study.files)
    assert (report.total, report.stored, report.already_present, report.complete) == (n, n, 0, True)
    assert report.attempts == 1 and report.received_bytes > sum(p.stat().st_size for p in demo_study.ct_files) * 0.9
    assert [p.done for p in seen] == list(range(1, n + 1)) and seen[-1].total == n
    if method == "get":  # the total comes from the PACS's first pending response, no C-FIND needed
        assert all(p.total == n for p in seen[1:])
    assert study_status(passphrase_store, demo_study.study_uid) == "complete"
    assert_same_as_source(passphrase_store, demo_study)
    audit = passphrase_store.query("SELECT details FROM audit WHERE action = 'pacs.retrieve'")
    assert len(audit) == 1 and '"complete":true' in str(audit[0][0])

    again = retrieve_study(passphrase_store, IMPORTER, local, node_for(orthanc), demo_study.study_uid)
    assert (again.already_present, again.stored, again.received, again.complete) == (n, 0, 0, True)
    assert len(stored_sops(passphrase_store)) == n
    assert passphrase_store.query("SELECT count(DISTINCT blob) FROM instances")[0][0] == n
    assert len(list(passphrase_store.paths.instances.glob("*/*"))) == n  # no duplicated file either


def test_resume_fetches_only_what_is_missing(
    passphrase_store: Store, orthanc: OrthancServer, demo_study: DemoStudy, local: LocalAE
) -> None:
    from core.dicom.importer import import_paths

    import_paths(passphrase_store, IMPORTER, demo_study.ct_files[:10])  # as if a first retrieve had stopped
    report = retrieve_study(passphrase_store, IMPORTER, local, node_for(orthanc), demo_study.study_uid)
    n = len(demo_study.files)
    assert (report.already_present, report.stored, report.received, report.complete) == (10, n - 10, n - 10, True)
    assert len(stored_sops(passphrase_store)) == n


def test_one_series_only(
    passphrase_store: Store, orthanc: OrthancServer, demo_study: DemoStudy, local: LocalAE
) -> None:
    ct_series = str(pydicom.dcmread(demo_study.ct_files[0]).SeriesInstanceUID)
    report = retrieve_study(
        passphrase_store, IMPORTER, local, node_for(orthanc), demo_study.study_uid, series_uid=ct_series
    )
    assert (report.total, report.stored, report.complete) == (len(demo_study.ct_files),) * 2 + (True,)
    # a series alone does not make the study complete
    assert study_status(passphrase_store, demo_study.study_uid) == "partial"


def test_refused_association_is_a_clear_error(
    passphrase_store: Store, orthanc: OrthancServer, demo_study: DemoStudy, local: LocalAE
) -> None:
    wrong = node_for(orthanc, ae_title="NOT-ORTHANC")
    with pytest.raises(PacsError, match="refused the association"):
        retrieve_study(passphrase_store, IMPORTER, local, wrong, demo_study.study_uid, backoff_s=0.01)
    assert stored_sops(passphrase_store) == []


def test_unknown_study_is_a_clear_error(passphrase_store: Store, orthanc: OrthancServer, local: LocalAE) -> None:
    with pytest.raises(PacsError, match="has no instances"):
        retrieve_study(passphrase_store, IMPORTER, local, node_for(orthanc), "1.2.3.4.5.6.7", backoff_s=0.01)


def test_pacs_killed_mid_retrieve_then_again_is_complete_without_duplicates(
    passphrase_store: Store, own_orthanc: OrthancServer, demo_study: DemoStudy, local: LocalAE
) -> None:
    killed = threading.Event()

    def kill_after_five(p: RetrieveProgress) -> None:
        if p.done == 5 and not killed.is_set():
            killed.set()
            own_orthanc.stop(kill=True)  # SIGKILL, as a crash

    node = node_for(own_orthanc, retries=1, timeout_s=3.0)
    with pytest.raises(PacsError, match="incomplete after 2 attempt") as exc:
        retrieve_study(
            passphrase_store, IMPORTER, local, node, demo_study.study_uid, progress=kill_after_five, backoff_s=0.05
        )
    assert "run the retrieve again to resume" in str(exc.value)
    partial = stored_sops(passphrase_store)
    assert 5 <= len(partial) < len(demo_study.files)
    assert study_status(passphrase_store, demo_study.study_uid) == "partial"

    own_orthanc.start()  # same storage folder and ports
    report = retrieve_study(passphrase_store, IMPORTER, local, node, demo_study.study_uid)
    assert report.complete and report.already_present == len(partial)
    assert report.stored == len(demo_study.files) - len(partial)
    assert study_status(passphrase_store, demo_study.study_uid) == "complete"
    assert_same_as_source(passphrase_store, demo_study)


def test_dropped_association_is_retried_with_back_off(
    passphrase_store: Store, own_orthanc: OrthancServer, demo_study: DemoStudy, local: LocalAE
) -> None:
    """The PACS dies mid-transfer and comes back during the back-off: one call ends complete."""
    restarted = threading.Event()

    def kill_and_restart(p: RetrieveProgress) -> None:
        if p.done == 3 and not restarted.is_set():
            restarted.set()
            own_orthanc.stop(kill=True)
            threading.Thread(target=own_orthanc.start).start()

    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        import time

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # wait for Orthanc to be back, as a longer back-off would
            if own_orthanc.process is not None:
                try:
                    own_orthanc.get_json("/system")
                    return
                except OSError:
                    pass
            time.sleep(0.05)

    node = node_for(own_orthanc, retries=3)
    report = retrieve_study(
        passphrase_store,
        IMPORTER,
        local,
        node,
        demo_study.study_uid,
        progress=kill_and_restart,
        backoff_s=0.5,
        sleep=sleep,
    )
    assert report.complete and report.attempts >= 2 and delays[0] == 0.5
    assert_same_as_source(passphrase_store, demo_study)


def test_cancel_keeps_what_arrived_and_a_new_retrieve_resumes(
    passphrase_store: Store, orthanc: OrthancServer, demo_study: DemoStudy, local: LocalAE
) -> None:
    cancel = threading.Event()

    def cancel_after_four(p: RetrieveProgress) -> None:
        if p.done >= 4:
            cancel.set()

    node = node_for(orthanc)
    with pytest.raises(RetrieveCancelledError, match="cancelled") as exc:
        retrieve_study(
            passphrase_store, IMPORTER, local, node, demo_study.study_uid, progress=cancel_after_four, cancel=cancel
        )
    assert "run the retrieve again to resume" in str(exc.value)
    kept = len(stored_sops(passphrase_store))
    assert 4 <= kept < len(demo_study.files)
    assert study_status(passphrase_store, demo_study.study_uid) == "partial"
    report = retrieve_study(passphrase_store, IMPORTER, local, node, demo_study.study_uid)
    assert report.complete and report.already_present == kept
    assert_same_as_source(passphrase_store, demo_study)


@pytest.mark.parametrize("scope", ["study", "series"])
def test_a_retrieve_that_finds_instances_missing_marks_an_imported_study_partial(
    passphrase_store: Store, orthanc: OrthancServer, demo_study: DemoStudy, local: LocalAE, scope: str
) -> None:
    """A file import marks its study complete; a later retrieve that establishes that the PACS holds instances of it
    that are not stored (from the PACS's listing of the study; from its count for a series none of which is
    stored, the whole-series request) marks it partial, and a full retrieve completes it again."""
    from core.dicom.importer import import_paths

    ct_series = str(pydicom.dcmread(demo_study.ct_files[0]).SeriesInstanceUID)
    if scope == "study":
        imported, series_uid, done_before = demo_study.ct_files[:5], "", 5
    else:  # the RT objects only: nothing of the CT series is stored
        imported, series_uid, done_before = sorted(set(demo_study.files) - set(demo_study.ct_files)), ct_series, 0
    import_paths(passphrase_store, IMPORTER, imported)  # what `radplan import` does
    assert study_status(passphrase_store, demo_study.study_uid) == "complete"
    assert len(stored_sops(passphrase_store)) == len(imported)

    cancel = threading.Event()

    def cancel_after_three(p: RetrieveProgress) -> None:
        if p.done >= done_before + 3:
            cancel.set()

    node = node_for(orthanc)
    with pytest.raises(RetrieveCancelledError, match="cancelled"):
        retrieve_study(
            passphrase_store,
            IMPORTER,
            local,
            node,
            demo_study.study_uid,
            series_uid=series_uid,
            progress=cancel_after_three,
            cancel=cancel,
        )
    kept = len(stored_sops(passphrase_store))
    assert len(imported) + 3 <= kept < len(demo_study.files)
    assert study_status(passphrase_store, demo_study.study_uid) == "partial"
    audit = passphrase_store.query("SELECT details FROM audit WHERE action = 'pacs.retrieve' ORDER BY seq")
    assert len(audit) == 1 and '"complete":false' in str(audit[0][0])

    report = retrieve_study(passphrase_store, IMPORTER, local, node, demo_study.study_uid)
    assert report.complete and report.already_present == kept
    assert report.stored == len(demo_study.files) - kept
    assert study_status(passphrase_store, demo_study.study_uid) == "complete"
    assert_same_as_source(passphrase_store, demo_study)  # every instance once, unchanged


def test_sub_operation_counts_are_read_from_the_responses() -> None:
    """The total for progress comes from pending responses; a final response without counts says so (None), and
    the retrieve then counts with a C-FIND instead of trusting nothing."""
    from pydicom.dataset import Dataset

    from core.pacs.retrieve import _run_request

    def status(code: int, **counts: int) -> Dataset:
        ds = Dataset()
        ds.Status = code
        for keyword, value in counts.items():
            setattr(ds, keyword, value)
        return ds

    class Assoc:  # the responses a PACS sends to one C-GET, nothing else
        is_aborted, is_established = False, True

        def __init__(self, responses: list[Dataset]) -> None:
            self.responses = responses

        def send_c_get(self, *_a: object, **_k: object) -> list[tuple[Dataset, None]]:
            return [(r, None) for r in self.responses]

    pending = [status(0xFF00, NumberOfRemainingSuboperations=4 - i, NumberOfCompletedSuboperations=i,
                      NumberOfFailedSuboperations=0, NumberOfWarningSuboperations=0) for i in range(1, 4)]  # fmt: skip
    totals: list[int] = []
    final = status(0x0000, NumberOfCompletedSuboperations=3, NumberOfWarningSuboperations=1)
    got = _run_request(Assoc([*pending, final]), Dataset(), "get", "US", 1, None, totals.append)  # type: ignore[arg-type]
    assert got == (0, 0x0000, 4) and totals == [4, 4, 4]
    bare = _run_request(Assoc([status(0x0000)]), Dataset(), "get", "US", 1, None, totals.append)  # type: ignore[arg-type]
    assert bare == (0, 0x0000, None)


def test_associations_are_tuned_for_throughput(orthanc: OrthancServer, local: LocalAE) -> None:
    """TCP_NODELAY (no 40 ms delayed-ACK wait per request), whole-PDU reads, no per-message log formatting, and the
    short poll only where instances stream (a waiting C-MOVE/C-FIND association polls at pynetdicom's pace)."""
    import socket

    from pynetdicom import evt
    from pynetdicom._handlers import standard_dimse_recv_handler

    from core.pacs.association import DUL_POLL_S, FIND_MODEL, GET_MODEL, _recv_exactly, open_association

    for storage_scp in (True, False):
        with open_association(local, node_for(orthanc), query=[FIND_MODEL, GET_MODEL], storage_scp=storage_scp) as a:
            transport = a.dul.socket
            assert transport.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert transport.recv.__func__ is _recv_exactly
            assert standard_dimse_recv_handler not in [h for h, _ in a.get_handlers(evt.EVT_DIMSE_RECV)]
            assert (a.dul._run_loop_delay == DUL_POLL_S) is storage_scp
