"""Tests of the synthetic event-log generator and of the ground truth it reports."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from winback.data.panel import PeriodPanel, build_panel
from winback.data.schema import CANONICAL_COLUMNS, CONTACTS, INTERVENTIONS
from winback.data.synthetic import (
    ARM,
    EVENT_TYPES,
    SyntheticConfig,
    SyntheticLog,
    generate_synthetic_log,
)
from winback.errors import ConfigError

SMALL = SyntheticConfig(n_users=300, n_periods=20, seed=3)


def weekly_panel(synthetic: SyntheticLog) -> PeriodPanel:
    config = synthetic.config
    end = np.datetime64(config.start) + np.timedelta64(7 * config.n_periods, "D")
    return build_panel(synthetic.log, period="week", origin=config.start, end=str(end))


def contactable(synthetic: SyntheticLog) -> np.ndarray:
    """(n, P) user-weeks that could receive a contact: alive, and not a new user's birth week."""
    users = synthetic.users
    week = np.arange(synthetic.config.n_periods)[None, :]
    birth = users["birth_period"].to_numpy()[:, None]
    return np.where(users["is_new"].to_numpy()[:, None], week > birth, week >= birth)


@pytest.fixture(scope="module")
def small() -> SyntheticLog:
    return generate_synthetic_log(SMALL)


@pytest.fixture(scope="module")
def large() -> SyntheticLog:
    """Default dynamics and effects, 5,000 users over 78 weeks: about 300k contactable user-weeks."""
    return generate_synthetic_log(SyntheticConfig(n_users=5_000, seed=11))


@pytest.fixture(scope="module")
def large_panel(large: SyntheticLog) -> PeriodPanel:
    """The weekly panel of ``large``; every user has a row, so its users align with ``large.users``."""
    panel = weekly_panel(large)
    assert (panel.user_ids == large.users["user_id"].to_numpy()).all()
    return panel


def test_log_follows_the_schema_contract(small: SyntheticLog) -> None:
    events = small.log.events
    assert tuple(events.columns) == CANONICAL_COLUMNS
    assert isinstance(events.index, pd.RangeIndex) and events.index.start == 0
    assert events["user_id"].dtype == "str" and events["event_type"].dtype == "str"
    assert events["arm"].dtype == "str"
    assert events["timestamp"].dtype == "datetime64[ns]"
    assert events["value"].dtype == np.float64 and events["quantity"].dtype == np.float64
    assert list(events["intervention"].cat.categories) == list(INTERVENTIONS)
    assert not events.isna().any().any()
    assert events.equals(events.sort_values(["user_id", "timestamp"], kind="stable", ignore_index=True))
    assert (events["value"] >= 0).all() and (events["quantity"] >= 0).all()
    is_purchase = events["event_type"] == "purchase"
    assert (events.loc[is_purchase, "value"] > 0).all() and (events.loc[~is_purchase, "value"] == 0).all()
    assert small.log.report.source == "synthetic(seed=3)"
    assert small.log.report.rows_read == len(events)
    assert set(small.log.event_types) == set(EVENT_TYPES) and small.log.event_types[-1] == "purchase"


def test_contact_rows_are_randomized_weekly_contacts(small: SyntheticLog) -> None:
    events = small.log.events
    is_contact = events["event_type"] == ""
    contacts, others = events[is_contact], events[~is_contact]
    assert len(contacts) > 0
    assert set(contacts["intervention"]) <= set(CONTACTS) and (contacts["arm"] == ARM).all()
    assert (others["intervention"] == "none").all() and (others["arm"] == "").all()
    assert set(others["event_type"]) == set(EVENT_TYPES)
    # A contact opens its week: Monday 00:00, before every event of that user-week.
    assert (contacts["timestamp"] == contacts["timestamp"].dt.normalize()).all()
    assert (contacts["timestamp"].dt.day_of_week == 0).all()
    week = (events["timestamp"] - pd.Timestamp(SMALL.start)) // pd.Timedelta(days=7)
    first_of_week = ~events.assign(week=week).duplicated(["user_id", "week"])
    assert first_of_week[is_contact].all()
    assert not contacts.assign(week=week[is_contact]).duplicated(["user_id", "week"]).any()


