"""The CLI imports a command's module only when that command runs: `radplan gui` must not pay for every other
command's dependencies before its window shows (issue 8's start-up goal)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from app.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[2]


def test_every_lazy_command_resolves_to_a_click_command_of_its_name() -> None:
    ctx = click.Context(cli)
    assert set(cli.list_commands(ctx)) >= set(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name, name


def test_importing_the_cli_imports_no_command_module() -> None:
    code = (
        "import sys, json, app.cli.main as m, click\n"
        "before = sorted(n for n in sys.modules if n.startswith('app.cli.') and n.endswith(('_cmds', 'doctor')))\n"
        "m.cli.get_command(click.Context(m.cli), 'radiomics')\n"
        "after = sorted(n for n in sys.modules if n.startswith('app.cli.') and n.endswith(('_cmds', 'doctor')))\n"
        "heavy = sorted(n for n in ('pydicom', 'pynetdicom', 'scipy', 'SimpleITK', 'PySide6') if n in sys.modules)\n"
        "print(json.dumps([before, after, heavy]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    before, after, heavy = json.loads(out.stdout)
    # gui_cmds is imported for has_display() (`radplan` alone opens the window); it imports no GUI module itself
    assert before == ["app.cli.gui_cmds"], before
    assert "app.cli.radiomics_cmds" in after
    assert heavy == [], f"importing the CLI pulled in {heavy}"


def test_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    listed = {line.split()[0] for line in out.stdout.split("Commands:")[1].splitlines() if line.strip()}
    ctx = click.Context(cli)
    assert listed == {name for name in COMMANDS if not cli.get_command(ctx, name).hidden}  # type: ignore[union-attr]
