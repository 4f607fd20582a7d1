"""Error types of taskaffinity.

Every error a user can cause derives from :class:`TaskAffinityError`, and its
message names the input and says what to fix. The CLI prints the message on one
line and exits non-zero; the dashboard shows it on the page.
"""
from __future__ import annotations


class TaskAffinityError(Exception):
    """Base class of every error caused by user input or run state."""


class InvalidInputError(TaskAffinityError, ValueError):
    """An input (file, matrix, parameter, config entry) is malformed."""


class UnknownNameError(InvalidInputError, KeyError):
    """A task, method, estimator, solver or executor name is not known."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RunStateError(TaskAffinityError):
    """A run folder is locked, corrupt, or from an incompatible version."""
