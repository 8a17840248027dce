"""Simulator fidelity on CDNOW: with every action ``none``, does it reproduce the decay model's own forecast?

Fits the default LSTM on CDNOW master's calibration weeks (seed ``--seed``), warm-starts every customer
at week 39 (``winback.simulator.population.warm_start``), replicates each ``--draws`` times
(``replicate``: each copy its own random stream) and steps the population through the 39 holdout weeks
with every action ``none``. Per week it compares the simulator's total purchases (mean over draws) with

- the decay model's own sampled rollout (``winback.decay_model.evaluate.simulate_forward``, same model,
  same streams seed, same draws): the simulator adds nothing when no contact is sent, so the two must be
  identical draw for draw (the script counts the user-draws whose holdout totals differ), for every
  simulator configuration in ``--variants``: block sizes through the compiled step of
  ``winback.simulator.fused`` (one compiled call per block, blocks on ``torch.get_num_threads()``
  threads) and ``/composed`` (``SimulatorConfig(compiled=False)``, the decay model's own numpy methods
  composed);
- the actual holdout purchases: holdout bias and weekly MAPE, as ``winback decay eval`` reports them
  (there with 32 draws, here with ``--draws``).

Writes ``report.md``, ``weekly_purchases.png`` and ``metrics.json`` to ``--out``. One torch thread.

    python benchmarks/simulator_fidelity.py --out runs/simulator_fidelity
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from cdnow_lstm import (
    CALIBRATION_WEEKS,
    CPUClock,
    fit_cdnow_lstm,
    machine,
    machine_line,
    markdown_table,
    quiet_line,
)

from winback.decay_model.evaluate import simulate_forward
from winback.decay_model.lstm import LSTMDecayModel
from winback.progress import progress_bar
from winback.simulator.core import Simulator, SimulatorConfig
from winback.simulator.population import replicate, warm_start
from winback.simulator.state import SimState
from winback.streams import RandomStreams

CONTEXT_FROM = 26
"""The plot shows the actual weeks from here (the last third of calibration, after all births)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=8, help="copies of every customer (sampled futures)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the LSTM fit and of the random streams")
    parser.add_argument(
        "--variants",
        default="1024,64,1024/composed",
        help="simulator runs: SimulatorConfig.block_size, '/composed' for compiled=False; the first is "
        "compared with the actual",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/simulator_fidelity"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    info, clock = machine(), CPUClock.now()
    command = (
        f"python benchmarks/simulator_fidelity.py --draws {args.draws} --variants {args.variants} "
        f"--seed {args.seed} --out {args.out}"
    )

    fitted = fit_cdnow_lstm(seed=args.seed)
    model, until = fitted.model, CALIBRATION_WEEKS
    panel = fitted.panel.select(fitted.panel.born_before(until))
    end = panel.spec.n_periods
    weeks = np.arange(until, end)

    started = time.perf_counter()
    base = warm_start(Simulator(model, SimulatorConfig(), seed=args.seed), panel, until=until)
    warm_seconds = time.perf_counter() - started
    runs = {
        variant: simulate(model, base, variant, args.draws, len(weeks), args.seed)
        for variant in args.variants.split(",")
    }
    weekly_draws, simulated_totals, simulator_seconds = runs[next(iter(runs))]

    started = time.perf_counter()
    rollout = simulate_forward(
        model,
        model.initial_state(panel, until=until),
        end=end,
        draws=args.draws,
        streams=RandomStreams(args.seed),
        keys=base.keys,
    )
    rollout_seconds = time.perf_counter() - started

    simulated = weekly_draws.mean(axis=1)
    model_weekly = rollout.per_period[until:end]
    actual = panel.purchases[:, until:end].sum(axis=0).astype(np.float64)
    single_draw_sd = weekly_draws.std(axis=1, ddof=1)
    # The actual weeks are one realisation: compare with the mean over draws allowing for the noise of
    # one realisation and of the mean.
    noise = 1.96 * single_draw_sd * np.sqrt(1 + 1 / args.draws)
    differing = int((simulated_totals != rollout.totals.ravel()).sum())
    user_steps = len(simulated_totals) * len(weeks)
    by_variant = {
        variant: {
            "max_abs_weekly_difference": float(np.abs(run[0].mean(axis=1) - model_weekly).max()),
            "user_draws_with_different_holdout_totals": int((run[1] != rollout.totals.ravel()).sum()),
            "holdout_total": float(run[0].mean(axis=1).sum()),
            "seconds": round(run[2], 2),
            "user_weeks_per_s": round(user_steps / run[2]),
        }
        for variant, run in runs.items()
    }
    metrics = {
        "customers": base.n_users,
        "draws": args.draws,
        "simulated_users": len(simulated_totals),
        "variants": by_variant,
        "weeks": [int(weeks[0]), int(weeks[-1])],
        "seed": args.seed,
        "fit_seconds": round(fitted.fit_seconds, 1),
        "fit_epochs": len(model.history),
        "warm_start_seconds": round(warm_seconds, 2),
        "simulator_seconds": round(simulator_seconds, 2),
        "simulator_user_weeks_per_s": round(user_steps / simulator_seconds),
        "rollout_seconds": round(rollout_seconds, 2),
        "rollout_user_weeks_per_s": round(user_steps / rollout_seconds),
        "max_abs_weekly_difference_simulator_vs_rollout": float(np.abs(simulated - model_weekly).max()),
        "user_draws_with_different_holdout_totals": differing,
        "actual_holdout_total": float(actual.sum()),
        "simulator_holdout_total": float(simulated.sum()),
        "rollout_holdout_total": float(model_weekly.sum()),
        "simulator_bias_pct": float(100 * (simulated.sum() - actual.sum()) / actual.sum()),
        "simulator_weekly_mape_pct": float(100 * np.mean(np.abs(simulated - actual) / actual)),
        "rollout_weekly_mape_pct": float(100 * np.mean(np.abs(model_weekly - actual) / actual)),
        "weeks_actual_within_noise": int((np.abs(actual - simulated) <= noise).sum()),
        "weekly": {
            "week": weeks.tolist(),
            "actual": actual.tolist(),
            "rollout": model_weekly.tolist(),
            "simulator": simulated.tolist(),
            "simulator_single_draw_sd": single_draw_sd.tolist(),
        },
        "machine": info,
        "quiet_check": CPUClock.now().others_since(clock),
        "command": command,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot(fitted.panel.purchases.sum(axis=0), weeks, actual, model_weekly, weekly_draws, args.out)
    report = markdown(metrics)
    (args.out / "report.md").write_text(report)
    print(report)
    print(f"written to {args.out}")


def simulate(
    model: LSTMDecayModel, base: SimState, variant: str, draws: int, weeks: int, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Every customer ``draws`` times for ``weeks`` weeks, every action ``none``, with the simulator of
    ``variant`` (``"1024"``: blocks of 1024 users; ``"1024/composed"``: and ``compiled=False``).

    Returns the purchases per week and draw, the holdout purchases per user-draw, and the seconds.
    """
    block, _, path = variant.partition("/")
    config = SimulatorConfig(block_size=int(block))
    if path == "composed":
        config = dataclasses.replace(config, compiled=False)
    elif path:
        raise SystemExit(f"unknown variant {variant!r} (expected a block size, optionally '/composed')")
    simulator = Simulator(model, config, seed=seed)
    state = replicate(base, draws)
    none = np.zeros(state.n_users, dtype=np.int64)
    weekly_draws = np.zeros((weeks, draws))
    totals = np.zeros(state.n_users, dtype=np.int64)
    started = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task(f"simulator {variant}, every action none", total=weeks)
        for w in range(weeks):
            purchases = simulator.step(state, none).activity.purchases
            weekly_draws[w] = purchases.reshape(base.n_users, draws).sum(axis=0)
            totals += purchases
            bar.update(task, advance=1)
    return weekly_draws, totals, time.perf_counter() - started


def plot(
    all_weeks: np.ndarray,
    weeks: np.ndarray,
    actual: np.ndarray,
    model_weekly: np.ndarray,
    weekly_draws: np.ndarray,
    out: Path,
) -> None:
    figure, axis = plt.subplots(figsize=(10, 4.5))
    shown = np.arange(CONTEXT_FROM, CALIBRATION_WEEKS + 1)
    axis.plot(shown, all_weeks[shown], color="0.6", label="actual (last calibration weeks)")
    axis.plot(weeks, actual, color="black", label="actual (holdout)")
    axis.fill_between(
        weeks,
        weekly_draws.min(axis=1),
        weekly_draws.max(axis=1),
        color="tab:orange",
        alpha=0.25,
        label=f"simulator, range of {weekly_draws.shape[1]} draws",
    )
    axis.plot(weeks, weekly_draws.mean(axis=1), color="tab:orange", lw=2.5, label="simulator (mean)")
    axis.plot(weeks, model_weekly, color="tab:blue", ls="--", label="decay model rollout (mean)")
    axis.axvline(CALIBRATION_WEEKS - 0.5, color="0.3", lw=0.8, ls=":")
    axis.set_xlabel("week since 1997-01-01")
    axis.set_ylabel("purchases per week (all customers)")
    axis.set_title("CDNOW: simulator with every action none vs the LSTM's own rollout and the actual")
    axis.set_ylim(0, None)
    axis.legend(loc="upper right", fontsize=8)
    figure.savefig(out / "weekly_purchases.png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def markdown(m: dict) -> str:
    w = m["weekly"]
    rows = [
        [
            week,
            f"{a:,.0f}",
            f"{r:,.1f}",
            f"{s:,.1f}",
            f"{s - r:+.3g}",
            f"{100 * (s - a) / a:+.1f}",
            f"{sd:,.1f}",
        ]
        for week, a, r, s, sd in zip(
            w["week"], w["actual"], w["rollout"], w["simulator"], w["simulator_single_draw_sd"], strict=True
        )
    ]
    table = markdown_table(
        [
            "week",
            "actual",
            "model rollout",
            "simulator",
            "simulator - rollout",
            "simulator vs actual %",
            "sd of one draw",
        ],
        rows,
    )
    n = m["simulated_users"]
    summary = markdown_table(
        ["figure", "value"],
        [
            [
                "max abs difference of weekly purchases, simulator vs the model's rollout",
                f"{m['max_abs_weekly_difference_simulator_vs_rollout']:.3g}",
            ],
            [
                f"user-draws whose holdout totals differ (of {n:,})",
                f"{m['user_draws_with_different_holdout_totals']:,}",
            ],
            [
                "holdout purchases: actual / model rollout / simulator",
                f"{m['actual_holdout_total']:,.0f} / {m['rollout_holdout_total']:,.1f} / "
                f"{m['simulator_holdout_total']:,.1f}",
            ],
            ["simulator holdout bias vs actual", f"{m['simulator_bias_pct']:+.2f}%"],
            [
                "weekly MAPE vs actual: simulator / model rollout",
                f"{m['simulator_weekly_mape_pct']:.2f}% / {m['rollout_weekly_mape_pct']:.2f}%",
            ],
            [
                "weeks whose actual is within the simulator's 95% noise band",
                f"{m['weeks_actual_within_noise']} of {len(w['week'])}",
            ],
            [
                "simulator: seconds for the holdout / user-weeks per s",
                f"{m['simulator_seconds']} / {m['simulator_user_weeks_per_s']:,}",
            ],
            [
                "model rollout (`simulate_forward`): seconds / user-weeks per s",
                f"{m['rollout_seconds']} / {m['rollout_user_weeks_per_s']:,}",
            ],
        ],
    )
    blocks = markdown_table(
        [
            "simulator (block_size, path)",
            "max abs weekly difference vs rollout",
            "user-draws with different holdout totals",
            "holdout purchases",
            "seconds",
            "user-weeks per s",
        ],
        [
            [
                variant,
                f"{b['max_abs_weekly_difference']:.3g}",
                f"{b['user_draws_with_different_holdout_totals']:,}",
                f"{b['holdout_total']:,.1f}",
                b["seconds"],
                f"{b['user_weeks_per_s']:,}",
            ]
            for variant, b in m["variants"].items()
        ],
    )
    return f"""# Simulator fidelity on CDNOW (every action `none`)

```bash
{m["command"]}
```

Machine: {machine_line(m["machine"])}; one torch thread; {quiet_line(m["quiet_check"])}.

The default LSTM fitted on calibration weeks 0-38 (seed {m["seed"]}, {m["fit_epochs"]} epochs,
{m["fit_seconds"]} s); {m["customers"]:,} customers warm-started at week 39 ({m["warm_start_seconds"]} s),
each replicated {m["draws"]} times ({m["simulated_users"]:,} simulated users), stepped through weeks
{m["weeks"][0]}-{m["weeks"][1]} with every action `none` (the first simulator below).

{summary}

The same population through each simulator (the first is the one compared with the actual above).
A block size alone runs the compiled step of `winback.simulator.fused` (one compiled call per block);
`/composed` is `SimulatorConfig(compiled=False)`, the decay model's numpy methods composed:

{blocks}

The noise band is 1.96 x the standard deviation of one draw's weekly total x sqrt(1 + 1/draws): the
actual is one realisation, the simulator's figure a mean over draws.

![weekly purchases](weekly_purchases.png)

{table}
"""


if __name__ == "__main__":
    main()
