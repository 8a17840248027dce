"""``winback data``: validate and summarise event logs, and write one of a ground-truth world."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, cast

import typer

from winback.data.cdnow import DATASETS, load_cdnow
from winback.data.io import file_format, read_event_log
from winback.data.mapping import PRESETS
from winback.data.panel import Period
from winback.data.schema import EventLog
from winback.data.shards import ROWS_PER_SHARD, ingest_log
from winback.data.stream import DEFAULT_BLOCK_ROWS
from winback.data.summary import shape_figures, summarize
from winback.data.synthetic import WorldConfig
from winback.data.synthetic.blocks import write_world_log
from winback.errors import DataError

app = typer.Typer(no_args_is_help=True)

PathArgument = Annotated[
    str,
    typer.Argument(
        help=f"Event log file (.csv, .csv.gz, .parquet, .pq) or a built-in dataset: {', '.join(DATASETS)}."
    ),
]
MappingOption = Annotated[
    str | None,
    typer.Option(
        help=f"Column mapping: a preset ({', '.join(PRESETS)}) or a TOML file (its shape: events or "
        "transactions, and a contacts file)."
    ),
]
PurchaseEventOption = Annotated[str, typer.Option(help="Event type that counts as a purchase.")]
EventTypesOption = Annotated[
    str | None,
    typer.Option(help="Comma-separated declared event types; any other type is an error."),
]
DelimiterOption = Annotated[str, typer.Option(help="CSV delimiter (write tab as 'tab' or '\\t').")]


@app.command()
def validate(
    path: PathArgument,
    mapping: MappingOption = None,
    purchase_event: PurchaseEventOption = "purchase",
    event_types: EventTypesOption = None,
    delimiter: DelimiterOption = ",",
) -> None:
    """Check an event log and report what loading it did (duplicates dropped, rows sorted)."""
    log = _load(path, mapping, purchase_event, event_types, delimiter)
    report = log.report
    message = (
        f"OK: {report.source}: {len(log.events):,} rows ({report.rows_read:,} read), {log.n_users:,} users, "
        f"event types {', '.join(log.event_types)} (purchase event '{log.purchase_event}'); "
        f"{report.duplicate_rows_dropped:,} exact duplicate rows dropped, "
        f"{report.out_of_order_rows:,} out-of-order rows sorted"
    )
    if report.same_day_rows_merged:
        message += f", {report.same_day_rows_merged:,} same-day rows merged"
    message += "".join(f", {figure}: {value}" for figure, value in shape_figures(report))
    typer.echo(message + "." + "".join(f" Note: {note}." for note in report.notes))


@app.command()
def summary(
    path: PathArgument,
    mapping: MappingOption = None,
    purchase_event: PurchaseEventOption = "purchase",
    event_types: EventTypesOption = None,
    delimiter: DelimiterOption = ",",
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Summarise an event log: users, events per type, contacts, dates, purchases per user."""
    figures = summarize(_load(path, mapping, purchase_event, event_types, delimiter))
    typer.echo(json.dumps(figures.to_dict(), indent=2) if as_json else figures.to_markdown())


