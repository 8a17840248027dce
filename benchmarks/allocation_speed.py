"""The allocation's cost on a million users, against the policy's own forward pass in the same run.

One period's decision for ``--users`` users (the scenario's evaluation users repeated, as observed at
the start of the horizon) under a coupon budget and a care team of ``--share`` of the users each:

- ``forward``: one pass of the agent's network over every user (the reference);
- ``allocate``: :func:`~winback.allocation.allocate` on the scores of an agent trained without prices;
- ``conditioned``: :func:`~winback.allocation.allocate_conditioned`, the price search of an agent trained
  under both prices (each step a forward pass).

    python benchmarks/allocation_speed.py --plain runs/scen/agent-default \\
        --priced runs/scen/agent-team_and_budget --users 1000000 --out runs/allocation_speed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from winback.agents.sb3 import SB3Policy
from winback.allocation import RESOURCES, allocate, allocate_conditioned
from winback.scenarios.operations import resource_takers
from winback.scenarios.scenario import load_scenario
from winback.simulator.features import observe


def timed(call, repeats: int) -> tuple[float, object]:
    """The best wall time of ``repeats`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plain", type=Path, required=True, help="a run trained without prices")
    parser.add_argument("--priced", type=Path, required=True, help="a run trained under both prices")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--share", type=float, default=0.02, help="each limit as a share of the users")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scenario = load_scenario("default")
    simulator = scenario.simulator_for(0)
    users = scenario.eval_users()
    rows = np.arange(args.users) % users.n_users
    observations = observe(simulator, users)[rows]
    masks = simulator.action_masks(users, 0)[rows]
    limits = np.full(len(RESOURCES), args.share * args.users)
    use = resource_takers(simulator.kinds, simulator.tables.validity)
    plain, priced = SB3Policy.load(args.plain), SB3Policy.load(args.priced)
    assert priced.price_input is not None and plain.price_input is None
    shown = priced.price_input

    def scores_at(prices: np.ndarray) -> np.ndarray:
        return priced.scores(shown.append(observations, prices), masks, 0)

    forward, scores = timed(lambda: plain.scores(observations, masks, 0), args.repeats)
    forward_priced, _ = timed(lambda: scores_at(np.zeros(len(RESOURCES))), args.repeats)
    allocating, allocation = timed(lambda: allocate(scores, use, limits), args.repeats)
    conditioning, conditioned = timed(
        lambda: allocate_conditioned(scores_at, use, limits, shown.ceilings), args.repeats
    )
    result = {
        "users": args.users,
        "limits": limits.tolist(),
        "threads": args.threads,
        "forward_seconds": forward,
        "forward_priced_seconds": forward_priced,
        "allocate_seconds": allocating,
        "allocate_over_forward": allocating / forward,
        "allocate_used": allocation.used.tolist(),
        "conditioned_seconds": conditioning,
        "conditioned_over_forward": conditioning / forward_priced,
        "conditioned_evaluations": conditioned.rounds,
        "conditioned_used": conditioned.used.tolist(),
        "conditioned_prices": conditioned.prices.tolist(),
        "conditioned_exact": conditioned.exact,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
