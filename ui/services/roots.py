"""Where the dashboard looks for run folders, and keeping it inside those places.

The roots come from ``TASKAFFINITY_RUNS_ROOT`` (one or more folders separated by
``os.pathsep``) or default to the repository's ``sample_data/`` and ``runs/``.
A folder the user types is resolved (symlinks and ``..`` included) and must lie
inside one of the roots, so the dashboard cannot be pointed at arbitrary paths.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from core.errors import InvalidInputError, RunStateError, TaskAffinityError
from core.estimation.runs.folder import RunDir, is_run_folder, list_runs

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
            f"{ENV_VAR}={EXAMPLE_ROOT}.")
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


# An absolute path in a message: starts with "/" not preceded by a word character, a dot or a colon
# (so "3/12", "runs/x" and "https://..." are left alone), and runs to the next blank, quote or bracket.
_ABS_PATH = re.compile(r"(?<![\w.:~/-])/[^\s'\"`,;()\[\]{}<>|]*")
OUTSIDE = "(a path outside the run roots)"


EXAMPLE_ROOT = "/path/to/runs"  # the example in the messages that say how to set the roots


def redact(text: str, roots: Sequence[Path], keep: Iterable[str] = ()) -> str:
    """``text`` with every absolute path that is not inside one of ``roots`` replaced by a placeholder.

    Messages from the engine name the files they refuse (a config's data root, an install path, a file a
    link points to); the dashboard shows only what lies inside the run roots. Paths in ``keep`` (what
    the user typed, which the message repeats) stay as they are.
    """
    kept = {k.strip() for k in keep if k and k.strip()} | {EXAMPLE_ROOT}

    def one(m: re.Match) -> str:
        raw = m.group(0)
        tail = ""
        while raw and raw[-1] in ".:!?":  # sentence punctuation after a path
            raw, tail = raw[:-1], raw[-1] + tail
        if not raw or raw in kept or m.group(0) in kept:
            return m.group(0)
        path = Path(os.path.normpath(raw))
        inside = any(path == r or r in path.parents for r in roots)
        return (raw if inside else OUTSIDE) + tail

    return _ABS_PATH.sub(one, str(text))


def unreadable_reason(exc: BaseException, roots: Sequence[Path]) -> str:
    """Why a run folder cannot be read, in one line (paths outside the roots redacted)."""
    if isinstance(exc, RecursionError):
        text = "a file in it is nested too deeply to read"
    elif isinstance(exc, TaskAffinityError):
        text = str(exc)
    else:  # malformed content the reader did not expect (wrong types, overflowing numbers, ...)
        text = f"a file in it holds malformed data ({type(exc).__name__}: {exc})"
    text = " ".join(text.split())
    return redact(text[:400] + ("…" if len(text) > 400 else ""), roots)


def _number(x: Any) -> float | int | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return x if math.isfinite(x) else None


def run_row(path: Path, roots: Sequence[Path]) -> tuple[dict[str, Any], bool]:
    """One row of the past-runs table and whether the run can be resumed.

    Never raises: a run whose manifest cannot be read (damaged, nested too deep, values of the wrong
    type, a link loop) is one row saying ``unreadable: <reason>``, so one bad run never hides the others.
    Values are coerced to one type per column (a table of mixed types cannot be shown).
    """
    name = display_name(path, roots)
    try:
        run = RunDir(path)
        for f in (run.manifest_path, run.affinity_json_path, run.affinity_csv_path):
            # a link that leads nowhere reads as "no such file", which would silently pass for a run without it
            if f.is_symlink() and not f.exists():
                raise RunStateError(f"{f.name} is a link that leads nowhere (a loop or a missing target).")
        ov = run.overview()
        row = {"run": name, "status": str(ov.status), "estimator": str(ov.estimator), "tasks": int(ov.tasks),
               "progress": str(ov.progress), "trainings": _number(ov.trainings), "seconds": _number(ov.seconds),
               "flops": _number(ov.flops), "created": str(ov.created),
               "trained": "elsewhere" if ov.external else "here", "missing": _number(ov.missing),
               "coverage": str(ov.coverage or "")}
        return row, bool(ov.resumable)
    except Exception as exc:  # noqa: BLE001 - any failure to read one run is that run's, never the page's
        return {"run": name, "status": f"unreadable: {unreadable_reason(exc, roots)}"}, False


def run_health(path: Path, roots: Sequence[Path]) -> str | None:
    """None when the run's manifest reads cleanly, else why it does not (one line)."""
    row, _ = run_row(path, roots)
    status = row["status"]
    return status[len("unreadable: "):] if status.startswith("unreadable: ") else None
