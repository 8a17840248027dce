"""Gymnasium and stable-baselines3 environments over the simulator; importing this registers them.

>>> import gymnasium as gym
>>> import winback.envs
>>> env = gym.make("winback/Activation-v1", scenario="holiday_peak", reward="expected")
>>> envs = gym.make_vec("winback/Activation-v1", num_envs=64)  # batched, one simulator call per step
"""

from gymnasium.envs.registration import register, registry

ACTIVATION_ID = "winback/Activation-v1"
"""The registered id. ``winback/Activation-v0`` is not registered (its dynamics, repeated contacts of a
kind stacking their lifts, are gone from the simulator): ``gymnasium.make`` refuses it with
Gymnasium's ``DeprecatedEnv`` error naming v1. No ``max_episode_steps``: every environment truncates
at its configuration's horizon (``ActivationEnv``'s *Episode End*)."""

if ACTIVATION_ID not in registry:
    register(
        id=ACTIVATION_ID,
        entry_point="winback.envs.activation:ActivationEnv",
        vector_entry_point="winback.envs.vector:ActivationVectorEnv",
    )
