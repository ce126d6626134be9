"""`radplan`: the single command line of the workstation."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from app import __version__
from app.bootstrap import AppContext, Credentials
from app.cli.common import EXIT_DENIED, EXIT_ERROR, EXIT_INTERNAL, env_or_prompt
from app.cli.gui_cmds import has_display
from app.cli.lazy import LazyGroup
from app.config import load_settings
from app.logging_setup import configure_logging
from core.errors import AuthenticationError, PermissionDeniedError, RadPlanError, SessionLockedError

__all__ = ["cli", "main"]

log = logging.getLogger("radplan.cli")


def _user_name(option: str | None) -> Callable[[], str]:
    def get() -> str:
        name = option or os.environ.get("RADPLAN_USER")
        if name:
            return name
        if not sys.stdin.isatty():
            raise click.ClickException("no user: pass --user or set RADPLAN_USER")
        return str(click.prompt("User"))

    return get


#: Command name -> "module:attribute". Each command module is imported only when its command runs (or for
#: --help): `radplan gui` must not pay for importing every other command's dependencies before its window shows.
COMMANDS = {
    "doctor": "app.cli.doctor:doctor",
    "init": "app.cli.store_cmds:init",
    "user": "app.cli.user_cmds:user",
    "store": "app.cli.store_cmds:store",
    "audit": "app.cli.audit_cmds:audit",
    "demo-data": "app.cli.data_cmds:demo_data",
    "import": "app.cli.data_cmds:import_cmd",
    "studies": "app.cli.data_cmds:studies",
    "pacs": "app.cli.pacs_cmds:pacs",
    "export": "app.cli.pacs_cmds:export",
    "radiomics": "app.cli.radiomics_cmds:radiomics",
    "recommend": "app.cli.decision_cmds:recommend_cmd",
    "rules": "app.cli.decision_cmds:rules",
    "risk-model": "app.cli.decision_cmds:risk_model",
    "feedback": "app.cli.decision_cmds:feedback",
    "dvh": "app.cli.plan_cmds:dvh",
    "plan": "app.cli.plan_cmds:plan",
    "run": "app.cli.run_cmds:run",
    "demo": "app.cli.run_cmds:demo",
    "gui": "app.cli.gui_cmds:gui",
    "model": "app.cli.model_cmds:model",
    "segment": "app.cli.segment_cmds:segment",
    "worker": "app.cli.segment_cmds:worker",
    "jobs": "app.cli.segment_cmds:jobs",
    "engine-worker": "app.cli.segment_cmds:engine_worker",
}


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, "--version", prog_name="radplan")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="RADPLAN_DATA_DIR",
    help="Store and logs location (default: the platform's user data dir; env RADPLAN_DATA_DIR).",
)
@click.option(
    "--user",
    "user_name",
    metavar="NAME",
    help="Act as this user (env RADPLAN_USER; password from RADPLAN_PASSWORD or a prompt).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr too.")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, user_name: str | None, verbose: bool) -> None:
    """RadPlan Workstation: PACS studies to AI segmentation, radiomics, decision support and PDF plans.

    Decision support only: every recommendation must be checked by a qualified clinician.
    """
    try:
        settings = load_settings(data_dir)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings, verbose=verbose)
    credentials = Credentials(
        user=_user_name(user_name),
        password=lambda name: env_or_prompt("RADPLAN_PASSWORD", f"Password for {name}: "),
        passphrase=lambda prompt: env_or_prompt("RADPLAN_PASSPHRASE", prompt),
    )
    app = AppContext(settings=settings, credentials=credentials)
    ctx.obj = app
    ctx.call_on_close(app.close)
    log.debug("command %s, data dir %s", ctx.invoked_subcommand, settings.data_dir)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user-facing errors become one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    if not args and has_display():  # `radplan` alone opens the workstation window where one can be shown
        argv = ["gui"]
    try:
        # standalone_mode=False: click returns a command's Exit(code) as the return value instead of raising it
        code = cli.main(args=argv, prog_name="radplan", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("radplan: aborted", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (PermissionDeniedError, AuthenticationError, SessionLockedError) as exc:
        click.echo(f"radplan: denied: {exc}", err=True)
        sys.exit(EXIT_DENIED)
    except RadPlanError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        click.echo(f"radplan: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug: the traceback goes to the (redacted) log file, one line to the user
        log.exception("internal error", extra={"file_only": True})
        click.echo(
            f"radplan: internal error ({type(exc).__name__}); details in the log file under the data dir "
            "(logs/radplan.log). Run again with -v to see them here.",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    sys.exit(code if isinstance(code, int) else 0)
