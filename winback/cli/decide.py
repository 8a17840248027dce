"""``winback decide``: one period's decisions for a table of users, logged for off-policy evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from winback.errors import ConfigError
from winback.export.runtime.batch import BATCH_ROWS, SAMPLE_USERS, decide_table
from winback.export.runtime.exploration import Exploration
from winback.progress import progress_bar


def decide(
    export: Annotated[Path, typer.Argument(help="Export directory (winback export --out).")],
    table: Annotated[
        Path,
        typer.Argument(
            help="Users table (.parquet or .csv): user_id, each user's stored state (as the previous run "
            "wrote it in OUT/states), and the period that ended: count_<event type>, spend, received."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output directory (created; an unfinished run there resumes).")],
    exploration: Annotated[str, typer.Option(help="none, epsilon or softmax.")] = "none",
    epsilon: Annotated[float, typer.Option(help="epsilon: share of decisions drawn uniformly.")] = 0.0,
    temperature: Annotated[float, typer.Option(help="softmax: temperature on the policy's scores.")] = 1.0,
    floor: Annotated[float, typer.Option(help="Least probability of every allowed action.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seeds the draws of the actions (keyed by user and period).")] = 0,
    batch_rows: Annotated[
        int, typer.Option(help="Users decided and written together (a part).")
    ] = BATCH_ROWS,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            help="ACTION=USERS (repeat it): a contact action may go to at most this many of the table's "
            "users this period; the decisions are priced to fit, with a cap as backstop."
        ),
    ] = None,
    sample_users: Annotated[
        int, typer.Option(help="Users on whom the prices that fit the limits are searched.")
    ] = SAMPLE_USERS,
    progress: Annotated[bool, typer.Option(help="Show progress.")] = True,
) -> None:
    """Decide the coming period for every user of TABLE with the policy exported to EXPORT.

    Writes OUT/decisions (user, period, action, the probability of every action and the propensity
    of the one drawn, the policy's and decay model's hashes), OUT/states (the next run's states) and
    OUT/decide.json. The same input and settings give the same output; a stopped run resumes.
    With --limit, OUT/decide.json also gives the prices found, and each part what it used and cut.
    """
    chosen = Exploration(exploration, epsilon=epsilon, temperature=temperature, floor=floor)  # type: ignore[arg-type]
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("deciding", total=None)
        pricing = bar.add_task("pricing the limits on a sample", total=None, visible=bool(limit))
        manifest = decide_table(
            export,
            table,
            out,
            exploration=chosen,
            seed=seed,
            batch_rows=batch_rows,
            limits=parse_limits(limit or []),
            sample_users=sample_users,
            on_part=lambda part, rows: bar.advance(task, rows),
            on_priced=lambda rows: bar.advance(pricing, rows),
        )
    typer.echo(f"decided for {manifest['users']:,} users in {len(manifest['parts'])} parts -> {out}")
    for action, count in manifest["settings"]["limits"].items():
        used = sum(part["used"][action] for part in manifest["parts"])
        cut = sum(part["cut"][action] for part in manifest["parts"])
        price = manifest["pricing"]["prices"][action]
        typer.echo(
            f"{action}: {used:,} of {count:,} at price {price:.4g}"
            + (f"; the cap cut {cut:,} (the exploration alone may ask for more)" if cut else "")
        )


def parse_limits(values: list[str]) -> dict[str, int]:
    """``ACTION=USERS`` options as a mapping; a malformed or repeated one is a :class:`ConfigError`."""
    limits: dict[str, int] = {}
    for value in values:
        action, _, count = value.partition("=")
        if not action or not count.strip().isdigit() or action in limits:
            raise ConfigError(
                f"--limit {value!r} (expected ACTION=USERS, a whole number of users, each action once)"
            )
        limits[action.strip()] = int(count)
    return limits
