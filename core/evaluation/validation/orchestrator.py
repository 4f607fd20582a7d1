"""Validate a grouping: plan -> executor -> store -> per-task table and summary, in the run's folder.

:func:`run_validation` trains every group of the grouping under test and of each baseline
partition over the seeds, with the backend, training spec and data of the run that estimated
the affinities, and scores every task on a split the affinities never saw (``test``; the
estimation used ``val``). It gives the same guarantees as an estimation run: each finished
training is committed to the validation's store at once, ``resume=True`` continues after a
kill, one writer per folder (its lock), and the cost is recorded.

:func:`refresh_report` turns the store into the per-task table and the summary; native
trainings and ingested ones (:mod:`core.evaluation.validation.ingest`) both go through
:func:`record_result` and :func:`refresh_report`.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from core.errors import InvalidInputError, RunStateError
from core.estimation.runs.executors import get_executor
from core.estimation.runs.folder import RunDir, RunFolder
from core.estimation.runs.job import JobPayload, train_job
from core.estimation.runs.lock import RunLock
from core.estimation.runs.orchestrator import SPLITS, _prepare, spec_dict, package_versions
from core.estimation.runs.store import JobResult, ResultStore, subset_key
from core.evaluation.validation import stats
from core.evaluation.validation.folder import FORMAT, RESUMABLE, VERSION, ValidationDir, check_name
from core.evaluation.validation.plan import STRATEGY_LABELS, Plan, build_plan, parse_baselines
from core.grouping.api import group as group_tasks
from core.grouping.export import read_grouping
from core.paths import is_inside

Progress = Callable[[int, int, str], None]
NAMED = ("all", "single")  # partitions named by a strategy, not computed by a method


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Validation:
    """A validation read from disk."""

    dir: ValidationDir
    manifest: dict[str, Any]
    plan: Plan
    summary: dict[str, Any] | None
    rows: pd.DataFrame

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "?"))


def load_validation(path: str | os.PathLike) -> Validation:
    """Read a validation folder (manifest, plan, summary and per-task table)."""
    vdir = ValidationDir(path)
    return Validation(vdir, vdir.read_manifest(), vdir.read_plan(), vdir.read_summary(), vdir.read_tasks())


def _load_run(run: str | os.PathLike) -> RunFolder:
    folder = RunDir(run).load()
    if folder.status != "complete":
        raise RunStateError(f"{folder.path}: the run is {folder.status}; validate a grouping of a complete run "
                            "(finish it with `python -m core estimate ... --resume`).")
    if folder.main is None:
        raise RunStateError(f"{folder.path}: the run has no affinity matrix to group.")
    return folder


def resolve_grouping(run: RunFolder, grouping: Any = None, method: str | None = None,
                     k: int | str | None = None) -> tuple[list[list[str]], dict[str, Any]]:
    """The partition under test and how it was made.

    ``grouping`` is a list of groups or a path to a grouping file (CSV ``task,group`` or the
    JSON export); else ``method`` (``sdp``, ``spectral``, ``lloyd``, ``exhaustive``, or the named
    strategies ``all`` (k=1) and ``single`` (k=n)) with ``k`` on the run's matrix.
    """
    names = list(run.main.names)
    if grouping is not None and method is not None:
        raise InvalidInputError("give either --grouping FILE or --method with --k, not both.")
    if grouping is not None:
        if isinstance(grouping, (str, os.PathLike)):
            return read_grouping(str(grouping)), {"source": "file", "file": Path(grouping).name}
        return [list(g) for g in grouping], {"source": "given"}
    method = method or "sdp"
    if method == "all":
        return [names], {"source": "named", "method": "all", "k": 1}
    if method == "single":
        return [[x] for x in names], {"source": "named", "method": "single", "k": len(names)}
    if k is None:
        raise InvalidInputError(f"--method {method} needs --k (a whole number, or 'auto').")
    if isinstance(k, str) and k != "auto":
        try:
            k = int(k)
        except ValueError:
            raise InvalidInputError(f"--k {k!r}: give a whole number or 'auto'.") from None
    res = group_tasks(run.main, k, method=method)
    return [list(g) for g in res.groups], {"source": "method", "method": method, "k": len(res.groups),
                                           "objective": res.objective}


def _baseline_partitions(run: RunFolder, baselines: Sequence[str], k: int) -> dict[str, list[list[str]]]:
    out = {}
    for b in baselines:
        if b in ("spectral", "lloyd"):
            out[b] = [list(g) for g in group_tasks(run.main, k, method=b).groups]
    return out


def load_config_for(run: RunFolder, config: str | os.PathLike | None = None) -> Any:
    """The run's config, loaded and checked to be the one the run used (tasks, training spec, data).

    ``config`` defaults to the config file recorded in the run's manifest (a relative path is
    looked up from the current folder, then from the repository root).
    """
    from core.estimation.runs.config import REPO_ROOT, load_run_config  # deferred: imports torch

    man = run.manifest
    if config is None:
        source = (man.get("config") or {}).get("source")
        if not source:
            raise InvalidInputError(f"{run.path}: the manifest records no config file; pass --config (the run's).")
        cands = [Path(source)] if Path(source).is_absolute() else [Path.cwd() / source, REPO_ROOT / source]
        found = next((c for c in cands if c.is_file()), None)
        if found is None:
            raise InvalidInputError(f"{run.path}: the run's config {source} is not found here; pass --config (the run's).")
        # The manifest is a file being read: it may name a config only where the caller already looks (the current
        # folder, this checkout, the folder holding the run); anything else needs an explicit --config.
        roots = (Path.cwd(), REPO_ROOT, run.path.resolve().parent)
        if not any(is_inside(found.resolve(), r.resolve()) for r in roots):
            raise InvalidInputError(f"{run.path}: the manifest names a config outside the current folder, this "
                                    "checkout and the run's folder; pass it yourself with --config if you trust it.")
        config = found
    cfg = load_run_config(config)
    tasks = list(man.get("tasks") or [])
    if tasks and list(cfg.taskset.names) != tasks:
        raise InvalidInputError(f"--config {config}: its tasks differ from the run's; pass the config the run used.")
    spec_then = ((man.get("config") or {}).get("resolved") or {}).get("spec")
    if spec_then is not None and spec_then != spec_dict(cfg.spec):
        raise InvalidInputError(f"--config {config}: its training section differs from the run's; validation trains "
                                "with the run's spec, pass the config the run used.")
    hashes = man.get("data_hashes") or {}
    now = cfg.taskset.fingerprints()
    diff = next((t for t in hashes if hashes.get(t) != now.get(t)), None)
    if diff is not None:
        raise InvalidInputError(f"--config {config}: the data of task {diff!r} differ from the run's (hash); validate "
                                "with the data the affinities were estimated on.")
    return cfg


def _default_name(info: Mapping[str, Any], split: str) -> str:
    if info.get("source") == "file":
        stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in Path(info["file"]).stem)[:40] or "file"
        return f"file-{stem}-{split}"
    if info.get("method"):
        slug = "".join(c if c.isalnum() else "-" for c in str(info["method"]).split(",")[0].lower()).strip("-")[:30]
        return f"{slug or 'grouping'}-k{info['k']}-{split}"
    return f"grouping-{split}"


def estimate_seconds(run: RunFolder, trainings: int) -> float | None:
    """Estimated seconds for ``trainings`` from the run's own measured seconds per training."""
    cost = run.manifest.get("cost") or {}
    n, sec = cost.get("trainings"), cost.get("seconds")
    if not n or sec is None:
        return None
    return float(sec) / float(n) * trainings


