"""Plan the trainings of an estimation run that is trained elsewhere.

:func:`plan_run` asks the estimator which trainings it needs (``Estimator.jobs``, exactly as a
native run does), gives each a stable id and writes a run folder in status ``planned``: the
manifest (with the same resolved identity as a native run), ``plan.json``, ``plan.csv`` and the
remaining plan (all of it at first). A team trains the listed subsets on its own infrastructure and
hands the metrics to :func:`core.estimation.external.ingest.ingest`.

An adaptive estimator asks for more trainings as results arrive: :func:`plan_next` appends the
next batch once the previous one is ingested.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

import pandas as pd

from core.errors import InvalidInputError, RunStateError
from core.estimation.estimators.base import EstimationContext, Estimator, get_estimator
from core.estimation.runs.folder import RUN_FORMAT, RUN_VERSION, RunDir
from core.estimation.runs.lock import RunLock
from core.estimation.runs.orchestrator import package_versions, resolve, spec_dict
from core.estimation.runs.store import Job, ResultStore, subset_key

PLAN_FORMAT = "taskaffinity.plan"
PLAN_VERSION = 1
# Estimators whose every job is one plain multitask training (kind "train", the default runner), which
# any trainer can run; the others (gradtag, tag, pvi) need this project's own runners.
EXTERNAL_ESTIMATORS = ("single", "pairwise", "higher-order", "true", "adaptive")
ALIASES = {"adaptive-batch": "adaptive"}
PLAN_COLUMNS = ["id", "tasks", "seed", "split", "batch", "n_tasks"]
MAX_TASKS_FILE = 1 << 20  # a task list is names, one a line: a megabyte is far more than 10,000 tasks


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def training_id(job: Job) -> str:
    """A stable id of a training: the same subset, seed and split always get the same id."""
    kind, key, seed, split = job.key
    return "t" + hashlib.sha1(f"{kind}\n{key}\n{seed}\n{split}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Plan:
    """A run's planned trainings, as read from its folder.

    Attributes
    ----------
    run : RunDir
    estimator : Estimator
        The estimator, with the options the run was planned with.
    ctx : EstimationContext
    trainings : pandas.DataFrame
        One row per planned training: id, tasks (``a|b``), seed, split, batch, n_tasks.
    directions : dict of str to str
        ``"higher"`` or ``"lower"`` per task where known (from the config, or the first ingest).
    jobs : dict of str to Job
        Each planned training's id and its job (worked out once from ``trainings``).
    """

    run: RunDir
    estimator: Estimator
    ctx: EstimationContext
    trainings: pd.DataFrame
    directions: dict[str, str]
    jobs: dict[str, Job] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = self.trainings
        object.__setattr__(self, "jobs", {i: Job(tuple(k.split("|")), int(s), sp) for i, k, s, sp in
                                          zip(t["id"], t["tasks"], t["seed"], t["split"])})

    @property
    def n_batches(self) -> int:
        return int(self.trainings["batch"].max()) + 1 if len(self.trainings) else 0


def read_task_list(path: str | os.PathLike) -> tuple[str, ...]:
    """Task names from a text file, one a line (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"--tasks {path}: no such file; give a text file with one task name a line.")
    if path.stat().st_size > MAX_TASKS_FILE:
        raise InvalidInputError(f"--tasks {path}: larger than {MAX_TASKS_FILE} bytes; give one task name a line.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InvalidInputError(f"--tasks {path}: not UTF-8 text; give one task name a line.") from None
    names = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if len(names) < 2:
        raise InvalidInputError(f"--tasks {path}: {len(names)} task name(s); list at least 2, one a line.")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidInputError(f"--tasks {path}: the task on line {i + 1} is listed twice; list each task once.")
        seen.add(name)
    return tuple(names)


def _estimator_name(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in EXTERNAL_ESTIMATORS:
        raise InvalidInputError(f"--estimator {name!r} cannot be trained elsewhere; choose one of "
                                f"{', '.join(EXTERNAL_ESTIMATORS)} (adaptive-batch = adaptive).")
    return name


def plan_table(jobs: Sequence[Job], batch: int) -> pd.DataFrame:
    """The plan's rows of ``jobs`` (in the estimator's order), all in ``batch``."""
    return pd.DataFrame({"id": [training_id(j) for j in jobs], "tasks": [subset_key(j.subset) for j in jobs],
                         "seed": [j.seed for j in jobs], "split": [j.split for j in jobs], "batch": batch,
                         "n_tasks": [len(j.subset) for j in jobs]}, columns=PLAN_COLUMNS)


def plan_run(*, out: str | os.PathLike, estimator: str, tasks: str | os.PathLike | Sequence[str] | None = None,
             config: str | os.PathLike | None = None, options: Mapping[str, Any] | None = None,
             seeds: Sequence[int] | None = None, split: str | None = None) -> Plan:
    """Plan the trainings ``estimator`` needs and write them into a new run folder ``out`` (status ``planned``).

    Parameters
    ----------
    out : path
        The run folder to create (must not hold a run).
    estimator : {"pairwise", "higher-order", "true", "single", "adaptive"}
        ``adaptive-batch`` is accepted for ``adaptive``: its plan holds the first batch only (see :func:`plan_next`).
    tasks : path or sequence of str, optional
        The task names (a text file, one a line, or the names); either this or ``config``.
    config : path, optional
        A run config: its task names, their metric directions, its training spec (recorded, so the run's
        identity matches a native run of the same config) and its ``estimator`` section.
    options : mapping, optional
        Estimator options (e.g. ``subsets``, ``subset_size``).
    seeds : sequence of int, optional
        Training seeds (default: the config's, else ``[0]``).
    split : {"val", "test", "train"}, optional
        The split the trainer scores (default ``val``).

    Returns
    -------
    Plan
    """
    if (tasks is None) == (config is None):
        raise InvalidInputError("plan: give either --tasks TASKS.txt or --config RUN.yaml (one of them).")
    name = _estimator_name(estimator)
    directions: dict[str, str] = {}
    if config is not None:
        from core.estimation.runs.config import load_run_config  # deferred: imports torch

        cfg = load_run_config(config)
        for task in cfg.taskset.names:
            directions[task] = "higher" if cfg.taskset[task].higher_is_better else "lower"
        spec = spec_dict(cfg.spec)
        source = str(config)
    else:
        names = read_task_list(tasks) if isinstance(tasks, (str, os.PathLike)) else tuple(str(t) for t in tasks)
        cfg = SimpleNamespace(taskset=SimpleNamespace(names=names), estimator=None, raw={})
        spec, source = None, None
    est, ctx = resolve(cfg, name, options, seeds, split)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out}: exists and is not a folder; choose a folder for the plan.")
    run = RunDir(out)
    if run.has_run() or run.has_plan():
        raise RunStateError(f"{out}: already holds a run; choose another --out (or run python -m core plan --next "
                            "there for the next batch of an adaptive run).")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunStateError(f"--out {out}: cannot create the run folder ({exc.strerror}); choose a folder you may "
                            "write to.") from None
    jobs = est.jobs(ctx, ResultStore.empty_outcomes())
    table = plan_table(jobs, 0)
    identity = {"estimator": est.name, "options": est.params(), "seeds": list(ctx.seeds), "split": ctx.split,
                "tasks": list(ctx.names), "spec": spec}
    with RunLock(run.lock_path):
        plan = {"format": PLAN_FORMAT, "version": PLAN_VERSION, "estimator": est.name, "options": est.params(),
                "tasks": list(ctx.names), "seeds": list(ctx.seeds), "split": ctx.split, "directions": directions,
                "created": _now(), "batches": 1, "trainings": table.to_dict(orient="records")}
        run.write_plan(plan, table, table)
        run.write_manifest({
            "format": RUN_FORMAT, "version": RUN_VERSION, "name": out.name, "created": _now(), "updated": _now(),
            "status": "planned", "external": True, "estimator": est.name,
            "config": {"source": source, "raw": getattr(cfg, "raw", None) or {}, "resolved": identity},
            "seeds": list(ctx.seeds), "split": ctx.split, "packages": package_versions(), "data_hashes": {},
            "cost": {"trainings": 0, "seconds": 0.0, "flops": None}, "tasks": list(ctx.names),
            "progress": {"done": 0, "total": len(table)}, "budget": budget(table),
            "events": [{"time": _now(), "event": f"planned {len(table)} trainings (batch 0)"}]})
    return read_plan(out)


def budget(table: pd.DataFrame) -> dict[str, int]:
    """What a plan costs: trainings, and task-trainings (the sum of subset sizes, for per-task cost models)."""
    return {"trainings": int(len(table)), "task_trainings": int(table["n_tasks"].sum()) if len(table) else 0}


def read_plan(path: str | os.PathLike | RunDir) -> Plan:
    """The :class:`Plan` of the run folder ``path``."""
    run = path if isinstance(path, RunDir) else RunDir(path)
    if not run.path.is_dir():
        raise InvalidInputError(f"--run {run.path}: no such run folder; make one with python -m core plan.")
    raw = run.read_plan()
    try:
        est = get_estimator(raw["estimator"], **dict(raw.get("options") or {}))
        ctx = EstimationContext(names=tuple(raw["tasks"]), seeds=tuple(raw["seeds"]), split=raw["split"])
        table = pd.DataFrame(raw["trainings"], columns=PLAN_COLUMNS)
        table = table.astype({"id": str, "tasks": str, "seed": int, "split": str, "batch": int, "n_tasks": int})
    except (KeyError, TypeError, ValueError):
        raise RunStateError(f"{run.plan_json_path}: the plan is incomplete; the run folder is damaged.") from None
    return Plan(run=run, estimator=est, ctx=ctx, trainings=table, directions=dict(raw.get("directions") or {}))


def plan_next(path: str | os.PathLike) -> tuple[Plan, int]:
    """Append the trainings the estimator asks for now (given what is ingested) as a new batch.

    Returns the updated plan and how many trainings were added (0 when the estimator needs no more:
    the run is complete, or waits for trainings of the last batch, which the error names).
    """
    plan = read_plan(path)
    run = plan.run
    with RunLock(run.lock_path):
        outcomes = _outcomes(run)
        known = set(plan.trainings["id"])
        have = set(_done_ids(plan, run))
        waiting = known - have
        if waiting:
            raise RunStateError(f"{run.path}: {len(waiting)} planned training(s) are not ingested yet (listed in "
                                f"{run.remaining_plan_path.name}); ingest them before planning the next batch.")
        new = [j for j in plan.estimator.jobs(plan.ctx, outcomes) if training_id(j) not in known]
        if not new:
            return plan, 0
        raw = run.read_plan()
        batch = plan.n_batches
        rows = plan_table(new, batch)
        table = pd.concat([plan.trainings, rows], ignore_index=True)
        raw["trainings"] = table.to_dict(orient="records")
        raw["batches"] = batch + 1
        run.write_plan(raw, table, rows)
        manifest = run.read_manifest()
        manifest["status"] = "partial"
        manifest["progress"] = {"done": len(have), "total": len(table)}
        manifest["budget"] = budget(table)
        manifest.setdefault("events", []).append({"time": _now(), "event": f"planned {len(rows)} trainings "
                                                                             f"(batch {batch})"})
        manifest["updated"] = _now()
        run.write_manifest(manifest)
    return read_plan(run), len(new)


def _outcomes(run: RunDir) -> pd.DataFrame:
    if not run.store_path.is_file():
        return ResultStore.empty_outcomes()
    with ResultStore.open(run.store_path) as store:
        return store.outcomes()


def _done_ids(plan: Plan, run: RunDir) -> list[str]:
    if not run.store_path.is_file():
        return []
    with ResultStore.open(run.store_path) as store:
        done = store.done_keys()
    return [i for i, j in plan.jobs.items() if j.key in done]

