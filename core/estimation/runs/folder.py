"""The run folder: what an estimation run leaves on disk, and how to read it.

Layout (format version 1)::

    RUN_DIR/
      manifest.json        {"format": "taskaffinity.run", "version": 1, "name", "created", "status":
                            "running" | "complete" | "interrupted" | "failed" | "planned" | "partial",
                            "estimator", "config": {...},
                            "seeds": [...], "packages": {...}, "data_hashes": {...},
                            "cost": {"trainings", "seconds", "flops"}, "tasks": [...]}
      results.sqlite       the store: one row per (subset, task, seed), saved as each training finishes
      results.csv          the same rows as a long table: subset, task, metric, loss, seed, seconds (+ extra columns)
      affinity.csv         the run's final affinity matrix (grouping CSV format)
      affinity.json        the same, self-describing (metadata, uncertainty, counts)
      matrices/NAME.json   further matrices of the run (e.g. "pairwise", "higher-order", "gradtag", "true")
      run.lock             present while a process writes the run
      plan.json            (runs trained elsewhere) the planned trainings: id, tasks, seed, split, batch
      plan.csv             the same trainings as a table (what the external trainer reads)
      plan_remaining.csv   the planned trainings not ingested yet (same columns as plan.csv)

A run trained elsewhere (:mod:`core.estimation.external`) starts in status ``planned``, becomes
``partial`` once some of its trainings are ingested and ``complete`` when all are.

:class:`RunDir` is the one owner of this layout: it alone knows the file names, writes the
files (atomically, through :mod:`core.atomic`) and reads them; everything else asks it.
:class:`RunFolder` is a run read from disk. Reading never executes anything from the folder
and never writes to it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.atomic import TMP_SUFFIX, atomic_write_text
from core.errors import InvalidInputError, RunStateError, TaskAffinityError
from core.estimation.runs.lock import holder_of
from core.inputs import loads_json, read_text, schema_error
from core.matrix.affinity import AffinityMatrix
from core.matrix.io import read_affinity, write_affinity
from core.paths import inside_folder

RUN_FORMAT = "taskaffinity.run"
RUN_VERSION = 1
MANIFEST = "manifest.json"
AFFINITY_CSV = "affinity.csv"
AFFINITY_JSON = "affinity.json"
RESULTS_DB = "results.sqlite"
RESULTS_CSV = "results.csv"
MATRICES_DIR = "matrices"
LOCK = "run.lock"
PLAN_JSON = "plan.json"
PLAN_CSV = "plan.csv"
PLAN_REMAINING_CSV = "plan_remaining.csv"
STATUSES = ("running", "complete", "interrupted", "failed", "planned", "partial")
EXTERNAL = ("planned", "partial")  # runs whose trainings happen elsewhere and arrive by ingest
RESUMABLE = ("interrupted", "failed", "running")  # "running" with no writer: the writer was killed


def _jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON data (anything else, e.g. a numpy scalar or a path, as its string)."""
    return json.loads(json.dumps(obj, default=str))


def resumable(manifest: Mapping[str, Any]) -> bool:
    """Whether a manifest's run stopped before completing (interrupted, failed, or killed while running)."""
    return manifest.get("status") in RESUMABLE


Number = Optional[float]


class _Loose(BaseModel):
    # strict types for the fields we read; other keys (added by later versions or by estimators) are kept
    model_config = ConfigDict(strict=True, extra="allow")


class ManifestCost(_Loose):
    trainings: Optional[int] = Field(None, ge=0)
    seconds: Number = None
    flops: Number = None
    wall_seconds: Number = None


class ManifestProgress(_Loose):
    done: Optional[int] = None
    total: Optional[int] = None


class ManifestConfig(_Loose):
    source: Optional[str] = None
    raw: Optional[dict[str, Any]] = None
    resolved: Optional[dict[str, Any]] = None


class ManifestModel(_Loose):
    """The fields of ``manifest.json`` that taskaffinity reads, with their types."""

    format: str = RUN_FORMAT
    version: int = RUN_VERSION
    name: Optional[str] = Field(None, max_length=1000)
    created: Optional[str] = Field(None, max_length=100)
    status: Optional[str] = Field(None, max_length=100)
    estimator: Optional[str] = Field(None, max_length=1000)
    config: Optional[ManifestConfig] = None
    seeds: Optional[list[int]] = None
    split: Optional[str] = None
    packages: Optional[dict[str, Any]] = None
    data_hashes: Optional[dict[str, Any]] = None
    cost: Optional[ManifestCost] = None
    progress: Optional[ManifestProgress] = None
    tasks: Optional[list[str]] = None
    events: Optional[list[dict[str, Any]]] = None
    planted_groups: Optional[list[list[str]]] = None


