"""Cohort extraction on Dask distributed: one task per case, retries, and a per-case error instead of an abort.

Manifest (CSV, header required): ``case_id,image,mask`` plus optional ``label``, ``roi`` and ``config`` columns;
relative paths are taken from the manifest's folder. Output (Parquet, one row per case): ``case_id``, ``status``
(``ok``/``failed``), ``error`` (the reason, "" when ok), ``seconds``, then one float64 column per feature, named by
its IBSI tag (pyradiomics name where the feature has no IBSI tag), values in the units of docs/radiomics.md, and
``reused`` (the row was taken from an earlier run). Each finished case is journaled to ``<out>.progress.jsonl``
(:mod:`core.radiomics.batch_journal`), so an interrupted batch resumes with the cases still to do.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.radiomics.batch_journal import SIGNATURES_KEY, Journal, case_signature, load_reusable
from core.radiomics.configs import CONFIGS
from core.radiomics.extract import extract_files
from core.radiomics.preprocess import RadiomicsInputError

__all__ = ["BatchReport", "Case", "read_manifest", "run_batch"]


@dataclass(frozen=True)
class Case:
    case_id: str
    image: Path
    mask: Path
    config: str
    label: int | None = None
    roi: str | None = None


@dataclass(frozen=True)
class BatchReport:
    """Counts, the output file and the wall time (s) of one batch."""

    n_ok: int
    n_failed: int
    out: Path
    seconds: float
    n_reused: int = 0  # of the n_ok rows, those taken from the journal or the earlier output


def read_manifest(path: Path, default_config: str) -> list[Case]:
    """Cases of a manifest; a malformed manifest is refused as a whole, naming the line."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"case_id", "image", "mask"} - set(reader.fieldnames or ())
        if missing:
            raise RadiomicsInputError(f"manifest lacks the column(s) {', '.join(sorted(missing))}")
        cases: list[Case] = []
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            case_id = (row.get("case_id") or "").strip()
            if not case_id or case_id in seen:
                raise RadiomicsInputError(f"manifest line {line}: empty or repeated case_id")
            seen.add(case_id)
            config = (row.get("config") or "").strip() or default_config
            if config not in CONFIGS:
                raise RadiomicsInputError(f"manifest line {line}: unknown configuration {config!r}")
            label = (row.get("label") or "").strip()
            if label and not label.lstrip("-").isdigit():
                raise RadiomicsInputError(f"manifest line {line}: label must be an integer")
            cases.append(
                Case(
                    case_id,
                    path.parent / row["image"].strip(),
                    path.parent / row["mask"].strip(),
                    config,
                    int(label) if label else None,
                    (row.get("roi") or "").strip() or None,
                )
            )
    if not cases:
        raise RadiomicsInputError("the manifest lists no case")
    return cases


def _extract_case(case: Case) -> tuple[dict[str, float], float]:
    """Runs on a Dask worker (a daemon process: pyradiomics' own pool is not used there)."""
    start = time.perf_counter()
    rows = extract_files(case.image, case.mask, case.config, case.label, case.roi, workers=1)
    return {(r.ibsi_tag or r.pyradiomics): r.value for r in rows}, time.perf_counter() - start


def _client(scheduler: str | None, n_workers: int | None) -> tuple[Any, Any]:
    import distributed

    dist: Any = distributed  # not fully annotated
    if scheduler and scheduler != "local":
        try:
            return dist.Client(scheduler, timeout="10s"), None
        except OSError as exc:
            raise RadiomicsInputError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc
    workers = n_workers or max(1, min(4, os.cpu_count() or 1))
    cluster = dist.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.CRITICAL,  # a failed case is reported in its row, not as a traceback on stderr
    )
    return dist.Client(cluster), cluster