@app.command()
def panel(
    path: Annotated[
        str, typer.Argument(help="Event log: a CSV or Parquet file, or a directory of Parquet files.")
    ],
    out: Annotated[Path, typer.Argument(help="Directory to write the panel into (panel.json and shards).")],
    mapping: MappingOption = None,
    purchase_event: PurchaseEventOption = "purchase",
    event_types: EventTypesOption = None,
    delimiter: DelimiterOption = ",",
    period: Annotated[str, typer.Option(help="Period of the panel: week or day.")] = "week",
    origin: Annotated[
        str | None, typer.Option(help="First day of period 0 (default: the log's first day).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Day after the last period (default: after the last event).")
    ] = None,
    shards: Annotated[
        int | None, typer.Option(help=f"User shards (default: one per {ROWS_PER_SHARD:,} rows of the log).")
    ] = None,
    block_rows: Annotated[int, typer.Option(help="Rows read and validated at a time.")] = DEFAULT_BLOCK_ROWS,
    workers: Annotated[int, typer.Option(help="Processes building the shards.")] = 1,
    temp_dir: Annotated[
        Path | None, typer.Option(help="Where the rows are partitioned (default: the system's).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Validate a log of any size and write its per-user period panel as user shards (memory follows a
    block of rows and a shard, not the log)."""
    built = ingest_log(
        path,
        out,
        mapping=mapping,
        purchase_event=purchase_event,
        event_types=_event_types(event_types),
        delimiter=_delimiter(delimiter),
        period=cast(Period, period),
        origin=origin,
        end=end,
        shards=shards,
        block_rows=block_rows,
        temp_directory=temp_dir,
        workers=workers,
        progress=progress,
    )
    report = built.report
    spec = built.spec
    notes = "".join(f". Note: {note}" for note in (*report.notes, *built.notes))
    typer.echo(
        f"wrote {built.n_users:,} users x {spec.n_periods} {spec.period}s from {spec.origin} in "
        f"{built.n_shards} shard(s) -> {out}; {report.rows_read:,} rows read, "
        f"{report.duplicate_rows_dropped:,} exact duplicate rows dropped, "
        f"{report.out_of_order_rows:,} out-of-order rows sorted{notes}."
    )


def _event_types(event_types: str | None) -> list[str] | None:
    return None if event_types is None else [name.strip() for name in event_types.split(",")]


def _delimiter(delimiter: str) -> str:
    return {"tab": "\t", "\\t": "\t"}.get(delimiter, delimiter)


def _load(
    path: str, mapping: str | None, purchase_event: str, event_types: str | None, delimiter: str
) -> EventLog:
    """A built-in dataset by name, or an event log file read with the given options."""
    if path in DATASETS:
        if mapping is not None or event_types is not None or delimiter != "," or purchase_event != "purchase":
            raise DataError(
                f"built-in dataset '{path}' takes no loading options",
                expected="no --mapping, --purchase-event, --event-types or --delimiter",
            )
        return load_cdnow(path)
    return read_event_log(
        path,
        mapping=mapping,
        purchase_event=purchase_event,
        event_types=_event_types(event_types),
        delimiter=_delimiter(delimiter),
    )


@app.command()
def generate(
    out: Annotated[Path, typer.Argument(help="Event log to write (.csv, .csv.gz, .parquet, .pq).")],
    users: Annotated[int, typer.Option(help="Users of the world (some are born during the log).")] = 20_000,
    weeks: Annotated[int, typer.Option(help="Weeks of log.")] = 104,
    contact_rate: Annotated[
        float, typer.Option(help="Share of user-weeks sent a randomized contact (split evenly by kind).")
    ] = 0.1,
    season: Annotated[float, typer.Option(help="Amplitude of the yearly season (0: none).")] = 0.4,
    contact_strength: Annotated[float, typer.Option(help="Scale of every contact's effect (0: none).")] = 1.0,
    fav_per_view: Annotated[
        float, typer.Option(help="Probability that a view also saves a favourite: a fourth event type, fav.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the world and of the logging policy.")] = 0,
    block_users: Annotated[
        int, typer.Option(help="Users simulated and written at a time (memory holds one block).")
    ] = 50_000,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Write the event log of a ground-truth world (winback.data.synthetic.GroundTruthWorld): view, cart
    (fav) and purchase events and randomized contacts, a shop's log with known dynamics to try winback on."""
    file_format(out)
    config = WorldConfig(
        n_users=users,
        birth_weeks=weeks,
        season_amplitude=season,
        contact_strength=contact_strength,
        fav_per_view=fav_per_view,
        seed=seed,
    )
    log = write_world_log(out, config, weeks, contact_rate, seed, block_users=block_users, progress=progress)
    typer.echo(
        f"wrote {log.n_events:,} events of {log.n_users:,} users ({log.blocks} block(s)) from {log.origin} "
        f"to {log.end} -> {out}"
    )
