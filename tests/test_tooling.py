"""Lint, format, architecture contracts and types run as part of the suite (the README's test command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
        ("lint-imports",),
        ("mypy",),
    ],
    ids=["ruff-lint", "ruff-format", "import-linter", "mypy-core"],
)
def test_tool_passes(command: tuple[str, ...]) -> None:
    result = run(str(BIN / command[0]), *command[1:])
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


def test_import_linter_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The contracts are live: a core module importing PySide6 breaks them."""
    probe = ROOT / "core" / "_contract_probe.py"
    probe.write_text("import PySide6  # noqa: F401\n")
    try:
        result = run(str(BIN / "lint-imports"))
    finally:
        probe.unlink()
    assert result.returncode != 0 and "core is headless" in result.stdout
