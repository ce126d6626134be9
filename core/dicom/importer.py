"""Import DICOM files into the encrypted store, as received bytes.

Files and folders (recursively) and zip archives are accepted. Non-DICOM files are counted and skipped; damaged
DICOM files (truncated, unparsable, missing identifying tags) are reported by name and not stored. Instances are
committed in batches, each batch in one transaction together with its audit entry, with the SOP Instance UID as a
unique key: a killed import leaves whole batches only, and re-running it stores the rest without duplicates.
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import UID, AllTransferSyntaxes
from pydicom.valuerep import VR

from core.dicom.header_index import INDEX_TAGS, read_index
from core.errors import PermissionDeniedError
from core.logsafe import register_phi
from core.security.roles import Permission
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.database import Connection
from core.store.store import Store, utc_now
from core.store.studies import stored_sops
from core.store.users import record_access

__all__ = [
    "DamagedFileError",
    "ImportReport",
    "NotDicomError",
    "ParsedInstance",
    "Source",
    "UnsupportedTransferSyntaxError",
    "import_paths",
    "iter_sources",
    "parse_instance",
    "store_instances",
]

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
_KNOWN_TRANSFER_SYNTAXES = frozenset(str(ts) for ts in AllTransferSyntaxes)
_VRS = frozenset(str(vr) for vr in VR)
_REQUIRED = ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID")
#: What the index reads from a data set (ParsedInstance's fields); header_only parsing with pydicom reads only these.
_INDEX_TAGS = [Tag(tag) for tag in INDEX_TAGS]


class DamagedFileError(ValueError):
    """A DICOM file that cannot be stored as it is."""


class UnsupportedTransferSyntaxError(DamagedFileError):
    """The file's transfer syntax is unknown to DICOM/RadPlan, or contradicts how the data set is encoded."""


class NotDicomError(ValueError):
    """Not a DICOM Part 10 file."""


@dataclass(frozen=True)
class ParsedInstance:
    source: str
    data: bytes
    sha256: str
    patient_id: str
    issuer: str
    patient_name: str
    birth_date: str
    sex: str
    study_uid: str
    study_date: str
    study_time: str
    accession: str
    study_description: str
    series_uid: str
    modality: str
    series_number: int | None
    series_description: str
    frame_of_reference_uid: str
    sop_uid: str
    sop_class_uid: str
    instance_number: int | None
    transfer_syntax: str


@dataclass
class ImportReport:
    files_seen: int = 0
    stored: int = 0
    already_present: int = 0
    skipped_non_dicom: int = 0
    damaged: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.conflicts


@dataclass(frozen=True)
class Source:
    """One file to import (a zip member is named 'archive.zip!member'); read() gives its bytes."""

    name: str
    path: Path
    member: str | None = None

    def read(self) -> bytes:
        if self.member is None:
            return self.path.read_bytes()
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(self.member)


