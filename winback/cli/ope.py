"""``winback ope``: a candidate policy's value estimated from a log of decisions and their outcomes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from winback.benchmarks.ope import (
    SIMULATOR_SEEDS,
    OffPolicyEstimate,
    TrajectoryLog,
    evaluate_export,
    evaluate_export_trajectories,
    export_versus_baseline,
    log_reward_model,
    read_log,
    read_trajectories,
    simulator_estimate,
    simulator_returns,
)
from winback.benchmarks.stats import Estimate, paired_difference
from winback.errors import ConfigError
from winback.export.runtime.exploration import Exploration


def ope(
    log: Annotated[Path, typer.Argument(help="A winback decide --out directory (its decisions/).")],
    outcomes: Annotated[
        Path,
        typer.Argument(help="Outcomes table (.parquet or .csv): user_id, period, reward, one per decision."),
    ],
    candidate: Annotated[
        Path, typer.Option(help="The candidate: an export directory (winback export --out).")
    ],
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="The policy deployed now (an export of the same decay model): the candidate's value "
            "minus its, with a 95% interval, and ship the candidate when every lower bound is above 0: "
            "doubly robust, paired by decision (one period's log), and with --simulator in the learned "
            "simulator, paired by user and seed."
        ),
    ] = None,
    then: Annotated[
        list[Path] | None,
        typer.Option(
            help="The next period's winback decide --out directory (repeat it for each following period, "
            "in order): estimates the value per user over the periods."
        ),
    ] = None,
    gamma: Annotated[float, typer.Option(help="With --then: discount of each following period.")] = 1.0,
    simulator: Annotated[
        str | None,
        typer.Option(
            help="A scenario (TOML file) whose decay model is refit on the shop's event log grown by the "
            "logged periods, its \\[population] log that log: adds the candidate's return per user in its "
            "learned simulator over the logged periods, from the logged users as they stood before the "
            "first (the model-based estimate; undiscounted, the candidate greedy)."
        ),
    ] = None,
    ahead: Annotated[
        int,
        typer.Option(
            help="With --simulator: run the next AHEAD periods after the last logged one instead (what "
            "shipping would earn), from the users as they stand after it."
        ),
    ] = 0,
    simulator_seeds: Annotated[int, typer.Option(help="--simulator's seeds.")] = SIMULATOR_SEEDS,
    exploration: Annotated[
        str, typer.Option(help="How the candidate would decide: none, epsilon or softmax.")
    ] = "none",
    epsilon: Annotated[float, typer.Option(help="epsilon: share of decisions drawn uniformly.")] = 0.0,
    temperature: Annotated[float, typer.Option(help="softmax: temperature on the candidate's scores.")] = 1.0,
    floor: Annotated[float, typer.Option(help="Least probability of every allowed action.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seeds the reward model's folds and the bootstrap.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the estimates as JSON here.")] = None,
) -> None:
    """Estimate the CANDIDATE's value per decision on the LOG: IPS, self-normalised IPS and doubly robust
    (a cross-fitted reward model), each with a 95% bootstrap interval and the weights' effective sample
    size; an estimate resting on too few effective decisions is marked untrustworthy. With --then, the
    value per user over the periods of LOG and the --then logs (users decided in every one): per-decision
    weighted importance sampling, fitted Q evaluation and weighted doubly robust (on FQE's model). With
    --simulator, the learned simulator's return (refit on the grown log) over the logged periods, or
    the next --ahead ones."""
    chosen = Exploration(exploration, epsilon=epsilon, temperature=temperature, floor=floor)  # type: ignore[arg-type]
    if simulator is not None and (gamma != 1.0 or chosen != Exploration()):
        raise ConfigError("--simulator runs the candidate greedily and sums the periods undiscounted")
    if ahead < 0 or (ahead and simulator is None):
        raise ConfigError(f"--ahead {ahead}: a number of periods (at least 1) for --simulator to run")
    if simulator_seeds < 1:
        raise ConfigError(f"--simulator-seeds {simulator_seeds} (allowed: at least 1)")
    if then and baseline is not None and simulator is None:
        raise ConfigError(
            "--baseline compares the policies on one period's log, or over several periods with --simulator"
        )
    if gamma != 1.0 and not then:
        raise ConfigError(f"gamma = {gamma} discounts the following periods: give their logs with --then")
    gains: dict[str, Estimate] = {}
    if then or simulator is not None:  # the simulator needs the logged users and periods too
        trajectories = read_trajectories([log, *(then or [])], outcomes)
    if then:
        estimates = evaluate_export_trajectories(trajectories, candidate, chosen, gamma=gamma, seed=seed)
        typer.echo(
            f"value per user over periods {trajectories.periods[0]}-{trajectories.periods[-1]} "
            f"(discount {gamma:g}), {len(trajectories.user_ids):,} users decided in every one"
        )
    else:
        decisions = trajectories.decisions(0) if simulator is not None else read_log(log, outcomes)
        predicted = log_reward_model(decisions, seed=seed)  # one reward model for every estimate
        estimates = evaluate_export(decisions, candidate, chosen, seed=seed, predicted=predicted)
        if baseline is not None:
            gains["dr"] = export_versus_baseline(
                decisions, candidate, baseline, chosen, seed=seed, predicted=predicted
            )
    if simulator is not None:
        estimate, gain = simulated(trajectories, simulator, ahead, candidate, baseline, simulator_seeds, seed)
        estimates.append(estimate)
        if gain is not None:
            gains[estimate.estimator] = gain
    show(estimates)
    body: list[dict[str, object]] = [{**dataclasses.asdict(e), "trusted": e.trusted} for e in estimates]
    for by, gain in gains.items():
        ship = gain.low > 0
        typer.echo(
            f"candidate - baseline ({by}, paired) | {gain.mean:.4f} [{gain.low:.4f}, {gain.high:.4f}] | "
            + ("ship: the lower bound is above 0" if ship else "do not ship: the lower bound is not above 0")
        )
        body.append(
            {"estimator": f"{by}_difference", "baseline": str(baseline), **gain.to_dict(), "ship": ship}
        )
    if len(gains) > 1:
        every = all(gain.low > 0 for gain in gains.values())
        typer.echo("launch gate: " + ("ship (every lower bound above 0)" if every else "do not ship"))
    if out is not None:
        out.write_text(json.dumps(body, indent=2) + "\n")


def simulated(
    log: TrajectoryLog,
    scenario: str,
    ahead: int,
    candidate: Path,
    baseline: Path | None,
    seeds: int,
    seed: int,
) -> tuple[OffPolicyEstimate, Estimate | None]:
    """The learned simulator's estimate of the candidate over the log's periods (or the ``ahead``
    periods after them) and, given a baseline, the candidate's return minus its, paired by user and seed
    (common random numbers)."""
    from winback.export.policy import load_policy_dir
    from winback.scenarios.scenario import load_scenario

    exports = [candidate] if baseline is None else [candidate, baseline]
    policies = [load_policy_dir(export) for export in exports]
    first, periods = (int(log.periods[-1]) + 1, ahead) if ahead else (int(log.periods[0]), len(log.periods))
    returns = simulator_returns(load_scenario(scenario), policies, log.user_ids, first, periods, seeds=seeds)
    gain = None if baseline is None else paired_difference(*returns, rng=np.random.default_rng(seed))
    name = f"simulator_next_{ahead}" if ahead else "simulator"
    return simulator_estimate(returns[0], seed=seed, name=name), gain


def show(estimates: list[OffPolicyEstimate]) -> None:
    """Prints the estimates as a table: value and interval, effective sample size, largest weight."""
    typer.echo("estimator | value [95% CI] | effective sample size | max weight | trusted")
    for e in estimates:
        typer.echo(
            f"{e.estimator} | {e.value:.4f} [{e.low:.4f}, {e.high:.4f}] | {e.ess:,.0f} of {e.n:,} | "
            f"{e.max_weight:.1f} | {'yes' if e.trusted else 'NO: the weights are too degenerate to trust'}"
        )
