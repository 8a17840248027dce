"""Decay models on CDNOW master: every model's holdout figures side by side, LSTM fit time and peak memory.

Runs ``winback decay eval`` in a child process (so its peak RSS is measured alone), then prints a
markdown table for benchmarks/RESULTS.md and checks the LSTM against BG/NBD on the issue's criteria.

    python benchmarks/decay_cdnow.py --out runs/decay_cdnow
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from winback.data.sources import load_panel_split
from winback.decay_model.report import SCALAR_METRICS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="cdnow")
    parser.add_argument("--out", type=Path, default=Path("runs/decay_cdnow"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    command = [
        sys.executable,
        "-m",
        "winback.cli",
        "decay",
        "eval",
        "--data",
        args.data,
        "--out",
        str(args.out),
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
    ]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    metrics = json.loads((args.out / "metrics.json").read_text())
    models, meta = metrics["models"], metrics["meta"]

    names = list(models)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load before {load_before:.1f}"
    )
    print(f"command: {' '.join(command[1:])}")
    print(
        f"wall {wall:.0f}s (fit {meta['fit_seconds']}, eval {meta['eval_seconds']}s), "
        f"peak RSS {peak_gib:.2f} GiB\n"
    )
    print("| metric | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key, label in SCALAR_METRICS.items():
        print(f"| {label} | " + " | ".join(f"{models[n][key]:.4g}" for n in names) + " |")
    shares = " | ".join(f"{models[n]['count_shares']['model'][0]:.4f}" for n in names)
    print(
        f"| share with 0 holdout purchases (actual {models[names[0]]['count_shares']['actual'][0]:.4f}) "
        f"| {shares} |"
    )

    if {"lstm", "bgnbd"} <= set(models):
        print_mae_by_frequency(args.data, args.out, meta["calibration_periods"])
        lstm, bgnbd = models["lstm"], models["bgnbd"]
        checks = {
            "|holdout bias %|": abs(lstm["holdout_bias_pct"]) < abs(bgnbd["holdout_bias_pct"]),
            "MAE": lstm["mae"] < bgnbd["mae"],
            "weekly MAPE": lstm["weekly_mape"] < bgnbd["weekly_mape"],
            "log score": lstm["log_score"] > bgnbd["log_score"],
            "share with 0 within 0.02": abs(
                lstm["count_shares"]["model"][0] - lstm["count_shares"]["actual"][0]
            )
            <= 0.02,
        }
        print(
            "\nLSTM vs BG/NBD: "
            + ", ".join(f"{k}: {'beats' if v else 'does not beat'}" for k, v in checks.items())
        )


def print_mae_by_frequency(data: str, out: Path, calibration_end: int) -> None:
    """Per-user MAE of LSTM and BG/NBD within groups of calibration frequency x and of recency."""
    panel = load_panel_split(data).panel
    panel = panel.select(panel.born_before(calibration_end))
    forecasts = pd.read_csv(out / "user_forecasts.csv", dtype={"user_id": str})
    if not (forecasts["user_id"].to_numpy() == panel.user_ids).all():
        raise SystemExit("user_forecasts.csv does not match the panel's users")
    x = np.minimum(panel.rfm(calibration_end).x, 7).astype(int)
    actual = forecasts["actual_holdout"].to_numpy()
    lstm_all, bgnbd_all = forecasts["expected_lstm"].to_numpy(), forecasts["expected_bgnbd"].to_numpy()
    scaled = lstm_all * bgnbd_all.sum() / lstm_all.sum()
    print(f"\nLSTM MAE with its forecasts scaled to BG/NBD's total: {np.abs(scaled - actual).mean():.4f}")
    print(
        "\n| x | users | actual mean | LSTM mean | BG/NBD mean | LSTM MAE | BG/NBD MAE "
        "| LSTM sd | BG/NBD sd |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for k in range(8):
        group = x == k
        lstm, bgnbd = (forecasts[f"expected_{m}"].to_numpy()[group] for m in ("lstm", "bgnbd"))
        print(
            f"| {k if k < 7 else '7+'} | {group.sum():,} | {actual[group].mean():.3f} | {lstm.mean():.3f} | "
            f"{bgnbd.mean():.3f} | {np.abs(lstm - actual[group]).mean():.4f} | "
            f"{np.abs(bgnbd - actual[group]).mean():.4f} | {lstm.std():.3f} | {bgnbd.std():.3f} |"
        )
    rfm = panel.rfm(calibration_end)
    silence = rfm.T - rfm.t_x
    groups = {
        "x = 0": rfm.x == 0,
        "x >= 1, last purchase < 8 weeks before the cut-off": (rfm.x >= 1) & (silence < 8),
        "x >= 1, silent 8-20 weeks": (rfm.x >= 1) & (silence >= 8) & (silence < 20),
        "x >= 1, silent 20+ weeks": (rfm.x >= 1) & (silence >= 20),
    }
    print(
        "\n| customers | users | share with 0 | actual mean | LSTM mean | BG/NBD mean "
        "| LSTM MAE | BG/NBD MAE |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, group in groups.items():
        lstm, bgnbd, truth = lstm_all[group], bgnbd_all[group], actual[group]
        print(
            f"| {label} | {group.sum():,} | {(truth == 0).mean():.3f} | {truth.mean():.3f} | "
            f"{lstm.mean():.3f} | {bgnbd.mean():.3f} | {np.abs(lstm - truth).mean():.4f} | "
            f"{np.abs(bgnbd - truth).mean():.4f} |"
        )
    print_mae_references(actual, lstm_all, bgnbd_all, rfm.x, silence, rfm.T)


def print_mae_references(
    actual: np.ndarray,
    lstm: np.ndarray,
    bgnbd: np.ndarray,
    x: np.ndarray,
    silence: np.ndarray,
    age: np.ndarray,
) -> None:
    """Per-user MAE of reference forecasts made with the holdout's answers: what MAE rewards.

    Each customer is forecast the actual holdout mean (or median) of a cell of customers with the
    same calibration frequency x, weeks of silence before the cut-off and weeks since the first
    purchase (T); the models are also rescaled to be unbiased inside every cell of x by silence.
    """
    frequency = np.minimum(x, 7).astype(int)
    silence3 = np.digitize(silence, [8, 20])
    cells = {
        "x (0..6, 7+)": frequency,
        "x by silence (< 8, 8-19, 20+ weeks)": frequency * 10 + silence3,
        "x by silence (6 bins) by T (3 bins)": frequency * 100
        + 10 * np.digitize(silence, [4, 8, 14, 20, 28])
        + np.digitize(age, [30, 34]),
    }
    truth = pd.Series(actual)
    print("\n| forecast of each customer's holdout purchases | cells | per-user MAE |")
    print("|---|---|---|")
    print(f"| LSTM (mean of sampled futures) | | {np.abs(lstm - actual).mean():.4f} |")
    print(f"| BG/NBD (mean of sampled futures) | | {np.abs(bgnbd - actual).mean():.4f} |")
    print(f"| zero for everyone | | {np.abs(actual).mean():.4f} |")
    for label, cell in cells.items():
        groups = truth.groupby(cell)
        for statistic in ("mean", "median"):
            forecast = groups.transform(statistic).to_numpy()
            print(
                f"| actual holdout {statistic} of the customer's cell: {label} | {len(groups)} "
                f"| {np.abs(forecast - actual).mean():.4f} |"
            )
    cell = cells["x by silence (< 8, 8-19, 20+ weeks)"]
    for name, forecast in (("LSTM", lstm), ("BG/NBD", bgnbd)):
        scale = (
            truth.groupby(cell).transform("sum") / pd.Series(forecast).groupby(cell).transform("sum")
        ).to_numpy()
        print(
            f"| {name}, rescaled to the actual total of each cell: x by silence | {len(np.unique(cell))} "
            f"| {np.abs(forecast * scale - actual).mean():.4f} |"
        )


if __name__ == "__main__":
    main()
