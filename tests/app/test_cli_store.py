"""The foundation's acceptance path through the real CLI: init, demo-data, import, studies; no PHI on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ADMIN, ADMIN_PW, PHYS, PHYS_PW, RAD, RAD_PW, RADPLAN, Cli

SMALL = ("--shape", "96x96x24", "--spacing", "3.0x3.0x5.0")


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def assert_no_phi(data_dir: Path, manifest: dict[str, object]) -> None:
    needles = [str(manifest["patient_id"]).encode(), str(manifest["patient_name"]).encode()]
    needles += [part.encode() for part in str(manifest["patient_name"]).split("^") if len(part) > 3]
    files = all_files(data_dir)
    assert any(p.name == "radplan.log" for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {path}"
    assert (data_dir / "radplan.db").read_bytes()[:16] != b"SQLite format 3\x00"


def run_acceptance(cli: Cli, data_dir: Path, tmp_path: Path, **env: str) -> None:
    study = tmp_path / "study"
    cli("demo-data", str(study), "--seed", "3", *SMALL)
    manifest = json.loads((study / "manifest.json").read_text())
    rad = {"RADPLAN_USER": RAD, "RADPLAN_PASSWORD": RAD_PW, **env}
    out = cli("-v", "import", str(study), "--json", **rad)
    report = json.loads(out.stdout)
    assert report["stored"] == manifest["n_ct_instances"] + 2  # CT slices + RTSTRUCT + RTDOSE
    assert report["damaged"] == [] and report["skipped_non_dicom"] >= 1  # note.txt, manifest, NIfTI masks
    listed = json.loads(cli("-v", "studies", "--json", **rad).stdout)
    assert len(listed) == 1
    assert listed[0]["patient_id"] == manifest["patient_id"]
    assert listed[0]["study_uid"] == manifest["study_instance_uid"]
    assert listed[0]["instances"] == report["stored"] and listed[0]["status"] == "complete"
    assert sorted(listed[0]["modalities"]) == ["CT", "RTDOSE", "RTSTRUCT"]
    assert_no_phi(data_dir, manifest)
    audit = cli("audit", "list", "--json", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW, **env)
    actions = [e["action"] for e in json.loads(audit.stdout)]
    assert "dicom.import" in actions and "study.query" in actions
    cli("audit", "verify", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW, **env)


@pytest.mark.keyring
@pytest.mark.slow
def test_acceptance_with_keyring(initialised: Cli, data_dir: Path, tmp_path: Path) -> None:
    assert json.loads((data_dir / "store.json").read_text())["key_mode"] == "keyring"
    run_acceptance(initialised, data_dir, tmp_path)


@pytest.mark.slow
def test_acceptance_with_passphrase(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    env = {"RADPLAN_PASSPHRASE": "store-passphrase-1"}
    cli("init", "--admin", ADMIN, "--key-mode", "passphrase", RADPLAN_PASSWORD=ADMIN_PW, **env)
    cli(
        "user",
        "add",
        RAD,
        "--role",
        "radiologist",
        RADPLAN_USER=ADMIN,
        RADPLAN_PASSWORD=ADMIN_PW,
        RADPLAN_NEW_PASSWORD=RAD_PW,
        **env,
    )
    run_acceptance(cli, data_dir, tmp_path, **env)
    wrong = cli("studies", check=False, RADPLAN_USER=RAD, RADPLAN_PASSWORD=RAD_PW, RADPLAN_PASSPHRASE="nope-nope")
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    missing = cli("studies", check=False, RADPLAN_USER=RAD, RADPLAN_PASSWORD=RAD_PW)
    assert missing.returncode != 0 and "RADPLAN_PASSPHRASE" in missing.stderr


@pytest.mark.keyring
def test_import_with_damaged_files_exits_non_zero_and_names_them(initialised: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    (folder / "notes.txt").write_text("not DICOM")
    result = initialised("import", str(folder), check=False, RADPLAN_USER=RAD, RADPLAN_PASSWORD=RAD_PW)
    assert result.returncode == 1
    assert "1 non-DICOM skipped, 1 damaged" in result.stdout and "broken.dcm" in result.stderr


def test_no_store_yet_says_how_to_create_one(cli: Cli) -> None:
    result = cli("studies", check=False, RADPLAN_USER=RAD, RADPLAN_PASSWORD=RAD_PW)
    assert result.returncode == 1 and "radplan init" in result.stderr


@pytest.mark.keyring
def test_wrong_password_is_denied_and_audited(initialised: Cli) -> None:
    bad = initialised("studies", check=False, RADPLAN_USER=RAD, RADPLAN_PASSWORD="wrong-password-x")
    assert bad.returncode == 3 and "denied" in bad.stderr
    log = json.loads(
        initialised(
            "audit", "list", "--json", "--action", "user.login", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW
        ).stdout
    )
    assert any(e["actor"] == RAD and e["outcome"] == "minor_failure" for e in log)
    ok = initialised("studies", "--json", RADPLAN_USER=PHYS, RADPLAN_PASSWORD=PHYS_PW)
    assert json.loads(ok.stdout) == []


@pytest.mark.keyring
@pytest.mark.slow
def test_kill_9_during_import_then_rerun_without_duplicates(
    initialised: Cli, cli_env: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    study = tmp_path / "study"
    initialised("demo-data", str(study), "--seed", "5", "--shape", "128x128x160", "--spacing", "2.5x2.5x2.0")
    total = json.loads((study / "manifest.json").read_text())["n_ct_instances"] + 2
    env = {**cli_env, "RADPLAN_USER": RAD, "RADPLAN_PASSWORD": RAD_PW}
    proc = subprocess.Popen(
        [*RADPLAN, "import", str(study / "ct"), "--batch-size", "4"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    committed = 0
    for line in proc.stderr:
        if line.startswith("progress "):
            committed = int(line.split()[1].split("/")[0])
            if committed >= 40:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the import finished before it could be killed"

    from core.store.store import Store

    with Store.open(data_dir) as store:
        assert store.query("PRAGMA integrity_check")[0][0] == "ok"
        stored = int(store.query("SELECT count(*) FROM instances")[0][0])
        names = [str(r[0]) for r in store.query("SELECT blob FROM instances")]
        assert committed <= stored < total - 2 and stored % 4 == 0
        # every stored row's encrypted file is whole (files are durable before their row commits); files of the
        # batch cut off by the kill may remain, unreferenced, and are harmless
        assert store.blobs.problems(names) == [] and len(set(names)) == stored
        assert len(list((data_dir / "instances").glob("*/*"))) >= stored
        assert store.query("SELECT status FROM studies")[0][0] == "partial"
    rerun = json.loads(initialised("import", str(study), "--json", RADPLAN_USER=RAD, RADPLAN_PASSWORD=RAD_PW).stdout)
    assert rerun["stored"] + rerun["already_present"] == total
    assert rerun["already_present"] == stored
    with Store.open(data_dir) as store:
        assert store.query("SELECT count(*), count(DISTINCT sop_uid) FROM instances")[0] == (total, total)
        assert store.query("SELECT status FROM studies")[0][0] == "complete"
    initialised("audit", "verify", RADPLAN_USER=ADMIN, RADPLAN_PASSWORD=ADMIN_PW)
