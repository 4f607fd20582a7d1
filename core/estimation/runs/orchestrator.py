"""The run orchestrator: config -> jobs -> executor -> store -> matrices -> run folder.

:func:`run_estimation` writes the run folder of :mod:`core.estimation.runs.folder`. Every finished training
is committed to ``results.sqlite`` at once, so a run killed at any moment loses only the
trainings in flight; ``resume=True`` skips stored jobs and, since jobs are deterministic and the
matrices are computed from the sorted store, ends with the same matrices as an uninterrupted
run. One writer per folder (its lock file); a resumed run must have the same config and data.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sqlite3
import sys
import time
from dataclasses import asdict, is_dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from core.devices import check_device, describe_device, resolve_device
from core.errors import InvalidInputError, RunStateError
from core.estimation.estimators.base import EstimationContext, Estimator, get_estimator
from core.estimation.runs.executors import Executor, get_executor
from core.estimation.runs.folder import RUN_FORMAT, RUN_VERSION, RunDir, RunFolder
from core.estimation.runs.job import JobPayload
from core.estimation.runs.lock import RunLock
from core.estimation.runs.store import ResultStore, subset_key

Progress = Callable[[int, int, str], None]
SPLITS = ("train", "val", "test")
PACKAGES = ("taskaffinity", "numpy", "scipy", "pandas", "scikit-learn", "torch", "transformers", "ray")
CSV_EVERY_S = 10.0


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "torch" and "torch" in sys.modules:
                out[name] = getattr(sys.modules["torch"], "__version__", "?")
    return out


def _load_config(config: Any):
    if isinstance(config, (str, os.PathLike)):
        # deferred: the config module imports torch (through the training spec), which a caller passing a
        # ready RunConfig, or only reading runs, should not pay for
        from core.estimation.runs.config import load_run_config

        return load_run_config(config)
    for attr in ("taskset", "spec"):
        if not hasattr(config, attr):
            raise InvalidInputError(f"config: expected a path to a run config or a RunConfig, got {type(config).__name__}.")
    return config


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, (int,)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidInputError(f"{where}: seeds must be a non-empty list of integers, got {value!r}.")
    out = []
    for s in value:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise InvalidInputError(f"{where}: seed {s!r} is not an integer >= 0.")
        out.append(int(s))
    if len(set(out)) != len(out):
        raise InvalidInputError(f"{where}: seeds {out} repeat a seed; list each seed once.")
    return tuple(out)


def resolve(cfg: Any, estimator: str | Estimator | None, options: Mapping[str, Any] | None,
            seeds: Sequence[int] | None, split: str | None) -> tuple[Estimator, EstimationContext]:
    """The estimator and context of a run: arguments override the config's ``estimator`` section."""
    section = dict(getattr(cfg, "estimator", None) or {})
    if isinstance(estimator, Estimator):
        est = estimator
        if options:
            raise InvalidInputError("options: give them to the Estimator instance, not alongside it.")
    else:
        name = estimator or section.get("name") or section.get("kind")  # "kind" is accepted as an alias
        if not name:
            raise InvalidInputError("estimator: none chosen; pass --estimator (pairwise, higher-order, ...) or set "
                                    "estimator.name in the config.")
        if not isinstance(name, str):
            raise InvalidInputError(f"estimator: name must be a string, got {name!r}.")
        opts = {k: v for k, v in section.items() if k not in ("name", "kind", "seeds", "split")}
        if estimator and (section.get("name") or section.get("kind")) not in (None, estimator):
            opts = {}  # the config's options belong to another estimator
        opts.update({k: v for k, v in (options or {}).items() if v is not None})
        est = get_estimator(name, **opts)
    raw = getattr(cfg, "raw", None) or {}
    if seeds is not None:
        seeds_t = _seeds(list(seeds), "--seeds")
    elif "seeds" in section:
        seeds_t = _seeds(section["seeds"], "estimator.seeds")
    elif isinstance(raw, Mapping) and "seeds" in raw:
        seeds_t = _seeds(raw["seeds"], "seeds")
    else:
        seeds_t = (0,)
    split = split or section.get("split") or "val"
    if split not in SPLITS:
        raise InvalidInputError(f"split {split!r} is not one of {', '.join(SPLITS)}.")
    names = tuple(cfg.taskset.names)
    for n in names:
        subset_key((n,))
    ctx = EstimationContext(names=names, seeds=seeds_t, split=split)
    est.validate(ctx)
    return est, ctx