@dataclass
class Prepared:
    """A validation ready to start: where, what, and its budget."""

    run: RunFolder
    dir: ValidationDir
    plan: Plan
    info: dict[str, Any]
    trainings: int
    estimated_seconds: float | None


def prepare_validation(run: str | os.PathLike, *, name: str | None = None, grouping: Any = None,
                       method: str | None = None, k: int | str | None = None, seeds: Sequence[int] = (0, 1, 2),
                       split: str = "test", baselines: str | Sequence[str] | None = None, random_draws: int = 3,
                       allow_estimation_split: bool = False, describe: Mapping[str, Any] | None = None) -> Prepared:
    """Resolve the grouping, check the split, build the plan and its budget; writes nothing.

    ``describe`` (e.g. ``{"method": "sdp"}``) records how a given list of groups was made.
    """
    folder = _load_run(run)
    if split not in SPLITS:
        raise InvalidInputError(f"--split {split!r} is not one of {', '.join(SPLITS)}.")
    est_split = str(folder.manifest.get("split") or "val")
    if split == est_split and not allow_estimation_split:
        raise InvalidInputError(f"--split {split}: the affinities were estimated on {est_split}, so validating on it "
                                "would reuse the data the grouping was chosen on; use --split test (or pass "
                                "--allow-estimation-split to do it knowingly).")
    groups, info = resolve_grouping(folder, grouping, method, k)
    names = list(folder.main.names)
    base = parse_baselines(baselines)
    plan = build_plan(names, groups, seeds, split, base, random_draws,
                      others=_baseline_partitions(folder, base, len(groups)))
    info = {**info, **dict(describe or {}), "k": len(groups)}
    vname = check_name(name or _default_name(info, split))
    n = len(plan.trainings())
    return Prepared(folder, ValidationDir.of(folder.path, vname), plan, info, n, estimate_seconds(folder, n))


