"""``winback decay``: fit and evaluate interest-decay models."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
