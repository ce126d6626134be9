"""Receiving C-STORE sub-operations: the encoded bytes go through a parser thread to a writer thread that stores
them in batches.

The network thread only copies the bytes as received (`event.encoded_dataset()`, never decoded and re-encoded)
onto a bounded queue and answers Success. A parser thread reads the header for indexing and hashes the bytes
(SHA-256 runs without the GIL); a writer thread stores what is parsed in one transaction per batch with its audit
entry through the importer's storage function. The two stages overlap: the writer's file writes and fsyncs (GIL
released) run while the next instances are parsed. A batch is whatever is parsed when the writer is ready, waiting
up to `batch_wait_s` for more (a `flush` ends the wait), up to `batch_size` instances or `batch_bytes`, so a slow
store gets larger (fewer) transactions. Every
queued instance is complete, so a dropped association never leaves half an instance; a storage failure makes the
following sub-operations answer "out of resources" (0xA700) and is reported.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.uid import UID
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from core.dicom.importer import (
    DamagedFileError,
    ImportReport,
    NotDicomError,
    ParsedInstance,
    parse_instance,
    store_instances,
)
from core.security.session import Access
from core.store.store import Store

__all__ = ["Received", "StoreSink", "encoded_instance", "file_meta_bytes"]

log = logging.getLogger(__name__)
_STOP = b""
_FLUSH = "flush"  # on the parsed queue: end the batch being gathered now


@dataclass(frozen=True)
class Received:
    """Counts seen by the network side: instances and bytes received in this run, seconds since it started."""

    instances: int
    bytes: int
    elapsed_s: float


_META_INSTANCE_UID = b"\x02\x00\x03\x00UI"  # (0002,0003) Media Storage SOP Instance UID, explicit VR


@functools.lru_cache(maxsize=256)
def _meta_template(sop_class: str, transfer_syntax: str, uid_length: int) -> tuple[bytes, bytes]:
    """The file meta bytes pynetdicom writes for this class and syntax, split around the SOP Instance UID value
    (same padded length: same group length)."""
    placeholder = "9" * uid_length
    meta = encode_file_meta(
        create_file_meta(
            sop_class_uid=UID(sop_class), sop_instance_uid=UID(placeholder), transfer_syntax=UID(transfer_syntax)
        )
    )
    at = meta.index(_META_INSTANCE_UID) + 8
    return meta[:at], meta[at + uid_length :]


def file_meta_bytes(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """Exactly ``encode_file_meta(create_file_meta(...))`` (what ``event.encoded_dataset()`` prepends), from a
    cached template: building and encoding a FileMetaDataset per instance cost the network thread ~0.5 ms."""
    head, tail = _meta_template(sop_class, transfer_syntax, len(sop_instance))
    return head + sop_instance.encode("ascii") + tail


def encoded_instance(event: Any) -> bytes:
    """``event.encoded_dataset(include_meta=True)``: preamble, file meta and the data set bytes as received."""
    request = event.request
    meta = file_meta_bytes(
        str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID), str(event.context.transfer_syntax)
    )
    with request.DataSet.getbuffer() as received:  # no intermediate copy of the (large) data set
        return b"".join((_PREAMBLE, meta, received))


_PREAMBLE = b"\x00" * 128 + b"DICM"


class StoreSink:
    """An EVT_C_STORE handler (`handle`) feeding a parser and a writer thread; `close()` waits until everything is
    stored."""

    def __init__(
        self,
        store: Store,
        access: Access,
        *,
        batch_size: int = 32,
        batch_bytes: int = 64 * 1024 * 1024,
        batch_wait_s: float = 0.05,
        action: str = "dicom.retrieve",
        on_received: Callable[[Received], None] | None = None,
    ) -> None:
        self.store, self.access, self.batch_size, self.action = store, access, batch_size, action
        self.batch_bytes, self.batch_wait_s = batch_bytes, batch_wait_s
        self.report = ImportReport()
        #: SOP Instance UIDs of every instance received and parsed (stored now, already present or conflicting).
        self.sop_uids: set[str] = set()
        self.error: BaseException | None = None
        self.on_received = on_received
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=4 * batch_size)
        self._parsed: queue.Queue[ParsedInstance | str | None] = queue.Queue(maxsize=4 * batch_size)
        self._count = self._bytes = 0
        self._start = time.perf_counter()
        self._lock = threading.Lock()
        self._parser = threading.Thread(target=self._parse_loop, name="radplan-store-parser", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="radplan-store-writer", daemon=True)
        self._parser.start()
        self._writer.start()

    @property
    def received(self) -> Received:
        with self._lock:
            return Received(self._count, self._bytes, time.perf_counter() - self._start)

    def handle(self, event: Any) -> int:
        """EVT_C_STORE: queue the received bytes; 0x0000 Success, 0xA700 when storing has failed."""
        if self.error is not None:
            return 0xA700
        data = encoded_instance(event)
        self._queue.put(data)
        with self._lock:
            self._count += 1
            self._bytes += len(data)
            received = Received(self._count, self._bytes, time.perf_counter() - self._start)
        if self.on_received is not None:
            self.on_received(received)
        return 0x0000

    def flush(self) -> None:
        """Wait until every instance received so far is stored (or reported)."""
        self._queue.join()  # parsed (the parser hands each item on before marking it done)
        self._parsed.put(_FLUSH)  # the writer stores what it holds now instead of waiting for a fuller batch
        self._parsed.join()  # and stored

    def close(self) -> ImportReport:
        """Store whatever is queued, stop the threads, and return the storage report."""
        self._queue.put(_STOP)
        self._parser.join()
        self._writer.join()
        return self.report

    def _parse_loop(self) -> None:
        while True:
            data = self._queue.get()
            try:
                if data == _STOP:
                    self._parsed.put(None)
                    return
                if self.error is not None:
                    continue
                try:
                    parsed = parse_instance("received.dcm", data, header_only=True)
                except (DamagedFileError, NotDicomError) as exc:
                    self.report.damaged.append(("received instance", str(exc)))
                    continue
                self.sop_uids.add(parsed.sop_uid)
                self._parsed.put(parsed)
            finally:
                self._queue.task_done()

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._parsed.get()
            items = [first]
            size = len(first.data) if isinstance(first, ParsedInstance) else 0
            deadline = time.monotonic() + self.batch_wait_s
            while isinstance(first, ParsedInstance) and len(items) < self.batch_size and size < self.batch_bytes:
                try:  # wait a little for a fuller batch: each one costs a commit and file-system syncs
                    item = self._parsed.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                items.append(item)
                if not isinstance(item, ParsedInstance):  # stop or flush
                    break
                size += len(item.data)
            n = len(items)
            batch = [i for i in items if isinstance(i, ParsedInstance)]
            stopping = any(i is None for i in items)
            if batch and self.error is None:
                self._store(batch)
            for _ in range(n):
                self._parsed.task_done()

    def _store(self, batch: list[ParsedInstance]) -> None:
        try:
            store_instances(self.store, self.access, batch, self.report, action=self.action)
        except BaseException as exc:  # reported by the retrieve; the PACS is told through 0xA700
            log.exception("storing received instances failed")
            self.error = exc
