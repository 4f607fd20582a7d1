"""The result store: every finished training, saved the moment it finishes.

One SQLite file (``RUN_DIR/results.sqlite``, WAL journal, full sync) with two tables:

* ``jobs``: one row per finished job ``(kind, subset, seed, split)`` with its seconds, FLOPs,
  steps and optional JSON artifacts;
* ``scores``: one row per task evaluated by that job ``(kind, subset, task, seed, split)``
  with the task's ``metric``, ``loss``, ``perf`` (higher is better) and ``n``.

A job and all its scores are written in a single transaction, so a run killed at any moment
holds either the whole outcome of a training or nothing of it; uniqueness constraints make a
second write of the same job a no-op instead of a duplicate row.

A subset is stored as its task names joined by ``|`` in task-set order (task names may not
contain ``|``; :func:`subset_key` checks).
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from core.atomic import atomic_write_text
from core.errors import InvalidInputError, RunStateError

SEP = "|"
SCHEMA_VERSION = 1
OUTCOME_COLUMNS = ["kind", "subset", "task", "seed", "split", "metric", "loss", "perf", "n", "seconds", "flops", "steps",
                   "artifacts"]
RESULT_COLUMNS = ["subset", "task", "metric", "loss", "seed", "seconds", "split", "perf", "n", "flops", "steps", "kind"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    kind TEXT NOT NULL, subset TEXT NOT NULL, seed INTEGER NOT NULL, split TEXT NOT NULL,
    seconds REAL NOT NULL, flops REAL, steps INTEGER, artifacts TEXT, finished REAL NOT NULL,
    PRIMARY KEY (kind, subset, seed, split)
);
CREATE TABLE IF NOT EXISTS scores (
    kind TEXT NOT NULL, subset TEXT NOT NULL, task TEXT NOT NULL, seed INTEGER NOT NULL, split TEXT NOT NULL,
    metric REAL NOT NULL, loss REAL NOT NULL, perf REAL NOT NULL, n INTEGER,
    UNIQUE (kind, subset, task, seed, split)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def subset_key(subset: Iterable[str]) -> str:
    """The stored form of a subset: names joined by ``|``."""
    names = tuple(subset)
    for name in names:
        if SEP in name:
            raise InvalidInputError(f"task name {name!r} contains {SEP!r}, which the result store uses as separator; "
                                    "rename the task.")
    return SEP.join(names)


def parse_subset(key: str) -> tuple[str, ...]:
    return tuple(key.split(SEP))


@dataclass(frozen=True, order=True)
class Job:
    """One unit of work: train on ``subset`` with ``seed`` and score every task of it on ``split``.

    ``kind`` names what the job does; ``"train"`` (the default) is a plain multitask training
    (:func:`core.estimation.runs.job.train_job`). Estimators that need other work (e.g. a base model
    for gradient estimates) use their own kind and runner.
    """

    subset: tuple[str, ...]
    seed: int = 0
    split: str = "val"
    kind: str = "train"

    def __post_init__(self) -> None:
        object.__setattr__(self, "subset", tuple(self.subset))
        if not self.subset:
            raise InvalidInputError("a job needs a non-empty subset of tasks.")
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.kind, subset_key(self.subset), self.seed, self.split)

    def describe(self) -> str:
        return f"{'+'.join(self.subset)} (seed {self.seed})"


@dataclass(frozen=True)
class Score:
    """A task's score after a job: ``metric`` as the task defines it, ``perf`` with higher = better."""

    metric: float
    loss: float
    perf: float
    n: int = 0


@dataclass(frozen=True)
class JobResult:
    """What a job produced: a score per evaluated task, its cost, and optional JSON-able artifacts."""

    job: Job
    scores: Mapping[str, Score]
    seconds: float
    flops: float = float("nan")
    steps: int = 0
    artifacts: Mapping[str, Any] = field(default_factory=dict)