def prepared_from_folder(run: str | os.PathLike, name: str) -> Prepared:
    """The :class:`Prepared` of an existing validation, from its stored plan (for resume and ingest)."""
    folder = _load_run(run)
    vdir = ValidationDir.of(folder.path, name)
    if not vdir.has_manifest():
        raise InvalidInputError(f"{vdir.path}: no validation named {name!r} in this run; see `python -m core "
                                "validate --run RUN --list`.")
    man = vdir.read_manifest()
    plan = vdir.read_plan()
    n = len(plan.trainings())
    return Prepared(folder, vdir, plan, dict(man.get("grouping") or {}), n, estimate_seconds(folder, n))


def record_result(store: ResultStore, result: JobResult) -> bool:
    """Save one finished training (native or ingested) in the validation's store."""
    return store.record(result)


def _rows(plan: Plan, outcomes: pd.DataFrame) -> pd.DataFrame:
    """The per-task table of every stored training of the plan."""
    cols = stats.ROWS + ["group_size"]
    if outcomes.empty:
        return pd.DataFrame(columns=cols)
    outcomes = outcomes[(outcomes["kind"] == "train") & (outcomes["split"] == plan.split)]
    index = {(subset_key(s), int(seed), t): (p, m) for s, seed, t, p, m in
             zip(outcomes["subset"], outcomes["seed"], outcomes["task"], outcomes["perf"], outcomes["metric"])}
    out = []
    for r in plan.rows().itertuples(index=False):
        tasks = r.tasks.split("|")
        for t in tasks:
            hit = index.get((r.tasks, int(r.seed), t))
            if hit is None:
                continue
            out.append({"strategy": r.strategy, "draw": r.draw, "group": r.group, "task": t, "seed": r.seed,
                        "perf": hit[0], "metric": hit[1], "training_id": r.training_id, "group_size": len(tasks)})
    return pd.DataFrame(out, columns=cols)


def summarize_validation(plan: Plan, rows: pd.DataFrame, matrix: Any | None = None,
                         level: float = stats.LEVEL) -> dict[str, Any]:
    """The summary of a validation's per-task table (see :mod:`core.evaluation.validation.stats`)."""
    strategies = list(plan.partitions)
    summary: dict[str, Any] = {"split": plan.split, "seeds": list(plan.seeds), "level": level,
                               "labels": {s: STRATEGY_LABELS.get(s, s) for s in strategies},
                               "partitions": {s: [[list(g) for g in p] for p in d] for s, d in plan.partitions.items()},
                               "strategies": [], "differences": [], "verdicts": [], "task_gains": [],
                               "task_gains_reference": None, "agreement": None}
    if not rows.empty:  # a partition counts only once every one of its trainings for that seed is stored
        n = len(plan.names)
        size = rows.groupby(["strategy", "draw", "seed"])["task"].transform("nunique")
        summary["partial_rows"] = int((size < n).sum())
        rows = rows[size == n]
    if rows.empty:
        return summary
    summary["strategies"] = stats.strategy_summary(rows).to_dict(orient="records")
    diffs = stats.paired_differences(rows, "grouping", [s for s in strategies if s != "grouping"], level)
    labels = summary["labels"]
    diffs["verdict"] = [stats.verdict(labels["grouping"], labels[b], d, level)
                        for b, d in zip(diffs["baseline"], diffs.to_dict(orient="records"))]
    summary["differences"] = diffs.to_dict(orient="records")
    summary["verdicts"] = list(diffs["verdict"])
    present = set(rows["strategy"])
    # the affinity T[u, v] predicts the effect of training with u on v against v alone: compare with single
    ref = "single" if "single" in present else next((s for s in strategies if s != "grouping" and s in present), None)
    if ref is not None and "grouping" in present:
        gains = stats.task_gains(rows, "grouping", ref)
        if matrix is not None:
            pred = stats.predicted_gains(matrix.values, list(matrix.names), plan.partitions["grouping"][0])
            gains = gains.merge(pred, on="task", how="left")
            summary["agreement"] = stats.agreement(gains.set_index("task")["predicted"],
                                                   gains.set_index("task")["gain"])
        summary["task_gains"] = gains.to_dict(orient="records")
        summary["task_gains_reference"] = ref
    return summary