def spec_dict(spec: Any) -> dict[str, Any]:
    d = asdict(spec) if is_dataclass(spec) else dict(vars(spec))
    if d.get("precision") == "fp32":  # the default, left out so that runs made before the option resume
        d.pop("precision")
    return json.loads(json.dumps(d, default=str, sort_keys=True))


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            d = _first_difference(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{path}.{k}" if path else str(k))
            if d:
                return d
        return None
    return None if a == b else f"{path or 'config'} (run has {a!r}, now {b!r})"


def _prepare(cfg: Any) -> Any:
    """The task set as the backend wants it (e.g. texts embedded once, before any job is shipped)."""
    # deferred: both import torch, needed only once a run really trains
    from core.estimation.models.backends import get_backend
    from core.estimation.models.training import prepare_taskset

    spec = cfg.spec
    return prepare_taskset(get_backend(spec.backend, **dict(getattr(spec, "options", {}) or {})), cfg.taskset)


def run_estimation(config: Any, *, out: str | os.PathLike, estimator: str | Estimator | None = None,
                   options: Mapping[str, Any] | None = None, resume: bool = False,
                   executor: str | Executor = "local", address: str | None = None,
                   executor_options: Mapping[str, Any] | None = None, seeds: Sequence[int] | None = None,
                   split: str | None = None, progress: Progress | None = None,
                   device: str | None = None) -> RunFolder:
    """Run an affinity estimation into the run folder ``out`` and return it (read back from disk).

    Parameters
    ----------
    config : path or RunConfig
        A YAML/TOML run config (:func:`core.estimation.runs.config.load_run_config`) or a loaded one.
    out : path
        The run folder (created; must not already hold a run unless ``resume``).
    estimator : str or Estimator, optional
        Registry name (``pairwise``, ``higher-order``, ``true``, ``single``, ...); default: the
        config's ``estimator.name``.
    options : mapping, optional
        Estimator options overriding the config's ``estimator`` section (e.g. ``subsets``).
    resume : bool
        Continue the run in ``out``, skipping stored jobs; refused if config or data differ.
    executor : {"local", "ray"} or Executor
    address : str, optional
        Ray cluster address (``--executor ray`` only).
    seeds : sequence of int, optional
        Training seeds (default: the config's, else ``[0]``).
    split : {"val", "test", "train"}, optional
        The split scored for affinities (default ``val``).
    progress : callable, optional
        Called as ``progress(done, total, message)`` after each finished job (and at the start).
    device : {"auto", "cpu", "cuda", "cuda:N"}, optional
        Where trainings run, overriding the config's ``training.device``. Recorded in the manifest
        (asked for and used). CUDA asked for and absent fails here, before any training, when the
        trainings run in this process; on Ray each worker resolves it (and fails the same way).
    """
    if out is None or not str(out).strip():  # Path("") is the current folder: never write a run there unasked
        raise InvalidInputError("--out is empty; name the run folder, e.g. --out runs/my-run.")
    if device is not None:
        check_device(device)
    cfg = _load_config(config)
    if device is not None:
        cfg = replace(cfg, spec=replace(cfg.spec, device=device))
    est, ctx = resolve(cfg, estimator, options, seeds, split)
    exe = get_executor(executor, address=address, **dict(executor_options or {}))
    try:
        return _run(cfg, est, ctx, exe, Path(out), resume, progress)
    finally:
        exe.close()  # also when the run never started; closing twice is harmless


def _run(cfg: Any, est: Estimator, ctx: EstimationContext, exe: Executor, out: Path, resume: bool,
         progress: Progress | None) -> RunFolder:
    device_record = _device_record(cfg.spec, exe)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out}: exists and is not a folder; choose a folder for the run.")
    # Reach the cluster before anything is prepared or written: a run that cannot start leaves no folder behind.
    exe.connect()
    identity = {"estimator": est.name, "options": est.params(), "seeds": list(ctx.seeds), "split": ctx.split,
                "tasks": list(ctx.names), "spec": spec_dict(cfg.spec)}
    data_hashes = cfg.taskset.fingerprints()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunStateError(f"--out {out}: cannot create the run folder ({exc.strerror}); choose a folder you may "
                            "write to.") from None
    run = RunDir(out)
    started_before = run.lock_path.exists()  # a lock file left behind: a process started a run here and died
    with RunLock(run.lock_path) as lock:
        manifest = _open_manifest(run, cfg, resume, identity, data_hashes, ctx, started_before)
        run.clean_temporaries()  # left by writes a kill interrupted; this process holds the lock, so none is live
        manifest["device"] = device_record
        if lock.stale:
            manifest.setdefault("events", []).append(
                {"time": _now(), "event": f"took over a stale lock of dead process {lock.stale.get('pid')}"})
        return _execute(run, cfg, est, ctx, exe, manifest, progress)


