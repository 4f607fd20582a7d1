"""Read a results table produced by trainings run elsewhere, and check it against their plan.

:func:`read_results` is the one reader of such tables (estimation runs use it through
:func:`core.estimation.external.ingest.ingest`; a grouping validation can use it with its own plan).
It accepts the shapes people produce:

* **long**: one row per (training, task): ``id`` (or ``subset`` as ``a|b|c`` plus ``seed`` when the
  plan has several seeds), ``task``, the metric column (``metric`` unless named otherwise), and
  optionally ``loss``, ``n``, ``seconds``, ``flops``, ``split``;
* **wide**: one row per training, identified the same way, with one column per task holding its
  metric (empty for tasks outside the training's subset).

Files: ``.csv``, ``.tsv``, ``.jsonl`` (one JSON object a line; ``subset`` may be a list) and
``.parquet``. Every problem is reported as one :class:`~core.errors.InvalidInputError` line naming
the row (1 = first data row) and the fix; messages never repeat a value read from the file (only
names the plan or the command line gave).
"""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from core.errors import InvalidInputError
from core.estimation.runs.store import Job, subset_key
from core.inputs import loads_json

MAX_RESULTS_BYTES = 512 << 20
FORMATS = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
ID_COLUMNS = ("id", "training_id", "training")
SUBSET_COLUMNS = ("subset", "tasks")
OPTIONAL = ("loss", "n", "seconds", "flops")
PER_TRAINING = ("seconds", "flops")
DIRECTIONS = ("higher", "lower")
ROW_COLUMNS = ["id", "subset", "seed", "split", "task", "metric", "loss", "perf", "n", "seconds", "flops",
               "direction"]


@dataclass(frozen=True)
class PlannedTrainings:
    """What a results table is checked against: the planned trainings by id, and what is known of each task.

    Parameters
    ----------
    jobs : mapping of str to Job
        Each planned training's id and job (subset, seed, split).
    directions : mapping of str to str, optional
        ``"higher"`` or ``"lower"`` (is better) for tasks whose metric direction is known already.
    """

    jobs: Mapping[str, Job]
    directions: Mapping[str, str] | None = None

    @property
    def tasks(self) -> set[str]:
        return {t for j in self.jobs.values() for t in j.subset}

    @property
    def seeds(self) -> set[int]:
        return {j.seed for j in self.jobs.values()}


def read_results(path: str | os.PathLike, plan: Any, *, metric_column: str = "metric",
                 direction: str | None = None) -> pd.DataFrame:
    """Read and validate a results table against ``plan``.

    Parameters
    ----------
    path : path
        ``.csv``, ``.tsv``, ``.jsonl`` or ``.parquet``, long or wide (see the module docstring).
    plan : PlannedTrainings or object with ``jobs`` and ``directions``
        The planned trainings (a :class:`core.estimation.external.plan.Plan` works as it is).
    metric_column : str
        The column holding the metric in the long shape (default ``metric``).
    direction : {"higher", "lower"}, optional
        Whether a higher metric is better; needed unless the plan knows every task's direction,
        and refused when it contradicts what the plan knows.

    Returns
    -------
    pandas.DataFrame
        One row per (training, task) of the file, duplicates merged: id, subset (tuple), seed,
        split, task, metric, loss, perf (higher is better), n, seconds, flops, direction (``higher``
        or ``lower``, the task's); every training in it has a metric for each task of its subset.

    Raises
    ------
    InvalidInputError
        One line naming the file, the row and the fix.
    """
    path = Path(path)
    where = f"--results {path.name}"
    jobs = dict(plan.jobs)
    known = dict(getattr(plan, "directions", None) or {})
    table = _read_table(path, where)
    table = _normalise_columns(table, where, metric_column)
    directions = _directions(table, jobs, known, direction, metric_column, where)
    long = "task" in table.columns
    rows = _long_rows(table, jobs, where) if long else _wide_rows(table, jobs, where)
    out = _merge(rows, jobs, where)
    out["perf"] = [m if directions[t] == "higher" else -m for t, m in zip(out["task"], out["metric"])]
    # a results file without losses: store the metric in its lower-is-better form (what a loss is)
    out["loss"] = [(-p if math.isnan(lo) else lo) for p, lo in zip(out["perf"], out["loss"])]
    out["direction"] = [directions[t] for t in out["task"]]
    return out[ROW_COLUMNS].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------- reading