def refresh_report(vdir: ValidationDir, plan: Plan, store: ResultStore, matrix: Any | None) -> dict[str, Any]:
    """Rewrite results.csv, tasks.csv and summary.json from the store; return the summary."""
    store.export_csv(vdir.results_csv_path)
    rows = _rows(plan, store.outcomes())
    vdir.write_tasks(rows)
    summary = summarize_validation(plan, rows, matrix)
    vdir.write_summary(summary)
    return summary


def _identity(prep: Prepared) -> dict[str, Any]:
    return {"run": prep.run.name, "tasks": list(prep.plan.names), "split": prep.plan.split,
            "seeds": list(prep.plan.seeds), "strategies": prep.plan.to_dict()["strategies"],
            "spec": ((prep.run.manifest.get("config") or {}).get("resolved") or {}).get("spec")}


def _open(prep: Prepared, cfg: Any, resume: bool, status: str) -> dict[str, Any]:
    vdir = prep.dir
    ident = _identity(prep)
    if vdir.has_manifest():
        man = vdir.read_manifest()
        if not resume:
            raise RunStateError(f"{vdir.path}: already holds a validation (status {man.get('status')}); add --resume "
                                "to continue it, or choose another --name.")
        if man.get("identity") != ident:
            raise RunStateError(f"{vdir.path}: cannot resume: this validation has another grouping, baselines, seeds "
                                "or split; use its settings, or choose another --name.")
        man.setdefault("events", []).append({"time": _now(), "event": "resumed"})
        return man
    if resume:
        raise RunStateError(f"{vdir.path}: nothing to resume; drop --resume to start this validation.")
    man = {"format": FORMAT, "version": VERSION, "name": vdir.name, "created": _now(), "status": status,
           "run": str(prep.run.path), "estimation_split": prep.run.manifest.get("split", "val"),
           "grouping": prep.info, "identity": ident,
           "directions": {t.name: bool(t.higher_is_better) for t in cfg.taskset.values()},
           "packages": package_versions(), "trainings": prep.trainings,
           "estimated_seconds": prep.estimated_seconds,
           "cost": {"trainings": 0, "seconds": 0.0, "flops": None, "wall_seconds": 0.0},
           "progress": {"done": 0, "total": prep.trainings}, "events": [{"time": _now(), "event": "created"}]}
    vdir.write_plan(prep.plan)
    vdir.write_manifest(man)
    return man


def _cost(man: dict[str, Any], store: ResultStore, wall: float) -> None:
    cost = store.cost()
    cost["flops"] = cost["flops"] if cost["flops"] == cost["flops"] else None
    cost["wall_seconds"] = wall
    man["cost"] = cost


