"""Error types a user can act on. The CLI turns each into a one-paragraph message and exit code 2."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class WinbackError(Exception):
    """Base class of every error winback raises on purpose (bad input, bad artifact, bad config)."""


class DataError(WinbackError):
    """An event log, panel or dataset that cannot be used as given.

    Carries where the problem is (file, rows, column) and what was expected, so the message
    names all of them. ``rows`` are 1-based line numbers of the data file, header excluded
    from the count (the first data row is row 1), and only the first few are kept.
    """

    max_rows_shown = 5

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        rows: Sequence[int] = (),
        n_rows: int | None = None,
        column: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.rows = [int(r) for r in rows[: self.max_rows_shown]]
        self.n_rows = len(rows) if n_rows is None else n_rows
        self.column = column
        self.expected = expected
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows)
            more = f" and {self.n_rows - len(self.rows)} more" if self.n_rows > len(self.rows) else ""
            where.append(f"row{'s' if self.n_rows > 1 else ''} {shown}{more}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        message = ": ".join([", ".join(where), self.problem]) if where else self.problem
        if self.expected:
            message += f" (expected {self.expected})"
        return message


class ArtifactError(WinbackError):
    """A saved model or policy artifact that is missing, tampered with, or from an incompatible version."""


class ConfigError(WinbackError):
    """A configuration value outside its allowed range or of the wrong type."""
