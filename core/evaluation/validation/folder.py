"""The validation folder: what validating a grouping leaves on disk, and how to read it.

Layout (format version 1), inside the run whose affinities produced the grouping::

    RUN_DIR/validations/NAME/
      manifest.json     {"format": "taskaffinity.validation", "version": 1, "name", "created", "status":
                         "planned" | "running" | "complete" | "interrupted" | "failed", "run", "identity": {...},
                         "directions": {task: higher_is_better}, "cost": {...}, "progress": {...}, "events": [...]}
      plan.csv          one row per (strategy, draw, group, seed): training_id, strategy, draw, group, seed, tasks
      plan.json         the same plan with the partitions of every strategy
      results.sqlite    the store (one row per finished training, saved as it finishes)
      results.csv       the store's long table
      tasks.csv         the per-task table: strategy, draw, group, task, seed, perf, metric, training_id
      summary.json      strategies, paired differences, verdicts, per-task gains, predicted vs measured
      validation.lock   present while a process writes the validation

:class:`ValidationDir` is the one owner of this layout (modelled on
:class:`core.estimation.runs.folder.RunDir`); every write is atomic. Reading never executes
anything from the folder and never writes to it.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from core.atomic import atomic_write_text
from core.errors import InvalidInputError, RunStateError
from core.estimation.runs.folder import RunDir
from core.estimation.runs.lock import holder_of
from core.evaluation.validation.plan import PLAN_COLUMNS, Plan
from core.inputs import loads_json
from core.paths import inside_folder

FORMAT = "taskaffinity.validation"
VERSION = 1
VALIDATIONS = "validations"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")
RESUMABLE = ("interrupted", "failed", "running", "planned")


def _clean(obj: Any) -> Any:
    """``obj`` as JSON data with NaN/inf as None (JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalar
        return _clean(obj.item())
    return obj


def check_name(name: str) -> str:
    """A validation name: letters, digits, ``.``, ``_``, ``-`` (it becomes a folder name)."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidInputError(f"validation name {name!r}: use letters, digits, '.', '_' or '-' (at most 81).")
    return name


def validations_root(run: str | os.PathLike) -> Path:
    """Where the validations of the run folder ``run`` lie."""
    return RunDir(run).path / VALIDATIONS


def list_validations(run: str | os.PathLike) -> list["ValidationDir"]:
    """The validation folders of a run (those with a manifest), sorted by name."""
    root = validations_root(run)
    if not root.is_dir():
        return []
    return [ValidationDir(p) for p in sorted(root.iterdir())
            if p.is_dir() and not p.is_symlink() and (p / "manifest.json").is_file()]


@dataclass(frozen=True)
class ValidationDir:
    """The one owner of the validation-folder layout (see module docstring)."""

    path: Path

    def __init__(self, path: str | os.PathLike) -> None:
        object.__setattr__(self, "path", Path(path))

    @classmethod
    def of(cls, run: str | os.PathLike, name: str) -> "ValidationDir":
        return cls(validations_root(run) / check_name(name))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def run_path(self) -> Path:
        return self.path.parent.parent

    manifest_path = property(lambda self: self.path / "manifest.json")
    plan_csv_path = property(lambda self: self.path / "plan.csv")
    plan_json_path = property(lambda self: self.path / "plan.json")
    store_path = property(lambda self: self.path / "results.sqlite")
    results_csv_path = property(lambda self: self.path / "results.csv")
    tasks_csv_path = property(lambda self: self.path / "tasks.csv")
    summary_path = property(lambda self: self.path / "summary.json")
    lock_path = property(lambda self: self.path / "validation.lock")

    def has_manifest(self) -> bool:
        return self.manifest_path.is_file()

    def writer(self) -> dict[str, Any] | None:
        """Who writes the validation now (PID, host, started), or None."""
        return holder_of(self.lock_path)

    def _read_text(self, path: Path) -> str:
        if not path.is_file():
            raise RunStateError(f"{self.path}: no {path.name} (not a validation folder, or not started yet).")
        inside_folder(path, self.path)  # a link out of the folder is refused before reading
        return path.read_text(encoding="utf-8")

    def read_manifest(self) -> dict[str, Any]:
        try:
            man = loads_json(self._read_text(self.manifest_path), f"{self.manifest_path}: manifest")
        except (UnicodeDecodeError, InvalidInputError):
            raise RunStateError(f"{self.manifest_path}: not valid JSON; the validation folder is damaged.") from None
        if not isinstance(man, dict) or man.get("format") != FORMAT:
            raise RunStateError(f"{self.manifest_path}: not a taskaffinity validation manifest.")
        if not isinstance(man.get("version"), int) or man["version"] > VERSION:
            raise RunStateError(f"{self.manifest_path}: validation format version {man.get('version')!r} is newer "
                                f"than this taskaffinity reads ({VERSION}); upgrade taskaffinity.")
        return man

    def read_plan(self) -> Plan:
        try:
            return Plan.from_dict(loads_json(self._read_text(self.plan_json_path), f"{self.plan_json_path}"))
        except (UnicodeDecodeError, InvalidInputError):
            raise RunStateError(f"{self.plan_json_path}: not valid JSON; the validation folder is damaged.") from None

    def read_summary(self) -> dict[str, Any] | None:
        """The summary (None before any training finished)."""
        if not self.summary_path.is_file():
            return None
        try:
            return loads_json(self._read_text(self.summary_path), f"{self.summary_path}")
        except (UnicodeDecodeError, InvalidInputError):
            raise RunStateError(f"{self.summary_path}: not valid JSON; the validation folder is damaged.") from None

    def read_tasks(self) -> pd.DataFrame:
        """The per-task table (empty when no training finished yet)."""
        if not self.tasks_csv_path.is_file():
            return pd.DataFrame(columns=["strategy", "draw", "group", "task", "seed", "perf", "metric", "training_id"])
        self._read_text(self.tasks_csv_path)
        return pd.read_csv(self.tasks_csv_path)

    def stamp(self) -> tuple:
        """Changes whenever the shown validation does (for caches)."""
        files = [self.manifest_path, self.summary_path, self.tasks_csv_path]
        return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())

    # -- writing ---------------------------------------------------------------------------------
    def write_manifest(self, manifest: Mapping[str, Any]) -> Path:
        return atomic_write_text(self.manifest_path, json.dumps(_clean(manifest), indent=1, allow_nan=False,
                                                                default=str))

    def write_plan(self, plan: Plan) -> None:
        atomic_write_text(self.plan_json_path, plan.to_json())
        atomic_write_text(self.plan_csv_path, plan.rows()[PLAN_COLUMNS].to_csv(index=False))

    def write_tasks(self, rows: pd.DataFrame) -> Path:
        return atomic_write_text(self.tasks_csv_path, rows.to_csv(index=False))

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        return atomic_write_text(self.summary_path, json.dumps(_clean(summary), indent=1, allow_nan=False,
                                                               default=str))
