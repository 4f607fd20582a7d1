"""Tasks and task sets: the data every estimator trains and evaluates on.

A :class:`Task` holds train / validation / test splits, the kind of target
(classification or regression), and the metric to report. Inputs stay in the
form the loader produced (a feature matrix, texts, text pairs, node ids, or
in-context sequences): a model backend knows how to turn them into tensors.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from core.errors import InvalidInputError, UnknownNameError

KINDS = ("classification", "regression")
METRICS = ("accuracy", "f1", "mse", "neg_mse")
INPUT_KINDS = ("features", "text", "text_pair", "graph_nodes", "icl")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """One split of a task: ``inputs`` (anything indexable of length n) and ``targets`` (n,)."""

    inputs: Any
    targets: np.ndarray

    def __post_init__(self) -> None:
        targets = np.asarray(self.targets)
        object.__setattr__(self, "targets", targets)
        if len(self.inputs) != len(targets):
            raise InvalidInputError(f"split has {len(self.inputs)} inputs but {len(targets)} targets; they must match.")

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, idx: np.ndarray) -> "Split":
        """The rows ``idx`` of this split."""
        idx = np.asarray(idx)
        inputs = self.inputs[idx] if isinstance(self.inputs, np.ndarray) else [self.inputs[i] for i in idx]
        return Split(inputs=inputs, targets=self.targets[idx])


@dataclass(frozen=True)
class Task:
    """A named learning task with its splits.

    Parameters
    ----------
    name : str
        Unique, non-empty name.
    train, val, test : Split
        The three splits; ``val`` drives early stopping, ``test`` is held out for scores.
    kind : {"classification", "regression"}
    metric : {"accuracy", "f1", "mse", "neg_mse"}
        What ``perf`` reports; for errors (mse) lower is better, and estimators use
        the negated value so that higher is always better in an affinity matrix.
    input_kind : {"features", "text", "text_pair", "graph_nodes", "icl"}
    n_classes : int, optional
        Number of classes (classification), labels are 0..n_classes-1.
    label_names : sequence of str, optional
        Names of the classes, in label order.
    group : str, optional
        A known group (planted tasks, task families) for benchmarks.
    info : mapping
        Free description (source file, column names, ...).
    """

    name: str
    train: Split
    val: Split
    test: Split
    kind: str = "classification"
    metric: str = "accuracy"
    input_kind: str = "features"
    n_classes: int | None = None
    label_names: tuple[str, ...] | None = None
    group: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"task {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInputError("a task has an empty name; give every task a name.")
        if self.kind not in KINDS:
            raise InvalidInputError(f"{where}: kind {self.kind!r} is not one of {', '.join(KINDS)}.")
        if self.metric not in METRICS:
            raise InvalidInputError(f"{where}: metric {self.metric!r} is not one of {', '.join(METRICS)}.")
        if self.input_kind not in INPUT_KINDS:
            raise InvalidInputError(f"{where}: input kind {self.input_kind!r} is not one of {', '.join(INPUT_KINDS)}.")
        for split in SPLITS:
            if len(getattr(self, split)) == 0:
                raise InvalidInputError(f"{where}: the {split} split is empty; every split needs examples.")
        if self.kind == "classification":
            if self.n_classes is None or self.n_classes < 2:
                raise InvalidInputError(f"{where}: a classification task needs n_classes >= 2.")
            for split in SPLITS:
                y = getattr(self, split).targets
                if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
                    raise InvalidInputError(f"{where}: {split} labels must be integers 0..{self.n_classes - 1}.")
                bad = (y < 0) | (y >= self.n_classes)
                if bad.any():
                    raise InvalidInputError(
                        f"{where}: {split} label {int(y[bad][0])} is outside the declared classes 0..{self.n_classes - 1}.")
            if np.unique(self.train.targets).size < 2:
                raise InvalidInputError(f"{where}: the train split has a single class; a classifier needs two or more.")
            if self.metric not in ("accuracy", "f1"):
                raise InvalidInputError(f"{where}: metric {self.metric!r} does not fit a classification task.")
        elif self.metric not in ("mse", "neg_mse"):
            raise InvalidInputError(f"{where}: metric {self.metric!r} does not fit a regression task; use mse.")

    @property
    def higher_is_better(self) -> bool:
        return self.metric in ("accuracy", "f1", "neg_mse")

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise InvalidInputError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}.")
        return getattr(self, name)

    def fingerprint(self) -> str:
        """A hash of the task's data (targets and inputs), recorded in run manifests."""
        h = hashlib.sha256(self.name.encode())
        for split in SPLITS:
            s = getattr(self, split)
            h.update(np.ascontiguousarray(s.targets).tobytes())
            if isinstance(s.inputs, np.ndarray):
                h.update(np.ascontiguousarray(s.inputs).tobytes())
            else:
                h.update(repr(list(s.inputs)).encode())
        return h.hexdigest()[:16]


class TaskSet(Mapping[str, Task]):
    """An ordered collection of uniquely named tasks plus shared context.

    ``context`` holds what tasks share (e.g. the graph of node-classification tasks:
    ``{"graph": {"adjacency": scipy.sparse matrix, "features": array}}``).
    """

    def __init__(self, tasks: Iterable[Task], context: Mapping[str, Any] | None = None, name: str = "tasks"):
        self._tasks: dict[str, Task] = {}
        for task in tasks:
            if task.name in self._tasks:
                raise InvalidInputError(f"task name {task.name!r} appears twice in {name}; task names must be unique.")
            self._tasks[task.name] = task
        if len(self._tasks) < 1:
            raise InvalidInputError(f"{name}: no tasks; list at least one task.")
        self.context = dict(context or {})
        self.name = name

    def __getitem__(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            shown = ", ".join(list(self._tasks)[:12]) + (", ..." if len(self._tasks) > 12 else "")
            raise UnknownNameError(f"unknown task name {name!r} in {self.name}; known tasks: {shown}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tasks)

    def check_names(self, names: Sequence[str]) -> tuple[str, ...]:
        """Validate a subset of task names (known, unique, non-empty) and return it in task-set order."""
        names = list(names)
        if not names:
            raise InvalidInputError("empty subset of tasks; a subset needs at least one task.")
        for x in names:
            self[x]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"subset {names} names a task twice.")
        wanted = set(names)
        return tuple(x for x in self._tasks if x in wanted)

    def subset(self, names: Sequence[str]) -> "TaskSet":
        return TaskSet((self[x] for x in self.check_names(names)), self.context, self.name)

    def fingerprints(self) -> dict[str, str]:
        return {name: task.fingerprint() for name, task in self._tasks.items()}
