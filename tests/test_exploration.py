"""Exploration for logged decisions: probabilities sum to one over the allowed actions and respect the
floor, the policy's choice keeps its share, and draws follow the probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from winback.errors import ConfigError
from winback.export.runtime.exploration import Exploration


@st.composite
def decisions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, masks (``none`` always allowed) and the policy's choice among the allowed actions."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, n_actions = draw(st.integers(1, 50)), draw(st.integers(1, 6))
    allowed = rng.random((n, n_actions)) < draw(st.floats(0.2, 1.0))
    allowed[:, 0] = True
    scores = np.where(allowed, rng.normal(0.0, 3.0, (n, n_actions)), -np.inf)
    return scores, allowed, np.argmax(scores, axis=1)


EXPLORATIONS = st.one_of(
    st.builds(Exploration, kind=st.just("none"), floor=st.sampled_from([0.0, 0.01, 0.05])),
    st.builds(
        Exploration, kind=st.just("epsilon"), epsilon=st.floats(0.0, 1.0), floor=st.sampled_from([0.0, 0.02])
    ),
    st.builds(
        Exploration,
        kind=st.just("softmax"),
        temperature=st.floats(0.05, 20.0),
        floor=st.sampled_from([0.0, 0.1]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(decisions(), EXPLORATIONS)
def test_probabilities_sum_to_one_over_the_allowed_actions_and_respect_the_floor(
    decision: tuple[np.ndarray, np.ndarray, np.ndarray], exploration: Exploration
) -> None:
    scores, allowed, choice = decision
    p = exploration.probabilities(scores, allowed, choice)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(p[~allowed] == 0.0)
    assert np.all(p[allowed] >= exploration.floor - 1e-12)
    rows = np.arange(len(choice))
    assert np.all(p[rows, choice] >= p.max(axis=1) - 1e-12) or exploration.kind == "softmax", (
        "the policy's choice is the most likely"
    )
    actions = exploration.draw(p, np.random.default_rng(0).random(len(choice)))
    assert np.all(allowed[rows, actions]) and np.all(p[rows, actions] > 0), "never a masked action"


def test_each_kind_by_hand() -> None:
    scores = np.array([[np.log(0.5), np.log(0.3), np.log(0.2), -np.inf]])  # log-probabilities, 3 masked
    allowed = np.array([[True, True, True, False]])
    choice = np.array([0])
    np.testing.assert_allclose(Exploration().probabilities(scores, allowed, choice), [[1, 0, 0, 0]])
    np.testing.assert_allclose(
        Exploration("epsilon", epsilon=0.3).probabilities(scores, allowed, choice), [[0.8, 0.1, 0.1, 0]]
    )
    np.testing.assert_allclose(
        Exploration("softmax").probabilities(scores, allowed, choice), [[0.5, 0.3, 0.2, 0]], rtol=1e-12
    )
    np.testing.assert_allclose(
        Exploration("none", floor=0.1).probabilities(scores, allowed, choice), [[0.8, 0.1, 0.1, 0]]
    )


def test_draws_follow_the_probabilities() -> None:
    p = np.tile([[0.1, 0.0, 0.6, 0.3]], (200_000, 1))
    actions = Exploration().draw(p, np.random.default_rng(3).random(len(p)))
    frequencies = np.bincount(actions, minlength=4) / len(p)
    np.testing.assert_allclose(frequencies, [0.1, 0.0, 0.6, 0.3], atol=0.003)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "boltzmann"}, "allowed: none, epsilon, softmax"),
        ({"kind": "epsilon", "epsilon": 1.5}, r"epsilon = 1\.5"),
        ({"kind": "softmax", "temperature": 0.0}, "temperature"),
        ({"floor": 1.0}, "floor"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Exploration(**kwargs)


def test_a_floor_too_high_for_the_allowed_actions_is_refused() -> None:
    allowed = np.ones((1, 4), dtype=bool)
    with pytest.raises(ConfigError, match="exceeds 1"):
        Exploration(floor=0.3).probabilities(np.zeros((1, 4)), allowed, np.array([0]))
