"""Built-in task families that need no download.

``builtin_taskset(family, **params)`` returns a :class:`~core.estimation.data.tasks.TaskSet`:

* ``planted``: linear / logistic regression tasks sharing parameters within known groups;
* ``digits``: scikit-learn's digits as 10 one-vs-rest tasks;
* ``icl``: the in-context function classes of Garg et al. for a small GPT-2;
* ``sbm`` / ``lfr``: node classification on graphs with planted communities.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from core.errors import InvalidInputError
from core.estimation.data.tasks import TaskSet
from core.registry import Registry

FAMILIES: Registry[Callable[..., TaskSet]] = Registry("built-in task family", {
    "planted": "core.estimation.data.builtin.planted:planted_tasks",
    "digits": "core.estimation.data.builtin.digits:digits_tasks",
    "icl": "core.estimation.data.builtin.icl:icl_tasks",
    "sbm": "core.estimation.data.builtin.graphs:sbm_tasks",
    "lfr": "core.estimation.data.builtin.graphs:lfr_tasks",
}, check=callable)


def builtin_taskset(family: str, **params: Any) -> TaskSet:
    """The task set of a built-in family; unknown parameters fail with a message naming them."""
    fn = FAMILIES.get(family)
    accepted = set(inspect.signature(fn).parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise InvalidInputError(
            f"built-in family {family!r}: unknown parameter(s) {unknown}; it takes {', '.join(sorted(accepted))}.")
    return fn(**params)
