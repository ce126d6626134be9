"""CLI: version, doctor, store maintenance (backup, restore, rekey) as an administrator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import __version__
from tests.conftest import ADMIN, ADMIN_PW, RAD, RAD_PW, Cli


def test_version(cli: Cli) -> None:
    assert cli("--version").stdout.strip() == f"radplan, version {__version__}"


def test_doctor_reports_backends_and_environment(cli: Cli, data_dir: Path) -> None:
    report = json.loads(cli("doctor", "--json").stdout)
    backends = {b["name"]: b for b in report["inference_backends"]}
    assert set(backends) == {"tensorrt", "onnxruntime", "torch"}
    assert backends["onnxruntime"]["available"] and "CPUExecutionProvider" in backends["onnxruntime"]["detail"]
    assert backends["torch"]["available"]
    if not backends["tensorrt"]["available"]:
        assert backends["tensorrt"]["detail"]  # says why
    assert report["data_dir"] == str(data_dir)
    assert report["packages"]["pydicom"] and report["packages"]["sqlcipher3"]
    assert report["python"].startswith("CPython 3.")
    assert "radplan init" in report["store"]


@pytest.mark.keyring
def test_doctor_names_the_secret_service(cli: Cli) -> None:
    assert json.loads(cli("doctor", "--json").stdout)["keyring_backend"].endswith("SecretService.Keyring")


@pytest.mark.keyring
def test_backup_restore_and_rekey_through_the_cli(initialised: Cli, cli_env: dict[str, str], tmp_path: Path) -> None:
    admin = {"RADPLAN_USER": ADMIN, "RADPLAN_PASSWORD": ADMIN_PW, "RADPLAN_BACKUP_PASSPHRASE": "backup-phrase-123"}
    backup = tmp_path / "store.rpbak"
    denied = initialised(
        "store",
        "backup",
        str(backup),
        check=False,
        RADPLAN_USER=RAD,
        RADPLAN_PASSWORD=RAD_PW,
        RADPLAN_BACKUP_PASSPHRASE="backup-phrase-123",
    )
    assert denied.returncode == 3 and not backup.exists()
    initialised("store", "backup", str(backup), **admin)
    assert backup.stat().st_size > 0
    info_before = json.loads(initialised("store", "info", "--json").stdout)
    initialised("store", "rekey", **admin)
    info_after = json.loads(initialised("store", "info", "--json").stdout)
    assert info_after["store_id"] == info_before["store_id"] and info_after["integrity"] == "ok"
    users = json.loads(initialised("user", "list", "--json", **admin).stdout)
    assert {u["name"] for u in users} >= {ADMIN, RAD}

    restored_dir = tmp_path / "restored"
    wrong = initialised(
        "store",
        "restore",
        str(backup),
        check=False,
        RADPLAN_DATA_DIR=str(restored_dir),
        RADPLAN_BACKUP_PASSPHRASE="not-the-phrase-1",
    )
    assert wrong.returncode == 1 and "wrong backup passphrase" in wrong.stderr
    initialised(
        "store",
        "restore",
        str(backup),
        RADPLAN_DATA_DIR=str(restored_dir),
        RADPLAN_BACKUP_PASSPHRASE="backup-phrase-123",
    )
    restored_users = json.loads(
        initialised("user", "list", "--json", RADPLAN_DATA_DIR=str(restored_dir), **admin).stdout
    )
    assert restored_users == users
    restored_info = json.loads(initialised("store", "info", "--json", RADPLAN_DATA_DIR=str(restored_dir)).stdout)
    assert restored_info["store_id"] != info_before["store_id"]
    verify = initialised("audit", "verify", RADPLAN_DATA_DIR=str(restored_dir), **admin)
    assert "intact" in verify.stdout


def test_internal_error_is_one_line_and_logged(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    result = cli("demo-data", str(blocker / "out"), "--shape", "8x8x2", check=False)
    assert result.returncode == 70
    assert "internal error" in result.stderr and "Traceback" not in result.stderr
    log = (data_dir / "logs" / "radplan.log").read_text()
    assert "Traceback" in log and "internal error" in log