def _device_record(spec: Any, exe: Executor) -> dict[str, str]:
    """The device asked for and the one used (resolved now when trainings run in this process).

    The device is part of the spec, hence of the run's identity: a run is not resumed on another
    device, since CPU and GPU kernels do not give bit-identical trainings.
    """
    asked = str(getattr(spec, "device", "auto"))
    if getattr(exe, "name", "local") == "local":
        return {"requested": asked, "used": describe_device(resolve_device(asked))}
    return {"requested": asked, "used": f"resolved by each {exe.name} worker"}


def _open_manifest(run: RunDir, cfg: Any, resume: bool, identity: dict, data_hashes: dict,
                   ctx: EstimationContext, started_before: bool = False) -> dict[str, Any]:
    out = run.path
    if run.has_run() and not resume:
        status = run.read_manifest().get("status", "unknown") if run.has_manifest() else "unknown"
        raise RunStateError(f"{out}: already holds a run (status {status}); add --resume to continue it, or choose "
                            "another --out.")
    if resume and started_before and not run.has_manifest() and not run.store_path.exists():
        # killed during start-up, before its manifest was written: nothing was lost, so start the run
        resume = False
    elif resume and not run.has_manifest():
        raise RunStateError(f"{out}: nothing to resume (no {run.manifest_path.name}); drop --resume to start a new "
                            "run there.")
    if resume:
        manifest = run.read_manifest()
        old = manifest.get("config")
        old = old.get("resolved", {}) if isinstance(old, dict) else old
        diff = _first_difference(old, identity)
        if diff:
            raise RunStateError(f"{out}: cannot resume: the config differs in {diff}; use the run's config, or "
                                "start a new run in another --out.")
        old_hashes = manifest.get("data_hashes", {})
        if old_hashes != data_hashes:
            task = next((t for t in sorted(set(old_hashes) | set(data_hashes))
                         if old_hashes.get(t) != data_hashes.get(t)), "?")
            raise RunStateError(f"{out}: cannot resume: the data of task {task!r} differ from the run's "
                                f"(hash {old_hashes.get(task)} vs {data_hashes.get(task)}); resume with the same data "
                                "or start a new run.")
        manifest.setdefault("events", []).append({"time": _now(), "event": "resumed"})
        return manifest
    path = getattr(cfg, "path", None)
    manifest = {
        "format": RUN_FORMAT, "version": RUN_VERSION, "name": getattr(cfg, "name", None) or out.name,
        "created": _now(), "status": "running", "estimator": identity["estimator"],
        "config": {"source": str(path) if path else None, "raw": _jsonable(getattr(cfg, "raw", None) or {}),
                   "resolved": identity},
        "seeds": list(ctx.seeds), "split": ctx.split, "packages": package_versions(), "data_hashes": data_hashes,
        "cost": {"trainings": 0, "seconds": 0.0, "flops": None, "wall_seconds": 0.0}, "tasks": list(ctx.names),
        "events": [{"time": _now(), "event": "started"}],
    }
    _write_manifest(run, manifest)  # before the store exists, so a run killed at any moment can be resumed
    return manifest


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _write_manifest(run: RunDir, manifest: dict[str, Any]) -> None:
    manifest["updated"] = _now()
    run.write_manifest(manifest)


