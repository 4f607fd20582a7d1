"""Where the dashboard looks for run folders, and keeping it inside those places.

The roots come from ``TASKAFFINITY_RUNS_ROOT`` (one or more folders separated by
``os.pathsep``) or default to the repository's ``sample_data/`` and ``runs/``.
A folder the user types is resolved (symlinks and ``..`` included) and must lie
inside one of the roots, so the dashboard cannot be pointed at arbitrary paths.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from core.errors import InvalidInputError
from core.estimation.runs.folder import is_run_folder, list_runs

ENV_VAR = "TASKAFFINITY_RUNS_ROOT"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ROOTS = (REPO_ROOT / "sample_data", REPO_ROOT / "runs")


def configured_roots(env: dict[str, str] | None = None) -> tuple[Path, ...]:
    """The run roots: ``$TASKAFFINITY_RUNS_ROOT`` if set, else sample_data/ and runs/."""
    env = os.environ if env is None else env
    raw = env.get(ENV_VAR, "").strip()
    if not raw:
        return tuple(p.resolve() for p in DEFAULT_ROOTS)
    roots = tuple(Path(x).expanduser().resolve() for x in raw.split(os.pathsep) if x.strip())
    return roots or tuple(p.resolve() for p in DEFAULT_ROOTS)


def resolve_within(path: str | os.PathLike, roots: Sequence[Path]) -> Path:
    """Resolve ``path`` (absolute, or relative to the first root) and check it is inside a root.

    Raises
    ------
    InvalidInputError
        When the folder is outside every root, or does not exist.
    """
    text = str(path).strip()
    if not text:
        raise InvalidInputError("run folder: empty path; type a folder under the runs root.")
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        # Relative paths are read against each root in turn (first match wins).
        tries = [(root / candidate).resolve() for root in roots]
        candidate = next((t for t in tries if t.exists()), tries[0] if tries else candidate.resolve())
    else:
        candidate = candidate.resolve()
    if not any(candidate == root or root in candidate.parents for root in roots):
        shown = ", ".join(str(r) for r in roots)
        raise InvalidInputError(
            f"{text}: outside the runs root ({shown}); choose a folder under it, or start the dashboard with "
            f"{ENV_VAR}=/path/to/runs.")
    if not candidate.is_dir():
        raise InvalidInputError(f"{text}: no such folder under the runs root.")
    return candidate


def discover_runs(roots: Iterable[Path], depth: int = 2) -> list[Path]:
    """Run folders under each root, down to ``depth`` levels (a run folder's own subfolders are not searched)."""
    found: list[Path] = []
    seen: set[Path] = set()

    def walk(folder: Path, level: int) -> None:
        for run in list_runs(folder):
            if run not in seen:
                seen.add(run)
                found.append(run)
        if level >= depth or is_run_folder(folder):
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            return
        for child in children:
            if not is_run_folder(child) and not child.name.startswith("."):
                walk(child, level + 1)

    for root in roots:
        if root.is_dir():
            walk(root, 1)
    return found


def display_name(path: Path, roots: Sequence[Path]) -> str:
    """``path`` relative to the root that holds it, prefixed by that root's name."""
    for root in roots:
        if path == root:
            return root.name
        if root in path.parents:
            return f"{root.name}/{path.relative_to(root).as_posix()}"
    return str(path)
