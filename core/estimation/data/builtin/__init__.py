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

from pydantic import ConfigDict, ValidationError, validate_call
from pydantic.errors import PydanticUserError

from core.errors import InvalidInputError
from core.estimation.data.tasks import TaskSet
from core.registry import Registry
from core.inputs import check_memory, schema_error

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
    where = f"built-in family {family!r}, params"
    try:
        # the family's own signature is the schema: strict types (n_groups: three is not a number)
        checked = validate_call(fn, config=ConfigDict(strict=True, arbitrary_types_allowed=True))
    except (PydanticUserError, NameError, TypeError):  # a signature pydantic cannot read: call it as it is
        checked = fn
    bound = inspect.signature(fn).bind_partial(**params)
    bound.apply_defaults()
    check_memory(_estimated_bytes(family, bound.arguments), f"{where}: these sizes",
                 "make n_train / n_val / n_test (or the number of tasks) smaller")
    seed = params.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed < 2**32:
        raise InvalidInputError(f"{where}: seed must be a whole number from 0 to 2**32 - 1; found the number {seed}.")
    try:
        return checked(**params)
    except ValidationError as exc:
        raise schema_error(exc, where) from None
    except (ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, InvalidInputError):
            raise
        # a range the signature cannot state (a negative size, a probability above 1) rejected by numpy
        raise InvalidInputError(f"{where}: a value is out of range for this family ({type(exc).__name__}); check "
                                f"{', '.join(sorted(params)) or 'the defaults'} against its documentation.") from None


def _estimated_bytes(family: str, args: dict[str, Any]) -> float:
    """A lower bound on the memory a family's task set takes (float64 inputs and targets of every split)."""
    def num(key: str, default: float = 1.0) -> float:
        v = args.get(key, default)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default

    examples = num("n_train") + num("n_val") + num("n_test")
    if family == "planted":
        per = args.get("tasks_per_group", 1)
        tasks = sum(float(x) for x in per if isinstance(x, (int, float))) if isinstance(per, (list, tuple)) \
            else num("tasks_per_group") * num("n_groups")
        return tasks * examples * (num("dim") + 1) * 8
    if family == "icl":
        classes = args.get("classes")
        tasks = len(classes) if isinstance(classes, (list, tuple)) else 4
        return tasks * examples * num("n_points") * (num("dim") + 1) * 8
    if family == "sbm":
        return (num("n_communities") * num("community_size")) ** 2 * 8 / 10  # sparse-ish adjacency
    return 0.0