def _execute(run: RunDir, cfg: Any, est: Estimator, ctx: EstimationContext, exe: Executor,
             manifest: dict[str, Any], progress: Progress | None) -> RunFolder:
    started = time.monotonic()
    wall_before = float(manifest.get("cost", {}).get("wall_seconds") or 0.0)
    out = run.path
    store = ResultStore.open(run.store_path)
    manifest["status"] = "running"
    manifest["executor"] = exe.describe()
    _write_manifest(run, manifest)
    status = "failed"
    known: dict[tuple, Any] = {}
    last_csv = time.monotonic()

    def report(msg: str) -> None:
        if progress is not None:
            done = store.done_keys()
            progress(sum(k in done for k in known), len(known), msg)

    try:
        payload = None
        runner = est.runner()
        while True:
            outcomes = store.outcomes()
            round_jobs = {j.key: j for j in est.jobs(ctx, outcomes)}
            known.update(round_jobs)
            done = store.done_keys()
            todo = [j for k, j in round_jobs.items() if k not in done]
            manifest["progress"] = {"done": sum(k in done for k in known), "total": len(known)}
            if not todo:
                break
            report(f"{len(todo)} job(s) to run, {len(round_jobs) - len(todo)} already stored")
            if payload is None:
                if progress:
                    progress(manifest["progress"]["done"], len(known), "preparing tasks")
                payload = JobPayload(taskset=_prepare(cfg), spec=cfg.spec)
            results = exe.map(runner, todo, payload)
            try:
                for job, result in results:
                    store.record(result)
                    _record_placement(manifest, job, exe)
                    report(f"finished {job.describe()} in {result.seconds:.1f}s")
                    if time.monotonic() - last_csv > CSV_EVERY_S:
                        store.export_csv(run.results_csv_path)
                        _update_cost(manifest, store, wall_before, started)
                        manifest["progress"] = {"done": len(store.done_keys() & set(known)), "total": len(known)}
                        _write_manifest(run, manifest)
                        last_csv = time.monotonic()
            finally:
                results.close()
        est.fit(ctx, store.outcomes())
        _write_matrices(run, est)
        status = "complete"
        report("complete")
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except OSError as exc:  # disk full, permission denied, ...: say so in one line
        raise RunStateError(f"{out}: could not write the run ({exc}); finished trainings are kept in {run.store_path.name}. "
                            "Free disk space or fix write permission, then continue with --resume.") from None
    finally:
        try:
            store.export_csv(run.results_csv_path)
            _update_cost(manifest, store, wall_before, started, est if status == "complete" else None)
            manifest["status"] = status
            manifest["progress"] = {"done": len(store.done_keys() & set(known)), "total": len(known)}
            manifest["events"].append({"time": _now(), "event": status})
            manifest["executor"] = exe.describe()
            _write_manifest(run, manifest)
        except (OSError, sqlite3.Error) as exc:
            raise RunStateError(f"{out}: could not record the run's status ({exc}); finished trainings are kept in "
                                f"{run.store_path.name}. Free disk space or fix write permission, then continue with --resume.") from None
        finally:
            store.close()
            exe.close()
    return run.load()


def _record_placement(manifest: dict[str, Any], job: Any, exe: Executor) -> None:
    """Note in the manifest which node ran ``job`` (remote executors only)."""
    node = exe.placement(job)
    if node:
        kind, subset, seed, split = job.key
        manifest.setdefault("placements", []).append(
            {"kind": kind, "subset": subset, "seed": seed, "split": split, **node})


def _update_cost(manifest: dict[str, Any], store: ResultStore, wall_before: float, started: float,
                 fitted: Estimator | None = None) -> None:
    cost = store.cost()
    trainings = (getattr(fitted, "cost_", None) or {}).get("trainings")
    if trainings is not None and trainings != cost["trainings"]:
        # the estimator knows better what a job costs (PVI: two trainings per job; Grad-TAG: estimates, not
        # trainings); the stored job count stays beside it
        cost["jobs"], cost["trainings"] = cost["trainings"], int(trainings)
    cost["wall_seconds"] = wall_before + (time.monotonic() - started)
    if cost["flops"] != cost["flops"]:
        cost["flops"] = None
    manifest["cost"] = cost


def _write_matrices(run: RunDir, est: Estimator) -> None:
    matrices = est.matrices_
    if not matrices:
        raise RunStateError(f"estimator {est.name!r} produced no matrix.")
    run.write_matrices(matrices)  # the first is the run's final matrix
