"""C-GET / C-MOVE of a study (or one series) from a PACS node into the store: resumable, retried, complete or not.

One association per attempt carries everything for the study: C-FIND at IMAGE level lists the instances the PACS
holds (the expected set and the progress total), instances already in the store are skipped (resume), and the rest
is requested with C-GET (or C-MOVE to our own storage SCP, which speaks DICOM TLS for a TLS node) - the whole study
or series when nothing of it is here, else the missing SOP Instance UIDs. Received bytes are stored unchanged
(core.pacs.receiver). When the association drops or cannot be opened, the retrieve waits (back-off 1 s, 2 s, 4 s,
... times `backoff_s`) and tries again, up to node.retries times; a C-MOVE the PACS could not deliver because the
TLS handshake with our SCP failed is not retried (the error says why). The study is marked complete only when every
expected instance is in the store, and partial when the retrieve finds instances the PACS holds missing here, also
after a file import had marked it complete (core.pacs.study_state).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association

from core.errors import PermissionDeniedError
from core.pacs.association import (
    FIND_MODEL,
    GET_MODEL,
    MOVE_MODEL,
    LocalAE,
    open_association,
)
from core.pacs.move_scp import StorageScp
from core.pacs.nodes import PacsError, PacsNode
from core.pacs.query import _int, count_instances, list_instances
from core.pacs.receiver import Received, StoreSink
from core.pacs.study_state import has_any, missing_instances, set_study_status, stored_sops
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.store import Store
from core.store.users import record_access

__all__ = ["RetrieveCancelledError", "RetrieveProgress", "RetrieveReport", "retrieve_study"]

log = logging.getLogger(__name__)
Method = Literal["get", "move"]
_UIDS_PER_REQUEST = 64


class RetrieveCancelledError(PacsError):
    """The retrieve was cancelled; what arrived is stored, a new retrieve resumes."""


class _RetryableError(PacsError):
    """The association dropped or could not be opened: worth another attempt."""


@dataclass(frozen=True)
class RetrieveProgress:
    """done/total instances of the request (already stored ones included); MB/s over this run (1 MB = 10^6 B)."""

    done: int
    total: int
    received_bytes: int
    elapsed_s: float

    @property
    def mb_per_s(self) -> float:
        return self.received_bytes / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class RetrieveReport:
    study_uid: str
    node: str
    method: Method
    total: int = 0
    already_present: int = 0
    received: int = 0
    stored: int = 0
    received_bytes: int = 0
    attempts: int = 0
    seconds: float = 0.0
    complete: bool = False
    conflicts: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        """Received megabytes (10^6 bytes) per second of the whole retrieve, queries and storage included."""
        return self.received_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def _requests(
    study_uid: str, series_uid: str, expected: dict[str, tuple[str, str]], missing: set[str]
) -> list[Dataset]:
    """Identifiers for what is missing: the study, whole series, or lists of SOP Instance UIDs."""

    def ident(level: str, series: str = "", sops: list[str] | None = None) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        ds.StudyInstanceUID = study_uid
        if series:
            ds.SeriesInstanceUID = series
        if sops is not None:
            ds.SOPInstanceUID = sops
        return ds

    if missing == set(expected):
        return [ident("SERIES", series_uid) if series_uid else ident("STUDY")]
    by_series: dict[str, list[str]] = defaultdict(list)
    for sop in sorted(missing):
        by_series[expected[sop][0]].append(sop)
    out = []
    for series, sops in by_series.items():
        if len(sops) == sum(1 for s, _ in expected.values() if s == series):
            out.append(ident("SERIES", series))
        else:
            out.extend(
                ident("IMAGE", series, sops[i : i + _UIDS_PER_REQUEST]) for i in range(0, len(sops), _UIDS_PER_REQUEST)
            )
    return out


def _run_request(
    assoc: Association,
    ds: Dataset,
    method: Method,
    dest_ae: str,
    msg_id: int,
    cancel: threading.Event | None,
    on_pending: Callable[[int], None] | None = None,
) -> tuple[int, int, int | None]:
    """Send one C-GET/C-MOVE and follow it to its final status; returns (failed sub-operations, final status,
    completed + warning sub-operations when the final response states them, else None). on_pending(total) gets
    the sub-operation total the PACS states in its pending responses."""
    model = GET_MODEL if method == "get" else MOVE_MODEL
    if method == "get":
        responses = assoc.send_c_get(ds, model, msg_id=msg_id)
    else:
        responses = assoc.send_c_move(ds, dest_ae, model, msg_id=msg_id)
    cancelled = False
    final: Dataset | None = None
    for status, _identifier in responses:
        final = status
        if on_pending is not None and int(status.get("Status", 0)) in (0xFF00, 0xFF01):
            counts = [_int(status.get(k)) for k in _SUBOPERATION_COUNTS]
            if counts[0] is not None:
                on_pending(sum(c or 0 for c in counts))
        if cancel is not None and cancel.is_set() and not cancelled:
            ctx = assoc._get_valid_context(model, "", "scu")
            assoc.send_c_cancel(msg_id, ctx.context_id)
            cancelled = True
    if final is None or "Status" not in final or assoc.is_aborted or not assoc.is_established:
        raise _RetryableError("the association with the PACS dropped during the transfer")
    code = int(final.Status)
    if code == 0xFE00 or cancelled:
        raise RetrieveCancelledError("the retrieve was cancelled")
    if code not in (0x0000, 0xB000) and code & 0xF000 not in (0xA000, 0xC000):
        raise _RetryableError(f"the PACS ended the retrieve with status 0x{code:04X}")
    if code & 0xF000 in (0xA000, 0xC000) and "NumberOfFailedSuboperations" not in final:
        raise PacsError(f"the PACS refused the retrieve (status 0x{code:04X})")
    completed = _int(final.get("NumberOfCompletedSuboperations"))
    if completed is not None:
        completed += _int(final.get("NumberOfWarningSuboperations")) or 0
    return int(final.get("NumberOfFailedSuboperations", 0) or 0), code, completed


_SUBOPERATION_COUNTS = (
    "NumberOfRemainingSuboperations",
    "NumberOfCompletedSuboperations",
    "NumberOfFailedSuboperations",
    "NumberOfWarningSuboperations",
)


def retrieve_study(
    store: Store,
    access: Access,
    local: LocalAE,
    node: PacsNode,
    study_uid: str,
    *,
    series_uid: str = "",
    method: Method = "get",
    progress: Callable[[RetrieveProgress], None] | None = None,
    cancel: threading.Event | None = None,
    backoff_s: float = 1.0,
    batch_size: int = 32,
    sleep: Callable[[float], None] = time.sleep,
) -> RetrieveReport:
    """Retrieve the study (or one series) from `node` into the store; see the module docstring.

    Raises PacsError when the PACS refuses, or when the retrieve is still incomplete after node.retries retries
    (what arrived stays stored: run it again to resume); RetrieveCancelledError when `cancel` was set.
    """
    if access.permission is not Permission.IMPORT_STUDIES:
        raise PermissionDeniedError("retrieving studies needs the 'import_studies' permission")
    report = RetrieveReport(study_uid=study_uid, node=node.name, method=method)
    start = time.perf_counter()
    state = {"present": 0, "total": 0, "requests": 0}
    expected: dict[str, tuple[str, str]] = {}

    def on_received(r: Received) -> None:
        if progress is not None:
            progress(RetrieveProgress(state["present"] + r.instances, state["total"], r.bytes, r.elapsed_s))

    sink = StoreSink(store, access, batch_size=batch_size, on_received=on_received)
    scp: StorageScp | None = None
    last_error: PacsError | None = None
    cancelled = False
    try:
        if method == "move":
            scp = StorageScp(local, node, sink)
        while report.attempts <= node.retries:
            if report.attempts:
                delay = backoff_s * 2 ** (report.attempts - 1)
                log.info("retrieve of %s: attempt %d in %.1f s (%s)", study_uid, report.attempts + 1, delay, last_error)
                sleep(delay)
            report.attempts += 1
            received_before = sink.received.instances
            state["requests"] = 0  # C-GET/C-MOVE requests sent in this attempt
            if scp is not None:
                scp.begin_attempt()
            try:
                if _attempt(store, local, node, study_uid, series_uid, method, sink, state, expected, report, cancel):
                    break
            except RetrieveCancelledError:
                cancelled = True
                break
            except PacsError as exc:
                last_error = exc
                retry = isinstance(exc, _RetryableError) or (
                    ("cannot connect" in str(exc) or "no association" in str(exc)) and "TLS failed" not in str(exc)
                )
                if scp is not None and state["requests"] and sink.received.instances == received_before:
                    why = scp.why_nothing_arrived()
                    if why:
                        last_error = PacsError(f"{exc}; {why}")
                    if scp.tls_failures:
                        break  # a certificate or TLS set-up problem: another attempt would fail the same way
                if not retry:
                    if last_error is exc:
                        raise
                    raise last_error from exc
        sink_report = sink.close()
    except BaseException:
        sink.close()
        raise
    finally:
        if scp is not None:
            scp.shutdown()
    received = sink.received
    report.received, report.received_bytes = received.instances, received.bytes
    report.stored = sink_report.stored
    report.conflicts = list(sink_report.conflicts)
    report.damaged = [why for _, why in sink_report.damaged]
    report.seconds = time.perf_counter() - start
    if sink.error is not None:
        raise PacsError(f"storing received instances failed: {sink.error}") from sink.error
    _finish(store, access, node, study_uid, series_uid, set(expected), report)
    if cancelled:
        raise RetrieveCancelledError(
            f"retrieve of study {study_uid} cancelled: {report.already_present + report.stored}/{report.total} "
            "instances stored. What arrived is kept; run the retrieve again to resume."
        )
    if not report.complete:
        raise PacsError(
            f"retrieve of study {study_uid} from {node.name} is incomplete after {report.attempts} attempt(s): "
            f"{report.already_present + report.stored}/{report.total or '?'} instances stored ({last_error}). "
            "What arrived is kept; run the retrieve again to resume."
        )
    return report


def _attempt(
    store: Store,
    local: LocalAE,
    node: PacsNode,
    study_uid: str,
    series_uid: str,
    method: Method,
    sink: StoreSink,
    state: dict[str, int],
    expected: dict[str, tuple[str, str]],
    report: RetrieveReport,
    cancel: threading.Event | None,
) -> bool:
    """One association; True when nothing is missing afterwards.

    When nothing of the study (series) is stored yet, the listing is skipped (it costs about a tenth of a retrieve):
    everything is requested, and the instances received are the expected set if the PACS ends with Success and
    their number matches its count of completed sub-operations (or, from a PACS that states none, its C-FIND
    count). Otherwise the attempt fails and the next one lists the instances and resumes.
    """
    model = GET_MODEL if method == "get" else MOVE_MODEL
    handlers = [(evt.EVT_C_STORE, sink.handle)] if method == "get" else []
    with open_association(
        local, node, query=[FIND_MODEL, model], storage_scp=method == "get", evt_handlers=handlers
    ) as assoc:
        if report.attempts == 1 and not has_any(store, study_uid, series_uid):
            return _attempt_whole(
                assoc, store, local, node, study_uid, series_uid, method, sink, state, expected, report, cancel
            )
        listed = list_instances(assoc, study_uid, series_uid)  # a failed listing keeps the last one
        expected.clear()
        expected.update(listed)
        if not expected:
            raise PacsError(
                f"PACS {node.name} has no instances for study {study_uid}"
                + (f" series {series_uid}" if series_uid else "")
            )
        sink.flush()
        present = stored_sops(store, expected)
        missing = set(expected) - present
        if report.attempts == 1:
            report.already_present = len(present)
        report.total = len(expected)
        state["present"], state["total"] = len(present) - sink.received.instances, len(expected)
        failed = 0
        for msg_id, ds in enumerate(_requests(study_uid, series_uid, expected, missing), start=1):
            state["requests"] += 1
            failed += _run_request(assoc, ds, method, local.ae_title, msg_id, cancel)[0]
    sink.flush()
    still = set(expected) - stored_sops(store, expected)
    if still and not failed:
        raise _RetryableError(f"{len(still)} instance(s) did not arrive")
    if still:
        raise _RetryableError(f"the PACS reported {failed} failed sub-operation(s)")
    return True


def _attempt_whole(
    assoc: Association,
    store: Store,
    local: LocalAE,
    node: PacsNode,
    study_uid: str,
    series_uid: str,
    method: Method,
    sink: StoreSink,
    state: dict[str, int],
    expected: dict[str, tuple[str, str]],
    report: RetrieveReport,
    cancel: threading.Event | None,
) -> bool:
    """The first attempt when nothing is stored: request the whole study (series) without listing or counting it
    first. The total comes from the PACS's pending responses for progress; completeness from its final response
    (completed sub-operations, every one of them received and stored). A PACS that states no counts is asked with
    a C-FIND afterwards (each C-FIND costs ~50 ms against Orthanc, a twentieth of a 150 MB retrieve)."""
    what = f"study {study_uid}" + (f" series {series_uid}" if series_uid else "")
    state["present"], state["total"] = 0, 0

    def on_pending(total: int) -> None:
        state["total"] = report.total = total

    ds = _requests(study_uid, series_uid, {"": (series_uid, "")}, {""})[0]
    state["requests"] += 1
    failed, code, completed = _run_request(assoc, ds, method, local.ae_title, 1, cancel, on_pending)
    sink.flush()
    got = set(sink.sop_uids)
    if completed is None or (not got and not failed):
        total = count_instances(assoc, study_uid, series_uid)
        if total == 0:
            raise PacsError(f"PACS {node.name} has no instances for {what}")
    else:
        total = completed + failed
    report.total = state["total"] = total
    if code != 0x0000 or failed or len(got) < total or stored_sops(store, got) != got:
        raise _RetryableError(f"{len(got)} of {total} instance(s) arrived (final status 0x{code:04X})")
    expected.clear()  # only now are the instances received the PACS's whole set
    expected.update(dict.fromkeys(got, (series_uid, "")))
    return True


def _finish(
    store: Store,
    access: Access,
    node: PacsNode,
    study_uid: str,
    series_uid: str,
    expected: set[str],
    report: RetrieveReport,
) -> None:
    """Set the study's status (core.pacs.study_state: complete when every instance the PACS listed for the study is
    here, partial when some the PACS holds are missing) and audit the retrieve's outcome."""
    missing = missing_instances(store, study_uid, series_uid, expected, report.total)
    report.complete = bool(expected) and missing == 0  # with a listing, missing counts exactly its absent instances
    with store.transaction() as conn:
        if report.complete and not series_uid:
            set_study_status(conn, study_uid, "complete")
        elif missing:
            set_study_status(conn, study_uid, "partial")
        record_access(
            conn,
            access,
            "pacs.retrieve",
            outcome="success" if report.complete else "minor_failure",
            objects=[AuditObject("pacs_node", node.name), AuditObject("study", study_uid)],
            details={
                "method": report.method,
                "series": series_uid,
                "total": report.total,
                "already_present": report.already_present,
                "stored": report.stored,
                "attempts": report.attempts,
                "complete": report.complete,
            },
        )
