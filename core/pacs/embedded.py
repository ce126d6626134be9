"""An embedded PACS: an in-process pynetdicom C-ECHO / C-FIND / C-GET / C-MOVE / C-STORE SCP over a folder of
DICOM files or in-memory datasets, on a free loopback port. Used by `radplan demo` (no external server needed) and
by tests; instances received by C-STORE are kept in memory (and written to ``store_dir`` when given).

Query/Retrieve: Study Root at STUDY, SERIES and IMAGE level; matching is exact (a list of UIDs matches any of them),
``*`` and ``?`` wildcards for text, empty means universal. C-MOVE destinations are AE title -> (host, port) pairs.
"""

from __future__ import annotations

import fnmatch
import logging
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt

from core.pacs.association import FIND_MODEL, GET_MODEL, MOVE_MODEL, RETRIEVE_SOP_CLASSES, VERIFICATION

__all__ = ["EmbeddedPacs", "free_port", "received_by_class"]

log = logging.getLogger(__name__)

_STUDY_KEYS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
               "StudyTime", "AccessionNumber", "StudyDescription", "StudyID", "ReferringPhysicianName")  # fmt: skip
_SERIES_KEYS = ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription")
_IMAGE_KEYS = ("SOPInstanceUID", "SOPClassUID", "InstanceNumber")


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _matches(value: object, wanted: object) -> bool:
    if (
        wanted is None
        or wanted == ""
        or (isinstance(wanted, list | tuple | pydicom.multival.MultiValue) and not wanted)
    ):
        return True
    if isinstance(wanted, list | tuple | pydicom.multival.MultiValue):
        return str(value) in {str(w) for w in wanted}
    text = str(wanted)
    if "*" in text or "?" in text:
        return fnmatch.fnmatchcase(str(value), text)
    if "-" in text and len(text) in (9, 17) and text.replace("-", "").isdigit():  # a date range YYYYMMDD-YYYYMMDD
        low, high = text.split("-")
        return (not low or str(value) >= low) and (not high or str(value) <= high)
    return str(value) == text


