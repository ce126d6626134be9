"""Audited feature extraction from image + mask files (what ``radplan radiomics`` calls)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.radiomics.batch import BatchReport, read_manifest, run_batch
from core.radiomics.extract import extract_files, write_features_csv
from core.radiomics.preprocess import RadiomicsInputError
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.store import Store
from core.store.users import record_access

__all__ = ["ExtractionReport", "batch_to_parquet", "extract_to_csv"]


@dataclass(frozen=True)
class ExtractionReport:
    """What one extraction wrote: feature count, output path, configuration and wall time (s)."""

    n_features: int
    out: Path
    config: str
    seconds: float


def extract_to_csv(
    store: Store,
    access: Access,
    image: Path,
    mask: Path,
    config: str,
    out: Path,
    label: int | None = None,
    roi: str | None = None,
) -> ExtractionReport:
    """Extract features and write ``out`` (CSV); success and refused input are both audited."""
    objects = [AuditObject("image_file", str(image)), AuditObject("mask_file", str(mask))]
    details: dict[str, object] = {"config": config, "label": label, "roi": roi}
    start = time.perf_counter()
    try:
        features = extract_files(image, mask, config, label, roi)
    except (RadiomicsInputError, KeyError) as exc:
        with store.transaction() as conn:
            record_access(
                conn, access, "radiomics.extract", objects=objects, outcome="minor_failure",
                details=details | {"error": str(exc)},
            )  # fmt: skip
        raise
    n = write_features_csv(features, out)
    elapsed = time.perf_counter() - start
    with store.transaction() as conn:
        record_access(
            conn, access, "radiomics.extract", objects=objects,
            details=details | {"features": n, "out": str(out), "seconds": round(elapsed, 3)},
        )  # fmt: skip
    return ExtractionReport(n, out, config, elapsed)


def batch_to_parquet(
    store: Store,
    access: Access,
    manifest: Path,
    out: Path,
    config: str,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    retries: int = 2,
    progress: Callable[[int, int, str, str], None] | None = None,
    resume: bool = True,
) -> BatchReport:
    """Run a cohort manifest on Dask and write ``out`` (Parquet); audited with every case's files and outcome.
    With ``resume``, unchanged cases already done (journal or earlier ``out``) are reused (see :func:`run_batch`)."""
    cases = read_manifest(manifest, config)
    report = run_batch(
        cases, out, scheduler=scheduler, n_workers=n_workers, retries=retries, progress=progress, resume=resume
    )
    objects = [AuditObject("image_file", str(c.image), c.case_id) for c in cases]
    objects += [AuditObject("mask_file", str(c.mask), c.case_id) for c in cases]
    with store.transaction() as conn:
        record_access(
            conn, access, "radiomics.batch", objects=objects,
            outcome="success" if report.n_failed == 0 else "minor_failure",
            details={"cases": len(cases), "ok": report.n_ok, "failed": report.n_failed, "reused": report.n_reused,
                     "out": str(out),
                     "scheduler": scheduler or "local", "seconds": round(report.seconds, 3)},
        )  # fmt: skip
    return report