@dataclass(frozen=True)
class RunOverview:
    """What the dashboard shows of one run folder, worked out from its manifest and lock.

    Attributes
    ----------
    status : str
        The manifest's status, or ``"interrupted (killed)"`` for a run that says ``running``
        while no process holds its lock.
    writing : bool
        Whether a live process holds the run's lock now.
    resumable : bool
        Whether the run stopped before completing and nobody writes it.
    estimator : str
    tasks : int
    progress : str
        ``"done/total"`` as last recorded (empty when the manifest records none).
    trainings, seconds, flops : number or None
        The run's recorded cost.
    created : str
    external : bool
        Whether the run's trainings happen elsewhere and arrive by ``python -m core ingest``.
    missing : int or None
        Planned trainings not ingested yet (None for runs trained here).
    coverage : str
        For a run trained elsewhere: how many (source, target) entries rest on at least one observation.
    """

    status: str
    writing: bool
    resumable: bool
    estimator: str
    tasks: int
    progress: str
    trainings: Any
    seconds: Any
    flops: Any
    created: str
    external: bool = False
    missing: int | None = None
    coverage: str = ""


@dataclass(frozen=True)
class RunDir:
    """The one owner of the run-folder layout: where each file lies, how it is written and read.

    Parameters
    ----------
    path : path-like
        The run folder (it need not exist yet).

    Notes
    -----
    Every write goes through a temporary file and an atomic rename, so a reader (the dashboard,
    a resume) never sees a half-written file.
    """

    path: Path

    def __init__(self, path: str | os.PathLike) -> None:
        object.__setattr__(self, "path", Path(path))

    # -- locations ------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def store_path(self) -> Path:
        """The result store (SQLite, one row per finished training)."""
        return self.path / RESULTS_DB

    @property
    def results_csv_path(self) -> Path:
        return self.path / RESULTS_CSV

    @property
    def affinity_csv_path(self) -> Path:
        """The final matrix in the grouping CSV format (what ``python -m core group --affinity`` reads)."""
        return self.path / AFFINITY_CSV

    @property
    def affinity_json_path(self) -> Path:
        return self.path / AFFINITY_JSON

    @property
    def matrices_dir(self) -> Path:
        return self.path / MATRICES_DIR

    def matrix_path(self, name: str) -> Path:
        """Where the further matrix ``name`` of the run lies."""
        return self.matrices_dir / f"{name}.json"

    @property
    def lock_path(self) -> Path:
        """The writer's lock file (see :class:`core.estimation.runs.lock.RunLock`)."""
        return self.path / LOCK

    @property
    def plan_json_path(self) -> Path:
        """The plan of a run trained elsewhere (see :mod:`core.estimation.external.plan`)."""
        return self.path / PLAN_JSON

    @property
    def plan_csv_path(self) -> Path:
        return self.path / PLAN_CSV

    @property
    def remaining_plan_path(self) -> Path:
        """The planned trainings not ingested yet, as a table like :attr:`plan_csv_path`."""
        return self.path / PLAN_REMAINING_CSV

    # -- questions ------------------------------------------------------------------------------
    def has_manifest(self) -> bool:
        return self.manifest_path.is_file()

    def has_plan(self) -> bool:
        """Whether the run was planned to be trained elsewhere (has a plan)."""
        return self.plan_json_path.is_file()

    def has_run(self) -> bool:
        """Whether a run was started here (a manifest or a result store exists)."""
        return self.has_manifest() or self.store_path.is_file()

    def is_run(self) -> bool:
        """Whether the folder looks like a run folder (has a manifest or an affinity matrix)."""
        return self.path.is_dir() and (self.has_manifest() or self.affinity_csv_path.is_file()
                                       or self.affinity_json_path.is_file())

    def writer(self) -> dict[str, Any] | None:
        """Who is writing the run right now (PID, host, started), or None when nobody is.

        A run whose manifest says ``running`` but has no writer was killed; ``--resume`` continues it.
        Never blocks.
        """
        return holder_of(self.lock_path)

    def files(self) -> list[Path]:
        """The files the dashboard shows (manifest and matrices) that exist, in a fixed order.

        Their names, times and sizes tell a cache when the run changed.
        """
        files = [self.manifest_path, self.affinity_json_path, self.affinity_csv_path]
        files += sorted(self.matrices_dir.glob("*.json")) if self.matrices_dir.is_dir() else []
        return [f for f in files if f.is_file()]

    def stamp(self) -> tuple:
        """``(name, mtime_ns, size)`` of each of :meth:`files`: changes whenever the shown run does."""
        return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in self.files())

    # -- reading --------------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        """The run's manifest (a minimal one for a folder holding only an affinity matrix).

        Raises
        ------
        RunStateError
            When the manifest is damaged (not JSON, nested too deep, a field of the wrong type: checked
            against :class:`ManifestModel`), not a run manifest, or from a newer format version. Nothing
            else escapes, whatever the file holds.
        """
        mpath = self.manifest_path
        if mpath.exists():
            inside_folder(mpath, self.path)
        if not mpath.is_file():
            return {"format": RUN_FORMAT, "version": RUN_VERSION, "name": self.path.name, "status": "complete"}
        try:
            manifest = loads_json(read_text(mpath, f"{mpath}: manifest"), f"{mpath}: manifest")
        except TaskAffinityError as exc:
            raise RunStateError(f"{str(exc).rstrip('.')}; the run folder is damaged.") from None
        if not isinstance(manifest, dict) or manifest.get("format", RUN_FORMAT) != RUN_FORMAT:
            raise RunStateError(f"{mpath}: not a taskaffinity run manifest.")
        version = manifest.get("version", RUN_VERSION)
        if isinstance(version, int) and not isinstance(version, bool) and version > RUN_VERSION:
            raise RunStateError(
                f"{mpath}: run folder format version {version} is newer than this taskaffinity reads "
                f"({RUN_VERSION}); upgrade taskaffinity.")
        try:
            ManifestModel.model_validate(manifest)
        except ValidationError as exc:
            msg = str(schema_error(exc, f"{mpath}: manifest field")).rstrip(".")
            raise RunStateError(f"{msg}; the run folder is damaged.") from None
        return manifest

    def read_plan(self) -> dict[str, Any]:
        """The plan of a run trained elsewhere (raises :class:`RunStateError` when there is none or it is damaged)."""
        path = self.plan_json_path
        if not path.is_file():
            raise RunStateError(f"{self.path}: no plan in this run folder; make one with python -m core plan.")
        inside_folder(path, self.path)
        try:
            plan = loads_json(path.read_text(encoding="utf-8"), f"{path}: plan")
        except (UnicodeDecodeError, InvalidInputError):
            raise RunStateError(f"{path}: the plan is not valid JSON; the run folder is damaged.") from None
        if not isinstance(plan, dict) or not isinstance(plan.get("trainings"), list):
            raise RunStateError(f"{path}: not a taskaffinity plan; the run folder is damaged.")
        return plan

    def read_remaining_plan(self) -> pd.DataFrame:
        """The planned trainings not ingested yet (empty when none are left or the run has no plan)."""
        path = self.remaining_plan_path
        if not path.is_file():
            return pd.DataFrame(columns=["id", "tasks", "seed", "split", "batch"])
        inside_folder(path, self.path)
        return pd.read_csv(path, dtype={"id": str, "tasks": str, "split": str})

    def load(self) -> "RunFolder":
        """Read the run: manifest and every affinity matrix in it ("main" is the final one)."""
        path = self.path
        if not path.is_dir():
            raise InvalidInputError(f"{path}: no such run folder.")
        if not self.is_run():
            raise InvalidInputError(f"{path}: not a run folder (no {MANIFEST} or {AFFINITY_CSV} in it).")
        for f in (self.affinity_json_path, self.affinity_csv_path, self.matrices_dir):
            if f.exists():
                inside_folder(f, path)  # a link out of the folder is refused before anything is read
        run = RunFolder(path=path, manifest=self.read_manifest())
        if self.affinity_json_path.is_file():
            run.matrices["main"] = read_affinity(self.affinity_json_path)
        elif self.affinity_csv_path.is_file():
            run.matrices["main"] = read_affinity(self.affinity_csv_path)
        if self.matrices_dir.is_dir():
            for f in sorted(self.matrices_dir.glob("*.json")):
                inside_folder(f, path)
                run.matrices[f.stem] = read_affinity(f)
        return run

    def overview(self) -> RunOverview:
        """The run's displayed status and progress (raises what :meth:`read_manifest` raises)."""
        man = self.read_manifest()
        status = str(man.get("status", "?"))
        # only a "running" run can have a writer; the others need no look at the lock
        writing = status == "running" and self.writer() is not None
        if status == "running" and not writing:
            status = "interrupted (killed)"
        cost = man.get("cost") or {}
        prog = man.get("progress") or {}
        return RunOverview(
            status=status, writing=writing, resumable=resumable(man) and not writing,
            estimator=man.get("estimator", "?"), tasks=len(man.get("tasks") or []),
            progress=f"{prog.get('done', '')}/{prog.get('total', '')}" if prog else "",
            trainings=cost.get("trainings"), seconds=cost.get("seconds"), flops=cost.get("flops"),
            created=man.get("created", ""), external=bool(man.get("external")),
            missing=(int(prog.get("total", 0)) - int(prog.get("done", 0))) if man.get("external") and prog else None,
            coverage=str((man.get("coverage") or {}).get("summary", "")))

    # -- writing --------------------------------------------------------------------------------
    def write_manifest(self, manifest: Mapping[str, Any]) -> Path:
        """Write ``manifest`` atomically (indented JSON; values JSON cannot hold are written as strings).

        Raises
        ------
        ValueError
            When the manifest holds NaN or infinity (JSON has neither).
        """
        return atomic_write_text(self.manifest_path,
                                 json.dumps(_jsonable(manifest), indent=1, allow_nan=False, default=str))

    def write_matrices(self, matrices: Mapping[str, AffinityMatrix], main: AffinityMatrix | None = None) -> None:
        """Write the run's matrices: each of ``matrices`` under its name, and ``main`` as the final one.

        Parameters
        ----------
        matrices : mapping of str to AffinityMatrix
            Further matrices, written as ``matrices/NAME.json``.
        main : AffinityMatrix, optional
            The run's final matrix, written as ``affinity.json`` and ``affinity.csv``
            (default: the first of ``matrices``).
        """
        if main is None:
            if not matrices:
                raise RunStateError(f"{self.path}: no matrix to write.")
            main = next(iter(matrices.values()))
        for name, m in matrices.items():
            write_affinity(m, self.matrix_path(name))
        write_affinity(main, self.affinity_json_path)
        write_affinity(main, self.affinity_csv_path)

    def write_plan(self, plan: Mapping[str, Any], table: pd.DataFrame, remaining: pd.DataFrame) -> None:
        """Write a plan: ``plan`` as JSON, its trainings ``table`` as CSV, and the ``remaining`` ones.

        The remaining table is written last, so a reader never sees it list a training the plan lacks.
        """
        atomic_write_text(self.plan_json_path, json.dumps(_jsonable(plan), indent=1, allow_nan=False))
        atomic_write_text(self.plan_csv_path, table.to_csv(index=False))
        self.write_remaining_plan(remaining)

    def write_remaining_plan(self, remaining: pd.DataFrame) -> Path:
        """Write the planned trainings not ingested yet (atomically)."""
        return atomic_write_text(self.remaining_plan_path, remaining.to_csv(index=False))

    def clean_temporaries(self) -> list[Path]:
        """Remove the temporary files of writes that a kill interrupted (``.NAME.*.tmp``); returns them.

        Only the run's writer may call this (it holds the lock, so no write of its own is in flight).
        """
        removed = []
        for folder in (self.path, self.matrices_dir):
            if not folder.is_dir() or folder.is_symlink():
                continue
            for f in folder.glob(f".*{TMP_SUFFIX}"):
                if f.is_file() and not f.is_symlink():
                    f.unlink(missing_ok=True)
                    removed.append(f)
        return removed

    def drop_store(self) -> None:
        """Remove the result store (the results CSV keeps its rows; only a resume needs the store)."""
        self.store_path.unlink(missing_ok=True)

    def drop_lock(self) -> None:
        """Remove a released lock file (for a folder to be bundled; never while a writer holds it)."""
        self.lock_path.unlink(missing_ok=True)


