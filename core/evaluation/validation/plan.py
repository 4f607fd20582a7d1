"""The plan of a validation: which trainings it needs, one row per (strategy, draw, group, seed).

A *strategy* is a named way to split the tasks: the grouping under test (``grouping``) and
the baselines (``all``: one model on all tasks; ``single``: one model per task; ``random``:
random groups of the grouping's sizes, several draws; ``spectral`` / ``lloyd``: the other
grouping methods at the same k). A *training* is one model trained on one group with one
seed; two strategies that share a group and seed share its training.

The plan is written into the validation folder (CSV and JSON) so that a team that trains
elsewhere can run exactly these trainings and hand back a results table keyed by
``training_id`` (see :mod:`core.evaluation.validation.ingest`). The id is stable: a hash of
the group's tasks, the seed and the split, so the same training gets the same id in every plan.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from core.errors import InvalidInputError
from core.estimation.runs.store import Job, subset_key
from core.evaluation.group_training import check_partition, random_partition

BASELINES = ("all", "single", "random", "spectral", "lloyd")
STRATEGY_LABELS = {"grouping": "the grouping", "all": "one model on all tasks", "single": "one model per task",
                   "random": "random groups of the same sizes", "spectral": "spectral grouping (same k)",
                   "lloyd": "Lloyd's k-means grouping (same k)"}
PLAN_COLUMNS = ["training_id", "strategy", "draw", "group", "seed", "tasks"]
PLAN_FORMAT = "taskaffinity.validation-plan"
RANDOM_SEED_BASE = 10_000  # random partitions are drawn with seeds 10000, 10001, ... (apart from training seeds)


def training_id(tasks: Sequence[str], seed: int, split: str) -> str:
    """The stable id of one training: the same group, seed and split always give the same id."""
    digest = hashlib.sha1(f"{subset_key(tasks)}#{int(seed)}#{split}".encode()).hexdigest()
    return "t" + digest[:12]


def parse_baselines(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"all,single,random"`` (or a list) as a tuple of known baseline names; ``"none"`` for none."""
    if text is None:
        return ("all", "single", "random")
    items = [x.strip() for x in (text.split(",") if isinstance(text, str) else text) if x and x.strip()]
    if items == ["none"]:
        return ()
    unknown = [x for x in items if x not in BASELINES]
    if unknown:
        raise InvalidInputError(f"--baselines: unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)} "
                                "(comma-separated) or none.")
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class Plan:
    """The trainings of a validation.

    Attributes
    ----------
    names : tuple of str
        The tasks, in the run's order.
    partitions : dict
        ``{strategy: [partition per draw]}``, each partition a list of groups (tuples of task names).
    seeds : tuple of int
    split : str
        The split every task is scored on.
    """

    names: tuple[str, ...]
    partitions: Mapping[str, list[list[tuple[str, ...]]]]
    seeds: tuple[int, ...]
    split: str

    def rows(self) -> pd.DataFrame:
        """One row per (strategy, draw, group, seed): ``PLAN_COLUMNS`` (tasks joined by ``|``)."""
        out = []
        for strategy, draws in self.partitions.items():
            for draw, partition in enumerate(draws):
                for gi, group in enumerate(partition):
                    for seed in self.seeds:
                        out.append({"training_id": training_id(group, seed, self.split), "strategy": strategy,
                                    "draw": draw, "group": gi, "seed": int(seed), "tasks": subset_key(group)})
        return pd.DataFrame(out, columns=PLAN_COLUMNS)

    def trainings(self) -> dict[str, Job]:
        """The distinct trainings, by id, as store jobs (in plan order)."""
        out: dict[str, Job] = {}
        for strategy, draws in self.partitions.items():
            for partition in draws:
                for group in partition:
                    for seed in self.seeds:
                        out.setdefault(training_id(group, seed, self.split), Job(tuple(group), seed, self.split))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "version": 1, "tasks": list(self.names), "split": self.split,
                "seeds": list(self.seeds),
                "strategies": {s: [[list(g) for g in p] for p in d] for s, d in self.partitions.items()},
                "trainings": [{"training_id": tid, "seed": j.seed, "tasks": list(j.subset)}
                              for tid, j in self.trainings().items()],
                "rows": self.rows().to_dict(orient="records")}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Plan":
        try:
            parts = {str(s): [[tuple(str(x) for x in g) for g in p] for p in draws]
                     for s, draws in d["strategies"].items()}
            return cls(tuple(d["tasks"]), parts, tuple(int(s) for s in d["seeds"]), str(d["split"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"validation plan is malformed ({type(exc).__name__}); the folder is damaged.") from None


def build_plan(names: Sequence[str], grouping: Sequence[Sequence[str]], seeds: Sequence[int], split: str,
               baselines: Sequence[str] = ("all", "single", "random"), random_draws: int = 3,
               others: Mapping[str, Sequence[Sequence[str]]] | None = None) -> Plan:
    """The plan of validating ``grouping`` against ``baselines`` over ``seeds``.

    Parameters
    ----------
    names : tasks of the run.
    grouping : the partition under test (checked to cover every task once).
    baselines : any of :data:`BASELINES`; ``spectral`` / ``lloyd`` need their partition in ``others``.
    random_draws : number of random partitions (of the grouping's group sizes) for ``random``.
    others : partitions of the grouping-method baselines, by name.
    """
    names = tuple(names)
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise InvalidInputError(f"--seeds {list(seeds)}: give distinct integers >= 0.")
    if isinstance(random_draws, bool) or not isinstance(random_draws, int) or random_draws < 1:
        raise InvalidInputError(f"--random-draws {random_draws!r}: give a whole number >= 1.")
    chosen = check_partition(grouping, names)
    parts: dict[str, list[list[tuple[str, ...]]]] = {"grouping": [chosen]}
    for b in parse_baselines(list(baselines)):
        if b == "all":
            parts[b] = [[names]]
        elif b == "single":
            parts[b] = [[(x,) for x in names]]
        elif b == "random":
            sizes = [len(g) for g in chosen]
            parts[b] = [check_partition(random_partition(names, sizes, RANDOM_SEED_BASE + d), names)
                        for d in range(random_draws)]
        else:
            if not others or b not in others:
                raise InvalidInputError(f"baseline {b!r} needs its partition (computed from the run's matrix).")
            parts[b] = [check_partition(others[b], names)]
    return Plan(names, parts, seeds, split)
