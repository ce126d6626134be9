"""Cohorts: one process per study, failures isolated to their row, on threads or on a Dask scheduler."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from core.errors import RadPlanError
from core.pipeline.cohort import read_study_list, run_cohort

OK = json.dumps(
    {
        "recommendation": {"modality": "SBRT", "total_dose_gy": 54.0, "fractions": 3, "rule_ids": ["NSCLC-R02"]},
        "plan_id": 7,
        "pdf": "/x/plan-7.pdf",
    }
)
COMMANDS = {
    "1.2.3": [sys.executable, "-c", f"print({OK!r})"],
    "1.2.4": [
        sys.executable,
        "-c",
        "import sys; sys.stderr.write('radplan: error: step segment failed\\n'); sys.exit(1)",
    ],
    "1.2.5": [sys.executable, "-c", "import os; os.abort()"],
}


def _check(rows: list) -> None:  # type: ignore[type-arg]
    assert [(r.study_uid, r.status) for r in rows] == [("1.2.3", "ok"), ("1.2.4", "failed"), ("1.2.5", "failed")]
    assert rows[0].plan_id == 7 and "NSCLC-R02" in rows[0].detail
    assert rows[1].detail == "radplan: error: step segment failed"


def test_failures_stay_in_their_row() -> None:
    _check(run_cohort(COMMANDS, {}, workers=2))


@pytest.mark.slow
def test_the_cohort_runs_on_a_dask_scheduler() -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cl:
        _check(run_cohort(COMMANDS, {}, scheduler=cl.scheduler_address))


def test_study_lists_are_checked(tmp_path: Path) -> None:
    good = tmp_path / "list.txt"
    good.write_text("# cohort\n1.2.3\n\n1.2.4  # second\n1.2.3\n", encoding="utf-8")
    assert read_study_list(good) == ["1.2.3", "1.2.4"]
    bad = tmp_path / "bad.txt"
    bad.write_text("patient-1\n", encoding="utf-8")
    with pytest.raises(RadPlanError, match="not a Study Instance UID"):
        read_study_list(bad)