def run_batch(
    cases: list[Case],
    out: Path,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    retries: int = 2,
    progress: Callable[[int, int, str, str], None] | None = None,
    resume: bool = True,
) -> BatchReport:
    """Extract every case on a LocalCluster (``scheduler`` None or "local") or a running scheduler (tcp://HOST:PORT),
    retrying a failed case ``retries`` times, and write the Parquet table (atomically).

    With ``resume``, an ``ok`` row of the journal (``<out>.progress.jsonl``) or of an existing ``out`` whose inputs
    are unchanged is reused instead of recomputed; otherwise both are ignored. ``progress`` is called once before
    extraction as ``(n_reused, n_cases, "", "reused")``, then ``(done, n_cases, case_id, "ok" | "failed")`` as each
    case finishes (``done`` counts the reused cases too)."""
    start = time.perf_counter()
    signatures = [case_signature(c) for c in cases]
    reused = load_reusable(cases, signatures, out) if resume else {}
    todo = [(c, s) for c, s in zip(cases, signatures, strict=True) if c.case_id not in reused]
    if progress is not None:
        progress(len(reused), len(cases), "", "reused")
    journal = Journal(out, list(reused.values()))
    rows = dict(reused)
    try:
        if todo:
            rows |= _extract_all(todo, journal, scheduler, n_workers, retries, len(reused), len(cases), progress)
    finally:
        journal.close()
    ordered = [rows[c.case_id] for c in cases]
    _write_table(ordered, set(reused), out)
    journal.remove()
    n_ok = sum(1 for r in ordered if r["status"] == "ok")
    return BatchReport(n_ok, len(ordered) - n_ok, out, time.perf_counter() - start, len(reused))


def _extract_all(
    todo: list[tuple[Case, dict[str, Any]]],
    journal: Journal,
    scheduler: str | None,
    n_workers: int | None,
    retries: int,
    done: int,
    total: int,
    progress: Callable[[int, int, str, str], None] | None,
) -> dict[str, dict[str, Any]]:
    """Rows (journal form) of the ``todo`` cases, each journaled as it finishes."""
    from distributed import as_completed as _as_completed

    as_completed: Any = _as_completed
    client, cluster = _client(scheduler, n_workers)
    rows: dict[str, dict[str, Any]] = {}
    try:
        batch = uuid.uuid4().hex[:8]
        futures = {
            client.submit(_extract_case, c, key=f"radiomics-{batch}-{i}", retries=retries, pure=False): (c, sig)
            for i, (c, sig) in enumerate(todo)
        }
        for fut in as_completed(futures):
            case, signature = futures[fut]
            row: dict[str, Any] = {"case_id": case.case_id, "signature": signature}
            if fut.status == "error":
                exc = fut.exception()
                row |= {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "seconds": None, "features": {}}
            else:
                values, seconds = fut.result()
                features = {k: float(v) for k, v in values.items()}
                row |= {"status": "ok", "error": "", "seconds": seconds, "features": features}
            journal.append(row)  # before the callback: a case reported done is on disk
            rows[case.case_id] = row
            done += 1
            if progress is not None:
                progress(done, total, case.case_id, row["status"])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return rows


def _write_table(rows: list[dict[str, Any]], reused: set[str], out: Path) -> None:
    """The output table, with every case's signature in the schema metadata (what a later resume compares)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = sorted({k for r in rows for k in r["features"]})
    columns: dict[str, Any] = {
        "case_id": pa.array([r["case_id"] for r in rows], pa.string()),
        "status": pa.array([r["status"] for r in rows], pa.string()),
        "error": pa.array([r["error"] for r in rows], pa.string()),
        "seconds": pa.array([r["seconds"] for r in rows], pa.float64()),
    }
    for name in features:
        columns[name] = pa.array([r["features"].get(name) for r in rows], pa.float64())
    columns["reused"] = pa.array([r["case_id"] in reused for r in rows], pa.bool_())
    signatures = json.dumps({r["case_id"]: r["signature"] for r in rows})
    table = pa.table(columns).replace_schema_metadata({SIGNATURES_KEY: signatures.encode()})
    tmp = out.with_name(out.name + ".part")
    pq.write_table(table, tmp)
    tmp.replace(out)
