"""The affinity matrix: task names, values and what produced them.

Convention (fixed across the project): ``values[u, v]`` is the effect of
training with task ``u`` (row, source) on task ``v`` (column, target); higher
is better. Estimators whose natural metric is a loss negate it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from core.errors import InvalidInputError, UnknownNameError
from core.inputs import describe, name_problem

DIRECTION = "row=source (trained with), column=target (evaluated on); higher is better"


def validate_names(names: Sequence[str], n: int | None = None, *, source: str = "affinity matrix") -> tuple[str, ...]:
    """Return names as a tuple after checking they are unique, usable names (:func:`core.inputs.name_problem`)."""
    out = []
    for i, x in enumerate(names):
        if x is None or isinstance(x, (list, tuple, dict, set, bytes, bool)):
            raise InvalidInputError(f"{source}: task name at position {i} must be text, found {describe(x)}.")
        out.append(str(x).strip())
    out = tuple(out)
    if n is not None and len(out) != n:
        raise InvalidInputError(f"{source}: {len(out)} task names for a {n} x {n} matrix; give exactly one name per row.")
    for i, x in enumerate(out):
        problem = name_problem(x)
        if problem:
            raise InvalidInputError(f"{source}: task name at position {i} {problem}.")
    seen: dict[str, int] = {}
    for i, x in enumerate(out):
        if x in seen:
            raise InvalidInputError(
                f"{source}: task name {x!r} appears twice (positions {seen[x]} and {i}); task names must be unique.")
        seen[x] = i
    return out


def validate_values(values: Any, *, source: str = "affinity matrix") -> np.ndarray:
    """Return a float64 copy of ``values`` after checking it is a finite square matrix with n >= 2."""
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{source}: values are not numbers ({exc}); every entry must be a number.") from None
    if arr.ndim != 2:
        raise InvalidInputError(f"{source}: expected a 2-D matrix, got {arr.ndim}-D; give an n x n table.")
    if arr.shape[0] != arr.shape[1]:
        raise InvalidInputError(
            f"{source}: matrix is {arr.shape[0]} x {arr.shape[1]}, not square; give one row and one column per task.")
    if arr.shape[0] < 2:
        raise InvalidInputError(f"{source}: {arr.shape[0]} task(s); grouping needs at least 2 tasks.")
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise InvalidInputError(
            f"{source}: entry [{i}, {j}] is {arr[i, j]} ({int(bad.sum())} non-finite entries); "
            "every entry must be a finite number (fill or drop the missing pairs).")
    return arr


@dataclass(frozen=True)
class AffinityMatrix:
    """An n x n task-affinity matrix with its task names and provenance.

    Parameters
    ----------
    names : sequence of str
        Unique, non-empty task names, in row (and column) order.
    values : array-like of shape (n, n)
        Finite affinities; ``values[u, v]`` is the effect of source ``u`` on target ``v``.
    metric : str
        What the entries measure (e.g. ``"accuracy gain"``, ``"-loss"``).
    estimator : str
        The estimator that produced the matrix (``"pairwise"``, ``"higher-order"``, ...).
    cost : mapping
        What producing it cost: ``trainings``, ``seconds``, ``flops`` where known.
    seed : int or None
        The seed of the run that produced it.
    notes : str
        Free text.
    preprocessing : tuple of str
        The transforms already applied, in order (see :mod:`core.matrix.preprocess`).
    uncertainty : array-like of shape (n, n), optional
        Standard error (or std across seeds) of each entry, NaN where unknown.
    counts : array-like of shape (n, n), optional
        How many observations back each entry (e.g. subsets holding both tasks).
    """

    names: tuple[str, ...]
    values: np.ndarray
    metric: str = "unknown"
    estimator: str = "unknown"
    cost: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    notes: str = ""
    preprocessing: tuple[str, ...] = ()
    uncertainty: np.ndarray | None = None
    counts: np.ndarray | None = None
    direction: str = DIRECTION

    def __post_init__(self) -> None:
        values = validate_values(self.values)
        names = validate_names(self.names, values.shape[0])
        values.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "cost", dict(self.cost))
        object.__setattr__(self, "preprocessing", tuple(self.preprocessing))
        for attr in ("uncertainty", "counts"):
            extra = getattr(self, attr)
            if extra is None:
                continue
            arr = np.array(extra, dtype=np.float64)
            if arr.shape != values.shape:
                raise InvalidInputError(
                    f"affinity matrix: {attr} has shape {arr.shape}, expected {values.shape} like the values.")
            arr.setflags(write=False)
            object.__setattr__(self, attr, arr)

    @property
    def n(self) -> int:
        """Number of tasks."""
        return len(self.names)

    def index(self, name: str) -> int:
        """Position of task ``name``; raises :class:`UnknownNameError` naming the known tasks."""
        try:
            return self.names.index(name)
        except ValueError:
            shown = ", ".join(self.names[:10]) + (", ..." if self.n > 10 else "")
            raise UnknownNameError(f"unknown task name {name!r}; known tasks: {shown}") from None

    def subset(self, names: Sequence[str]) -> "AffinityMatrix":
        """The sub-matrix on ``names``, in that order."""
        idx = [self.index(x) for x in names]
        sel = np.ix_(idx, idx)
        return replace(
            self,
            names=tuple(names),
            values=self.values[sel],
            uncertainty=None if self.uncertainty is None else self.uncertainty[sel],
            counts=None if self.counts is None else self.counts[sel],
        )

    def with_values(self, values: np.ndarray, step: str | None = None, **changes: Any) -> "AffinityMatrix":
        """A copy with new values, recording ``step`` in :attr:`preprocessing`."""
        pre = self.preprocessing + ((step,) if step else ())
        return replace(self, values=values, preprocessing=pre, **changes)

    def metadata(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON-ready types."""
        return {
            "direction": self.direction,
            "metric": self.metric,
            "estimator": self.estimator,
            "cost": _jsonable(self.cost),
            "seed": self.seed,
            "notes": self.notes,
            "preprocessing": list(self.preprocessing),
        }

    def to_frame(self):
        """The values as a pandas DataFrame indexed by task name (rows=source, columns=target)."""
        import pandas as pd

        return pd.DataFrame(np.array(self.values), index=list(self.names), columns=list(self.names))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
