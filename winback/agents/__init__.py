"""Policies: trained agents, the baselines teams use today, and the oracle reference."""
