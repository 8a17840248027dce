"""The ``winback`` command line. Each sub-app lives in its own module of this package."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from winback.cli import bench, data, decay, export, scenarios, serve, sweep, train, whatif
from winback.errors import WinbackError

EXIT_BAD_INPUT = 2

cli = typer.Typer(
    name="winback",
    help="Learn how user interest decays, simulate users, train and benchmark win-back policies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
cli.add_typer(data.app, name="data", help="Validate and summarise event logs.")
cli.add_typer(decay.app, name="decay", help="Fit and evaluate interest-decay models.")
cli.add_typer(scenarios.app, name="scenarios", help="List and show scenarios.")
cli.command("train")(train.train)
cli.command("bench")(bench.bench)
cli.command("whatif")(whatif.whatif)
cli.command("sweep")(sweep.sweep)
cli.command("export")(export.export)
cli.command("serve")(serve.serve)


def app(argv: Sequence[str] | None = None) -> None:
    """Entry point: runs the CLI, turning every :class:`WinbackError` into a message and exit code 2.

    Always ends with ``SystemExit`` carrying the exit code (typer's standalone mode).
    """
    try:
        cli(args=None if argv is None else list(argv), prog_name="winback")
    except WinbackError as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        sys.exit(EXIT_BAD_INPUT)
