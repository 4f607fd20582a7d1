"""Built-in task families that need no download.

``builtin_taskset(family, **params)`` returns a :class:`~core.estimation.data.tasks.TaskSet`:

* ``planted``: linear / logistic regression tasks sharing parameters within known groups;
* ``digits``: scikit-learn's digits as 10 one-vs-rest tasks;
* ``icl``: the in-context function classes of Garg et al. for a small GPT-2;
* ``sbm`` / ``lfr``: node classification on graphs with planted communities.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from core.errors import InvalidInputError, UnknownNameError
from core.estimation.data.tasks import TaskSet

_FAMILIES: dict[str, str] = {
    "planted": "core.estimation.data.builtin.planted:planted_tasks",
    "digits": "core.estimation.data.builtin.digits:digits_tasks",
    "icl": "core.estimation.data.builtin.icl:icl_tasks",
    "sbm": "core.estimation.data.builtin.graphs:sbm_tasks",
    "lfr": "core.estimation.data.builtin.graphs:lfr_tasks",
}


def family_names() -> tuple[str, ...]:
    return tuple(_FAMILIES)


def family_function(family: str) -> Callable[..., TaskSet]:
    try:
        module, fn = _FAMILIES[family].split(":")
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown built-in task family {family!r}; choose one of {', '.join(_FAMILIES)}.") from None
    try:
        return getattr(importlib.import_module(module), fn)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise UnknownNameError(f"built-in family {family!r} is not available in this build ({module} is missing).") from None


def builtin_taskset(family: str, **params: Any) -> TaskSet:
    """The task set of a built-in family; unknown parameters fail with a message naming them."""
    fn = family_function(family)
    accepted = set(inspect.signature(fn).parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise InvalidInputError(
            f"built-in family {family!r}: unknown parameter(s) {unknown}; it takes {', '.join(sorted(accepted))}.")
    return fn(**params)