def _read_table(path: Path, where: str) -> pd.DataFrame:
    if not path.exists():
        raise InvalidInputError(f"{where}: no such file; give the path of the results table.")
    if not path.is_file():
        raise InvalidInputError(f"{where}: not a file; give a .csv, .tsv, .jsonl or .parquet results table.")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInputError(f"{where}: unknown format (suffix {suffix or 'none'}); give a .csv, .tsv, .jsonl or "
                                ".parquet file.")
    size = path.stat().st_size
    if size == 0:
        raise InvalidInputError(f"{where}: the file is empty; give a table with a header and one row per result.")
    if size > MAX_RESULTS_BYTES:
        raise InvalidInputError(f"{where}: larger than {MAX_RESULTS_BYTES >> 20} MB; split it and ingest each part.")
    try:
        if suffix in (".csv", ".tsv"):
            df = _read_delimited(path, "\t" if suffix == ".tsv" else ",", where)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = _read_jsonl(path, where)
    except InvalidInputError:
        raise
    except UnicodeDecodeError:
        raise InvalidInputError(f"{where}: not UTF-8 text; save the table as UTF-8.") from None
    except csv.Error as exc:
        raise InvalidInputError(f"{where}: not a well-formed table{_line_of(str(exc))}; save it as plain UTF-8 "
                                "CSV.") from None
    except Exception as exc:  # pyarrow raises its own types for damaged files
        raise InvalidInputError(f"{where}: cannot read the {suffix[1:]} file ({type(exc).__name__}); check that it "
                                "is a complete, undamaged file.") from None
    if len(df.columns) == 0 or len(df) == 0:
        raise InvalidInputError(f"{where}: no result rows; give one row per result under the header.")
    return df


def _read_delimited(path: Path, sep: str, where: str) -> pd.DataFrame:
    """A CSV/TSV as text (numbers are parsed later, exactly: float(repr(x)) == x; blanks stay blank).

    Read with the csv module rather than pandas, which would silently take a ragged row's extra
    field as an index or rename a repeated column.
    """
    with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: a spreadsheet's byte-order mark
        reader = csv.reader(f, delimiter=sep, strict=True)
        header = next(reader, None)
        if not header:
            raise InvalidInputError(f"{where}: no header row; the first line must name the columns.")
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise InvalidInputError(f"{where}: line {reader.line_num} has {len(row)} fields, the header "
                                        f"{len(header)}; every row needs as many fields as the header.")
            rows.append(row)
    return pd.DataFrame(rows, columns=[h.strip() for h in header], dtype=object)


def _line_of(message: str) -> str:
    m = re.search(r"line (\d+)", message)
    return f" (line {m.group(1)})" if m else ""


def _read_jsonl(path: Path, where: str) -> pd.DataFrame:
    records = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = loads_json(line, f"{where}: line {i}")
            except InvalidInputError:
                raise InvalidInputError(f"{where}: line {i} is not valid JSON; give one JSON object a line.") from None
            if not isinstance(obj, dict):
                raise InvalidInputError(f"{where}: line {i} is not a JSON object; give one object a line "
                                        '(e.g. {"id": ..., "task": ..., "metric": ...}).')
            records.append(obj)
    return pd.DataFrame.from_records(records)


