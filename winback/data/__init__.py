"""Event logs in, per-user period panels out."""
