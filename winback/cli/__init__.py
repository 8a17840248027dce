"""The ``winback`` command line. Each command lives in its own module of this package, imported only
when that command runs or its help is shown: ``winback serve`` loads the decision service and not
the training stack (torch, SB3, numba), which the other commands' modules import."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import typer
from typer.core import TyperCommand, TyperGroup

from winback.errors import WinbackError

EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Command:
    """A command as ``module:attribute``: a function, or a ``typer.Typer`` of subcommands with its help."""

    target: str
    help: str | None = None

    def build(self, name: str) -> TyperCommand | TyperGroup:
        """Imports the module and builds the command as typer would from ``cli.command`` or ``add_typer``."""
        module, attribute = self.target.split(":")
        target = getattr(importlib.import_module(module), attribute)
        holder = typer.Typer()
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=name, help=self.help)
        else:
            holder.command(name)(target)
        return typer.main.get_group(holder).commands[name]  # type: ignore[return-value]


COMMANDS = {
    "train": Command("winback.cli.train:train"),
    "bench": Command("winback.cli.bench:bench"),
    "whatif": Command("winback.cli.whatif:whatif"),
    "sweep": Command("winback.cli.sweep:sweep"),
    "export": Command("winback.cli.export:export"),
    "pipeline": Command("winback.cli.pipeline:pipeline"),
    "serve": Command("winback.cli.serve:serve"),
    "decide": Command("winback.cli.decide:decide"),
    "ope": Command("winback.cli.ope:ope"),
    "data": Command("winback.cli.data:app", "Validate and summarise event logs."),
    "decay": Command("winback.cli.decay:app", "Fit and evaluate interest-decay models."),
    "scenarios": Command("winback.cli.scenarios:app", "List and show scenarios."),
}
"""The commands in the order ``winback --help`` lists them."""


class LazyCommands(Mapping[str, TyperCommand | TyperGroup]):
    """:data:`COMMANDS` by name, each built on first access (typer looks up the one it runs)."""

    def __init__(self, commands: dict[str, Command]) -> None:
        self.commands = commands
        self.built: dict[str, TyperCommand | TyperGroup] = {}

    def __getitem__(self, name: str) -> TyperCommand | TyperGroup:
        if name not in self.built:
            self.built[name] = self.commands[name].build(name)
        return self.built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.commands)

    def __len__(self) -> int:
        return len(self.commands)


class LazyGroup(TyperGroup):
    """A typer group that lists its commands by name without building them."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(self.commands)


cli = LazyGroup(
    name="winback",
    commands=LazyCommands(COMMANDS),
    help="Learn how user interest decays, simulate users, train and benchmark win-back policies.",
    no_args_is_help=True,
)


def app(argv: Sequence[str] | None = None) -> None:
    """Entry point: runs the CLI, turning every :class:`WinbackError` into a message and exit code 2.

    Always ends with ``SystemExit`` carrying the exit code (typer's standalone mode).
    """
    try:
        cli(args=None if argv is None else list(argv), prog_name="winback")
    except WinbackError as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        sys.exit(EXIT_BAD_INPUT)