def _normalise_columns(df: pd.DataFrame, where: str, metric_column: str) -> pd.DataFrame:
    cols = [str(c).strip() for c in df.columns]
    lower = [c.lower() for c in cols]
    reserved = set(ID_COLUMNS) | set(SUBSET_COLUMNS) | {"seed", "split", "task", *OPTIONAL}
    rename = {}
    for c, lc in zip(cols, lower):
        if lc in reserved and lc != metric_column.lower():
            rename[c] = lc
        elif c == metric_column or lc == metric_column.lower():
            rename[c] = "metric"
    seen: dict[str, int] = {}
    out_cols = []
    for i, c in enumerate(cols):
        name = rename.get(c, c)
        if name in seen:
            raise InvalidInputError(f"{where}: columns {seen[name] + 1} and {i + 1} have the same name; name each "
                                    "column once.")
        seen[name] = i
        out_cols.append(name)
    df = df.copy()
    df.columns = out_cols
    ids = [c for c in ID_COLUMNS if c in df.columns]
    subsets = [c for c in SUBSET_COLUMNS if c in df.columns]
    if len(ids) > 1 or len(subsets) > 1:
        raise InvalidInputError(f"{where}: several training id or subset columns; keep one of id/training_id/"
                                "training and one of subset/tasks.")
    if ids and ids[0] != "id":
        df = df.rename(columns={ids[0]: "id"})
    if subsets and subsets[0] != "subset":
        df = df.rename(columns={subsets[0]: "subset"})
    if "id" not in df.columns and "subset" not in df.columns:
        raise InvalidInputError(f"{where}: no column says which training a row is; add an 'id' column (from the "
                                "plan) or a 'subset' column (task names joined by |).")
    if "task" in df.columns and "metric" not in df.columns:
        raise InvalidInputError(f"{where}: no {metric_column!r} column; name the metric column with "
                                "--metric-column, or give one column per task (the wide shape, without 'task').")
    return df


# ----------------------------------------------------------------------------------------------- values

def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _text(v: Any) -> str:
    return "" if _missing(v) else str(v).strip()


def _number(v: Any, what: str, row: int, where: str, *, required: bool = True) -> float:
    if isinstance(v, bool):
        raise InvalidInputError(f"{where}: row {row}: {what} is true/false, not a number; give a number.")
    if _text(v) == "":
        if required:
            raise InvalidInputError(f"{where}: row {row}: {what} is missing (empty or NaN); a failed or unfinished "
                                    "training must be rerun or left out of the file.")
        return math.nan
    try:
        x = float(v) if not isinstance(v, str) else float(v.strip())
    except (TypeError, ValueError):
        raise InvalidInputError(f"{where}: row {row}: {what} is not a number; give a number.") from None
    if math.isnan(x):
        raise InvalidInputError(f"{where}: row {row}: {what} is NaN; a failed or diverged training must be rerun "
                                "or left out of the file, not reported as NaN.")
    if math.isinf(x):
        raise InvalidInputError(f"{where}: row {row}: {what} is infinite; give a finite number.")
    return x


def _seed(v: Any, row: int, where: str) -> int:
    x = _number(v, "seed", row, where)
    if x != int(x) or x < 0:
        raise InvalidInputError(f"{where}: row {row}: seed is not an integer >= 0; give the training seed of the plan.")
    return int(x)


def _subset_of(v: Any, row: int, where: str) -> frozenset[str]:
    if isinstance(v, (list, tuple)) or (hasattr(v, "tolist") and not isinstance(v, str)):
        names = [str(x).strip() for x in (v.tolist() if hasattr(v, "tolist") else v)]
    else:
        names = [x.strip() for x in _text(v).split("|")]
    if not names or any(not x for x in names):
        raise InvalidInputError(f"{where}: row {row}: the subset is empty or has an empty name; join its task names "
                                "with | (e.g. a|b|c).")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"{where}: row {row}: the subset names a task twice; list each task once.")
    return frozenset(names)


def _directions(df: pd.DataFrame, jobs: Mapping[str, Job], known: Mapping[str, str], declared: str | None,
                metric_column: str, where: str) -> dict[str, str]:
    if declared is not None and declared not in DIRECTIONS:
        raise InvalidInputError(f"direction {declared!r} must be 'higher' or 'lower' (--higher-is-better or "
                                "--lower-is-better).")
    if declared == "higher" and any(w in metric_column.lower() for w in ("loss", "error", "mse", "rmse", "mae")):
        raise InvalidInputError(f"--higher-is-better with metric column {metric_column!r}: a loss or error is lower-is-"
                                "better; declare --lower-is-better.")
    tasks = sorted({t for j in jobs.values() for t in j.subset})
    out = {}
    for t in tasks:
        if declared is not None:
            if known.get(t, declared) != declared:
                flag = "--lower-is-better" if known[t] == "lower" else "--higher-is-better"
                raise InvalidInputError(f"{where}: direction declared as {declared}-is-better, but the run records task "
                                        f"{t!r} as {known[t]}-is-better (from its config or an earlier ingest); "
                                        f"declare {flag} or use that metric.")
            out[t] = declared
        elif t in known:
            out[t] = known[t]
    if len(out) < len(tasks):
        raise InvalidInputError(f"{where}: the run does not know whether a higher metric is better; declare "
                                "--higher-is-better or --lower-is-better.")
    return out


