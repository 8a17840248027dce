"""Baselines that learn from an experiment run on the very users they then serve.

Both spend the first ``window`` periods of a run on a randomised test in a share of the users and
learn only from what a real team observes: each user's realised net value per period (the rewards
passed to :meth:`~winback.agents.base.Policy.update`). What the test costs counts: the harness
measures every user, test users included, over the whole horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from sklearn.ensemble import HistGradientBoostingRegressor

from winback.agents.base import DecisionContext, Features, Policy, ScoreKind, ScoringPolicy, allowed
from winback.agents.baselines import NoContact
from winback.errors import ConfigError

CONTROL = "control"
"""The arm of :class:`ABTestThenRollout` that keeps business as usual (no contact)."""


def _check_design(owner: str, window: int, test_share: float) -> None:
    if window < 1:
        raise ConfigError(f"{owner}.window = {window} (allowed: >= 1)")
    if not 0 < test_share <= 1:
        raise ConfigError(f"{owner}.test_share = {test_share} (allowed: (0, 1])")


def _draw_test(
    owner: str, window: int, test_share: float, context: DecisionContext, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Test users (indices) and their group in ``[0, n_groups)``, groups as equal as can be."""
    if window >= context.horizon:
        raise ConfigError(f"{owner}.window = {window} (allowed: < the horizon, {context.horizon})")
    n_test = round(test_share * context.n_users)
    if n_test < 2 * n_groups:
        raise ConfigError(
            f"{owner}.test_share = {test_share} puts {n_test} of {context.n_users} users in the test "
            f"(allowed: at least 2 per group, {2 * n_groups} for {n_groups} groups)"
        )
    test = np.sort(context.rng.permutation(context.n_users)[:n_test])
    return test, context.rng.permutation(n_test) % n_groups


@dataclass
class ABTestDecision:
    """How an A/B test ended."""

    winner: str
    """The arm rolled out to everyone: the challenger if significant, else ``control``."""
    challenger: str
    """The candidate with the highest mean net value, tested against the control."""
    means: dict[str, float]
    """Mean net value per test user over the window, by arm (``control`` included)."""
    p_value: float
    """One-sided Welch t-test of the challenger's mean above the control's (NaN if undefined)."""
    users: dict[str, int]
    """Test users per arm."""


@dataclass
class ABTestThenRollout(Policy):
    """A/B test the candidates against no contact for ``window`` periods, then roll out the winner.

    What a growth team does with new campaign rules: a random ``test_share`` of the users is split
    evenly across the candidates and a control arm (no contact), while everyone else stays on business
    as usual (no contact). When the window closes, the candidate with the highest mean net value per
    test user is rolled out to every user, test users included, if a one-sided Welch t-test puts it
    above the control at level ``alpha``; otherwise nobody is contacted. The decision is kept in
    :attr:`decision` for reports.

    Candidates must be stateless rules or draw only from their context's rng: every candidate is reset
    with this policy's context and acts on its own arm's rows only.
    """

    separable = False

    candidates: dict[str, Policy]
    """The arms to test, by name (``control`` is added)."""
    window: int = 8
    """Periods the test runs (at least 1, less than the horizon)."""
    test_share: float = 0.2
    """Share of the users in the test, in (0, 1]."""
    alpha: float = 0.05
    """Significance level of the t-test, in (0, 1)."""
    name: str = "ab_test"
    decision: ABTestDecision | None = field(default=None, init=False)
    """Set when the window closes; ``None`` before."""

    def __post_init__(self) -> None:
        _check_design("ABTestThenRollout", self.window, self.test_share)
        if not 0 < self.alpha < 1:
            raise ConfigError(f"ABTestThenRollout.alpha = {self.alpha} (allowed: (0, 1))")
        if not self.candidates:
            raise ConfigError("ABTestThenRollout.candidates is empty (allowed: at least one policy)")
        if CONTROL in self.candidates:
            raise ConfigError(
                f"ABTestThenRollout.candidates names an arm '{CONTROL}' (reserved for the control)"
            )

    def reset(self, context: DecisionContext) -> None:
        super().reset(context)
        self._arms: dict[str, Policy] = {CONTROL: NoContact(), **self.candidates}
        test, arm = _draw_test("ABTestThenRollout", self.window, self.test_share, context, len(self._arms))
        self._arm = np.full(context.n_users, -1)  # -1: not in the test
        self._arm[test] = arm
        for policy in self._arms.values():
            policy.reset(context)
        self._value = np.zeros(context.n_users)
        self._period = 0
        self.decision = None

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        if self.decision is not None:
            return self._arms[self.decision.winner].act(observations, masks, period)
        actions = np.zeros(len(observations), dtype=np.int64)
        for k, policy in enumerate(self._arms.values()):
            rows = np.flatnonzero(self._arm == k)
            actions[rows] = policy.act(observations[rows], masks[rows], period)
        return actions

    def update(self, rewards: np.ndarray) -> None:
        if self.decision is not None:
            return
        self._value += rewards
        self._period += 1
        if self._period == self.window:
            self.decision = self._decide()

    def _decide(self) -> ABTestDecision:
        names = list(self._arms)
        values = [self._value[self._arm == k] for k in range(len(names))]
        means = {name: float(v.mean()) for name, v in zip(names, values, strict=True)}
        best = 1 + int(np.argmax([means[name] for name in names[1:]]))
        # From summary statistics: the same test as ttest_ind, without its precision warning when an
        # arm's values are all equal (nobody bought, everyone got the same contacts).
        p_value = float(
            stats.ttest_ind_from_stats(
                means[names[best]], values[best].std(ddof=1), len(values[best]),
                means[CONTROL], values[0].std(ddof=1), len(values[0]),
                equal_var=False, alternative="greater",
            ).pvalue
        )  # fmt: skip
        significant = means[names[best]] > means[CONTROL] and p_value < self.alpha
        return ABTestDecision(
            winner=names[best] if significant else CONTROL,
            challenger=names[best],
            means=means,
            p_value=p_value,
            users={name: len(v) for name, v in zip(names, values, strict=True)},
        )


