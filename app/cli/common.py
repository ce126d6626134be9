"""Shared CLI plumbing: the context object, credential prompts, JSON output, error exit codes."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from app.bootstrap import AppContext

__all__ = ["EXIT_DENIED", "EXIT_ERROR", "EXIT_INTERNAL", "echo_json", "env_or_prompt", "pass_app"]

EXIT_ERROR = 1
EXIT_DENIED = 3
EXIT_INTERNAL = 70  # EX_SOFTWARE
F = TypeVar("F", bound=Callable[..., Any])

pass_app = click.make_pass_decorator(AppContext)


def env_or_prompt(variable: str, prompt: str, *, confirm: bool = False) -> str:
    """The secret from the environment (automation), else a hidden prompt on a terminal, else an error."""
    value = os.environ.get(variable)
    if value:
        return value
    if not sys.stdin.isatty():
        raise click.ClickException(f"{prompt.rstrip(': ')} needed: set {variable} or run in a terminal")
    return str(click.prompt(prompt.rstrip(": "), hide_input=True, confirmation_prompt=confirm))


def _default(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, default=_default, sort_keys=False))