# ----------------------------------------------------------------------------------------------- shapes

class _Matcher:
    """Finds the planned training a row names (by id, or by subset + seed + split)."""

    def __init__(self, jobs: Mapping[str, Job], where: str):
        self.jobs = jobs
        self.where = where
        self.by_subset = {(frozenset(j.subset), j.seed, j.split): i for i, j in jobs.items()}
        self.seeds = sorted({j.seed for j in jobs.values()})
        self.splits = sorted({j.split for j in jobs.values()})

    def __call__(self, rec: Mapping[str, Any], row: int) -> str:
        where = self.where
        seed = _seed(rec["seed"], row, where) if _text(rec.get("seed")) != "" else None
        split = _text(rec.get("split")) or None
        tid = _text(rec.get("id")) or None
        if tid is not None:
            if tid not in self.jobs:
                raise InvalidInputError(f"{where}: row {row}: the training id is not in the plan; copy ids from the "
                                        "plan's id column.")
            job = self.jobs[tid]
            if seed is not None and seed != job.seed:
                raise InvalidInputError(f"{where}: row {row}: seed differs from the plan's seed {job.seed} for training "
                                        f"{tid}; fix the id or the seed.")
            if split is not None and split != job.split:
                raise InvalidInputError(f"{where}: row {row}: split differs from the plan's split {job.split!r}; score "
                                        "the split the plan names.")
            if "subset" in rec and _text(rec.get("subset")) != "" or isinstance(rec.get("subset"), (list, tuple)):
                if _subset_of(rec["subset"], row, where) != frozenset(job.subset):
                    raise InvalidInputError(f"{where}: row {row}: the subset differs from training {tid}'s tasks "
                                            f"({subset_key(job.subset)}); fix the id or the subset.")
            return tid
        if "subset" not in rec or (not isinstance(rec.get("subset"), (list, tuple)) and _text(rec["subset"]) == ""):
            raise InvalidInputError(f"{where}: row {row}: neither a training id nor a subset; give one of them.")
        subset = _subset_of(rec["subset"], row, where)
        if seed is None:
            if len(self.seeds) > 1:
                raise InvalidInputError(f"{where}: row {row}: no seed, and the plan trains seeds {self.seeds}; add a "
                                        "seed column (or use training ids).")
            seed = self.seeds[0]
        if split is None:
            split = self.splits[0]
        tid = self.by_subset.get((subset, seed, split))
        if tid is None:
            raise InvalidInputError(f"{where}: row {row}: no planned training has this subset with seed {seed} on the "
                                    f"{split} split; check the subset's task names and the seed against the plan.")
        return tid


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return df.to_dict(orient="records")


def _long_rows(df: pd.DataFrame, jobs: Mapping[str, Job], where: str) -> list[dict[str, Any]]:
    match = _Matcher(jobs, where)
    tasks = {t for j in jobs.values() for t in j.subset}
    rows = []
    for row, rec in enumerate(_records(df), start=1):
        tid = match(rec, row)
        task = _text(rec.get("task"))
        if task not in tasks:
            raise InvalidInputError(f"{where}: row {row}: the task is not one of the plan's tasks; use the task names "
                                    "of the plan.")
        if task not in jobs[tid].subset:
            raise InvalidInputError(f"{where}: row {row}: task {task!r} is not in training {tid}'s subset "
                                    f"({subset_key(jobs[tid].subset)}); report only the tasks a training trained on.")
        rows.append(_row(tid, task, rec, rec.get("metric"), row, where))
    return rows