@dataclass
class UpliftTargeting(ScoringPolicy):
    """Randomise one contact per test user, fit a value model per action, then target by predicted uplift.

    What a data-science team does to move beyond a single winning rule (a T-learner): a random
    ``test_share`` of the users gets one action drawn evenly from all of them (``none`` included) in
    the first period, and nothing else until the window closes; everyone else gets nothing. Then, for
    each action, a gradient-boosted regressor learns the net value over the window (contact costs and
    discounts included) from the first period's observations of the test users who got it. From then
    on, every user last contacted at least ``gap`` periods ago gets the valid action of highest
    predicted value if it beats the prediction for ``none`` (the predicted incremental margin exceeds
    what the contact costs), and nothing otherwise.

    Its :meth:`scores` are those predicted values: from the second period on, :meth:`act` is their
    argmax (the first period's actions are the test's random draws).
    """

    separable = False
    greedy = False  # its first period is the test the scores are fitted on

    window: int = 8
    """Periods the test runs (at least 1, less than the horizon); the value models' target window."""
    test_share: float = 0.2
    """Share of the users in the test, in (0, 1]."""
    gap: int = 4
    """Periods after any contact before the next (at least 1)."""
    name: str = "uplift"
    models: dict[str, HistGradientBoostingRegressor] = field(default_factory=dict, init=False)
    """The value model of each action that some test user got, once the window closes."""
    fitted_on: dict[str, int] = field(default_factory=dict, init=False)
    """Test users each action's model was fitted on (masked assignments count as ``none``)."""

    MAX_ITER = 100
    """Boosting iterations of each value model (no early stopping: deterministic)."""

    def __post_init__(self) -> None:
        _check_design("UpliftTargeting", self.window, self.test_share)
        if self.gap < 1:
            raise ConfigError(f"UpliftTargeting.gap = {self.gap} (allowed: >= 1)")

    def reset(self, context: DecisionContext) -> None:
        super().reset(context)
        self._test, self._assigned = _draw_test(
            "UpliftTargeting", self.window, self.test_share, context, len(context.actions)
        )
        self._value = np.zeros(context.n_users)
        self._period = 0
        self.models, self.fitted_on = {}, {}

    @property
    def score_kind(self) -> ScoreKind:
        return "net_value"

    def act(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        if self._period == 0:
            actions = np.zeros(len(observations), dtype=np.int64)
            actions[self._test] = self._assigned
            actions = allowed(actions, masks)
            self._given, self._observed = actions[self._test], observations[self._test].copy()
            return actions
        # ties go to none (first): a contact must beat it
        return np.argmax(self.scores(observations, masks, period), axis=1).astype(np.int64)

    def scores(self, observations: np.ndarray, masks: np.ndarray, period: int) -> np.ndarray:
        """(n, A) float64 net value over ``window`` periods predicted for each action, ``-inf`` where
        masked, where the action's value model is missing (no test user got it) and for contacts
        within ``gap`` periods of the last one. Until the window closes, when there are no value
        models yet, ``none`` scores 0 and every contact ``-inf`` (nothing is sent)."""
        values = np.full(masks.shape, -np.inf)
        if self._period < self.window:
            values[:, 0] = np.where(masks[:, 0], 0.0, -np.inf)
            return values
        kinds = self.context.actions[1:]
        eligible = Features(self.context.feature_names, observations).since_any(kinds) >= self.gap
        for a, action in enumerate(self.context.actions):
            if action in self.models:
                valid = masks[:, a] & (eligible | (a == 0))
                values[:, a] = np.where(valid, self.models[action].predict(observations), -np.inf)
        return values

    def update(self, rewards: np.ndarray) -> None:
        self._period += 1
        if self._period > self.window:
            return
        self._value += rewards
        if self._period == self.window:
            self._fit()

    def _fit(self) -> None:
        target = self._value[self._test]
        for a, action in enumerate(self.context.actions):
            rows = self._given == a
            self.fitted_on[action] = int(rows.sum())
            if rows.any():
                model = HistGradientBoostingRegressor(
                    max_iter=self.MAX_ITER,
                    early_stopping=False,
                    random_state=int(self.context.rng.integers(2**31)),
                )
                self.models[action] = model.fit(self._observed[rows], target[rows])
