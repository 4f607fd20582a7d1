"""Estimation runs in a background thread, with progress a UI can poll.

A launch is one estimation run started from the dashboard (a "job" is one training
of it, as in :class:`core.estimation.runs.store.Job`). The dashboard starts a
:class:`Launch` and re-reads :meth:`Launch.snapshot` every second; the launch itself only calls :func:`core.estimation.runs.orchestrator.run_estimation`,
whose store commits every finished training, so a run that stops early is
continued with ``resume=True``. :meth:`Launch.stop` ends a run after the training
in flight (the run folder says ``interrupted``), as Ctrl-C does on the command line.

:func:`plan_launch` and :func:`plan_resume` check a launch before anything is
written: the folder must lie in the runs root and no other process may be
writing it (its run lock); only registered estimators run (never a
``module:Class`` import); with ``config_roots`` (the dashboard) the config must lie
in the folders it may read.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from core.errors import InvalidInputError, RunStateError, TaskAffinityError
from core.cli import write_crash_log
from core.estimation.estimators.base import ESTIMATORS
from core.estimation.runs.folder import RunDir
from core.estimation.runs.orchestrator import run_estimation
from ui.services.roots import DEFAULT_ROOTS, ENV_VAR, configured_roots

LOG_LINES = 200
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")


class StopRequested(KeyboardInterrupt):
    """Raised inside the run's progress callback to end it as an interrupted run (resumable)."""


@dataclass
class LaunchSnapshot:
    """A copy of a launch's state at one moment."""

    id: str
    config: str
    out: str
    estimator: str
    resume: bool
    status: str  # "starting", "running", "stopping", "complete", "interrupted", "failed"
    done: int
    total: int
    message: str
    log: list[str]
    error: str
    started: float
    finished: float | None

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.started


