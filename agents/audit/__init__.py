"""Data-audit agent (seed 002): container policies, edge attributes, migration decisions."""
