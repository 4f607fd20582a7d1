"""Estimation runs in a background thread, with progress a UI can poll.

The dashboard starts a :class:`RunJob` and re-reads :meth:`RunJob.snapshot` every
second; the job itself only calls :func:`core.estimation.run.run_estimation`,
whose store commits every finished training, so a run that stops early is
continued with ``resume=True``.
"""
from __future__ import annotations

import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from core.errors import InvalidInputError, TaskAffinityError

LOG_LINES = 200


@dataclass
class JobSnapshot:
    """A copy of a job's state at one moment."""

    id: str
    config: str
    out: str
    estimator: str
    resume: bool
    status: str  # "starting", "running", "complete", "failed"
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


class RunJob:
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
        :func:`core.estimation.run.run_estimation`.
    """

    def __init__(self, config: str | Path, out: str | Path, estimator: str, options: Mapping[str, Any] | None = None,
                 resume: bool = False, runner: Callable[..., Any] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.config, self.out, self.estimator = str(config), str(out), estimator
        self.options, self.resume, self.extra = dict(options or {}), resume, dict(extra or {})
        self._runner = runner
        self._lock = threading.Lock()
        self._state = dict(status="starting", done=0, total=0, message="starting", log=[], error="",
                           started=time.time(), finished=None)
        self._thread = threading.Thread(target=self._main, name=f"taskaffinity-run-{self.id}", daemon=True)

    def start(self) -> "RunJob":
        self._thread.start()
        return self

    def _log(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with self._lock:
            self._state["log"].append(f"{stamp} {line}")
            del self._state["log"][:-LOG_LINES]

    def _progress(self, done: int, total: int, message: str = "") -> None:
        with self._lock:
            self._state.update(status="running", done=int(done), total=int(total), message=str(message))
        self._log(f"[{done}/{total}] {message}")

    def _main(self) -> None:
        runner = self._runner
        if runner is None:
            from core.estimation.run import run_estimation as runner
        self._log(f"{'resuming' if self.resume else 'starting'} {self.estimator} run of {self.config} into {self.out}")
        try:
            runner(self.config, out=self.out, estimator=self.estimator, options=self.options or None,
                   resume=self.resume, progress=self._progress, **self.extra)
        except TaskAffinityError as exc:
            self._finish("failed", str(exc))
        except Exception as exc:  # a bug: keep the traceback in the log, show one line
            self._log(traceback.format_exc(limit=5))
            self._finish("failed", f"unexpected {type(exc).__name__}: {exc}")
        else:
            self._finish("complete", "")

    def _finish(self, status: str, error: str) -> None:
        with self._lock:
            self._state.update(status=status, error=error, finished=time.time(),
                               message=error or self._state["message"])
        self._log(error or "finished")

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            s = dict(self._state, log=list(self._state["log"]))
        return JobSnapshot(id=self.id, config=self.config, out=self.out, estimator=self.estimator,
                           resume=self.resume, **s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


@dataclass
class JobManager:
    """The jobs of one dashboard process; refuses a second writer on the same run folder."""

    jobs: dict[str, RunJob] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, job: RunJob) -> RunJob:
        with self._lock:
            target = Path(job.out).resolve()
            for other in self.jobs.values():
                if other.running and Path(other.out).resolve() == target:
                    raise InvalidInputError(f"{job.out}: a run is already writing this folder; wait for it to end.")
            self.jobs[job.id] = job
        return job.start()

    def snapshots(self) -> list[JobSnapshot]:
        with self._lock:
            jobs = list(self.jobs.values())
        return sorted((j.snapshot() for j in jobs), key=lambda s: -s.started)