class Launch:
    """One estimation run in a daemon thread.

    Parameters
    ----------
    config : path
        Run config (YAML/TOML).
    out : path
        The run folder.
    estimator : str
    options : mapping
        Estimator options (e.g. ``{"subsets": 40}``).
    resume : bool
    runner : callable, optional
        ``runner(config, out=, estimator=, options=, resume=, progress=)``; default
        :func:`core.estimation.runs.orchestrator.run_estimation`.
    """

    def __init__(self, config: str | Path, out: str | Path, estimator: str, options: Mapping[str, Any] | None = None,
                 resume: bool = False, runner: Callable[..., Any] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.config, self.out, self.estimator = str(config), str(out), estimator
        self.options, self.resume, self.extra = dict(options or {}), resume, dict(extra or {})
        self._runner = runner
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._state = dict(status="starting", done=0, total=0, message="starting", log=[], error="",
                           started=time.time(), finished=None)
        self._thread = threading.Thread(target=self._main, name=f"taskaffinity-run-{self.id}", daemon=True)

    def start(self) -> "Launch":
        self._thread.start()
        return self

    def _log(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with self._lock:
            self._state["log"].append(f"{stamp} {line}")
            del self._state["log"][:-LOG_LINES]

    def stop(self) -> None:
        """Ask the run to end after the training in flight; it can be resumed later."""
        self._stop.set()
        with self._lock:
            if self._state["finished"] is None:
                self._state["status"] = "stopping"

    def _progress(self, done: int, total: int, message: str = "") -> None:
        with self._lock:
            self._state.update(status="stopping" if self._stop.is_set() else "running", done=int(done),
                               total=int(total), message=str(message))
        self._log(f"[{done}/{total}] {message}")
        if self._stop.is_set():
            raise StopRequested()

    def _main(self) -> None:
        runner = self._runner or run_estimation
        # File names only: the log is shown on the dashboard, which reveals no paths.
        self._log(f"{'resuming' if self.resume else 'starting'} {self.estimator} run of {Path(self.config).name} "
                  f"into {Path(self.out).name}")
        try:
            runner(self.config, out=self.out, estimator=self.estimator, options=self.options or None,
                   resume=self.resume, progress=self._progress, **self.extra)
        except StopRequested:
            self._finish("interrupted", "stopped on request; resume it to continue")
        except TaskAffinityError as exc:
            self._finish("failed", str(exc))
        except Exception as exc:  # a bug: the traceback goes to a log file (it may quote inputs), one line here
            logging.getLogger("taskaffinity.runs").exception("run %s failed", self.id)
            log = write_crash_log(None, exc)
            self._finish("failed", f"unexpected {type(exc).__name__} (a bug in taskaffinity, not in your input; "
                         f"saved results are kept){'; details in the server log ' + log.name if log else ''}.")
        else:
            self._finish("complete", "")

    def _finish(self, status: str, error: str) -> None:
        with self._lock:
            self._state.update(status=status, error=error, finished=time.time(),
                               message=error or self._state["message"])
        self._log(error or "finished")

    def snapshot(self) -> LaunchSnapshot:
        with self._lock:
            s = dict(self._state, log=list(self._state["log"]))
        return LaunchSnapshot(id=self.id, config=self.config, out=self.out, estimator=self.estimator,
                           resume=self.resume, **s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


@dataclass
class LaunchManager:
    """The launches of one dashboard process; refuses a second writer on the same run folder."""

    launches: dict[str, Launch] = field(default_factory=dict)  # by launch id
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, launch: Launch) -> Launch:
        """Start ``launch`` unless another launch of this process is writing its folder."""
        with self._lock:
            target = Path(launch.out).resolve()
            for other in self.launches.values():
                if other.running and Path(other.out).resolve() == target:
                    raise InvalidInputError(f"{launch.out}: a run is already writing this folder; wait for it to end.")
            self.launches[launch.id] = launch
        return launch.start()

    def stop(self, launch_id: str) -> None:
        """Ask launch ``launch_id`` to stop after its training in flight."""
        with self._lock:
            launch = self.launches.get(launch_id)
        if launch is not None:
            launch.stop()

    def forget_finished(self) -> int:
        """Drop the launches that have ended (their run folders stay); returns how many."""
        with self._lock:
            done = [k for k, x in self.launches.items() if not x.running]
            for k in done:
                del self.launches[k]
        return len(done)

    def snapshots(self) -> list[LaunchSnapshot]:
        """Every launch's state, newest first."""
        with self._lock:
            launches = list(self.launches.values())
        return sorted((x.snapshot() for x in launches), key=lambda s: -s.started)


_LAUNCHES = LaunchManager()


def launches() -> LaunchManager:
    """The launches of this process (the dashboard's runs keep going while pages change)."""
    return _LAUNCHES


def launch_root(roots: tuple[Path, ...] | None = None) -> Path:
    """Where the dashboard writes new runs: ``runs/`` of the checkout, or the first ``$TASKAFFINITY_RUNS_ROOT``."""
    if roots is None:
        roots = configured_roots()
        if not os.environ.get(ENV_VAR, "").strip():
            return DEFAULT_ROOTS[1].resolve()
    return Path(roots[0]).resolve()


def _check_free(out: Path) -> None:
    holder = RunDir(out).writer()
    if holder is not None:
        raise RunStateError(f"{out.name}: another process (PID {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                            f"started {holder.get('started', '?')}) is writing this run; wait for it to finish or "
                            "stop it first.")


def _check_estimator(name: Any) -> str:
    """Only registered estimators run from the dashboard: a ``module:Class`` name would import (run) any module."""
    if not isinstance(name, str) or ":" in name or name not in ESTIMATORS.names():
        raise InvalidInputError(f"estimator {name!r}: the dashboard runs only the registered estimators "
                                f"({', '.join(ESTIMATORS.names())}); run a module:Class estimator from the command line.")
    return name


def confined_config(config: str | Path, allowed: Sequence[Path]) -> Path:
    """``config`` resolved (relative paths against each allowed folder) and checked to lie inside one of them.

    The dashboard reads configs only from the folders it may open, so a visitor cannot make it
    read (and echo parts of) an arbitrary file of the machine.
    """
    text = str(config).strip()
    if not text:
        raise InvalidInputError("config: no file given; choose a built-in config or type the path of one under the "
                                "runs root.")
    roots = [Path(r).resolve() for r in allowed]
    path = Path(text).expanduser()
    if path.is_absolute():
        resolved = path.resolve()
    else:  # relative to each allowed folder in turn, first existing wins
        tries = [(r / path).resolve() for r in roots]
        resolved = next((t for t in tries if t.exists()), tries[0] if tries else path.resolve())
    # resolve() follows links, so a link in the root pointing out of it is refused too.
    if not any(resolved == r or r in resolved.parents for r in roots):
        raise InvalidInputError(f"config {text}: outside the folders the dashboard may read (the built-in configs "
                                "and the runs root); put the config under the runs root.")
    return resolved


def plan_launch(config: str | Path, run_name: str, estimator: str, options: Mapping[str, Any] | None = None,
                resume: bool = False, root: Path | None = None, runner: Callable[..., Any] | None = None,
                config_roots: Sequence[Path] | None = None) -> Launch:
    """A checked, not yet started launch writing ``root/run_name`` (``root`` default :func:`launch_root`).

    ``config_roots``: when given (the dashboard), the config must lie inside one of these folders.

    Raises :class:`InvalidInputError` for a bad name or config or an occupied folder, and
    :class:`RunStateError` when another process holds the folder's run lock.
    """
    root = Path(root or launch_root()).resolve()
    _check_estimator(estimator)
    if not RUN_NAME.fullmatch(run_name or ""):
        raise InvalidInputError(f"run name {run_name!r}: use letters, digits, '.', '_' or '-' (no paths), "
                                "at most 81 characters.")
    out = (root / run_name).resolve()
    if out.parent != root:  # never write outside the runs root, whatever the name resolves to
        raise InvalidInputError(f"run name {run_name!r} leads outside the runs root {root}.")
    config = confined_config(config, config_roots) if config_roots is not None else Path(config).expanduser()
    if not config.is_file():
        raise InvalidInputError(f"config {config.name or config}: no such file; give the path of a YAML or TOML run "
                                "config.")
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out.name}: exists in the runs root and is not a folder; choose another name.")
    _check_free(out)
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise InvalidInputError(f"{out.name} already holds a run; pick another name, or tick resume to continue it.")
    if resume and not RunDir(out).has_manifest():
        raise InvalidInputError(f"{out.name}: nothing to resume there; untick resume to start a new run.")
    return Launch(config, out, estimator, options, resume=resume, runner=runner)


