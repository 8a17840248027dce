"""``winback scenarios``: list the built-in scenarios and show any scenario fully resolved."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from winback.scenarios.files import dumps, to_document
from winback.scenarios.scenario import BUILT_IN, load_scenario

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_scenarios() -> None:
    """Name and description of every built-in scenario."""
    width = max(map(len, BUILT_IN))
    for name, scenario in BUILT_IN.items():
        typer.echo(f"{name:<{width}}  {scenario.description}")


@app.command()
def show(
    scenario: Annotated[
        str, typer.Argument(help=f"A built-in scenario ({', '.join(BUILT_IN)}) or the path of a .toml file.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of TOML.")] = False,
) -> None:
    """The scenario with every default filled in (TOML that loads back to the same scenario).

    Loading checks it: every key, and its population against its decay model (the same panel layout).
    """
    document = to_document(load_scenario(scenario))
    typer.echo(json.dumps(document, indent=2) if as_json else dumps(document), nl=as_json)
