"""The batched simulator core: determinism, common random numbers, responses, costs, populations."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest
import torch
from threadpoolctl import ThreadpoolController, threadpool_limits

from winback.data.cdnow import load_cdnow_panel
from winback.data.panel import PeriodPanel, build_panel
from winback.data.synthetic import SyntheticConfig, generate_synthetic_log
from winback.decay_model.base import DecayModel, PeriodActivity
from winback.decay_model.evaluate import simulate_forward
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel
from winback.decay_model.registry import MODELS
from winback.errors import ConfigError
from winback.simulator.core import Simulator, SimulatorConfig
from winback.simulator.features import feature_bounds, feature_names, observe
from winback.simulator.population import new_users, replicate, warm_start
from winback.simulator.response import (
    ContactResponse,
    ResponseConfig,
    ResponseTables,
    contact_lift,
    default_contacts,
)
from winback.simulator.rewards import RewardConfig, reward_components
from winback.simulator.state import SINCE_CAP, SimState
from winback.simulator.threads import single_threaded_blas
from winback.streams import RandomStreams

CALIBRATION_END = 39
TINY_LSTM = LSTMConfig(hidden_size=8, head_size=8, max_epochs=2)
NONE, PUSH, COUPON, CARE = range(4)


@cache
def panel() -> PeriodPanel:
    return load_cdnow_panel("cdnow-sample").select(np.arange(400))


@cache
def fitted(name: str) -> DecayModel:
    torch.set_num_threads(1)
    model = LSTMDecayModel(TINY_LSTM) if name == "lstm" else MODELS[name]()
    return model.fit(panel(), until=CALIBRATION_END, seed=0)


def population(name: str = "lstm", seed: int = 0, **config) -> tuple[Simulator, SimState]:
    simulator = Simulator(fitted(name), SimulatorConfig(**config), seed=seed)
    return simulator, warm_start(simulator, panel(), until=CALIBRATION_END)


def run(simulator: Simulator, state: SimState, actions: np.ndarray, periods: int) -> list:
    return [simulator.step(state, actions) for _ in range(periods)]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_with_no_contact_the_simulator_reproduces_the_decay_model_rollout(name: str) -> None:
    """The simulator adds no drift of its own: draw for draw, it is the decay model rolled forward."""
    simulator, state = population(name, seed=5)
    state = replicate(state, 2)
    base = warm_start(simulator, panel(), until=CALIBRATION_END)
    rollout = simulate_forward(
        simulator.model,
        simulator.model.initial_state(panel(), until=CALIBRATION_END),
        end=CALIBRATION_END + 10,
        draws=2,
        streams=RandomStreams(5),
        keys=base.keys,
    )
    totals = sum(o.activity.purchases for o in run(simulator, state, np.zeros(state.n_users, int), 10))
    np.testing.assert_array_equal(totals, rollout.totals.ravel())


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    actions = np.random.default_rng(0).integers(0, 4, panel().n_users)
    outcomes = []
    for seed in (1, 1, 2):
        simulator, state = population(seed=seed)
        outcomes.append(np.stack([o.reward.total for o in run(simulator, state, actions, 4)]))
    np.testing.assert_array_equal(outcomes[0], outcomes[1])
    assert not np.array_equal(outcomes[0], outcomes[2])


def test_a_user_meets_the_same_luck_alone_in_any_block_or_batch() -> None:
    actions = np.random.default_rng(1).integers(0, 4, panel().n_users)
    simulator, state = population(block_size=64)
    batched = np.stack([o.reward.total for o in run(simulator, state, actions, 6)])
    for user in (0, 17, 399):
        simulator, state = population(block_size=1)
        alone = state.take(np.array([user])).copy()
        single = [simulator.step(alone, actions[user : user + 1]).reward.total[0] for _ in range(6)]
        np.testing.assert_allclose(single, batched[:, user], rtol=1e-6)


def test_blocks_on_several_threads_give_the_numbers_of_one_thread() -> None:
    actions = np.random.default_rng(2).integers(0, 4, (6, panel().n_users))
    results = []
    for threads in (1, 2):
        simulator, state = population(block_size=64, threads=threads)
        outcomes = [simulator.step(state, period_actions) for period_actions in actions]
        results.append((np.stack([o.reward.total for o in outcomes]), state.decay.hidden, state.fatigue))
    for one_thread, two_threads in zip(*results, strict=True):
        np.testing.assert_array_equal(one_thread, two_threads)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_demand_shock_only_adds_buyers_and_none_changes_nothing(compiled: bool) -> None:
    simulator, state = population(block_size=128, compiled=compiled)
    n, actions = state.n_users, np.zeros(state.n_users, dtype=np.int64)
    plain, zero, peak = state.copy(), state.copy(), state.copy()
    for _ in range(3):
        a = simulator.step(plain, actions)
        b = simulator.step(zero, actions, demand_shift=np.zeros(n))
        c = simulator.step(peak, actions, demand_shift=np.full(n, np.log(3.0)))
        np.testing.assert_array_equal(a.activity.counts, b.activity.counts)
    first = simulator.step(state.copy(), actions)
    boosted = simulator.step(state.copy(), actions, demand_shift=np.full(n, np.log(3.0)))
    bought, boosted_bought = first.activity.purchases > 0, boosted.activity.purchases > 0
    assert np.all(boosted_bought[bought]) and boosted_bought.sum() > bought.sum()
    assert c.activity.purchases.sum() > a.activity.purchases.sum()
    with pytest.raises(ValueError, match="demand_shift"):
        simulator.step(state, actions, demand_shift=np.zeros(n + 1))


@pytest.mark.parametrize("compiled", [True, False])
def test_wear_out_lowers_the_odds_of_over_contacted_users_as_a_demand_shift_would(compiled: bool) -> None:
    response = ResponseConfig(fatigue_annoyance=0.8, fatigue_tolerance=1.5)
    worn, state = population(seed=2, compiled=compiled, response=response)
    plain = Simulator(worn.model, SimulatorConfig(compiled=compiled), seed=2)
    state.fatigue[:] = np.linspace(0.0, 6.0, state.n_users)
    actions = np.zeros(state.n_users, dtype=np.int64)
    shift = -0.8 * np.maximum(state.fatigue - 1.5, 0.0)
    with_wear_out = worn.step(state.copy(), actions)
    as_shift = plain.step(state.copy(), actions, demand_shift=shift)
    np.testing.assert_array_equal(with_wear_out.activity.counts, as_shift.activity.counts)
    expected = worn.expected_reward(state, actions).margin
    np.testing.assert_allclose(expected, plain.expected_reward(state, actions, demand_shift=shift).margin)
    rested = plain.expected_reward(state, actions).margin
    tired = state.fatigue > 1.5
    assert np.all(expected[tired] < rested[tired])
    np.testing.assert_allclose(expected[~tired], rested[~tired], rtol=1e-6)
    with pytest.raises(ConfigError, match="fatigue_annoyance"):
        ResponseConfig(fatigue_annoyance=-1.0)


def test_contacts_only_add_buyers_and_raise_purchases() -> None:
    simulator, state = population(block_size=128)
    pushed_state = state.copy()
    n = state.n_users
    alone = simulator.step(state, np.zeros(n, int)).activity.purchases > 0
    pushed = simulator.step(pushed_state, np.full(n, PUSH)).activity.purchases > 0
    assert np.all(pushed[alone])
    assert pushed.sum() > alone.sum()


def test_lift_is_largest_for_users_in_between() -> None:
    """Absolute lift of one log-odds lift: small for sure buyers and lapsed users, largest in between."""
    p = np.array([0.001, 0.05, 0.3, 0.5, 0.7, 0.95, 0.999])
    lifted = 1 / (1 + (1 - p) / p * np.exp(-default_contacts()["push_new_items"].lift_established))
    gain = lifted - p
    peak = int(np.argmax(gain))
    assert 0 < peak < len(p) - 1
    assert np.all(np.diff(gain[: peak + 1]) > 0) and np.all(np.diff(gain[peak:]) < 0)
    assert gain[0] < 0.001 and gain[-1] < 0.001


def test_segments_respond_as_documented() -> None:
    tables = ResponseTables.from_config(ResponseConfig())
    kinds = np.array([PUSH - 1, CARE - 1])
    new = contact_lift(tables, kinds, np.ones(2, bool), np.zeros(2))
    established = contact_lift(tables, kinds, np.zeros(2, bool), np.zeros(2))
    assert new[0] > established[0] and new[1] < established[1]
    tired = contact_lift(tables, kinds, np.zeros(2, bool), np.full(2, 3.0))
    np.testing.assert_allclose(tired, established * np.exp(-1.0))


@pytest.mark.parametrize("compiled", [True, False])
def test_repeated_contacts_of_a_kind_refresh_their_lift_instead_of_stacking(compiled: bool) -> None:
    response = dataclasses.replace(ResponseConfig(), fatigue_scale=1e9)  # no fatigue discount
    simulator, state = population(response=response, compiled=compiled)
    n, tables, fade = state.n_users, simulator.tables, simulator.tables.fade[CARE - 1]

    def fresh_care_lift() -> np.ndarray:
        is_new = state.tenure < response.new_user_periods
        return np.where(is_new, tables.lift_new[CARE - 1], tables.lift_established[CARE - 1])

    for _ in range(2):  # the second message refreshes the lift to the fresh one, then it fades once
        fresh = fresh_care_lift()
        delivered = simulator.step(state, np.full(n, CARE)).delivered == CARE
        assert delivered.mean() > 0.9
        np.testing.assert_allclose(state.lift[delivered, CARE - 1], fresh[delivered] * fade, rtol=1e-6)
    simulator.step(state, np.full(n, PUSH))  # another kind adds
    assert np.all(state.lift[~state.opted_out].min(axis=0)[[PUSH - 1, CARE - 1]] > 0)


def test_expected_reward_is_the_mean_of_the_realised_reward() -> None:
    simulator, state = population(block_size=4096)
    actions = np.tile(np.arange(10) % 4, (2000, 1)).T.ravel()  # user-major, as replicate
    assert_expected_reward_is_the_mean(simulator, state, actions)


def test_expected_reward_is_the_mean_of_the_realised_reward_under_learned_effects() -> None:
    simulator = Simulator(learned_model())
    assert "push_new_items" in simulator.learned
    state = warm_start(simulator, synthetic_panel(), until=30)
    assert_expected_reward_is_the_mean(simulator, state, np.full(10 * 2000, PUSH))


def assert_expected_reward_is_the_mean(simulator: Simulator, state: SimState, actions: np.ndarray) -> None:
    """Ten users after two periods of random actions (lifts, coupons), 2,000 copies of each: the mean
    realised reward part of each user, and of all, is the expected one within four standard errors."""
    run(simulator, state, np.random.default_rng(0).integers(0, 4, state.n_users), 2)
    copies = 2000
    users = replicate(state.take(np.arange(0, 400, 40)), copies)
    expected = simulator.expected_reward(users, actions)
    realised = simulator.step(users, actions).reward
    for part in ("margin", "discount", "contact_cost", "total"):
        drawn, predicted = getattr(realised, part), getattr(expected, part)
        assert abs(drawn.mean() - predicted.mean()) <= 4 * drawn.std() / np.sqrt(drawn.size) + 1e-9, part
        mean = drawn.reshape(10, copies).mean(axis=1)
        error = drawn.reshape(10, copies).std(axis=1) / np.sqrt(copies)
        predicted = predicted.reshape(10, copies)
        np.testing.assert_allclose(predicted, np.broadcast_to(predicted[:, :1], predicted.shape))
        assert np.all(np.abs(mean - predicted[:, 0]) <= 4 * error + 1e-9), part


def test_coupon_pays_its_discount_on_every_purchase_while_valid() -> None:
    simulator, state = population(block_size=128)
    n = state.n_users
    first = simulator.step(state, np.full(n, COUPON))
    assert np.all(first.delivered == COUPON)
    second = simulator.step(state, np.full(n, COUPON))
    assert np.all(second.refused) and np.all(second.reward.contact_cost == 0)
    third = simulator.step(state, np.zeros(n, int))
    rate = default_contacts()["coupon"].discount
    for outcome, expected_rate in ((first, rate), (second, rate), (third, 0.0)):
        np.testing.assert_allclose(outcome.reward.discount, expected_rate * outcome.activity.spend)
    np.testing.assert_allclose(first.reward.contact_cost, default_contacts()["coupon"].cost)


def test_reward_components_add_up() -> None:
    spend, rate, cost = np.array([0.0, 10.0, 40.0]), np.array([0.0, 0.15, 0.0]), np.array([0.02, 0.0, 0.05])
    parts = reward_components(spend, rate, cost, RewardConfig(margin=0.3))
    np.testing.assert_allclose(parts.margin, [0.0, 3.0, 12.0])
    np.testing.assert_allclose(parts.discount, [0.0, 1.5, 0.0])
    np.testing.assert_allclose(parts.total, [-0.02, 1.5, 11.95])
    simulator, state = population()
    outcome = simulator.step(state, np.random.default_rng(2).integers(0, 4, state.n_users))
    r = outcome.reward
    np.testing.assert_allclose(r.total, 0.3 * outcome.activity.spend - r.discount - r.contact_cost)


def test_fatigue_decays_with_its_half_life_and_opted_out_users_are_not_contacted() -> None:
    response = dataclasses.replace(ResponseConfig(), opt_out_per_fatigue=0.3)
    simulator, state = population(response=response, block_size=128)
    n = state.n_users
    simulator.step(state, np.full(n, PUSH))
    np.testing.assert_allclose(state.fatigue, 0.5 ** (1 / response.fatigue_half_life))
    before = state.fatigue.copy()
    run(simulator, state, np.zeros(n, int), 4)
    np.testing.assert_allclose(state.fatigue, before / 2)
    opted = state.opted_out.copy()
    assert 0 < opted.mean() < 1
    outcome = simulator.step(state, np.full(n, CARE))
    assert np.all(outcome.refused[opted]) and np.all(outcome.reward.contact_cost[opted] == 0)
    assert np.all(simulator.action_masks(state)[opted, 1:] == 0)


def test_since_contact_counts_periods_and_saturates() -> None:
    simulator, state = population(block_size=128)
    n = state.n_users
    assert np.all(state.since_contact == SINCE_CAP)
    simulator.step(state, np.full(n, CARE))
    run(simulator, state, np.zeros(n, int), 2)
    np.testing.assert_array_equal(state.since_contact[:, CARE - 1], 3)
    np.testing.assert_array_equal(state.since_contact[:, PUSH - 1], SINCE_CAP)


def test_caused_purchases_are_fed_back_to_the_decay_model() -> None:
    simulator, state = population(block_size=128)
    before = state.copy()
    outcome = simulator.step(state, np.full(state.n_users, PUSH))
    expected = simulator.model.advance(before.decay, outcome.activity)
    np.testing.assert_allclose(state.decay.hidden, expected.hidden, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(state.frequency, before.frequency + outcome.activity.purchases)
    np.testing.assert_allclose(
        state.forecast.p_active, simulator.model.forecast(expected).p_active, rtol=1e-5
    )


def test_warm_start_matches_the_real_users_at_the_cut_off() -> None:
    simulator, state = population()
    rfm = panel().rfm(CALIBRATION_END)
    np.testing.assert_array_equal(state.period, CALIBRATION_END)
    np.testing.assert_array_equal(state.birth, panel().first_period)
    expected = simulator.model.initial_state(panel(), until=CALIBRATION_END)
    np.testing.assert_allclose(state.decay.hidden, expected.hidden)
    np.testing.assert_array_equal(state.frequency, rfm.x + 1)
    assert np.all(state.recency >= 1) and np.all(state.recency <= CALIBRATION_END)


def test_new_users_start_after_birth_with_their_own_streams() -> None:
    simulator, real = population()
    fresh = new_users(simulator, panel(), 50, seed=3)
    np.testing.assert_array_equal(fresh.tenure, 1)
    assert np.all(fresh.frequency >= 1) and len(np.unique(fresh.keys)) == 50
    assert not np.isin(fresh.keys, real.keys).any()
    np.testing.assert_array_equal(new_users(simulator, panel(), 50, seed=3).keys, fresh.keys)
    features = observe(simulator, fresh)
    assert np.all(features[:, feature_names(simulator).index("new_user")] == 1)


def test_features_lie_in_their_box() -> None:
    simulator, state = population()
    run(simulator, state, np.random.default_rng(4).integers(0, 4, state.n_users), 3)
    features = observe(simulator, state)
    low, high = feature_bounds(simulator)
    assert features.dtype == np.float32 and features.shape == (state.n_users, len(feature_names(simulator)))
    assert np.all((features >= low) & (features <= high))
    np.testing.assert_allclose(features[:, 0], simulator.interest(state), rtol=1e-6)


@cache
def synthetic_panel() -> PeriodPanel:
    config = SyntheticConfig(n_users=600, n_periods=40, seed=2)
    end = np.datetime64(config.start) + np.timedelta64(7 * config.n_periods, "D")
    return build_panel(generate_synthetic_log(config).log, period="week", origin=config.start, end=str(end))


@cache
def learned_model() -> LSTMDecayModel:
    """A tiny LSTM fitted on a synthetic log with randomized contacts: it learns their effects."""
    return LSTMDecayModel(TINY_LSTM).fit(synthetic_panel(), until=30, seed=0)


def test_learned_effects_replace_the_priors_when_the_log_had_contacts() -> None:
    model = learned_model()
    assert set(model.learned_contacts()) == {"push_new_items", "coupon", "care_message"}
    assert Simulator(model).learned == set(model.learned_contacts())
    assert Simulator(model, SimulatorConfig(response=ResponseConfig(effects="prior"))).learned == set()
    with pytest.raises(ConfigError, match="learned no effect"):
        Simulator(fitted("lstm"), SimulatorConfig(response=ResponseConfig(effects="learned")))
    simulator = Simulator(model)
    state = warm_start(simulator, synthetic_panel(), until=30)
    born = synthetic_panel().select(synthetic_panel().born_before(30))
    logged = born.interventions[:, :30].sum(axis=1) > 0
    assert np.all(state.since_contact[logged] < SINCE_CAP) and np.all(state.fatigue[logged.any(axis=1)] > 0)
    outcome = simulator.step(state, np.full(state.n_users, PUSH))
    assert np.all(state.lift == 0), "learned kinds add no prior lift"
    assert np.all(
        outcome.reward.contact_cost[outcome.delivered > 0] == default_contacts()["push_new_items"].cost
    )


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("learned", [False, True])
def test_tracking_an_observed_period_gives_the_state_the_step_left(compiled: bool, learned: bool) -> None:
    """A platform tracking its real users with :meth:`Simulator.track` ends where the simulator's own
    step left them when the world did what the simulator drew."""
    if learned:
        model = LSTMDecayModel(TINY_LSTM).fit(synthetic_panel(), until=30, seed=0)
        simulator = Simulator(model, SimulatorConfig(compiled=compiled), seed=3)
        stepped = warm_start(simulator, synthetic_panel(), until=30)
    else:
        simulator, stepped = population(seed=3, compiled=compiled)
    tracked = stepped.copy()
    actions = np.random.default_rng(0).integers(0, len(simulator.actions), size=(4, stepped.n_users))
    for period_actions in actions:
        outcome = simulator.step(stepped, period_actions)
        simulator.track(tracked, outcome.delivered, outcome.activity, outcome.opted_out)
    assert outcome.delivered.any() and (outcome.activity.purchases > 0).any()
    for name in ("recency", "frequency", "since_contact", "valid_left", "opted_out", "period"):
        np.testing.assert_array_equal(getattr(tracked, name), getattr(stepped, name), err_msg=name)
    for name in ("spend_total", "fatigue", "lift"):
        np.testing.assert_allclose(getattr(tracked, name), getattr(stepped, name), rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(tracked.forecast.p_active, stepped.forecast.p_active, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="delivered"):
        outside = np.full(tracked.n_users, len(simulator.actions))
        simulator.track(tracked, outside, outcome.activity, outcome.opted_out)


def test_bad_configuration_is_refused_with_the_field() -> None:
    with pytest.raises(ConfigError, match="opt_out"):
        ContactResponse(lift_new=1, lift_established=1, half_life=1, cost=0, fatigue=0, opt_out=2)
    with pytest.raises(ConfigError, match="effects"):
        ResponseConfig(effects="magic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="margin"):
        RewardConfig(margin=1.5)
    with pytest.raises(ConfigError, match="threads"):
        SimulatorConfig(threads=0)
    simulator, state = population()
    with pytest.raises(ValueError, match="actions must be in"):
        simulator.step(state, np.full(state.n_users, 9))


def test_activity_shapes_follow_the_panel() -> None:
    simulator, state = population()
    outcome = simulator.step(state, np.zeros(state.n_users, int))
    assert isinstance(outcome.activity, PeriodActivity)
    assert outcome.activity.counts.shape == (state.n_users, len(panel().spec.event_types))


def test_blas_is_held_at_one_thread_while_stepping_and_restored_after() -> None:
    blas = ThreadpoolController().select(user_api="blas").lib_controllers
    with threadpool_limits(2, user_api="blas"):
        before = [c.get_num_threads() for c in blas]
        with single_threaded_blas():
            with single_threaded_blas():
                assert [c.get_num_threads() for c in blas] == [1] * len(blas)
            assert [c.get_num_threads() for c in blas] == [1] * len(blas)
        assert [c.get_num_threads() for c in blas] == before
