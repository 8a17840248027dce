"""Budgets that keep the suite fast: shared by the test modules (imported as ``tiny``)."""

TRAINING = {
    "total_timesteps": 512,
    "n_envs": 16,
    "n_steps": 16,
    "batch_size": 64,
    "n_epochs": 2,
    "net_arch": (16, 16),
    "lstm_hidden_size": 8,
    "learning_starts": 64,
    "buffer_size": 1_000,
    "target_update_interval": 256,
    "eval_every": 256,
    "eval_users": 50,
    "checkpoint_every": 256,
}
"""A ``TrainConfig`` budget that trains every algorithm in about a second."""
