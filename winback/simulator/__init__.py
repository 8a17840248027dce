"""The batched user simulator: learned decay, contact responses, fatigue and costs (no Gymnasium here)."""
