"""What a batch resumes from: the progress journal (``<out>.progress.jsonl``) and the signatures in the output.

The journal gets one JSON line per finished case (``case_id``, ``status``, ``error``, ``seconds``, ``features``,
``signature``), flushed and fsynced by the client as the case finishes. A case's signature is what it was computed
from: the resolved image and mask paths with their sizes and modification times (ns; a folder, such as a DICOM
series, by its file count, total size and newest file), the configuration, label and ROI, and the RadPlan and
pyradiomics versions. A row is reused only when
it is ``ok`` and its signature equals the case's signature now.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from core.radiomics.batch import Case

__all__ = ["META_COLUMNS", "SIGNATURES_KEY", "Journal", "case_signature", "journal_path", "load_reusable"]

log = logging.getLogger(__name__)

META_COLUMNS = ("case_id", "status", "error", "seconds", "reused")
SIGNATURES_KEY = b"radplan.radiomics.signatures"  # Parquet schema metadata: JSON {case_id: signature}


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".progress.jsonl")


def _file_signature(path: Path) -> dict[str, Any]:
    resolved = path.resolve()
    sig: dict[str, Any] = {"path": str(resolved)}
    try:
        if resolved.is_dir():
            stats = [p.stat() for p in sorted(resolved.rglob("*")) if p.is_file()]
            sig |= {
                "files": len(stats),
                "size": sum(s.st_size for s in stats),
                "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
            }
        else:
            st = resolved.stat()
            sig |= {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        sig["missing"] = True
    return sig


def case_signature(case: Case) -> dict[str, Any]:
    """The inputs of one case, as JSON-compatible values (compared by equality after a JSON round trip)."""
    return {
        "image": _file_signature(case.image),
        "mask": _file_signature(case.mask),
        "config": case.config,
        "label": case.label,
        "roi": case.roi,
        "extractor": _extractor_version(),
    }


@functools.cache
def _extractor_version() -> str:
    """The code that computed the values: a new RadPlan or pyradiomics release recomputes every case."""
    from importlib import metadata

    found = []
    for dist in ("radplan", "pyradiomics"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} (not installed as a package)")
    return ", ".join(found)


def _journal_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of the journal in the order written; a line that does not parse (cut short when the process died) or
    lacks the fields is skipped."""
    rows: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return rows
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)  # accepts NaN / Infinity, which json.dumps writes
        except ValueError:
            log.warning("%s line %d is incomplete: ignored", path.name, n)
            continue
        if isinstance(entry, dict) and {"case_id", "status", "signature"} <= entry.keys():
            rows.append(entry)
    return rows


def _output_rows(out: Path) -> list[dict[str, Any]]:
    """Rows of an earlier output in the journal's form; none when it is absent, unreadable or has no signatures."""
    import pyarrow.parquet as pq

    if not out.exists():
        return []
    try:
        table = pq.read_table(out)
        signatures = json.loads((table.schema.metadata or {}).get(SIGNATURES_KEY, b"{}"))
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        log.warning("%s cannot be read (%s): no row of it is reused", out.name, exc)
        return []
    return [
        {
            **{k: r.get(k) for k in META_COLUMNS[:4]},
            "features": {k: v for k, v in r.items() if k not in META_COLUMNS and v is not None},  # null: not computed
            "signature": signatures.get(r["case_id"]),
        }
        for r in table.to_pylist()
        if r.get("case_id") is not None
    ]


def load_reusable(cases: list[Case], signatures: list[dict[str, Any]], out: Path) -> dict[str, dict[str, Any]]:
    """case_id -> row (journal form) for every case with an ``ok`` row in the output or the journal (the later
    one wins) whose signature matches ``signatures`` (the cases' signatures now, in the same order)."""
    latest = {str(r["case_id"]): r for r in _output_rows(out) + _journal_rows(journal_path(out))}
    reusable: dict[str, dict[str, Any]] = {}
    for case, signature in zip(cases, signatures, strict=True):
        row = latest.get(case.case_id)
        if row is not None and row["status"] == "ok" and row["signature"] == signature:
            reusable[case.case_id] = row
    return reusable


class Journal:
    """The journal of one run, started with the reused rows (written anew, atomically), then one line per case."""

    def __init__(self, out: Path, reused: list[dict[str, Any]]) -> None:
        self.path = journal_path(out)
        tmp = self.path.with_name(self.path.name + ".part")
        with tmp.open("w", encoding="utf-8") as fh:
            for row in reused:
                fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        self._fh: TextIO = self.path.open("a", encoding="utf-8")

    def append(self, row: dict[str, Any]) -> None:
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