def iter_sources(paths: Iterable[Path]) -> Iterator[Source]:
    """Every file under the given paths, zip members included, in a stable order (nothing is read yet).

    A DICOMDIR given as a path stands for the files it references (DICOM media: CD, DVD, USB); met while walking
    a folder it is skipped, since the folder's files are imported anyway.
    """
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if not _is_dicomdir_name(child.name):
                    yield from _file_sources(child)
        elif path.is_file() and _is_dicomdir_name(path.name):
            yield from _dicomdir_sources(path)
        elif path.is_file():
            yield from _file_sources(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")


def _is_dicomdir_name(name: str) -> bool:
    return name.upper() in ("DICOMDIR", "DICOMDIR.")


def _dicomdir_sources(path: Path) -> Iterator[Source]:
    """The files referenced by a DICOMDIR (Referenced File ID, relative to its folder), in record order."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        records = list(ds.DirectoryRecordSequence)
    except (InvalidDicomError, EOFError, OSError, ValueError, AttributeError, KeyError):
        yield Source(str(path), path)  # reported as damaged, by name, when it is parsed
        return
    seen: set[Path] = set()
    for record in records:
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else [str(p) for p in file_id]
        target = path.parent.joinpath(*parts)
        if target not in seen:
            seen.add(target)
            yield Source(str(target), target)


def _file_sources(path: Path) -> Iterator[Source]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = sorted(
                i.filename
                for i in archive.infolist()
                if not i.is_dir() and not _is_dicomdir_name(i.filename.rsplit("/", 1)[-1])
            )
        for member in members:
            yield Source(f"{path}!{member}", path, member)
    else:
        yield Source(str(path), path)


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def parse_instance(name: str, data: bytes, *, header_only: bool = False) -> ParsedInstance:
    """Index a Part 10 byte string (it is stored unchanged). header_only=True reads only the attributes the index
    needs, before Pixel Data: for data sets received whole over DICOM (the DIMSE layer delivered every byte), it
    skips the truncation check that files need and is several times faster."""
    if len(data) < 132 or data[128:132] != b"DICM":
        if name.lower().endswith((".dcm", ".dicom")):
            raise DamagedFileError("no DICOM file meta header (no 'DICM' preamble)")
        raise NotDicomError(name)
    if header_only:
        fast = read_index(data)  # the index straight from the bytes when that gives what pydicom gives
        if fast is not None and fast[0] in _KNOWN_TRANSFER_SYNTAXES:
            return _indexed(name, data, fast[0], fast[1].get)
    tsuid = _check_transfer_syntax(data)
    try:
        if header_only:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=_INDEX_TAGS)
        else:
            ds = pydicom.dcmread(io.BytesIO(data))
        ds.get("PixelData")  # forces reading to the end: a truncated value raises here
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise DamagedFileError(f"cannot be parsed: {exc}") from exc
    except Exception as exc:  # e.g. zlib.error: a "deflated" data set that is not
        raise DamagedFileError(f"cannot be parsed with its transfer syntax {_ts_name(tsuid)}: {exc}") from exc
    _check_encoding(ds, tsuid, header_only)
    parsed = _indexed(name, data, tsuid, lambda keyword: _text(ds, keyword))
    if "PixelData" in ds and not _pixel_length_ok(ds):
        raise DamagedFileError("pixel data is shorter than Rows x Columns x frames (truncated file)")
    return parsed


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    """What the index stores for an attribute: ``str`` of its value, "" when absent."""
    value = ds.get(keyword, "")
    return "" if value is None else str(value)


def _indexed(name: str, data: bytes, tsuid: str, value: Callable[[str], str | None]) -> ParsedInstance:
    """The ParsedInstance of ``data`` from its index attribute values (``value(keyword)``, None or "" if absent);
    DamagedFileError when a required one is missing."""

    def text(keyword: str) -> str:
        return value(keyword) or ""

    missing = [kw for kw in _REQUIRED if not text(kw).strip()]
    if missing:
        raise DamagedFileError(f"missing required attribute(s): {', '.join(missing)}")
    parsed = ParsedInstance(
        source=name,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        patient_id=text("PatientID"),
        issuer=text("IssuerOfPatientID"),
        patient_name=text("PatientName"),
        birth_date=text("PatientBirthDate"),
        sex=text("PatientSex"),
        study_uid=text("StudyInstanceUID"),
        study_date=text("StudyDate"),
        study_time=text("StudyTime"),
        accession=text("AccessionNumber"),
        study_description=text("StudyDescription"),
        series_uid=text("SeriesInstanceUID"),
        modality=text("Modality"),
        series_number=_int_or_none(text("SeriesNumber")),
        series_description=text("SeriesDescription"),
        frame_of_reference_uid=text("FrameOfReferenceUID"),
        sop_uid=text("SOPInstanceUID"),
        sop_class_uid=text("SOPClassUID"),
        instance_number=_int_or_none(text("InstanceNumber")),
        transfer_syntax=tsuid,
    )
    register_phi(parsed.patient_id, parsed.patient_name)
    return parsed


def _ts_name(tsuid: str) -> str:
    name = UID(tsuid).name if tsuid else ""
    return f"{tsuid} ({name})" if name and name != tsuid else tsuid


def _check_transfer_syntax(data: bytes) -> str:
    """The file meta's Transfer Syntax UID, refused (UnsupportedTransferSyntaxError) unless DICOM defines it and
    pydicom can read data sets in it."""
    fp = io.BytesIO(data[132:])
    try:
        meta = _read_file_meta_info(fp)
    except Exception as exc:  # any failure to read the meta header is a damaged file
        raise DamagedFileError(f"the file meta header cannot be read: {exc}") from exc
    tsuid = str(meta.get("TransferSyntaxUID", "")).strip()
    if not tsuid:
        raise DamagedFileError("file meta header has no Transfer Syntax UID")
    if tsuid not in _KNOWN_TRANSFER_SYNTAXES:
        raise UnsupportedTransferSyntaxError(
            f"unsupported transfer syntax {tsuid}: not a DICOM transfer syntax RadPlan can read; ask the sender to "
            "send it uncompressed (Explicit VR Little Endian)"
        )
    ts = UID(tsuid)
    first = data[132 + fp.tell() : 132 + fp.tell() + 6]
    if not ts.is_deflated and len(first) == 6:  # the first element's bytes 4-5: a VR when explicit (pydicom's test)
        explicit = first[4:6].decode("latin-1") in _VRS
        if explicit == ts.is_implicit_VR:
            actual = "Explicit" if explicit else "Implicit"
            raise UnsupportedTransferSyntaxError(
                f"wrong transfer syntax: the file meta says {_ts_name(tsuid)} but the data set is encoded {actual} VR"
            )
    return tsuid


def _check_encoding(ds: pydicom.Dataset, tsuid: str, header_only: bool) -> None:
    """Refuse compressed-syntax files whose pixel data is not encapsulated (native pixels under a compressed UID)."""
    if header_only or "PixelData" not in ds or not UID(tsuid).is_encapsulated:
        return
    if not ds["PixelData"].is_undefined_length:
        raise UnsupportedTransferSyntaxError(
            f"wrong transfer syntax: the file meta says {_ts_name(tsuid)} (compressed) but the pixel data is not "
            "encapsulated (not compressed)"
        )


def _pixel_length_ok(ds: pydicom.Dataset) -> bool:
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return True
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        expected = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * int(ds.BitsAllocated) // 8 * frames
    except (AttributeError, TypeError, ValueError):
        return True
    return len(ds.PixelData) >= expected


def import_paths(
    store: Store,
    access: Access,
    paths: Sequence[Path],
    *,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> ImportReport:
    """Import everything under paths; see the module docstring for the guarantees."""
    if access.permission is not Permission.IMPORT_STUDIES:
        raise PermissionDeniedError("importing studies needs the 'import_studies' permission")
    report = ImportReport()
    sources = list(iter_sources(paths))
    total, batch = len(sources), []
    studies: dict[str, None] = {}
    for index, source in enumerate(sources, start=1):
        report.files_seen += 1
        try:
            parsed = parse_instance(source.name, source.read())
        except NotDicomError:
            report.skipped_non_dicom += 1
        except DamagedFileError as exc:
            report.damaged.append((source.name, str(exc)))
        except OSError as exc:  # e.g. a file a DICOMDIR lists but the medium lacks
            report.damaged.append((source.name, f"cannot be read: {exc.strerror or exc}"))
        else:
            batch.append(parsed)
            studies.setdefault(parsed.study_uid)
        if len(batch) >= batch_size or (index == total and batch):
            _store_batch(store, access, batch, report)
            batch = []
        if progress is not None:
            progress(index, total)
    if studies:
        with store.transaction() as conn:
            for uid in studies:
                conn.execute(
                    "UPDATE studies SET status = 'complete', updated = ? WHERE study_uid = ?",
                    (utc_now(), uid),
                )
    report.studies = list(studies)
    log.info(
        "import: %d files, %d stored, %d already present, %d non-DICOM, %d damaged, %d conflicts",
        report.files_seen,
        report.stored,
        report.already_present,
        report.skipped_non_dicom,
        len(report.damaged),
        len(report.conflicts),
    )
    return report


def store_instances(
    store: Store, access: Access, batch: Sequence[ParsedInstance], report: ImportReport, *, action: str = "dicom.import"
) -> None:
    """Store parsed instances in one transaction with one audit entry (`action`); counts go into `report`.

    The storage path shared by file import and PACS retrieve: an instance whose SOP Instance UID is stored already
    counts as already present (same bytes) or as a conflict (different bytes; the stored one is kept).
    """
    if access.permission is not Permission.IMPORT_STUDIES:
        raise PermissionDeniedError("storing instances needs the 'import_studies' permission")
    _store_batch(store, access, batch, report, action=action)


def _store_batch(
    store: Store, access: Access, batch: Sequence[ParsedInstance], report: ImportReport, *, action: str = "dicom.import"
) -> None:
    stored = 0
    # The bytes go into encrypted instance files first (outside the database lock; durable before any row names
    # them). Instances already stored are not written; a conflict found below leaves an unreferenced file.
    known = stored_sops(store, [inst.sop_uid for inst in batch])
    names = {inst.sop_uid: store.blobs.name_for(inst.sha256) for inst in batch}
    store.blobs.write([(names[inst.sop_uid], inst.data) for inst in batch if inst.sop_uid not in known])
    series_fks: dict[str, int] = {}  # a batch is mostly one series: its patient/study/series rows once
    with store.transaction() as conn:
        objects: dict[tuple[str, str], AuditObject] = {}
        for inst in batch:
            existing = conn.execute("SELECT sha256 FROM instances WHERE sop_uid = ?", (inst.sop_uid,)).fetchone()
            if existing is not None:
                if existing[0] == inst.sha256:
                    report.already_present += 1
                else:
                    report.conflicts.append(
                        f"{inst.source}: SOP Instance UID {inst.sop_uid} is already stored with different "
                        "content; the stored instance was kept"
                    )
                continue
            series_fk = series_fks.get(inst.series_uid)
            if series_fk is None:
                series_fk = series_fks[inst.series_uid] = _ensure_series(conn, inst)
            conn.execute(
                "INSERT INTO instances (series_fk, sop_uid, sop_class_uid, instance_number, transfer_syntax, "
                "size, sha256, received, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    series_fk,
                    inst.sop_uid,
                    inst.sop_class_uid,
                    inst.instance_number,
                    inst.transfer_syntax,
                    len(inst.data),
                    inst.sha256,
                    utc_now(),
                    names[inst.sop_uid],
                ),
            )
            stored += 1
            objects[("patient", inst.patient_id)] = AuditObject("patient", inst.patient_id)
            objects[("study", inst.study_uid)] = AuditObject("study", inst.study_uid)
        if stored:
            record_access(conn, access, action, objects=list(objects.values()), details={"instances": stored})
    report.stored += stored


def _ensure_series(conn: Connection, inst: ParsedInstance) -> int:
    now = utc_now()
    conn.execute(
        "INSERT INTO patients (patient_id, issuer, name, birth_date, sex) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (patient_id, issuer) DO NOTHING",
        (inst.patient_id, inst.issuer, inst.patient_name, inst.birth_date, inst.sex),
    )
    patient_fk = conn.execute(
        "SELECT id FROM patients WHERE patient_id = ? AND issuer = ?", (inst.patient_id, inst.issuer)
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO studies (patient_fk, study_uid, study_date, study_time, accession, description, status, "
        "created, updated) VALUES (?, ?, ?, ?, ?, ?, 'partial', ?, ?) ON CONFLICT (study_uid) DO NOTHING",
        (
            patient_fk,
            inst.study_uid,
            inst.study_date,
            inst.study_time,
            inst.accession,
            inst.study_description,
            now,
            now,
        ),
    )
    study_fk = conn.execute("SELECT id FROM studies WHERE study_uid = ?", (inst.study_uid,)).fetchone()[0]
    conn.execute(
        "INSERT INTO series (study_fk, series_uid, modality, series_number, description, frame_of_reference_uid) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (series_uid) DO NOTHING",
        (
            study_fk,
            inst.series_uid,
            inst.modality,
            inst.series_number,
            inst.series_description,
            inst.frame_of_reference_uid,
        ),
    )
    return int(conn.execute("SELECT id FROM series WHERE series_uid = ?", (inst.series_uid,)).fetchone()[0])