def test_build_panel_accepts_the_log(small: SyntheticLog) -> None:
    panel = weekly_panel(small)
    assert panel.spec.n_periods == SMALL.n_periods
    assert panel.spec.event_types == small.log.event_types
    events = small.log.events
    assert panel.purchases.sum() == (events["event_type"] == "purchase").sum()
    assert panel.interventions.sum() == (events["event_type"] == "").sum()
    assert panel.interventions.sum(axis=2).max() <= 1
    rows = np.searchsorted(small.users["user_id"].to_numpy(), panel.user_ids)
    assert not panel.interventions.any(axis=2)[~contactable(small)[rows]].any()
    assert np.isclose(panel.spend.sum(), events["value"].sum(), rtol=1e-5)


def test_same_seed_same_log_and_different_seed_different_log() -> None:
    first, again = generate_synthetic_log(SMALL), generate_synthetic_log(SMALL)
    pd.testing.assert_frame_equal(first.log.events, again.log.events)
    pd.testing.assert_frame_equal(first.users, again.users)
    assert first.true_effects == again.true_effects
    other = generate_synthetic_log(dataclasses.replace(SMALL, seed=4))
    assert not other.log.events.equals(first.log.events)
    assert not np.allclose(other.users["decay_rate"], first.users["decay_rate"])


