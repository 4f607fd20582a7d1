"""Train one model per group of a partition and score every task: does a grouping pay?

A *partition* is a list of groups (lists of task names) covering every task once. For each
training seed, :class:`PartitionTrainer` trains one multitask network per group under the
same :class:`~core.estimation.models.training.TrainSpec` (the equal budget of the estimators) and
scores every task of the group on one split (``test`` by default: affinities are estimated
on ``val``, so reported numbers never saw the split they are scored on).

Trainings are deterministic per (group, seed) (see :mod:`core.estimation.models.training`), so the
trainer memoises them: the single-task baseline, the all-in-one model and a group that two
methods both propose are each trained once per seed.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd

from core.errors import InvalidInputError
from core.estimation.data.tasks import TaskSet
from core.estimation.models.training import SubsetOutcome, TrainedModel, TrainSpec, evaluate, perf, train_multitask

ROW_COLUMNS = ["partition", "draw", "group", "task", "seed", "perf", "metric", "loss", "seconds", "flops"]


def check_partition(groups: Sequence[Sequence[str]], names: Sequence[str]) -> list[tuple[str, ...]]:
    """Validate that ``groups`` covers every name of ``names`` exactly once; groups in task order."""
    names = list(names)
    order = {x: i for i, x in enumerate(names)}
    seen: list[str] = []
    out = []
    for g in groups:
        g = list(g)
        if not g:
            raise InvalidInputError("partition has an empty group; every group needs at least one task.")
        unknown = [x for x in g if x not in order]
        if unknown:
            raise InvalidInputError(f"partition names unknown task(s) {unknown}; known tasks: {', '.join(names)}.")
        seen += g
        out.append(tuple(sorted(g, key=order.__getitem__)))
    twice = sorted({x for x in seen if seen.count(x) > 1})
    if twice:
        raise InvalidInputError(f"partition puts task(s) {twice} in more than one group; each task goes in one group.")
    missing = [x for x in names if x not in set(seen)]
    if missing:
        raise InvalidInputError(f"partition leaves task(s) {missing} out; every task must be in a group.")
    return out


def random_partition(names: Sequence[str], sizes: Sequence[int], seed: int) -> list[list[str]]:
    """A uniformly random partition of ``names`` into groups of the given ``sizes`` (seeded)."""
    names = list(names)
    sizes = [int(s) for s in sizes]
    if any(s < 1 for s in sizes) or sum(sizes) != len(names):
        raise InvalidInputError(f"group sizes {sizes} must be positive and add up to the {len(names)} tasks.")
    perm = np.random.default_rng(seed).permutation(len(names))
    out, start = [], 0
    for s in sizes:
        out.append([names[i] for i in sorted(perm[start:start + s])])
        start += s
    return out


class PartitionTrainer:
    """Train partitions of a task set and score their tasks.

    Parameters
    ----------
    taskset : TaskSet
        The tasks (as loaded; the backend prepares them once).
    spec : TrainSpec
        Training budget of every group model.
    seeds : sequence of int
        Training seeds; every partition is trained once per seed.
    split : {"test", "val", "train"}
        Split the tasks are scored on.

    Attributes
    ----------
    trainings_ : int
        Distinct (group, seed) trainings run so far.
    seconds_ : float
        Their total training + evaluation time.

    Trained models are kept (they are small), so scoring another split costs no training.
    """

    def __init__(self, taskset: TaskSet, spec: TrainSpec, seeds: Sequence[int], split: str = "test"):
        if not isinstance(spec, TrainSpec):
            raise InvalidInputError(f"spec must be a TrainSpec, got {type(spec).__name__}.")
        seeds = [int(s) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise InvalidInputError(f"seeds {seeds} must be a non-empty list of distinct integers.")
        self.taskset = taskset
        self.spec = spec
        self.seeds = seeds
        self.split = split
        self._models: dict[tuple[tuple[str, ...], int], TrainedModel] = {}
        self._memo: dict[tuple[tuple[str, ...], int, str], SubsetOutcome] = {}
        self._seconds: dict[tuple[tuple[str, ...], int], float] = {}
        self.trainings_ = 0
        self.seconds_ = 0.0

    def model(self, group: Sequence[str], seed: int) -> TrainedModel:
        """The (memoised) model of ``group`` trained with ``seed``."""
        key = (self.taskset.check_names(group), int(seed))
        if key not in self._models:
            start = time.perf_counter()
            self._models[key] = train_multitask(self.taskset, key[0], self.spec, key[1])
            self._seconds[key] = time.perf_counter() - start
            self.trainings_ += 1
            self.seconds_ += self._seconds[key]
        return self._models[key]

    def outcome(self, group: Sequence[str], seed: int, split: str | None = None) -> SubsetOutcome:
        """Scores of every task of ``group`` (trained with ``seed``) on ``split`` (default: the trainer's)."""
        split = split or self.split
        key = (self.taskset.check_names(group), int(seed), split)
        if key not in self._memo:
            model = self.model(group, seed)  # its training time is counted in model()
            start = time.perf_counter()
            scores = {name: evaluate(model, name, split) for name in model.net.tasks}
            self.seconds_ += time.perf_counter() - start
            self._memo[key] = SubsetOutcome(subset=key[0], seed=key[1], scores=scores,
                                            seconds=self._seconds[key[:2]],
                                            flops=model.flops, steps=model.steps)
        return self._memo[key]

    def score(self, label: str, groups: Sequence[Sequence[str]], seeds: Sequence[int] | None = None,
              draw: int = 0, split: str | None = None) -> pd.DataFrame:
        """Rows (``ROW_COLUMNS``) for every task of the partition ``groups`` and every seed.

        ``draw`` tells apart several partitions under one label (e.g. random groups).
        ``perf`` is higher-is-better (see :func:`core.estimation.models.training.perf`); ``flops`` is
        the training cost of the task's group model (shared by its tasks); ``split`` overrides the
        trainer's split (the same trained models are scored, so val and test come from one training).
        """
        parts = check_partition(groups, self.taskset.names)
        rows = []
        for seed in (self.seeds if seeds is None else [int(s) for s in seeds]):
            for gi, group in enumerate(parts):
                out = self.outcome(group, seed, split)
                for name in group:
                    s = out.scores[name]
                    rows.append({"partition": label, "draw": int(draw), "group": gi, "task": name, "seed": seed,
                                 "perf": perf(self.taskset[name], s), "metric": s.metric, "loss": s.loss,
                                 "seconds": out.seconds, "flops": out.flops})
        return pd.DataFrame(rows, columns=ROW_COLUMNS)


def summarize(rows: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """One line per partition label: mean over tasks of ``perf``, spread across seeds, and vs ``reference``.

    Columns: ``mean`` (average over seeds of the task-average perf), ``sd`` (standard deviation
    of the task-average across seeds, or across (partition, seed) draws for labels that hold
    several partitions such as random groups), ``draws``, and when ``reference`` is given,
    ``vs_ref`` (mean per-task difference to the reference label, matched on task and seed),
    ``worse_tasks`` (tasks whose seed-mean perf is below the reference's) and ``min_task_gain``.
    """
    avg = rows.groupby(["partition", "draw", "seed"])["perf"].mean()
    avg = avg.reset_index()
    out = []
    ref_task = None
    if reference is not None:
        if reference not in set(rows["partition"]):
            raise InvalidInputError(f"reference {reference!r} is not a partition label in the rows.")
        ref_task = rows[rows["partition"] == reference].groupby("task")["perf"].mean()
    for label in dict.fromkeys(rows["partition"]):
        a = avg[avg["partition"] == label]["perf"].to_numpy()
        line = {"partition": label, "mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else float("nan"),
                "draws": int(len(a))}
        if ref_task is not None:
            per_task = rows[rows["partition"] == label].groupby("task")["perf"].mean()
            gain = (per_task - ref_task.reindex(per_task.index)).to_numpy()
            line.update({"vs_ref": float(gain.mean()), "worse_tasks": int((gain < -1e-12).sum()),
                         "min_task_gain": float(gain.min())})
        out.append(line)
    return pd.DataFrame(out)


def paired_gain(rows: pd.DataFrame, label: str, reference: str) -> dict[str, float]:
    """Task-average perf of ``label`` minus ``reference``, paired on the training seed.

    Labels holding several draws are averaged over their draws within a seed first. Returns the
    mean difference over seeds, its standard error (NaN for one seed) and the number of seeds.
    """
    avg = rows.groupby(["partition", "draw", "seed"])["perf"].mean().groupby(["partition", "seed"]).mean()
    for x in (label, reference):
        if x not in avg.index.get_level_values(0):
            raise InvalidInputError(f"partition label {x!r} is not in the rows.")
    d = (avg[label] - avg[reference]).dropna().to_numpy()
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"gain": float(d.mean()), "se": se, "seeds": int(len(d))}