def run_validation(run: str | os.PathLike, *, name: str | None = None, grouping: Any = None,
                   method: str | None = None, k: int | str | None = None, seeds: Sequence[int] = (0, 1, 2),
                   split: str = "test", baselines: str | Sequence[str] | None = None, random_draws: int = 3,
                   executor: str = "local", address: str | None = None, resume: bool = False,
                   plan_only: bool = False, config: str | os.PathLike | None = None,
                   allow_estimation_split: bool = False, progress: Progress | None = None) -> Validation:
    """Validate a grouping of the run folder ``run`` into ``run/validations/NAME`` and return it.

    Parameters
    ----------
    run : path
        A complete estimation run folder (its matrix gives the grouping, its config the tasks and spec).
    name : str, optional
        The validation's folder name (default from the grouping, e.g. ``sdp-k3-test``).
    grouping : list of groups or path, optional
        The partition under test, or a grouping file (CSV ``task,group`` / JSON export).
    method, k : optional
        Otherwise group the run's matrix with ``method`` (default ``sdp``) into ``k`` groups;
        ``method="all"`` / ``"single"`` name k=1 / k=n.
    seeds : training seeds (the unit of replication).
    split : the split every task is scored on (must differ from the estimation's).
    baselines : ``"all,single,random"`` (default), any of ``all, single, random, spectral, lloyd``, or ``"none"``.
    random_draws : random partitions of the grouping's sizes.
    executor, address : ``local`` or ``ray`` (with an optional cluster address).
    resume : continue the validation ``name`` after an interruption or kill.
    plan_only : write the plan (plan.csv / plan.json) and stop, for trainings run elsewhere.
    config : the run's config (default: the file recorded in the run's manifest).
    progress : ``progress(done, total, message)`` after each finished training.
    """
    if resume and name and grouping is None and method is None and k is None:
        prep = prepared_from_folder(run, name)  # `--resume --name NAME` alone continues the stored plan
    else:
        prep = prepare_validation(run, name=name, grouping=grouping, method=method, k=k, seeds=seeds, split=split,
                                  baselines=baselines, random_draws=random_draws,
                                  allow_estimation_split=allow_estimation_split)
    cfg = load_config_for(prep.run, config)
    exe = None if plan_only else get_executor(executor, address=address)
    vdir = prep.dir
    try:
        vdir.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunStateError(f"{vdir.path}: cannot create the validation folder ({exc.strerror}).") from None
    with RunLock(vdir.lock_path) as lock:
        man = _open(prep, cfg, resume, "planned" if plan_only else "running")
        if lock.stale:
            man.setdefault("events", []).append({"time": _now(), "event": f"took over a stale lock of dead process "
                                                                          f"{lock.stale.get('pid')}"})
        if plan_only:
            vdir.write_manifest(man)
            return load_validation(vdir.path)
        _execute(prep, cfg, exe, man, progress)
    return load_validation(vdir.path)


def _execute(prep: Prepared, cfg: Any, exe: Any, man: dict[str, Any], progress: Progress | None) -> None:
    vdir, plan, matrix = prep.dir, prep.plan, prep.run.main
    wall_before = float((man.get("cost") or {}).get("wall_seconds") or 0.0)
    started = time.monotonic()
    jobs = plan.trainings()
    store = ResultStore.open(vdir.store_path)
    status = "failed"
    try:
        man["status"] = "running"
        man["executor"] = exe.describe()
        vdir.write_manifest(man)
        done = store.done_keys()
        todo = [j for j in jobs.values() if j.key not in done]
        n_done = len(jobs) - len(todo)
        if progress:
            progress(n_done, len(jobs), f"{len(todo)} training(s) to run, {n_done} already stored")
        if todo:
            payload = JobPayload(taskset=_prepare(cfg), spec=cfg.spec)
            results = exe.map(train_job, todo, payload)
            try:
                for job, result in results:
                    record_result(store, result)
                    n_done += 1
                    man["progress"] = {"done": n_done, "total": len(jobs)}
                    _cost(man, store, wall_before + time.monotonic() - started)
                    vdir.write_manifest(man)
                    if progress:
                        progress(n_done, len(jobs), f"finished {job.describe()} in {result.seconds:.1f}s")
            finally:
                results.close()
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except OSError as exc:
        raise RunStateError(f"{vdir.path}: could not write the validation ({exc}); finished trainings are kept. "
                            "Free disk space or fix write permission, then continue with --resume.") from None
    finally:
        try:
            refresh_report(vdir, plan, store, matrix)
            _cost(man, store, wall_before + time.monotonic() - started)
            man["status"] = status
            man["progress"] = {"done": len(store.done_keys() & {j.key for j in jobs.values()}), "total": len(jobs)}
            man["events"].append({"time": _now(), "event": status})
            vdir.write_manifest(man)
        finally:
            store.close()
            exe.close()


def validation_status(vdir: ValidationDir) -> str:
    """The displayed status: the manifest's, or ``interrupted (killed)`` when it says running and nobody writes it."""
    st = str(vdir.read_manifest().get("status", "?"))
    if st == "running" and vdir.writer() is None:
        return "interrupted (killed)"
    return st


def resumable(vdir: ValidationDir) -> bool:
    man = vdir.read_manifest()
    return man.get("status") in RESUMABLE and vdir.writer() is None
