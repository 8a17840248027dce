"""What an environment runs, from the arguments every environment takes: one configuration for all.

:class:`~winback.envs.activation.ActivationEnv` (``gymnasium.make``),
:class:`~winback.envs.vector.ActivationVectorEnv` (``gymnasium.make_vec``) and
:class:`~winback.envs.population.PopulationVecEnv` (SB3, training) take the same arguments and build
their episodes from the :class:`EnvConfig` that :meth:`EnvConfig.make` derives from them, so a scenario
name runs the same world in each: ``gymnasium.make("winback/Activation-v1", scenario="holiday_peak")``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from winback.envs.defaults import default_population, default_simulator
from winback.envs.episodes import EpisodeConfig, Reward
from winback.errors import ConfigError
from winback.scenarios.scenario import Scenario, load_scenario
from winback.simulator.core import Simulator
from winback.simulator.state import SimState


@dataclass(frozen=True)
class EnvConfig:
    """The simulator, the users episodes draw from, and how episodes run."""

    simulator: Simulator
    """Steps the users (its actions are the environment's)."""
    population: SimState
    """Users an episode draws from, where they stand (shared: episodes step copies)."""
    episode: EpisodeConfig
    """Horizon, frequency cap, demand shifts and reward."""

    @classmethod
    def make(
        cls,
        scenario: str | Path | Scenario | None = None,
        reward: Reward | None = None,
        *,
        simulator: Simulator | None = None,
        population: SimState | None = None,
        config: EpisodeConfig | None = None,
    ) -> EnvConfig:
        """The configuration the environments' arguments name.

        - ``scenario``: a built-in name, the path of a ``.toml`` file or a :class:`Scenario`: its
          simulator (streams keyed by seed 0), its *training* users, and its episodes
          (:meth:`EpisodeConfig.from_scenario`: horizon, frequency cap, demand shocks and decay, and
          the prices of the resources its operations limit, observed and charged).
          ``None``: the packaged CDNOW model with the documented priors, every CDNOW customer at
          week 39, and ``EpisodeConfig()`` (:mod:`winback.envs.defaults`).
        - ``reward``: ``"realised"`` or ``"expected"`` (``None``: the episode config's, realised by
          default); see :attr:`EpisodeConfig.reward`.
        - ``simulator``, ``population``: in place of the scenario's or the default's (e.g.
          ``scenario.simulator_for(seed)``, ``scenario.eval_users()``).
        - ``config``: the episode config, in place of the default's; not with a ``scenario``, whose
          episodes are the scenario's.
        """
        if scenario is not None and config is not None:
            raise ConfigError(
                "an environment takes a scenario or an episode config, not both "
                "(the scenario's episode config is EpisodeConfig.from_scenario(scenario, simulator))"
            )
        if scenario is None:
            world = simulator or default_simulator()
            users = population if population is not None else default_population()
            episode = config or EpisodeConfig()
        else:
            chosen = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
            world = simulator or chosen.simulator_for(0)
            users = population if population is not None else chosen.train_users()
            episode = EpisodeConfig.from_scenario(chosen, world)
        if reward is not None:
            episode = dataclasses.replace(episode, reward=reward)
        return cls(world, users, episode)