@dataclass
class RunFolder:
    """A run folder read from disk (read-only view)."""

    path: Path
    manifest: dict[str, Any]
    matrices: dict[str, AffinityMatrix] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.path.name)

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "unknown"))

    @property
    def main(self) -> AffinityMatrix | None:
        """The run's final matrix (affinity.json, else affinity.csv), if written yet."""
        return self.matrices.get("main")

    @property
    def dir(self) -> RunDir:
        """The folder's layout (where each of its files lies)."""
        return RunDir(self.path)

    def results(self) -> pd.DataFrame:
        """The long results table (empty if none yet)."""
        path = self.dir.results_csv_path
        if not path.is_file():
            return pd.DataFrame(columns=["subset", "task", "metric", "loss", "seed", "seconds"])
        inside_folder(path, self.path)
        try:
            return pd.read_csv(path)
        except Exception as exc:
            # not the parser's text: it can quote the file's content
            raise InvalidInputError(f"{path}: cannot read the results table ({type(exc).__name__}).") from None


def is_run_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` looks like a run folder (has a manifest or an affinity matrix)."""
    return RunDir(path).is_run()


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The run's manifest (a minimal one for a folder holding only an affinity matrix)."""
    return RunDir(path).read_manifest()


def load_run(path: str | os.PathLike) -> RunFolder:
    """Read a run folder: manifest and every affinity matrix in it ("main" is the final one)."""
    return RunDir(path).load()


def list_runs(root: str | os.PathLike) -> list[Path]:
    """Run folders directly under ``root`` (and ``root`` itself if it is one), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [root] if is_run_folder(root) else []
    found += sorted(p for p in root.iterdir() if is_run_folder(p) and not p.is_symlink())
    return found
