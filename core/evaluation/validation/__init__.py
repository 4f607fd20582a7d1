"""Validate a grouping: train its groups and baseline partitions over seeds and test whether it pays.

stats (summaries, paired differences, verdict) · plan (the table of trainings) · folder (the
validation folder's owner) · orchestrator (plan -> executor -> store -> report) · ingest
(results trained elsewhere) · cli (``python -m core validate``).
"""
