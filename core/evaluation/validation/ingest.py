"""Results of a validation's trainings run elsewhere: check a long table and add it to the store.

A team that trains on its own machines takes the validation's plan (``plan.csv``: one row per
training id with its seed and tasks), trains each group, and hands back a CSV in long format::

    training_id,task,metric[,loss]
    t1a2b3c4d5e6,sst2,0.91

``metric`` is the task's own metric (as in the run: accuracy, MSE, ...; the task's direction
turns it into ``perf``). The file is checked as a whole before anything is written: unknown
training ids, tasks not in the training's group, duplicate rows with conflicting values,
missing or non-finite values, trainings with some of their tasks missing, and trainings
already stored with other values are refused with one line; the store is then unchanged.
Accepted trainings go through the same path as native ones
(:func:`~core.evaluation.validation.orchestrator.record_result`, then
:func:`~core.evaluation.validation.orchestrator.refresh_report`).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from core.errors import InvalidInputError
from core.estimation.runs.lock import RunLock
from core.estimation.runs.store import JobResult, ResultStore, Score
from core.evaluation.validation.orchestrator import (Validation, _cost, _now, load_validation, prepared_from_folder,
                                                     record_result, refresh_report)

MAX_BYTES = 100 * 1024 * 1024
REQUIRED = ("training_id", "task", "metric")


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """The long results table (training_id, task, metric, optional loss), strictly parsed."""
    p = Path(path)
    where = f"--ingest {p}"
    if not p.is_file():
        raise InvalidInputError(f"{where}: no such file.")
    if p.stat().st_size > MAX_BYTES:
        raise InvalidInputError(f"{where}: larger than 100 MB; split it and ingest the parts.")
    try:
        df = pd.read_csv(p, dtype={"training_id": str, "task": str}, keep_default_na=False, na_values=[])
    except Exception as exc:  # pandas raises many kinds; never echo the file's content
        raise InvalidInputError(f"{where}: not a readable CSV ({type(exc).__name__}); give columns "
                                "training_id,task,metric.") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InvalidInputError(f"{where}: missing column(s) {missing}; the format is training_id,task,metric[,loss].")
    extra = sorted(set(df.columns) - set(REQUIRED) - {"loss"})
    if extra:
        raise InvalidInputError(f"{where}: unknown column(s) {extra}; the format is training_id,task,metric[,loss].")
    if df.empty:
        raise InvalidInputError(f"{where}: has no rows.")
    for col in ("metric", "loss"):
        if col not in df.columns:
            continue
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = [i for i, v in enumerate(vals) if not (isinstance(v, float) and math.isfinite(v))]
        if bad:
            raise InvalidInputError(f"{where}: line {bad[0] + 2}: {col} is missing, not a number, NaN or infinite; "
                                    "give a finite number for every row.")
        df[col] = vals.astype(float)
    for col in ("training_id", "task"):
        blank = [i for i, v in enumerate(df[col]) if not str(v).strip()]
        if blank:
            raise InvalidInputError(f"{where}: line {blank[0] + 2}: {col} is empty.")
        df[col] = df[col].astype(str).str.strip()
    return df


def ingest_results(run: str | os.PathLike, name: str, path: str | os.PathLike) -> tuple[Validation, int]:
    """Add the trainings of the results table ``path`` to the validation ``name`` of ``run``.

    Returns the validation read back and the number of trainings added (already stored ones
    with equal values are skipped). Raises :class:`InvalidInputError` and leaves the store
    unchanged when any row is wrong.
    """
    prep = prepared_from_folder(run, name)
    vdir, plan = prep.dir, prep.plan
    where = f"--ingest {Path(path)}"
    df = read_results(path)
    trainings = plan.trainings()
    unknown = sorted(set(df["training_id"]) - set(trainings))
    if unknown:
        raise InvalidInputError(f"{where}: {len(unknown)} training id(s) not in the plan of {name!r} (first: "
                                f"{unknown[0][:20]!r}); use the ids of its plan.csv.")
    with RunLock(vdir.lock_path):
        man = vdir.read_manifest()
        directions = man.get("directions") or {}
        results: list[JobResult] = []
        store = ResultStore.open(vdir.store_path)
        try:
            stored = store.outcomes()
            stored_ix = {(tuple(s), int(seed), t): m for s, seed, t, m in
                         zip(stored["subset"], stored["seed"], stored["task"], stored["metric"])} if len(stored) else {}
            done = store.done_keys()
            for tid, part in df.groupby("training_id", sort=True):
                job = trainings[tid]
                outside = sorted(set(part["task"]) - set(job.subset))
                if outside:
                    raise InvalidInputError(f"{where}: training {tid} scores task(s) {outside} that are not in its "
                                            f"group {list(job.subset)}.")
                scores: dict[str, Score] = {}
                for task, rows in part.groupby("task", sort=True):
                    if rows["metric"].nunique() > 1 or ("loss" in rows and rows["loss"].nunique() > 1):
                        raise InvalidInputError(f"{where}: training {tid}, task {task}: duplicate rows with "
                                                "different values; keep one row per training and task.")
                    metric = float(rows["metric"].iloc[0])
                    loss = float(rows["loss"].iloc[0]) if "loss" in rows else float("inf")  # inf: not reported
                    if task not in directions:
                        raise InvalidInputError(f"{where}: task {task}: the validation records no metric direction "
                                                "for it; the folder is damaged.")
                    scores[task] = Score(metric=metric, loss=loss,
                                         perf=metric if directions[task] else -metric, n=0)
                lacking = [t for t in job.subset if t not in scores]
                if lacking:
                    raise InvalidInputError(f"{where}: training {tid} lacks task(s) {lacking} of its group; give a "
                                            "metric for every task of the group.")
                if job.key in done:
                    clash = [t for t in job.subset if stored_ix.get((job.subset, job.seed, t)) != scores[t].metric]
                    if clash:
                        raise InvalidInputError(f"{where}: training {tid} is already stored with another {clash[0]} "
                                                "metric; a training is recorded once.")
                    continue
                results.append(JobResult(job=job, scores=scores, seconds=0.0, flops=float("nan"), steps=0,
                                         artifacts={"source": "ingested"}))
            for result in results:  # everything checked: now write, each training in one transaction
                record_result(store, result)
            refresh_report(vdir, plan, store, prep.run.main)
            _cost(man, store, float((man.get("cost") or {}).get("wall_seconds") or 0.0))
            have = store.done_keys() & {j.key for j in trainings.values()}
            man["progress"] = {"done": len(have), "total": len(trainings)}
            if len(have) == len(trainings):
                man["status"] = "complete"
            man.setdefault("events", []).append({"time": _now(), "event": f"ingested {len(results)} training(s)"})
            vdir.write_manifest(man)
        finally:
            store.close()
    return load_validation(vdir.path), len(results)
