"""`radplan run` from the command line: usage errors, and a failing step (an unknown segmentation model, so the
real engine worker fails the job) that ends with exit 1, one clear line, and a resume on the next run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Study

from core.pipeline.demo import pacs_files
from tests.conftest import ADMIN, ADMIN_PW, RAD, RAD_PW, Cli

PASS = {"RADPLAN_PASSPHRASE": "store-passphrase-1"}
AS_RAD = {**PASS, "RADPLAN_USER": RAD, "RADPLAN_PASSWORD": RAD_PW}
AS_ADMIN = {**PASS, "RADPLAN_USER": ADMIN, "RADPLAN_PASSWORD": ADMIN_PW}


def test_usage_errors(cli: Cli, tmp_path: Path) -> None:
    for args, message in (
        ((), "give --pacs NODE --study UID, or --input DIR"),
        (("--pacs", "x"), "--pacs needs --study UID"),
        (("--input", str(tmp_path), "--send-back"), "--send-back needs --pacs"),
        (("--input", str(tmp_path)), f"no CT under {tmp_path}"),
    ):
        result = cli("run", *args, check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr


@pytest.mark.slow
def test_a_failing_step_exits_1_with_the_reason_and_the_rerun_resumes(
    initialised: Cli, small_study: Study, tmp_path: Path
) -> None:
    folder = tmp_path / "input"
    folder.mkdir()
    for path in [*pacs_files(small_study.folder)[:-1], small_study.folder / "note.txt"]:  # CT, RT Dose, note.txt
        (folder / path.name).write_bytes(path.read_bytes())
    args = ("run", "--input", str(folder), "--out", str(tmp_path / "out"), "--model", "no-such-model")
    first = initialised(*args, check=False, **AS_RAD)
    assert first.returncode == 1, first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("radplan: error: step 'segment' failed: segmentation job 1 failed: ")
    assert "no-such-model" in last and "run the same command again to resume from step 'segment'" in last
    assert "[ 2/11] select_ct  done" in first.stderr

    second = initialised(*args, check=False, **AS_RAD)
    assert second.returncode == 1
    assert "done earlier (resumed)" in second.stderr and "segmentation job 2 failed" in second.stderr
    audit = json.loads(initialised("audit", "list", "--action", "pipeline.*", "--json", **AS_ADMIN).stdout)
    actions = [e["action"] for e in audit]
    assert actions.count("pipeline.run.start") == 1 and actions.count("pipeline.run.resume") == 1
    assert actions.count("pipeline.run.failed") == 2
    assert [e["details"]["step"] for e in audit if e["action"] == "pipeline.step"] == ["retrieve", "select_ct"]
