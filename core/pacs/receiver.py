"""Receiving C-STORE sub-operations: the encoded bytes go to a writer thread that stores them in batches.

The network thread only copies the bytes as received (`event.encoded_dataset()`, never decoded and re-encoded)
onto a bounded queue and answers Success; the writer parses the header for indexing and stores each batch in one
transaction with its audit entry through the importer's storage function. Every queued instance is complete, so
a dropped association never leaves half an instance; a storage failure makes the following sub-operations answer
"out of resources" (0xA700) and is reported.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.dicom.importer import DamagedFileError, ImportReport, NotDicomError, parse_instance, store_instances
from core.security.session import Access
from core.store.store import Store

__all__ = ["Received", "StoreSink"]

log = logging.getLogger(__name__)
_STOP = b""


@dataclass(frozen=True)
class Received:
    """Counts seen by the network side: instances and bytes received in this run, seconds since it started."""

    instances: int
    bytes: int
    elapsed_s: float


class StoreSink:
    """An EVT_C_STORE handler (`handle`) feeding a writer thread; `close()` waits until everything is stored."""

    def __init__(
        self,
        store: Store,
        access: Access,
        *,
        batch_size: int = 32,
        action: str = "dicom.retrieve",
        on_received: Callable[[Received], None] | None = None,
    ) -> None:
        self.store, self.access, self.batch_size, self.action = store, access, batch_size, action
        self.report = ImportReport()
        #: SOP Instance UIDs of every instance received and parsed (stored now, already present or conflicting).
        self.sop_uids: set[str] = set()
        self.error: BaseException | None = None
        self.on_received = on_received
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=4 * batch_size)
        self._count = self._bytes = 0
        self._start = time.perf_counter()
        self._lock = threading.Lock()
        self._writer = threading.Thread(target=self._run, name="radplan-store-writer", daemon=True)
        self._writer.start()

    @property
    def received(self) -> Received:
        with self._lock:
            return Received(self._count, self._bytes, time.perf_counter() - self._start)

    def handle(self, event: Any) -> int:
        """EVT_C_STORE: queue the received bytes; 0x0000 Success, 0xA700 when storing has failed."""
        if self.error is not None:
            return 0xA700
        data = event.encoded_dataset(include_meta=True)
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
        self._queue.join()

    def close(self) -> ImportReport:
        """Store whatever is queued, stop the writer, and return the storage report."""
        self._queue.put(_STOP)
        self._writer.join()
        return self.report

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            while len(items) < self.batch_size:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            n = len(items)
            if _STOP in items:
                stopping = True
                items = [i for i in items if i != _STOP]
            if items and self.error is None:
                self._store(items)
            for _ in range(n):
                self._queue.task_done()

    def _store(self, items: list[bytes]) -> None:
        parsed = []
        for data in items:
            try:
                parsed.append(parse_instance("received.dcm", data, header_only=True))
            except (DamagedFileError, NotDicomError) as exc:
                self.report.damaged.append(("received instance", str(exc)))
        self.sop_uids.update(p.sop_uid for p in parsed)
        try:
            store_instances(self.store, self.access, parsed, self.report, action=self.action)
        except BaseException as exc:  # reported by the retrieve; the PACS is told through 0xA700
            log.exception("storing received instances failed")
            self.error = exc
