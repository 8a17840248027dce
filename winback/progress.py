"""Progress bars for long work (fitting, rollouts), silent when disabled or not on a terminal."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(*, enabled: bool = True) -> Progress:
    """A rich progress bar; use as a context manager and add tasks to it."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
    )
