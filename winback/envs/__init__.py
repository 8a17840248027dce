"""Gymnasium and stable-baselines3 environments over the simulator; importing this registers them.

>>> import gymnasium as gym
>>> import winback.envs
>>> env = gym.make("winback/Activation-v0")
>>> envs = gym.make_vec("winback/Activation-v0", num_envs=64)  # batched, one simulator call per step
"""

from gymnasium.envs.registration import register, registry

from winback.envs.episodes import DEFAULT_HORIZON

ACTIVATION_ID = "winback/Activation-v0"

if ACTIVATION_ID not in registry:
    register(
        id=ACTIVATION_ID,
        entry_point="winback.envs.activation:ActivationEnv",
        vector_entry_point="winback.envs.vector:ActivationVectorEnv",
        max_episode_steps=DEFAULT_HORIZON,
    )
