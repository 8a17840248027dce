"""Scenarios: the world a policy is trained and benchmarked in (population, horizon, economics)."""
