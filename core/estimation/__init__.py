"""Estimation engine: tasks, models, subset trainings and affinity estimators."""