@dataclass
class EmbeddedPacs:
    """A small PACS in this process. ``start()`` binds 127.0.0.1 on a free port (``port``), ``stop()`` shuts down.

    ``move_destinations``: AE title -> (host, port) for C-MOVE. ``store_dir``: where C-STORE'd instances are also
    written (``<SOPInstanceUID>.dcm``).
    """

    ae_title: str = "RADPLANDEMO"
    move_destinations: dict[str, tuple[str, int]] = field(default_factory=dict)
    store_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    _datasets: dict[str, Dataset] = field(default_factory=dict, init=False, repr=False)
    _received: list[str] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _server: Any = field(default=None, init=False, repr=False)

    # --- content -------------------------------------------------------------------------------------------------
    def add(self, datasets: Iterable[Dataset]) -> int:
        """Hold these datasets (by SOP Instance UID; a later one replaces an earlier one). Returns the count."""
        n = 0
        with self._lock:
            for ds in datasets:
                self._datasets[str(ds.SOPInstanceUID)] = ds
                n += 1
        return n

    def add_folder(self, folder: Path) -> int:
        """Hold every DICOM file under ``folder`` (non-DICOM files are skipped)."""
        found = []
        for path in sorted(Path(folder).rglob("*")):
            if not path.is_file():
                continue
            try:
                found.append(pydicom.dcmread(path))
            except (InvalidDicomError, OSError, ValueError):
                continue
        return self.add(found)

    @property
    def datasets(self) -> list[Dataset]:
        with self._lock:
            return list(self._datasets.values())

    @property
    def received(self) -> list[Dataset]:
        """The instances received by C-STORE, in arrival order."""
        with self._lock:
            return [self._datasets[uid] for uid in self._received if uid in self._datasets]

    # --- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> EmbeddedPacs:
        if self._server is not None:
            return self
        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(VERIFICATION)
        for model in (FIND_MODEL, GET_MODEL, MOVE_MODEL):
            ae.add_supported_context(model)
        for sop_class in RETRIEVE_SOP_CLASSES:
            ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
        for sop_class in RETRIEVE_SOP_CLASSES:  # C-MOVE sub-operations: we are the SCU of the destination
            ae.add_requested_context(sop_class)
        handlers: list[Any] = [
            (evt.EVT_C_ECHO, lambda _e: 0x0000),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_GET, self._on_get),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_C_STORE, self._on_store),
        ]
        port = self.port or free_port()
        self._server = ae.start_server((self.host, port), block=False, evt_handlers=handlers)
        self.port = port
        log.info("embedded PACS %s listening on %s:%d", self.ae_title, self.host, port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> EmbeddedPacs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- matching ------------------------------------------------------------------------------------------------
    def _select(self, identifier: Dataset) -> list[Dataset]:
        keys = [k for k in (*_STUDY_KEYS, *_SERIES_KEYS, *_IMAGE_KEYS) if k in identifier]
        out = []
        for ds in self.datasets:
            if all(_matches(ds.get(k, ""), identifier.get(k)) for k in keys):
                out.append(ds)
        return out

    def _find_results(self, identifier: Dataset) -> Iterator[Dataset]:
        level = str(identifier.get("QueryRetrieveLevel", "STUDY")).upper()
        matched = self._select(identifier)
        group_key = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID"}.get(level, "SOPInstanceUID")
        groups: dict[str, list[Dataset]] = {}
        for ds in matched:
            groups.setdefault(str(ds.get(group_key, "")), []).append(ds)
        for members in groups.values():
            first = members[0]
            result = Dataset()
            result.QueryRetrieveLevel = level
            for elem in identifier:
                keyword = elem.keyword
                if not keyword or keyword == "QueryRetrieveLevel":
                    continue
                if keyword == "ModalitiesInStudy":
                    study = [d for d in self.datasets if d.StudyInstanceUID == first.StudyInstanceUID]
                    result.ModalitiesInStudy = sorted({str(d.Modality) for d in study})
                elif keyword == "NumberOfStudyRelatedInstances":
                    result.NumberOfStudyRelatedInstances = sum(
                        1 for d in self.datasets if d.StudyInstanceUID == first.StudyInstanceUID
                    )
                elif keyword == "NumberOfStudyRelatedSeries":
                    result.NumberOfStudyRelatedSeries = len(
                        {d.SeriesInstanceUID for d in self.datasets if d.StudyInstanceUID == first.StudyInstanceUID}
                    )
                elif keyword == "NumberOfSeriesRelatedInstances":
                    result.NumberOfSeriesRelatedInstances = len(members) if level == "SERIES" else 1
                elif keyword in first:
                    setattr(result, keyword, first.get(keyword))
                else:
                    setattr(result, keyword, "")
            if "StudyInstanceUID" not in result:
                result.StudyInstanceUID = first.StudyInstanceUID
            yield result

    # --- handlers ------------------------------------------------------------------------------------------------
    def _on_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        for result in self._find_results(event.identifier):
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, result

    def _on_get(self, event: Any) -> Iterator[Any]:
        matched = self._select(event.identifier)
        yield len(matched)
        for ds in matched:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, ds

    def _on_move(self, event: Any) -> Iterator[Any]:
        destination = self.move_destinations.get(str(event.move_destination).strip())
        if destination is None:
            yield None, None  # unknown destination: 0xA801
            return
        yield destination[0], destination[1]
        matched = self._select(event.identifier)
        yield len(matched)
        for ds in matched:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, ds

    def _on_store(self, event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        uid = str(ds.SOPInstanceUID)
        with self._lock:
            self._datasets[uid] = ds
            self._received.append(uid)
        if self.store_dir is not None:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            ds.save_as(self.store_dir / f"{uid}.dcm", enforce_file_format=True)
        return 0x0000


def received_by_class(pacs: EmbeddedPacs) -> Mapping[str, int]:
    """SOP Class UID -> how many instances of it the PACS received by C-STORE."""
    counts: dict[str, int] = {}
    for ds in pacs.received:
        counts[str(ds.SOPClassUID)] = counts.get(str(ds.SOPClassUID), 0) + 1
    return counts
