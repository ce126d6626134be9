"""Patient identifiers never reach the log file: the redacting filter behind configure_logging, end to end."""

from __future__ import annotations

import logging
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.logging_setup import configure_logging
from core.logsafe import REPLACEMENT, redact, register_phi
from core.settings import Settings


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def data_dir(tmp_path: Path, restore_root_logger: None) -> Path:
    return tmp_path / "data"


def _configure(data_dir: Path, **settings: object) -> Path:
    configure_logging(Settings.from_mapping({"data_dir": str(data_dir), "log_level": "DEBUG", **settings}))
    return data_dir / "logs" / "radplan.log"


def _read(log_file: Path) -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return log_file.read_text(encoding="utf-8")


def _unique(prefix: str) -> str:
    """Identifiers unique to one test (the registry is process-wide)."""
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


def test_registered_ids_and_names_are_redacted_in_messages_and_args(data_dir: Path) -> None:
    log_file = _configure(data_dir)
    pid, family, given = _unique("PID"), _unique("DOE"), _unique("JANE")
    register_phi(pid, f"{family}^{given}")
    log = logging.getLogger("radplan.test")
    log.info("imported patient %s (%s) with 3 series", pid, f"{family}^{given}")
    log.warning(f"literal message for {given} {family.lower()}")  # already formatted: no args
    log.error("mapping args: %(who)s", {"who": pid})
    text = _read(log_file)
    for secret in (pid, family, given, family.lower()):
        assert secret not in text
        assert secret.lower() not in text.lower()
    assert text.count(REPLACEMENT) == 5  # 'FAMILY^GIVEN' is one registered term
    assert "imported patient [redacted] ([redacted]) with 3 series" in text
    assert "literal message for [redacted] [redacted]" in text
    assert "mapping args: [redacted]" in text


def test_exception_text_is_redacted(data_dir: Path) -> None:
    log_file = _configure(data_dir)
    pid = _unique("MRN")
    register_phi(pid)
    log = logging.getLogger("radplan.test")
    try:
        raise ValueError(f"no such patient {pid}")
    except ValueError:
        log.exception("lookup failed")
    text = _read(log_file)
    assert pid not in text
    assert "ValueError: no such patient [redacted]" in text
    assert "Traceback" in text


def test_stack_info_is_redacted(data_dir: Path) -> None:
    log_file = _configure(data_dir)
    name = _unique("ROE")
    register_phi(name)
    logging.getLogger("radplan.test").info("with stack %s", name, stack_info=True)
    text = _read(log_file)
    assert "Stack (most recent call last)" in text
    assert name not in text


def test_unregistered_text_is_left_alone(data_dir: Path) -> None:
    log_file = _configure(data_dir)
    register_phi(_unique("PID"))
    uid = "1.2.826.0.1.3680043.10.543.1"
    logging.getLogger("radplan.test").info("stored %d instances of study %s for %s", 120, uid, "UNREGISTERED-PERSON")
    text = _read(log_file)
    assert f"stored 120 instances of study {uid} for UNREGISTERED-PERSON" in text
    assert REPLACEMENT not in text


def test_short_values_are_not_registered() -> None:
    register_phi("AB", "", None, "X^Y")
    assert redact("AB X Y") == "AB X Y"


def test_pn_with_component_groups() -> None:
    family, given = _unique("YAMADA"), _unique("TAROU")
    ideographic = "山田太郎"
    register_phi(f"{family}^{given}={ideographic}=やまだ^たろう")
    assert redact(f"{given} / {family} / {ideographic} / たろう") == " / ".join([REPLACEMENT] * 4)


def test_names_are_matched_case_insensitively() -> None:
    family = _unique("SMITH")
    register_phi(f"{family}^ANNE")
    assert family.lower() not in redact(f"patient {family.lower()}, {family.title()}")


def test_a_bad_format_call_neither_raises_nor_leaks(data_dir: Path) -> None:
    log_file = _configure(data_dir)
    pid = _unique("PID")
    register_phi(pid)
    logging.getLogger("radplan.test").warning("two placeholders %s %s but one arg", pid)
    text = _read(log_file)
    assert pid not in text
    assert "two placeholders" in text


def test_stderr_gets_warnings_redacted(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _configure(data_dir)
    pid = _unique("PID")
    register_phi(pid)
    log = logging.getLogger("radplan.test")
    log.info("info for %s", pid)
    log.warning("warning for %s", pid)
    err = capsys.readouterr().err
    assert "WARNING radplan.test: warning for [redacted]" in err
    assert "info for" not in err  # stderr only gets warnings unless verbose
    assert pid not in err


def test_log_file_and_folder_are_private(data_dir: Path) -> None:
    log_file = _configure(data_dir)
    logging.getLogger("radplan.test").info("hello")
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700


def test_existing_loose_permissions_are_tightened(data_dir: Path) -> None:
    logs = data_dir / "logs"
    logs.mkdir(parents=True)
    logs.chmod(0o755)
    (logs / "radplan.log").write_text("old\n")
    (logs / "radplan.log").chmod(0o644)
    log_file = _configure(data_dir)
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    assert _read(log_file).startswith("old\n")  # appended to, not truncated


def test_rotated_log_files_stay_private(data_dir: Path) -> None:
    log_file = _configure(data_dir, log_max_bytes=2000, log_backups=2)
    log = logging.getLogger("radplan.test")
    for i in range(100):
        log.info("line %03d %s", i, "x" * 60)
    files = sorted(log_file.parent.iterdir())
    assert [f.name for f in files] == ["radplan.log", "radplan.log.1", "radplan.log.2"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert "line 099" in _read(log_file)


def test_log_level_from_settings(data_dir: Path) -> None:
    log_file = _configure(data_dir, log_level="warning")
    log = logging.getLogger("radplan.test")
    log.info("quiet info")
    log.warning("loud warning")
    text = _read(log_file)
    assert "loud warning" in text and "quiet info" not in text
