"""The ``winback`` command line. Each sub-app lives in its own module of this package."""

from __future__ import annotations

import sys

import typer

from winback.cli import data, decay
from winback.errors import WinbackError

EXIT_BAD_INPUT = 2

_app = typer.Typer(
    name="winback",
    help="Learn how user interest decays, simulate users, train and benchmark win-back policies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_app.add_typer(data.app, name="data", help="Validate and summarise event logs.")
_app.add_typer(decay.app, name="decay", help="Fit and evaluate interest-decay models.")


def app() -> None:
    """Entry point: runs the CLI, turning every :class:`WinbackError` into a message and exit code 2."""
    try:
        _app(standalone_mode=False)
    except WinbackError as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        sys.exit(EXIT_BAD_INPUT)
    except typer.Abort:
        sys.exit(1)
    except typer.Exit as done:
        sys.exit(done.exit_code)
