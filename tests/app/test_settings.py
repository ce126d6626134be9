"""Settings: defaults, the site and user TOML files, RADPLAN_DATA_DIR and --data-dir, and validation."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import platformdirs
import pytest

from app.config import load_settings, site_config_path, user_config_path
from core.settings import Settings
from tests.conftest import RADPLAN


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "etc" / "config.toml"
    monkeypatch.setenv("RADPLAN_SITE_CONFIG", str(path))
    return path


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home" / "config.toml"
    monkeypatch.setenv("RADPLAN_USER_CONFIG", str(path))
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, site: Path, user: Path) -> None:
    monkeypatch.delenv("RADPLAN_DATA_DIR", raising=False)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_config_paths_come_from_the_environment(site: Path, user: Path) -> None:
    assert site_config_path() == site
    assert user_config_path() == user


def test_defaults_without_any_file(site: Path, user: Path) -> None:
    assert not site.exists() and not user.exists()
    settings = load_settings()
    assert settings == Settings(data_dir=Path(platformdirs.user_data_dir("radplan", appauthor=False)))
    assert settings.auto_lock_minutes == 10.0
    assert settings.log_level == "INFO"
    assert (settings.log_max_bytes, settings.log_backups) == (5_000_000, 5)
    assert settings.key_mode == ""
    assert (settings.ae_title, settings.storage_port) == ("RADPLAN", 11112)


def test_site_file_then_user_file_then_env_then_option(
    site: Path, user: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        site,
        f'data_dir = "{tmp_path / "site-data"}"\nauto_lock_minutes = 5\nae_title = "SITE_AE"\nlog_backups = 2\n',
    )
    settings = load_settings()
    assert settings.data_dir == tmp_path / "site-data"
    assert (settings.auto_lock_minutes, settings.ae_title, settings.log_backups) == (5.0, "SITE_AE", 2)

    _write(user, f'data_dir = "{tmp_path / "user-data"}"\nauto_lock_minutes = 2.5\n')
    settings = load_settings()
    assert settings.data_dir == tmp_path / "user-data"
    assert settings.auto_lock_minutes == 2.5  # the user file wins ...
    assert (settings.ae_title, settings.log_backups) == ("SITE_AE", 2)  # ... and the site file fills the rest

    monkeypatch.setenv("RADPLAN_DATA_DIR", str(tmp_path / "env-data"))
    assert load_settings().data_dir == tmp_path / "env-data"
    assert load_settings(tmp_path / "option-data").data_dir == tmp_path / "option-data"
    assert load_settings(tmp_path / "option-data").auto_lock_minutes == 2.5


def test_empty_radplan_data_dir_is_ignored(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(site, f'data_dir = "{tmp_path / "site-data"}"\n')
    monkeypatch.setenv("RADPLAN_DATA_DIR", "")
    assert load_settings().data_dir == tmp_path / "site-data"


def test_data_dir_tilde_is_expanded(user: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "homedir"))
    _write(user, 'data_dir = "~/radplan-store"\n')
    assert load_settings().data_dir == tmp_path / "homedir" / "radplan-store"


def test_radplan_table_and_top_level_keys_are_both_accepted(site: Path, user: Path) -> None:
    _write(site, '[radplan]\nlog_level = "DEBUG"\nstorage_port = 11113\n')
    _write(user, 'key_mode = "passphrase"\n')
    settings = load_settings()
    assert (settings.log_level, settings.storage_port, settings.key_mode) == ("DEBUG", 11113, "passphrase")


def test_top_level_keys_beside_a_radplan_table_are_not_ignored(user: Path) -> None:
    _write(user, 'auto_lock_minutes = 3\n[radplan]\nlog_level = "WARNING"\n')
    settings = load_settings()
    assert (settings.auto_lock_minutes, settings.log_level) == (3.0, "WARNING")


def test_a_key_set_twice_in_one_file_is_an_error(user: Path) -> None:
    _write(user, "auto_lock_minutes = 3\n[radplan]\nauto_lock_minutes = 4\n")
    with pytest.raises(ValueError, match="auto_lock_minutes") as excinfo:
        load_settings()
    assert str(user) in str(excinfo.value)


@pytest.mark.parametrize("where", ["site", "user"])
def test_unknown_key_is_named_with_its_file(where: str, site: Path, user: Path) -> None:
    path = site if where == "site" else user
    _write(path, "[radplan]\nauto_lock_minuts = 5\n")
    with pytest.raises(ValueError, match=r"unknown setting.*auto_lock_minuts") as excinfo:
        load_settings()
    assert str(path) in str(excinfo.value)


def test_another_table_is_an_unknown_key(user: Path) -> None:
    _write(user, "[radplann]\nauto_lock_minutes = 5\n")
    with pytest.raises(ValueError, match="radplann"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("auto_lock_minutes = 0", "auto_lock_minutes"),
        ("auto_lock_minutes = -1.5", "auto_lock_minutes"),
        ("auto_lock_minutes = nan", "auto_lock_minutes"),
        ("auto_lock_minutes = inf", "auto_lock_minutes"),
        ('auto_lock_minutes = "10"', "auto_lock_minutes"),
        ("auto_lock_minutes = true", "auto_lock_minutes"),
        ('key_mode = "plaintext"', "key_mode"),
        ("key_mode = 1", "key_mode"),
        ('log_level = "LOUD"', "log_level"),
        ("log_max_bytes = -1", "log_max_bytes"),
        ("log_max_bytes = 1.5", "log_max_bytes"),
        ("log_backups = -2", "log_backups"),
        ('ae_title = ""', "ae_title"),
        ('ae_title = "ABCDEFGHIJKLMNOPQ"', "ae_title"),
        ('ae_title = "BAD\\\\AE"', "ae_title"),
        ('ae_title = "    "', "ae_title"),
        ("storage_port = 0", "storage_port"),
        ("storage_port = 70000", "storage_port"),
        ('storage_port = "11112"', "storage_port"),
        ("data_dir = 5", "data_dir"),
        ('data_dir = ""', "data_dir"),
    ],
)
def test_bad_values_are_named(user: Path, text: str, key: str) -> None:
    _write(user, f"[radplan]\n{text}\n")
    with pytest.raises(ValueError, match=key) as excinfo:
        load_settings()
    assert str(user) in str(excinfo.value)


def test_log_level_is_case_insensitive(user: Path) -> None:
    _write(user, 'log_level = "debug"\n')
    assert load_settings().log_level.upper() == "DEBUG"


def test_integer_minutes_become_float(user: Path) -> None:
    _write(user, "auto_lock_minutes = 15\n")
    value = load_settings().auto_lock_minutes
    assert isinstance(value, float) and math.isclose(value, 15.0)


@pytest.mark.parametrize("where", ["site", "user"])
def test_malformed_toml_names_the_file(where: str, site: Path, user: Path) -> None:
    path = site if where == "site" else user
    _write(path, "[radplan\nauto_lock_minutes = = 5\n")
    with pytest.raises(ValueError, match="cannot read settings file") as excinfo:
        load_settings()
    assert str(path) in str(excinfo.value)


def test_radplan_must_be_a_table(user: Path) -> None:
    _write(user, "radplan = 5\n")
    with pytest.raises(ValueError, match="radplan") as excinfo:
        load_settings()
    assert str(user) in str(excinfo.value)


def test_a_directory_in_place_of_the_file_is_ignored(site: Path) -> None:
    site.mkdir(parents=True)
    assert load_settings().auto_lock_minutes == 10.0


def test_from_mapping_directly() -> None:
    settings = Settings.from_mapping({"data_dir": "/srv/radplan", "ae_title": "WS01", "storage_port": 104})
    assert settings.data_dir == Path("/srv/radplan")
    assert (settings.ae_title, settings.storage_port) == ("WS01", 104)
    with pytest.raises(ValueError, match=r"unknown setting.*colour"):
        Settings.from_mapping({"data_dir": "/srv/radplan", "colour": "blue"})
    with pytest.raises(ValueError, match="data_dir"):
        Settings.from_mapping({"auto_lock_minutes": 5})


def test_cli_reports_a_bad_settings_file(cli_env: dict[str, str], tmp_path: Path) -> None:
    """The CLI turns the error into one line naming file and key, exit status 1, no traceback."""
    bad = _write(tmp_path / "bad.toml", "auto_lock_minutes = 0\n")
    result = subprocess.run(
        [*RADPLAN, "doctor"],
        env={**cli_env, "RADPLAN_USER_CONFIG": str(bad)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "auto_lock_minutes" in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr
