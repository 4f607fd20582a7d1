"""Ingest the results of trainings run elsewhere into their planned run folder.

:func:`ingest` reads a results table (:func:`core.estimation.external.results.read_results`),
checks it against the plan and against what is already stored, and only then appends the new
trainings to the run's result store (the same SQLite store as a native run), all in one
transaction. It then recomputes the run's matrices from the whole store:

* every planned training ingested (and, for an adaptive run, no further batch asked for): the
  estimator's own ``fit`` on the store's outcomes, exactly as a native run ends, so the matrices
  equal a native run's of the same trainings; status ``complete``;
* some still missing: a partial matrix with the same arithmetic restricted to what is there
  (``counts`` = observations behind each entry, 0 where none yet, such entries shown as 0;
  ``uncertainty`` = standard error), the remaining plan rewritten; status ``partial``.

Repeating an ingest (the same file, or a file that grows as results trickle in) adds only the
trainings not stored yet; a training stored with other values is refused. Bad input raises one
:class:`~core.errors.InvalidInputError` and leaves the store and every file of the run as they were.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInputError, RunStateError
from core.estimation.estimators.base import EstimationContext, Estimator, cost_of, mean_se
from core.estimation.estimators.subsets import PairwiseAffinity, SingleTaskAffinity
from core.estimation.external.plan import Plan, budget, read_plan, training_id
from core.estimation.external.results import read_results, same_value
from core.estimation.runs.folder import RunDir
from core.estimation.runs.lock import RunLock
from core.estimation.runs.store import JobResult, ResultStore, Score, subset_key
from core.matrix.affinity import AffinityMatrix


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did.

    Attributes
    ----------
    run : Path
    added : int
        Trainings newly stored.
    repeated : int
        Trainings in the file that were stored already with the same values (skipped).
    done, total : int
        Planned trainings stored, and planned in all.
    status : str
        ``partial`` or ``complete``.
    next_batch : bool
        True when an adaptive run has every planned training and asks for another batch
        (``python -m core plan --next``).
    remaining : pandas.DataFrame
        The planned trainings still missing (as in the plan).
    coverage : str
        How many (source, target) entries rest on at least one observation.
    """

    run: Path
    added: int
    repeated: int
    done: int
    total: int
    status: str
    next_batch: bool
    remaining: pd.DataFrame
    coverage: str


def ingest(run: str | os.PathLike, results: str | os.PathLike, *, metric_column: str = "metric",
           direction: str | None = None) -> IngestReport:
    """Append the results in ``results`` to the planned run ``run`` and recompute its matrices.

    Parameters
    ----------
    run : path
        A run folder made by :func:`core.estimation.external.plan.plan_run`.
    results : path
        The results table (``.csv``, ``.tsv``, ``.jsonl``, ``.parquet``; long or wide).
    metric_column : str
        The metric column of the long shape (default ``metric``).
    direction : {"higher", "lower"}, optional
        Whether a higher metric is better (needed unless the run knows it from its config or an
        earlier ingest; refused when it contradicts that).

    Returns
    -------
    IngestReport
    """
    rd = RunDir(run)
    if not rd.path.is_dir():
        raise InvalidInputError(f"--run {rd.path}: no such run folder; make one with python -m core plan.")
    if not rd.has_plan():
        raise InvalidInputError(f"--run {rd.path}: not a planned run (no plan in it); ingest needs a folder made by "
                                "python -m core plan.")
    with RunLock(rd.lock_path):
        manifest = rd.read_manifest()
        if not manifest.get("external"):
            raise RunStateError(f"--run {rd.path}: this run is trained here, not elsewhere; ingest only into folders "
                                "made by python -m core plan.")
        plan = read_plan(rd)
        rows = read_results(results, plan, metric_column=metric_column, direction=direction)
        results_by_id = _job_results(plan, rows)
        new, repeated = _check_against_store(rd, results_by_id, f"--results {Path(results).name}")
        directions = {**plan.directions, **dict(zip(rows["task"], rows["direction"]))}
        # everything is checked: from here on only valid trainings are written, all in one transaction
        with ResultStore.open(rd.store_path) as store:
            store.record_many(new)
            report = _recompute(rd, plan, store, manifest, directions,
                                f"ingested {len(new)} new training(s) from {Path(results).name}"
                                + (f" ({repeated} already stored)" if repeated else ""))
    return IngestReport(run=rd.path, added=len(new), repeated=repeated, **report)


def _job_results(plan: Plan, rows: pd.DataFrame) -> dict[str, JobResult]:
    jobs = plan.jobs
    scores: dict[str, dict[str, Score]] = {}
    cost: dict[str, tuple[float, float]] = {}
    for tid, task, m, lo, p, n, sec, fl in zip(rows["id"], rows["task"], rows["metric"], rows["loss"], rows["perf"],
                                              rows["n"], rows["seconds"], rows["flops"]):
        scores.setdefault(tid, {})[task] = Score(metric=float(m), loss=float(lo), perf=float(p), n=int(n))
        cost.setdefault(tid, (0.0 if sec != sec else float(sec), float(fl)))  # one value per training (checked)
    return {tid: JobResult(job=jobs[tid], scores=sc, seconds=cost[tid][0], flops=cost[tid][1])
            for tid, sc in sorted(scores.items())}


def _check_against_store(rd: RunDir, results: dict[str, JobResult], where: str) -> tuple[list[JobResult], int]:
    """The results not stored yet; a result stored with other values is refused (nothing written)."""
    if not rd.store_path.is_file():
        return list(results.values()), 0
    with ResultStore.open(rd.store_path) as store:
        outcomes = store.outcomes()
    stored: dict[tuple, dict[str, float]] = {}
    for kind, subset, task, seed, split, metric in zip(outcomes["kind"], outcomes["subset"], outcomes["task"],
                                                       outcomes["seed"], outcomes["split"], outcomes["metric"]):
        stored.setdefault((kind, subset_key(subset), int(seed), split), {})[task] = float(metric)
    new, repeated = [], 0
    for tid, result in results.items():
        before = stored.get(result.job.key)
        if before is None:
            new.append(result)
            continue
        for task, score in result.scores.items():
            if task not in before or not same_value(before[task], score.metric):
                raise InvalidInputError(f"{where}: training {tid} was ingested before with "
                                        f"another metric for task {task!r}; a training's results cannot change. If "
                                        "the new one is right, plan a new run and ingest into it.")
        repeated += 1
    return new, repeated


def _recompute(rd: RunDir, plan: Plan, store: ResultStore, manifest: dict[str, Any], directions: dict[str, str],
               event: str) -> dict[str, Any]:
    est, ctx = plan.estimator, plan.ctx
    outcomes = store.outcomes()
    done_keys = store.done_keys()
    missing = [i for i, j in plan.jobs.items() if j.key not in done_keys]
    remaining = plan.trainings[plan.trainings["id"].isin(set(missing))].reset_index(drop=True)
    next_batch = False
    if not missing:
        more = [j for j in est.jobs(ctx, outcomes) if training_id(j) not in plan.jobs]
        next_batch = bool(more)
    if not missing and not next_batch:
        est.fit(ctx, outcomes)  # the estimator's own arithmetic, as a native run ends
        matrices = dict(est.matrices_)
        status = "complete"
    else:
        matrices = partial_matrices(est, ctx, outcomes, len(plan.jobs) - len(missing), len(plan.jobs))
        status = "partial"
    main = next(iter(matrices.values()), None)
    coverage = coverage_summary(main) if main is not None else "no entry observed yet"
    raw = rd.read_plan()
    raw["directions"] = directions
    rd.write_plan(raw, plan.trainings, remaining)
    if matrices:
        rd.write_matrices(matrices)
    store.export_csv(rd.results_csv_path)
    cost = store.cost()
    trainings = (getattr(est, "cost_", None) or {}).get("trainings") if status == "complete" else None
    if trainings is not None and trainings != cost["trainings"]:
        cost["jobs"], cost["trainings"] = cost["trainings"], int(trainings)
    if cost["flops"] != cost["flops"]:
        cost["flops"] = None
    done = len(plan.jobs) - len(missing)
    manifest.update(status=status, cost=cost, progress={"done": done, "total": len(plan.jobs)},
                    budget=budget(plan.trainings), coverage={"summary": coverage}, updated=_now())
    manifest.setdefault("events", []).append({"time": _now(), "event": event})
    rd.write_manifest(manifest)
    return {"done": done, "total": len(plan.jobs), "status": status, "next_batch": next_batch,
            "remaining": remaining, "coverage": coverage}


