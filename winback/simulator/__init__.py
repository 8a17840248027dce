"""The batched user simulator (no Gymnasium here; ``winback.envs`` adapts it)."""
