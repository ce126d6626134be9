"""Cohorts: many studies through the pipeline, one `radplan run` process per study (failures isolated: a study that
fails or crashes is one failed row), on local threads or on a Dask scheduler (the engine of radiomics batch).

With a scheduler, each task runs the command on a Dask worker, which must run on this workstation (it needs the
same data dir, store key and engine worker); the scheduler only spreads and retries the work."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import RadPlanError

__all__ = ["CohortRow", "read_study_list", "run_cohort", "run_one"]


@dataclass(frozen=True)
class CohortRow:
    study_uid: str
    status: str  # "ok" or "failed"
    seconds: float
    detail: str
    plan_id: int | None = None
    pdf: str | None = None


def read_study_list(path: Path) -> list[str]:
    """Study UIDs, one a line ('#' comments and blank lines skipped, duplicates dropped)."""
    uids: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            if not all(c.isdigit() or c == "." for c in text) or len(text) > 64:
                raise RadPlanError(f"{path}: {text!r} is not a Study Instance UID")
            uids[text] = None
    if not uids:
        raise RadPlanError(f"{path} lists no study")
    return list(uids)


def run_one(study_uid: str, argv: Sequence[str], env: Mapping[str, str], timeout_s: float = 7200.0) -> CohortRow:
    """Run one study's command (a `radplan run ... --json` line) and make its row; never raises."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            list(argv),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CohortRow(study_uid, "failed", time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return CohortRow(study_uid, "failed", seconds, lines[-1] if lines else f"exit {proc.returncode}")
    try:
        data: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return CohortRow(study_uid, "failed", seconds, "no JSON summary on stdout")
    rec = data.get("recommendation")
    detail = (
        f"{rec['modality']} {rec.get('total_dose_gy') or ''} Gy/{rec.get('fractions') or '-'} "
        f"[{', '.join(rec['rule_ids'])}]"
        if rec
        else "no recommendation"
    )
    return CohortRow(study_uid, "ok", seconds, detail, data.get("plan_id"), data.get("pdf"))


def run_cohort(
    commands: Mapping[str, Sequence[str]], env: Mapping[str, str], *, workers: int = 2, scheduler: str | None = None
) -> list[CohortRow]:
    """Every study's command, ``workers`` at a time (threads, or tasks on the Dask ``scheduler``); rows in the
    order of ``commands``."""
    if scheduler:
        import distributed

        dist: Any = distributed
        try:
            client = dist.Client(scheduler, timeout="10s")
        except OSError as exc:
            raise RadPlanError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc
        try:
            futures = [
                client.submit(run_one, uid, list(argv), dict(env), key=f"radplan-run-{uid}", pure=False)
                for uid, argv in commands.items()
            ]
            return list(client.gather(futures))
        finally:
            client.close()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda item: run_one(item[0], item[1], env), commands.items()))
