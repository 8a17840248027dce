"""Write an evaluation as metrics.json, user_forecasts.csv, PNG plots and a report.md showing them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from winback.decay_model.evaluate import MAX_BUCKET, EvaluationResult

SCALAR_METRICS: dict[str, str] = {
    "holdout_total": "expected holdout purchases",
    "holdout_bias_pct": "holdout bias %",
    "mae": "per-user MAE",
    "rmse": "per-user RMSE",
    "pearson_r": "Pearson r",
    "auc_any": "AUC (any purchase)",
    "log_score": "one-step log score",
    "weekly_mape": "weekly MAPE %",
    "cum_error_pct_wk78": "cumulative error % at end",
}
BUCKET_LABELS = [str(k) for k in range(MAX_BUCKET)] + [f"{MAX_BUCKET}+"]


def write_report(
    result: EvaluationResult,
    out: str | Path,
    meta: dict[str, Any],
    notes: dict[str, list[str]] | None = None,
) -> Path:
    """Write metrics.json, user_forecasts.csv, plots and report.md into ``out``; returns the report's path.

    ``notes`` are per model sentences on how it was fitted (:meth:`DecayModel.fit_notes`), written
    to both files.
    """
    notes = notes or {}
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"user_id": result.user_ids, "actual_holdout": result.actual_holdout}
        | {f"expected_{name}": values for name, values in result.expected_holdout.items()}
    ).to_csv(directory / "user_forecasts.csv", index=False)
    (directory / "metrics.json").write_text(
        json.dumps({"meta": meta, "models": result.metrics, "notes": notes}, indent=2, sort_keys=True) + "\n"
    )
    plots = {
        "tracking.png": _plot_tracking(result),
        "by_x.png": _plot_by_x(result),
        "holdout_counts.png": _plot_counts(result),
        "interest.png": _plot_interest(result),
    }
    for name, figure in plots.items():
        figure.savefig(directory / name, dpi=110, bbox_inches="tight")
        plt.close(figure)
    report = directory / "report.md"
    report.write_text(_markdown(result, meta, notes, list(plots)))
    return report


def metrics_table(result: EvaluationResult) -> list[list[str]]:
    """Rows (header first) of the scalar metrics, one column per model."""
    names = list(result.metrics)
    rows = [["metric", *names]]
    for key, label in SCALAR_METRICS.items():
        rows.append([label, *(_format(result.metrics[n][key]) for n in names)])
    actual = next(iter(result.metrics.values()))["actual_holdout_total"]
    rows.append(["actual holdout purchases", *(_format(actual) for _ in names)])
    return rows


def _format(value: float) -> str:
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4f}" if abs(value) < 1 else f"{value:.3f}"


def _markdown(
    result: EvaluationResult, meta: dict[str, Any], notes: dict[str, list[str]], plots: list[str]
) -> str:
    rows = metrics_table(result)
    table = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    table += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    shares = [
        "| holdout purchases | actual | " + " | ".join(result.metrics) + " |",
        "|" + "---|" * (len(result.metrics) + 2),
    ]
    actual = next(iter(result.metrics.values()))["count_shares"]["actual"]
    for k, label in enumerate(BUCKET_LABELS):
        model_shares = " | ".join(f"{m['count_shares']['model'][k]:.4f}" for m in result.metrics.values())
        shares.append(f"| {label} | {actual[k]:.4f} | {model_shares} |")
    draws = next(iter(result.metrics.values()))["draws"]
    setup = "\n".join(f"- {key}: `{value}`" for key, value in meta.items())
    figures = "\n\n".join(f"![{name}]({name})" for name in plots)
    fitted = [f"- {name}: {note}" for name, model_notes in notes.items() for note in model_notes]
    fitting = "\n## How the models were fitted\n\n" + "\n".join(fitted) + "\n" if fitted else ""
    return f"""# Decay-model evaluation

{setup}

Forecasts roll each model forward from every user's calibration state by sampling ({draws} draws per user),
as the simulator does. Series are per {result.period}; the weekly MAPE sums them into weeks.
Definitions: `winback.decay_model.evaluate`.

{chr(10).join(table)}
{fitting}
## Share of users by holdout purchases

{chr(10).join(shares)}

## Plots

{figures}
"""


def _plot_tracking(result: EvaluationResult) -> plt.Figure:
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2))
    periods = np.arange(len(result.actual_weekly))
    left.plot(periods, result.actual_weekly, color="black", lw=2, label="actual")
    for name, series in result.series.items():
        left.plot(periods, series.from_birth_weekly, label=name)
    left.axvline(result.calibration_end - 0.5, color="grey", ls="--")
    left.set(
        title="Simulated from each user's birth period",
        xlabel=result.period,
        ylabel=f"purchases after birth {result.period}",
    )
    holdout = periods[result.calibration_end :]
    right.plot(holdout, result.actual_weekly[result.calibration_end :], color="black", lw=2, label="actual")
    for name, series in result.series.items():
        right.plot(holdout, series.holdout_weekly[result.calibration_end :], label=name)
    right.set(
        title="Holdout, rolled forward from calibration state", xlabel=result.period, ylabel="purchases"
    )
    right.legend()
    return figure


def _plot_by_x(result: EvaluationResult) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    x = np.arange(MAX_BUCKET + 1)
    actual = next(iter(result.metrics.values()))["by_x"]["actual"]
    axis.plot(x, [np.nan if v is None else v for v in actual], "k-o", lw=2, label="actual")
    for name, metrics in result.metrics.items():
        axis.plot(x, [np.nan if v is None else v for v in metrics["by_x"]["model"]], "-o", label=name)
    axis.set_xticks(x, BUCKET_LABELS)
    axis.set(
        title="Mean holdout purchases by calibration repeat purchases",
        xlabel="calibration repeat purchases (x)",
    )
    axis.legend()
    return figure


def _plot_counts(result: EvaluationResult) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(7.5, 4.2))
    names = ["actual", *result.metrics]
    width = 0.8 / len(names)
    x = np.arange(MAX_BUCKET + 1)
    first = next(iter(result.metrics.values()))["count_shares"]["actual"]
    for i, name in enumerate(names):
        shares = first if name == "actual" else result.metrics[name]["count_shares"]["model"]
        axis.bar(
            x + (i - len(names) / 2 + 0.5) * width,
            shares,
            width,
            label=name,
            color="black" if i == 0 else None,
        )
    axis.set_xticks(x, BUCKET_LABELS)
    axis.set_yscale("log")
    axis.set(
        title="Share of users by holdout purchases", xlabel="holdout purchases", ylabel="share of users (log)"
    )
    axis.legend()
    return figure


def _plot_interest(result: EvaluationResult) -> plt.Figure:
    n = len(result.interest_users)
    columns = min(3, n)
    rows = -(-n // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.4 * columns, 3.2 * rows), squeeze=False, layout="constrained"
    )
    for i, user in enumerate(result.interest_users):
        axis = axes.flat[i]
        for name, series in result.series.items():
            axis.plot(series.interest[i], label=name)
        bought = np.flatnonzero(result.interest_purchases[i] > 0)
        axis.plot(bought, np.zeros(len(bought)), "k|", ms=10, label="purchase")
        axis.axvline(result.calibration_end - 0.5, color="grey", ls="--")
        axis.set(title=f"user {user}", xlabel=result.period, ylim=(0, None))
    axes.flat[0].set_ylabel(f"interest P(active next {result.period})")
    axes.flat[0].legend(fontsize=7)
    for axis in list(axes.flat)[n:]:
        axis.set_visible(False)
    return figure