def _wide_rows(df: pd.DataFrame, jobs: Mapping[str, Job], where: str) -> list[dict[str, Any]]:
    match = _Matcher(jobs, where)
    tasks = {t for j in jobs.values() for t in j.subset}
    meta = {"id", "subset", "seed", "split", *OPTIONAL}
    task_cols = [c for c in df.columns if c in tasks]
    for i, c in enumerate(df.columns):
        if c not in meta and c not in tasks:
            raise InvalidInputError(f"{where}: column {i + 1} is neither a task of the plan nor one of id, subset, "
                                    "seed, split, loss, n, seconds, flops; rename it (or give a 'task' column for the "
                                    "long shape).")
    if not task_cols:
        raise InvalidInputError(f"{where}: no column is a task of the plan; give one column per task (wide) or a "
                                "'task' and a 'metric' column (long).")
    if "loss" in df.columns:
        raise InvalidInputError(f"{where}: a 'loss' column in the wide shape cannot say whose loss it is; use the long "
                                "shape (one row per task) to report losses.")
    rows = []
    for row, rec in enumerate(_records(df), start=1):
        tid = match(rec, row)
        subset = jobs[tid].subset
        for t in task_cols:
            filled = _text(rec.get(t)) != ""
            if t in subset:
                rows.append(_row(tid, t, rec, rec.get(t), row, where))
            elif filled:
                raise InvalidInputError(f"{where}: row {row}: a metric for task {t!r}, which is not in training {tid}'s "
                                        f"subset ({subset_key(subset)}); leave that cell empty.")
    return rows


def _row(tid: str, task: str, rec: Mapping[str, Any], metric: Any, row: int, where: str) -> dict[str, Any]:
    out = {"id": tid, "task": task, "row": row, "metric": _number(metric, "metric", row, where),
           "loss": _number(rec.get("loss"), "loss", row, where, required=False)}
    n = _number(rec.get("n"), "n", row, where, required=False)
    if not math.isnan(n) and (n < 0 or n != int(n)):
        raise InvalidInputError(f"{where}: row {row}: n (examples scored) is not an integer >= 0.")
    out["n"] = 0 if math.isnan(n) else int(n)
    for col in PER_TRAINING:
        x = _number(rec.get(col), col, row, where, required=False)
        if x < 0:
            raise InvalidInputError(f"{where}: row {row}: {col} is negative; give a number >= 0 (or leave it empty).")
        out[col] = x
    return out


def _merge(rows: list[dict[str, Any]], jobs: Mapping[str, Job], where: str) -> pd.DataFrame:
    """Merge repeated rows (identical repeats are dropped, conflicting ones refused) and check completeness."""
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    per_training: dict[str, dict[str, tuple[float, int]]] = {}
    for r in rows:
        key = (r["id"], r["task"])
        old = by_key.get(key)
        if old is not None:
            for col in ("metric", "loss", "n"):
                if not same_value(old[col], r[col]):
                    raise InvalidInputError(f"{where}: rows {old['row']} and {r['row']} give training {r['id']} task "
                                            f"{r['task']!r} different values ({col}); keep one row per task and "
                                            "training.")
            continue
        by_key[key] = r
        seen = per_training.setdefault(r["id"], {})
        for col in PER_TRAINING:
            if math.isnan(r[col]):
                continue
            if col in seen and not same_value(seen[col][0], r[col]):
                raise InvalidInputError(f"{where}: rows {seen[col][1]} and {r['row']} give training {r['id']} different "
                                        f"{col}; a training has one {col} value.")
            seen.setdefault(col, (r[col], r["row"]))
    done: dict[str, set[str]] = {}
    for tid, task in by_key:
        done.setdefault(tid, set()).add(task)
    for tid, have in done.items():
        lacking = [t for t in jobs[tid].subset if t not in have]
        if lacking:
            raise InvalidInputError(f"{where}: training {tid} ({subset_key(jobs[tid].subset)}) has no metric for task "
                                    f"{lacking[0]!r}; report every task of a training, or leave the training out "
                                    "until it has all.")
    out = pd.DataFrame(list(by_key.values()))
    for col in PER_TRAINING:  # one value per training, on every row of it
        out[col] = [per_training[t][col][0] if col in per_training[t] else math.nan for t in out["id"]]
    out["subset"] = [jobs[t].subset for t in out["id"]]
    out["seed"] = [jobs[t].seed for t in out["id"]]
    out["split"] = [jobs[t].split for t in out["id"]]
    return out


def same_value(a: float, b: float) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))


def planned(jobs: Mapping[str, Job], directions: Mapping[str, str] | None = None) -> PlannedTrainings:
    """A :class:`PlannedTrainings` from ids and jobs (for a caller that has no run plan, e.g. a validation)."""
    return PlannedTrainings(jobs=dict(jobs), directions=dict(directions or {}))


__all__: Sequence[str] = ("read_results", "PlannedTrainings", "planned", "same_value", "FORMATS")