class ResultStore:
    """The SQLite store of a run (see module docstring). Open with :meth:`open`; close when done."""

    def __init__(self, path: str | Path, conn: sqlite3.Connection):
        self.path = Path(path)
        self._conn = conn

    @classmethod
    def open(cls, path: str | Path) -> "ResultStore":
        path = Path(path)
        conn = None
        try:
            conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            (version,) = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()  # closing the last connection removes the -wal/-shm files it made
            if isinstance(exc, sqlite3.OperationalError):  # disk full, I/O error, read-only: not damage
                raise RunStateError(f"{path}: cannot open the result store ({exc}); check free disk space and write "
                                    "permission on the run folder, then run again (with --resume if it started).") from None
            raise RunStateError(f"{path}: not a usable result store ({exc}); the run folder is damaged.") from None
        if int(version) > SCHEMA_VERSION:
            conn.close()
            raise RunStateError(f"{path}: result store version {version} is newer than this taskaffinity reads.")
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    @staticmethod
    def empty_outcomes() -> pd.DataFrame:
        """What :meth:`outcomes` returns for a store with no job yet (for planning before any training)."""
        return pd.DataFrame(columns=OUTCOME_COLUMNS)

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def record(self, result: JobResult) -> bool:
        """Save ``result`` (job row and every score) in one transaction.

        Returns False (and writes nothing) when the job is already stored.
        """
        return self.record_many([result]) == 1

    def record_many(self, results: Iterable[JobResult]) -> int:
        """Save several results in one transaction (all or none); returns how many were new.

        Jobs already stored are skipped, as by :meth:`record`. Used to ingest results trained
        elsewhere: one commit (one sync to disk) for a whole file instead of one per training.
        """
        results = list(results)
        for result in results:
            job = result.job
            extra = set(result.scores) - set(job.subset)
            if extra and job.kind == "train":
                raise InvalidInputError(f"job {job.describe()}: scores for tasks outside its subset: {sorted(extra)}.")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        added = 0
        job = None
        try:
            for result in results:
                job = result.job
                kind, key, seed, split = job.key
                artifacts = json.dumps(dict(result.artifacts), sort_keys=True) if result.artifacts else None
                cur = conn.execute(
                    "INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (kind, key, seed, split, float(result.seconds), _real(result.flops), int(result.steps), artifacts,
                     time.time()))
                if cur.rowcount == 0:
                    continue
                conn.executemany(
                    "INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(kind, key, task, seed, split, float(s.metric), float(s.loss), float(s.perf), int(s.n))
                     for task, s in sorted(result.scores.items())])
                added += 1
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:  # SQLite has already rolled back after a disk-full or I/O error
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                what = f"the result of {job.describe()}" if len(results) == 1 and job else f"{len(results)} results"
                raise RunStateError(f"{self.path}: could not save {what} ({exc}); the results "
                                    "saved before it are kept. Free disk space or fix write permission, then continue "
                                    "with --resume.") from None
            raise
        return added

    def done_keys(self) -> set[tuple[str, str, int, str]]:
        """Keys (kind, subset, seed, split) of every stored job."""
        return {(k, s, int(seed), sp) for k, s, seed, sp in
                self._conn.execute("SELECT kind, subset, seed, split FROM jobs")}

    def n_jobs(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])

    def jobs(self) -> pd.DataFrame:
        """Stored jobs: kind, subset (tuple), seed, split, seconds, flops, steps, artifacts (dict)."""
        df = pd.read_sql_query(
            "SELECT kind, subset, seed, split, seconds, flops, steps, artifacts FROM jobs "
            "ORDER BY kind, subset, seed, split", self._conn)
        df["subset"] = df["subset"].map(parse_subset)
        df["artifacts"] = df["artifacts"].map(lambda a: json.loads(a) if a else {})
        return df

    def outcomes(self) -> pd.DataFrame:
        """Every stored score joined with its job's cost, sorted (so aggregation order never varies).

        Columns: kind, subset (tuple of names), task, seed, split, metric, loss, perf, n, seconds, flops, steps,
        artifacts (the job's JSON artifacts as a dict, ``{}`` when none; every score row of a job shares it, so
        an estimator whose jobs return values that are not scores, e.g. a whole matrix, reads them in ``fit``).
        """
        df = pd.read_sql_query(
            "SELECT s.kind, s.subset, s.task, s.seed, s.split, s.metric, s.loss, s.perf, s.n, "
            "j.seconds, j.flops, j.steps, j.artifacts FROM scores s JOIN jobs j "
            "ON s.kind = j.kind AND s.subset = j.subset AND s.seed = j.seed AND s.split = j.split "
            "ORDER BY s.kind, s.subset, s.seed, s.split, s.task", self._conn)
        df["subset"] = df["subset"].map(parse_subset)
        parsed = {a: json.loads(a) for a in set(df["artifacts"]) if a}  # one parse per job, shared by its rows
        df["artifacts"] = [parsed[a] if a else {} for a in df["artifacts"]]
        return df

    def cost(self) -> dict[str, float]:
        """Total cost of the stored jobs: trainings, seconds (summed training time), flops."""
        n, sec, flops, nflops = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(seconds), 0), COALESCE(SUM(flops), 0), COUNT(flops) FROM jobs").fetchone()
        return {"trainings": int(n), "seconds": float(sec), "flops": float(flops) if nflops else float("nan")}

    def results_table(self) -> pd.DataFrame:
        """The long results table of results.csv (subset as ``a|b|c``)."""
        df = pd.read_sql_query(
            "SELECT s.subset, s.task, s.metric, s.loss, s.seed, j.seconds, s.split, s.perf, s.n, j.flops, j.steps, "
            "s.kind FROM scores s JOIN jobs j "
            "ON s.kind = j.kind AND s.subset = j.subset AND s.seed = j.seed AND s.split = j.split "
            "ORDER BY s.kind, s.subset, s.seed, s.split, s.task", self._conn)
        return df[RESULT_COLUMNS]

    def export_csv(self, path: str | Path) -> Path:
        """Write :meth:`results_table` to ``path`` atomically."""
        return atomic_write_text(path, self.results_table().to_csv(index=False))


def _real(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if x == x else None  # NaN -> NULL