def coverage_summary(m: AffinityMatrix) -> str:
    """How many off-diagonal entries rest on at least one observation, and the fewest behind an observed one."""
    n = m.n
    off = ~np.eye(n, dtype=bool)
    if m.counts is None:
        return f"{n * (n - 1)} of {n * (n - 1)} entries observed"
    c = np.asarray(m.counts)[off]
    seen = c > 0
    low = f"; fewest observations behind an observed entry: {int(c[seen].min())}" if seen.any() else ""
    return f"{int(seen.sum())} of {c.size} entries observed{low}"


# ----------------------------------------------------------------------------------------------- partial

def partial_matrices(est: Estimator, ctx: EstimationContext, outcomes: pd.DataFrame, done: int,
                     total: int) -> dict[str, AffinityMatrix]:
    """The run's main matrix from the trainings stored so far (entries with no observation: 0, count 0).

    Pairwise: ``T[u, v] = perf_v({u, v}) - perf_v({v})`` over the seeds where both are stored. Subset
    estimators: the mean of ``f_v(S)`` over the stored subsets holding ``u`` and ``v``, minus the target's
    single-task baseline when the estimator uses one (entries of a target without a baseline yet: count 0).
    The single-task estimator has no partial matrix (its matrix is the baselines themselves).
    """
    if isinstance(est, SingleTaskAffinity):
        return {}
    rows = outcomes[(outcomes["kind"] == "train") & (outcomes["split"] == ctx.split)] if len(outcomes) else outcomes
    names, n = ctx.names, len(ctx.names)
    pos = {x: i for i, x in enumerate(names)}
    values, unc, cnt = np.zeros((n, n)), np.full((n, n), np.nan), np.zeros((n, n))
    perf = {(tuple(s), t, int(seed)): float(p) for s, t, seed, p in
            zip(rows["subset"], rows["task"], rows["seed"], rows["perf"])} if len(rows) else {}
    if isinstance(est, PairwiseAffinity):
        for u, v in combinations(names, 2):
            for src, tgt in ((u, v), (v, u)):
                gains = [perf[((u, v), tgt, s)] - perf[((tgt,), tgt, s)] for s in ctx.seeds
                         if ((u, v), tgt, s) in perf and ((tgt,), tgt, s) in perf]
                if gains:
                    i, j = pos[src], pos[tgt]
                    values[i, j], unc[i, j] = mean_se(gains)
                    cnt[i, j] = len(gains)
        what = "perf_v({u,v}) - perf_v({v})"
    else:
        base_mode = est.options.get("baseline", "none") if est.name != "adaptive" else "none"
        total_, sq = np.zeros((n, n)), np.zeros((n, n))
        for (subset, task, _seed), p in perf.items():
            if len(subset) < 2:
                continue
            idx = [pos[x] for x in subset]
            i = pos[task]
            total_[idx, i] += p
            sq[idx, i] += p * p
            cnt[idx, i] += 1
        base = np.zeros(n)
        if base_mode == "single":
            for v in names:
                b = [p for (s, t, _), p in perf.items() if s == (v,) and t == v]
                base[pos[v]] = np.mean(b) if b else np.nan
            cnt[:, ~np.isfinite(base)] = 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total_ / cnt
            var = np.maximum(sq / cnt - mean ** 2, 0.0) * cnt / np.maximum(cnt - 1, 1)
            unc = np.where(cnt > 1, np.sqrt(var / cnt), np.nan)
            values = np.where(cnt > 0, mean - np.nan_to_num(base)[None, :], 0.0)
        what = "mean f_v(S) over stored subsets holding u and v" + (" minus perf_v({v})" if base_mode == "single" else "")
    unobserved = int(((cnt == 0) & ~np.eye(n, dtype=bool)).sum())
    main = AffinityMatrix(
        names=names, values=values, metric=f"{what} ({ctx.split}; partial)", estimator=est.name,
        cost=cost_of(rows) if len(rows) else {"trainings": 0, "seconds": 0.0, "flops": 0.0}, seed=ctx.seeds[0],
        notes=f"PARTIAL: {done} of {total} planned trainings ingested; {unobserved} (source, target) entries have no "
              "observation yet (count 0, shown as 0); counts = observations behind each entry, uncertainty = "
              "standard error across them",
        uncertainty=unc, counts=cnt)
    return {est.name: main}