def test_new_users_are_born_uniformly_with_a_first_purchase(
    large: SyntheticLog, large_panel: PeriodPanel
) -> None:
    config, users = large.config, large.users
    is_new = users["is_new"].to_numpy()
    assert is_new.sum() == round(config.share_new * config.n_users)
    birth = users["birth_period"].to_numpy()
    assert (birth[~is_new] == 0).all()
    new_birth = birth[is_new]
    assert new_birth.min() >= 0 and new_birth.max() < config.n_periods
    # Uniform on {0..P-1}: mean (P-1)/2, standard deviation sqrt((P^2-1)/12).
    sd = np.sqrt((config.n_periods**2 - 1) / 12)
    assert abs(new_birth.mean() - (config.n_periods - 1) / 2) < 4 * sd / np.sqrt(is_new.sum())
    quarter_counts = np.bincount(new_birth * 4 // config.n_periods, minlength=4)
    assert quarter_counts.min() > 0.8 * is_new.sum() / 4
    # Born with a purchase: the first row and the first purchase both fall in the birth week.
    np.testing.assert_array_equal(large_panel.first_period[is_new], new_birth)
    np.testing.assert_array_equal(large_panel.first_purchase_period[is_new], new_birth)
    assert np.isclose(users["initial_interest"][is_new], config.new_user_interest).all()


def test_user_heterogeneity_follows_the_config(large: SyntheticLog) -> None:
    config, users = large.config, large.users
    assert users["user_id"].is_unique and users["user_id"].is_monotonic_increasing
    for column, mean in [
        ("decay_rate", config.decay_rate_mean),
        ("propensity", config.propensity_mean),
        ("view_rate", config.view_rate_mean),
    ]:
        assert users[column].min() >= 0
        assert users[column].mean() == pytest.approx(mean, rel=0.05)


def test_interest_decays_without_contacts(large: SyntheticLog, large_panel: PeriodPanel) -> None:
    buys = large_panel.purchases > 0
    uncontacted = (large_panel.interventions.sum(axis=2) == 0) & contactable(large)
    established = uncontacted & ~large.users["is_new"].to_numpy()[:, None]
    first, last = established[:, :13], established[:, -13:]
    early, late = buys[:, :13][first].mean(), buys[:, -13:][last].mean()
    # About 6% then 4%; the binomial standard errors are about 0.1 percentage point.
    assert late < 0.8 * early


def test_true_effects_match_the_randomized_comparison(large: SyntheticLog, large_panel: PeriodPanel) -> None:
    """The naive treated-minus-control purchase rate estimates each contact's true effect.

    Contacts are assigned independently of the user's state with the same probability in every
    contactable user-week, so the treated and the uncontacted weeks share one state distribution:
    the difference of their purchase rates is unbiased for the average effect over contactable
    weeks, which equals in expectation the average over treated weeks that ``true_effects``
    reports (their gap is the spread of p1 - p0 over ~25k weeks, far below the Bernoulli noise
    allowed for). Controls must be contactable weeks: a new user's birth week buys with
    probability 1 and can never be contacted. The tolerance is 4.5 binomial standard errors
    (about 0.6 points); the smallest effect (care message, about 1.2 points) is more than 9 of
    them, so applying effects in the wrong week or to the wrong contact fails.
    """
    buys = large_panel.purchases > 0
    received = large_panel.interventions > 0
    control = contactable(large) & ~received.any(axis=2)
    y0, n0 = buys[control].mean(), control.sum()
    for c, kind in enumerate(CONTACTS):
        treated = received[:, :, c]
        y1, n1 = buys[treated].mean(), treated.sum()
        se = np.sqrt(y1 * (1 - y1) / n1 + y0 * (1 - y0) / n0)
        assert abs((y1 - y0) - large.true_effects[kind]) < 4.5 * se, kind
        assert large.true_effects[kind] > 9 * se, kind
    effects = large.true_effects
    assert effects["coupon"] > effects["push_new_items"] > effects["care_message"] > 0
    assert large.true_logit_effects == large.config.logit_effects


def test_treated_purchase_rate_equals_base_rate_plus_effects(
    large: SyntheticLog, large_panel: PeriodPanel
) -> None:
    """Over contacted weeks, E[purchase] = mean p_buy(contact) = base rate + weighted true effects."""
    buys = large_panel.purchases > 0
    received = large_panel.interventions > 0
    counts = received.sum(axis=(0, 1))
    expected = (
        large.base_purchase_rate
        + sum(counts[c] * large.true_effects[kind] for c, kind in enumerate(CONTACTS)) / counts.sum()
    )
    observed = buys[received.any(axis=2)].mean()
    assert abs(observed - expected) < 4.5 * np.sqrt(expected * (1 - expected) / counts.sum())


def test_zero_logit_effects_give_zero_true_effects() -> None:
    config = dataclasses.replace(SMALL, push_new_items_logit=0.0, coupon_logit=0.0, care_message_logit=0.0)
    synthetic = generate_synthetic_log(config)
    assert synthetic.true_effects == pytest.approx({kind: 0.0 for kind in CONTACTS}, abs=1e-15)
    assert 0 < synthetic.base_purchase_rate < 1


def test_no_treatment_gives_no_contacts() -> None:
    synthetic = generate_synthetic_log(dataclasses.replace(SMALL, treatment_prob=0.0))
    assert (synthetic.log.events["intervention"] == "none").all()
    assert all(np.isnan(effect) for effect in synthetic.true_effects.values())
    assert np.isnan(synthetic.base_purchase_rate)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("n_users", 0, ">= 1"),
        ("n_users", 2.5, "integer"),
        ("n_periods", 1, ">= 2"),
        ("seed", -1, ">= 0"),
        ("start", "2021-01-05", "Monday"),
        ("start", "4 Jan 2021", "YYYY-MM-DD"),
        ("share_new", 1.5, "[0, 1]"),
        ("new_user_interest", 1.0, "(0, 1)"),
        ("decay_rate_mean", 0.0, "> 0"),
        ("propensity_mean", float("nan"), "(0, 1)"),
        ("view_floor", -0.1, ">= 0"),
        ("rekindle", True, "[0, 1]"),
        ("treatment_prob", -0.1, "[0, 1]"),
        ("coupon_logit", 6.0, "[-5, 5]"),
    ],
)
def test_config_errors_name_the_field_and_range(field: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigError, match=rf"SyntheticConfig\.{field} = .*{re.escape(allowed)}"):
        SyntheticConfig(**{field: value})
