"""The leaderboard on synthetic runs with known differences: best baseline, paired differences, share of
oracle gain, and the written files agreeing with :func:`summarize`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from winback.benchmarks.report import summarize, write_report
from winback.benchmarks.rollout import INTEREST_BINS, RECENCY_BINS, PolicyRun

SEEDS, USERS, PERIODS = 2, 40, 6
ACTIONS = ("none", "email", "sms")
# policy -> (category, net value added to every user's no-contact value)
POLICIES = {
    "email_all": ("baseline", 1.0),
    "oracle": ("reference", 5.0),
    "no_contact": ("baseline", 0.0),
    "ppo": ("agent", 3.0),
    "rfm": ("baseline", 2.0),
}


def make_run(policy: str, category: str, lift: float, *, users: int = USERS) -> PolicyRun:
    """Users differ a lot and share their luck across policies; ``policy`` adds ``lift`` to each."""
    rng = np.random.default_rng(0)
    shared = rng.normal(10.0, 5.0, users) + rng.normal(0.0, 1.0, (SEEDS, users))
    own = np.random.default_rng(len(policy))
    contacts = own.integers(0, 3, (2, SEEDS, users)).astype(np.float64)
    action_map = own.integers(0, 20, (len(ACTIONS), len(INTEREST_BINS) - 1, len(RECENCY_BINS) - 1))
    action_map[:, :, -1] = 0  # nobody in the last recency bin
    return PolicyRun(
        policy=policy,
        category=category,
        seeds=np.arange(SEEDS),
        metrics={
            "net_value": shared + lift,
            "revenue": 3 * shared + lift,
            "margin": shared + lift + 0.5,
            "discounts": np.full((SEEDS, users), 0.3),
            "contact_costs": np.full((SEEDS, users), 0.2),
            "contacts": contacts.sum(axis=0),
            "opted_out": (own.random((SEEDS, users)) < 0.1).astype(np.float64),
            "active_at_end": (own.random((SEEDS, users)) < 0.6).astype(np.float64),
            "contacts_email": contacts[0],
            "contacts_sms": contacts[1],
        },
        retention=own.random((SEEDS, PERIODS)),
        interest=own.random((SEEDS, PERIODS)),
        action_map=action_map,
        operations={},
        seconds=lift + 1.0,
    )


@pytest.fixture(scope="module")
def runs() -> list[PolicyRun]:
    return [make_run(name, category, lift) for name, (category, lift) in POLICIES.items()]


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = write_report(runs, out, title="Synthetic benchmark", actions=ACTIONS, notes=["made up"], seed=3)
    return path, summarize(runs, seed=3)


def test_summary_ranks_policies_and_pairs_them_with_the_best_baseline(runs) -> None:
    table = summarize(runs).set_index("policy")
    assert list(table.index) == ["oracle", "ppo", "rfm", "email_all", "no_contact"]
    lifts = pd.Series({name: lift for name, (_, lift) in POLICIES.items()})
    # rfm, the best baseline, is beaten by the agent; the reference does not count as a baseline
    np.testing.assert_allclose(table["vs_best_baseline"], (lifts - 2.0)[table.index], atol=1e-9)
    assert table.loc["rfm", ["vs_best_baseline", "vs_best_baseline_low", "vs_best_baseline_high"]].eq(0).all()
    np.testing.assert_allclose(table["share_of_oracle_gain"], (lifts / 5.0)[table.index], atol=1e-9)
    # common luck cancels in the paired differences but not in the CI of each mean
    assert (table["vs_best_baseline_high"] - table["vs_best_baseline_low"]).max() < 1e-6
    assert (table["net_value_high"] - table["net_value_low"]).min() > 1.0
    assert (table["net_value_low"] < table["net_value"]).all()
    assert table.loc["ppo", "contacts"] == pytest.approx(
        table.loc["ppo", "contacts_email"] + table.loc["ppo", "contacts_sms"]
    )
    assert table.loc["ppo", "seconds"] == 4.0


def test_every_policy_is_also_paired_with_the_ab_test_unless_it_is_the_best_baseline(runs) -> None:
    with_ab = [*runs, make_run("ab_test", "baseline", 1.5)]
    table = summarize(with_ab).set_index("policy")
    lifts = pd.Series({name: lift for name, (_, lift) in POLICIES.items()} | {"ab_test": 1.5})
    np.testing.assert_allclose(table["vs_ab_test"], (lifts - 1.5)[table.index], atol=1e-9)
    assert (table["vs_ab_test_high"] - table["vs_ab_test_low"]).max() < 1e-6
    np.testing.assert_allclose(table["vs_best_baseline"], (lifts - 2.0)[table.index], atol=1e-9)
    assert "vs_ab_test" not in summarize(runs)  # no A/B test ran
    best_is_ab = [run for run in with_ab if run.policy != "rfm"]
    assert "vs_ab_test" not in summarize(best_is_ab)  # it is the best baseline: one column says it


def test_share_of_oracle_gain_needs_no_contact_and_a_reference(runs) -> None:
    table = summarize([run for run in runs if run.policy != "no_contact"])
    assert "share_of_oracle_gain" not in table
    assert "vs_best_baseline" in table
    agents_only = summarize([run for run in runs if run.category != "baseline"])
    assert "vs_best_baseline" not in agents_only


def test_summary_is_deterministic_for_a_seed(runs) -> None:
    pd.testing.assert_frame_equal(summarize(runs, seed=1), summarize(runs[::-1], seed=1))
    assert not summarize(runs, seed=1).equals(summarize(runs, seed=2))


def test_files_round_trip_to_the_summary(report, runs) -> None:
    path, table = report
    out = path.parent
    for name in (
        "leaderboard.md",
        "results.csv",
        "results.json",
        *(f"{p}.png" for p in ("net_value", "retention", "interest", "action_map")),
    ):
        assert (out / name).stat().st_size > 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), table, check_dtype=False, rtol=1e-12)
    results = json.loads((out / "results.json").read_text())
    assert results["best_baseline"] == "rfm"
    assert (results["users"], results["seeds"], results["actions"]) == (USERS, [0, 1], list(ACTIONS))
    assert [row["policy"] for row in results["policies"]] == list(table["policy"])
    by_name = {run.policy: run for run in runs}
    for row, expected in zip(results["policies"], table.to_dict("records"), strict=True):
        assert {key: row[key] for key in expected} == expected
        run = by_name[row["policy"]]
        np.testing.assert_allclose(row["retention"], run.retention.mean(axis=0))
        np.testing.assert_allclose(row["interest"], run.interest.mean(axis=0))
        shares = np.array(row["action_shares"], dtype=np.float64)  # None (empty cell) -> NaN
        assert np.isnan(shares[:, :, -1]).all()
        np.testing.assert_allclose(shares[:, :, :-1].sum(axis=0), 1.0)


def test_leaderboard_names_every_policy_and_the_best_baseline(report) -> None:
    text = report[0].read_text()
    assert text.startswith("# Synthetic benchmark\n")
    for name in POLICIES:
        assert f"| `{name}` |" in text
    assert "vs `rfm` [95% CI]" in text
    assert "2 seeds x 40 users" in text
    assert "- made up" in text
    assert "(action_map.png)" in text and "(net_value.png)" in text
    oracle_row = next(line for line in text.splitlines() if line.startswith("| `oracle`"))
    assert "| +3.00 [+3.00, +3.00] | 100.0% |" in oracle_row


def test_report_is_deterministic(report, runs, tmp_path) -> None:
    path, _ = report
    again = write_report(
        runs, tmp_path, title="Synthetic benchmark", actions=ACTIONS, notes=["made up"], seed=3
    )
    for name in ("leaderboard.md", "results.csv", "results.json"):
        assert (tmp_path / name).read_text() == (path.parent / name).read_text()
    assert again == tmp_path / "leaderboard.md"


def test_mismatched_runs_are_refused(runs, tmp_path) -> None:
    with pytest.raises(ValueError, match="same users"):
        summarize([*runs, make_run("other", "agent", 0.0, users=USERS + 1)])
    with pytest.raises(ValueError, match="category"):
        summarize([make_run("odd", "heuristic", 0.0)])
    with pytest.raises(ValueError, match="unique"):
        summarize([runs[0], runs[0]])
    with pytest.raises(ValueError, match="actions"):
        write_report(runs, tmp_path, title="t", actions=ACTIONS[:2])