def plan_resume(run_dir: str | Path, root: Path | None = None, runner: Callable[..., Any] | None = None,
                config_roots: Sequence[Path] | None = None) -> Launch:
    """A checked launch continuing the run in ``run_dir`` with the config, estimator, options and seeds it started with.

    ``config_roots``: when given (the dashboard), the config the manifest names must lie inside one
    of these folders (the manifest is only as trustworthy as whoever can write the runs root).
    """
    root = Path(root or launch_root()).resolve()
    out = Path(run_dir).resolve()
    if out.parent != root:
        raise InvalidInputError(f"{out}: only runs directly in the runs root {root} are resumed from the dashboard.")
    run = RunDir(out)
    try:
        if not run.has_manifest():
            raise FileNotFoundError(f"no {run.manifest_path.name}")
        manifest = run.read_manifest()
    except (OSError, TaskAffinityError) as exc:
        # the dashboard shows file names only, never the folder's path
        reason = str(exc).replace(str(run.manifest_path), run.manifest_path.name)
        raise RunStateError(f"{out.name}: cannot read its manifest ({reason}); it cannot be resumed.") from None
    if manifest.get("status") == "complete":
        raise RunStateError(f"{out.name}: already complete; nothing to resume.")
    _check_free(out)
    cfg = manifest.get("config") or {}
    resolved = cfg.get("resolved") or {}
    source = cfg.get("source")
    if source and config_roots is not None:
        try:
            source = str(confined_config(source, config_roots))
        except InvalidInputError:
            raise RunStateError(f"{out.name}: its config is outside the folders the dashboard may read; resume it "
                                "from the command line: python -m core estimate CONFIG --out RUN --resume.") from None
    if not source or not Path(source).is_file():
        raise RunStateError(f"{out.name}: its config {source or '(not recorded)'} is no longer there; resume it from "
                            "the command line with the config: python -m core estimate CONFIG --out RUN --resume.")
    # The manifest may be written by anyone who can write the runs root: never import what it names.
    return Launch(source, out, _check_estimator(resolved.get("estimator") or manifest.get("estimator")),
                  resolved.get("options") or {}, resume=True, runner=runner,
                  extra={"seeds": resolved.get("seeds"), "split": resolved.get("split")})
