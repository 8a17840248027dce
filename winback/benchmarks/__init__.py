"""The benchmark harness: policies x scenarios x seeds on held-out users, with paired statistics."""
