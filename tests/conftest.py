"""Shared fixtures: temporary data dirs, the real Secret Service, the radplan CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RADPLAN = [sys.executable, "-m", "app"]

ADMIN, ADMIN_PW = "admin", "admin-password-1"
RAD, RAD_PW = "rad1", "radiologist-pw-1"
PHYS, PHYS_PW = "phys1", "physicist-pw-01"


def secret_service_running() -> bool:
    from core.store.keys import find_secure_keyring

    return os.environ.get("DBUS_SESSION_BUS_ADDRESS") is not None and find_secure_keyring() is not None


#: Free space the whole suite needs in the temporary folder: the release build (bundle, .deb, tarball) is the
#: largest part; Orthanc stores, demo studies and CI clones add the rest.
SUITE_DISK_GB = 8.0


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Free disk space where the tests write, so a run that fails for lack of space says so in its first lines."""
    import shutil
    import tempfile

    free = shutil.disk_usage(tempfile.gettempdir()).free / 1e9
    line = f"radplan: {free:.1f} GB free in {tempfile.gettempdir()} (the suite needs about {SUITE_DISK_GB:.0f} GB)"
    if free < SUITE_DISK_GB:
        line += " - LOW: tests that build the release or start Orthanc may fail with 'No space left on device'"
    return [line]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if secret_service_running():
        return
    skip = pytest.mark.skip(
        reason="no Secret Service on this session bus: run the suite with 'make test' "
        "(dbus-run-session + gnome-keyring)"
    )
    for item in items:
        if "keyring" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


CliResult = subprocess.CompletedProcess[str]
Cli = Callable[..., CliResult]


@pytest.fixture
def cli_env(data_dir: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADPLAN_")}
    env.update(
        RADPLAN_DATA_DIR=str(data_dir),
        RADPLAN_SITE_CONFIG=str(tmp_path / "no-site.toml"),
        RADPLAN_USER_CONFIG=str(tmp_path / "no-user.toml"),
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Cli:
    """Run `radplan ARGS` in a subprocess; keyword arguments add environment variables."""

    def run(*args: str, check: bool = True, timeout: float = 300, **env: str) -> CliResult:
        result = subprocess.run(
            [*RADPLAN, *args],
            env={**cli_env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"radplan {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    return run


@pytest.fixture
def initialised(cli: Cli) -> Cli:
    """A store (key mode from the environment: keyring when available) with an admin, a radiologist and a
    physicist."""
    cli("init", "--admin", ADMIN, RADPLAN_PASSWORD=ADMIN_PW, RADPLAN_PASSPHRASE="store-passphrase-1")
    for name, role, pw in ((RAD, "radiologist", RAD_PW), (PHYS, "physicist", PHYS_PW)):
        cli(
            "user",
            "add",
            name,
            "--role",
            role,
            RADPLAN_USER=ADMIN,
            RADPLAN_PASSWORD=ADMIN_PW,
            RADPLAN_NEW_PASSWORD=pw,
            RADPLAN_PASSPHRASE="store-passphrase-1",
        )
    return cli


@pytest.fixture
def passphrase_store(data_dir: Path) -> Iterator[object]:
    """A store in passphrase mode, opened in-process, with users created."""
    from core.store.store import Store
    from core.store.users import UserRepository

    store = Store.create(data_dir, key_mode="passphrase", passphrase=lambda _p: "store-passphrase-1")
    users = UserRepository(store)
    users.create_first_admin(ADMIN, ADMIN_PW)
    yield store
    store.close()
