"""Cohort extraction on Dask distributed: one task per case, retries, and a per-case error instead of an abort.

Manifest (CSV, header required): ``case_id,image,mask`` plus optional ``label``, ``roi`` and ``config`` columns;
relative paths are taken from the manifest's folder. Output (Parquet, one row per case): ``case_id``, ``status``
(``ok``/``failed``), ``error`` (the reason, "" when ok), ``seconds``, then one float64 column per feature, named by
its IBSI tag (pyradiomics name where the feature has no IBSI tag); values in the units of docs/radiomics.md.
"""

from __future__ import annotations

import csv
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
) -> BatchReport:
    """Extract every case on a LocalCluster (``scheduler`` None or "local") or a running scheduler (tcp://HOST:PORT),
    retrying a failed case ``retries`` times, and write the Parquet table (atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from distributed import as_completed as _as_completed

    as_completed: Any = _as_completed

    start = time.perf_counter()
    client, cluster = _client(scheduler, n_workers)
    rows: list[dict[str, Any]] = []
    try:
        batch = uuid.uuid4().hex[:8]
        futures = {
            client.submit(_extract_case, c, key=f"radiomics-{batch}-{i}", retries=retries, pure=False): c
            for i, c in enumerate(cases)
        }
        for done, fut in enumerate(as_completed(futures), start=1):
            case = futures[fut]
            if fut.status == "error":
                exc = fut.exception()
                rows.append({"case_id": case.case_id, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
            else:
                values, seconds = fut.result()
                rows.append({"case_id": case.case_id, "status": "ok", "error": "", "seconds": seconds, **values})
            if progress is not None:
                progress(done, len(cases), case.case_id, rows[-1]["status"])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    order = {c.case_id: i for i, c in enumerate(cases)}
    rows.sort(key=lambda r: order[r["case_id"]])
    features = sorted({k for r in rows for k in r} - {"case_id", "status", "error", "seconds"})
    columns: dict[str, Any] = {
        "case_id": pa.array([r["case_id"] for r in rows], pa.string()),
        "status": pa.array([r["status"] for r in rows], pa.string()),
        "error": pa.array([r["error"] for r in rows], pa.string()),
        "seconds": pa.array([r.get("seconds") for r in rows], pa.float64()),
    }
    for name in features:
        columns[name] = pa.array([r.get(name) for r in rows], pa.float64())
    tmp = out.with_name(out.name + ".part")
    pq.write_table(pa.table(columns), tmp)
    tmp.replace(out)
    n_ok = sum(1 for r in rows if r["status"] == "ok")
    return BatchReport(n_ok, len(rows) - n_ok, out, time.perf_counter() - start)
