"""The run folder: what an estimation run leaves on disk, and how to read it.

Layout (format version 1)::

    RUN_DIR/
      manifest.json        {"format": "taskaffinity.run", "version": 1, "name", "created", "status":
                            "running" | "complete" | "interrupted" | "failed", "estimator", "config": {...},
                            "seeds": [...], "packages": {...}, "data_hashes": {...},
                            "cost": {"trainings", "seconds", "flops"}, "tasks": [...]}
      results.sqlite       the store: one row per (subset, task, seed), saved as each training finishes
      results.csv          the same rows as a long table: subset, task, metric, loss, seed, seconds (+ extra columns)
      affinity.csv         the run's final affinity matrix (grouping CSV format)
      affinity.json        the same, self-describing (metadata, uncertainty, counts)
      matrices/NAME.json   further matrices of the run (e.g. "pairwise", "higher-order", "gradtag", "true")
      run.lock             present while a process writes the run

Reading never executes anything from the folder and never writes to it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.matrix.affinity import AffinityMatrix
from core.errors import InvalidInputError, RunStateError
from core.matrix.io import read_affinity
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

    def results(self) -> pd.DataFrame:
        """The long results table (empty if none yet)."""
        path = self.path / RESULTS_CSV
        if not path.is_file():
            return pd.DataFrame(columns=["subset", "task", "metric", "loss", "seed", "seconds"])
        inside_folder(path, self.path)
        try:
            return pd.read_csv(path)
        except Exception as exc:
            raise InvalidInputError(f"{path}: cannot read the results table ({type(exc).__name__}: {exc}).") from None


def is_run_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` looks like a run folder (has a manifest or an affinity matrix)."""
    path = Path(path)
    return path.is_dir() and ((path / MANIFEST).is_file() or (path / AFFINITY_CSV).is_file()
                              or (path / AFFINITY_JSON).is_file())


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The run's manifest (a minimal one for a folder holding only an affinity matrix)."""
    path = Path(path)
    mpath = path / MANIFEST
    if mpath.exists():
        inside_folder(mpath, path)
    if not mpath.is_file():
        return {"format": RUN_FORMAT, "version": RUN_VERSION, "name": path.name, "status": "complete"}
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunStateError(f"{mpath}: manifest is not valid JSON ({exc}); the run folder is damaged.") from None
    if not isinstance(manifest, dict) or manifest.get("format", RUN_FORMAT) != RUN_FORMAT:
        raise RunStateError(f"{mpath}: not a taskaffinity run manifest.")
    version = manifest.get("version", RUN_VERSION)
    if not isinstance(version, int) or version > RUN_VERSION:
        raise RunStateError(
            f"{mpath}: run folder format version {version!r} is newer than this taskaffinity reads ({RUN_VERSION}); "
            "upgrade taskaffinity.")
    return manifest


def load_run(path: str | os.PathLike) -> RunFolder:
    """Read a run folder: manifest and every affinity matrix in it ("main" is the final one)."""
    path = Path(path)
    if not path.is_dir():
        raise InvalidInputError(f"{path}: no such run folder.")
    if not is_run_folder(path):
        raise InvalidInputError(f"{path}: not a run folder (no {MANIFEST} or {AFFINITY_CSV} in it).")
    for f in (path / AFFINITY_JSON, path / AFFINITY_CSV, path / MATRICES_DIR):
        if f.exists():
            inside_folder(f, path)  # a link out of the folder is refused before anything is read
    run = RunFolder(path=path, manifest=read_manifest(path))
    if (path / AFFINITY_JSON).is_file():
        run.matrices["main"] = read_affinity(path / AFFINITY_JSON)
    elif (path / AFFINITY_CSV).is_file():
        run.matrices["main"] = read_affinity(path / AFFINITY_CSV)
    mdir = path / MATRICES_DIR
    if mdir.is_dir():
        for f in sorted(mdir.glob("*.json")):
            inside_folder(f, path)
            run.matrices[f.stem] = read_affinity(f)
    return run


def list_runs(root: str | os.PathLike) -> list[Path]:
    """Run folders directly under ``root`` (and ``root`` itself if it is one), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [root] if is_run_folder(root) else []
    found += sorted(p for p in root.iterdir() if is_run_folder(p) and not p.is_symlink())
    return found
