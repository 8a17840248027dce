"""References that look into the true simulator, and the one place they are given it.

A deployable policy is told only what production knows (:class:`~winback.agents.base.DecisionContext`,
then observations, masks and the period). A :class:`Reference` (the oracle, the planner) is a yardstick
no deployed policy could be: it also reads the simulator, the live state the harness steps and the
scenario's demand, which the harness hands over as a :class:`TrueWorld` through :func:`start`, to
references only.
"""

from __future__ import annotations

from dataclasses import dataclass

from winback.agents.base import DecisionContext, Policy
from winback.envs.episodes import Demand
from winback.errors import ConfigError
from winback.simulator.core import Simulator
from winback.simulator.state import SimState


@dataclass(frozen=True)
class TrueWorld:
    """What the harness runs a batch of users in, as a reference may see it."""

    simulator: Simulator
    state: SimState
    """The live state the harness steps (a reference must not change it)."""
    min_gap: int
    """The frequency cap the simulator enforces."""
    demand: Demand
    """The scenario's shifts of demand (:attr:`Scenario.demand`)."""


class Reference(Policy):
    """A policy that reads the true world: bound to it by :func:`start` before every :meth:`reset`."""

    world: TrueWorld
    _bound: TrueWorld | None = None

    def bind(self, world: TrueWorld) -> None:
        """The world the next :meth:`reset` starts in."""
        self._bound = world

    def reset(self, context: DecisionContext) -> None:
        """Takes the world bound since the last reset (a reference is never run on a stale one)."""
        world, self._bound = self._bound, None
        if world is None:
            raise ConfigError(
                f"{self.name} reads the simulator and its live state: bind it to the true world before "
                "each reset (run it in the harness)"
            )
        if world.state.n_users != context.n_users:
            raise ConfigError(
                f"{self.name} is bound to a world of {world.state.n_users} users, reset for {context.n_users}"
            )
        self.world = world
        super().reset(context)


def start(policy: Policy, context: DecisionContext, world: TrueWorld) -> None:
    """Start ``policy`` on a batch of users: a :class:`Reference` is bound to ``world`` first, any
    other policy is told ``context`` alone."""
    if isinstance(policy, Reference):
        policy.bind(world)
    policy.reset(context)
