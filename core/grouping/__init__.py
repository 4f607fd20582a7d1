"""Grouping engine: turn an affinity matrix into k task groups."""
