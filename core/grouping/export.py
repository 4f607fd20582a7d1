"""Grouping results as files: a task,group CSV and a self-describing JSON."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Mapping

from core.errors import InvalidInputError
from core.grouping.base import GroupingResult
from core.inputs import loads_json
from core.matrix.affinity import AffinityMatrix

FORMAT = "taskaffinity.grouping"
VERSION = 1


def groups_csv(result: GroupingResult) -> str:
    """``task,group`` rows (groups numbered from 1, in the order of ``result.groups``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task", "group"])
    for gi, members in enumerate(result.groups, start=1):
        for name in members:
            w.writerow([name, gi])
    return buf.getvalue()


def grouping_json(result: GroupingResult, matrix: AffinityMatrix, *, source: str = "",
                  extra: Mapping[str, Any] | None = None) -> str:
    """The grouping with what produced it: method, k, objective, bound, options and the matrix's metadata."""
    rec = {"format": FORMAT, "version": VERSION, "source": source, "tasks": list(matrix.names),
           "matrix": matrix.metadata(), **result.to_dict(), **dict(extra or {})}
    rec["details"] = {k: v for k, v in rec.get("details", {}).items() if k != "choose_k"} | (
        {"choose_k": {k: v for k, v in rec["details"]["choose_k"].items() if k != "penalty_sweep"}}
        if "choose_k" in rec.get("details", {}) else {})
    return json.dumps(rec, indent=1, default=str)


MAX_GROUPING_BYTES = 25 * 1024 * 1024


def read_grouping(path: str) -> list[list[str]]:
    """The groups of a grouping file written by :func:`groups_csv` (``task,group``) or :func:`grouping_json`.

    Groups come back in the order of their numbers (CSV) or as listed (JSON). Malformed files
    fail with one line naming the file and the fix (never echoing its content).
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"--grouping {p}: no such file; give a grouping CSV (task,group) or JSON export.")
    if p.stat().st_size > MAX_GROUPING_BYTES:
        raise InvalidInputError(f"--grouping {p}: larger than 25 MB; a grouping file lists tasks and groups only.")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"--grouping {p}: not UTF-8 text; give the CSV or JSON grouping export.") from None
    if p.suffix.lower() == ".json":
        try:
            rec = loads_json(text, f"--grouping {p}")
        except InvalidInputError:
            raise InvalidInputError(f"--grouping {p}: not valid JSON; give the JSON grouping export.") from None
        groups = rec.get("groups") if isinstance(rec, dict) else None
        if (not isinstance(groups, list) or not groups
                or not all(isinstance(g, list) and all(isinstance(x, str) for x in g) for g in groups)):
            raise InvalidInputError(f"--grouping {p}: needs a 'groups' list of lists of task names "
                                    "(the dashboard's JSON grouping export).")
        return [list(g) for g in groups]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["task", "group"]:
        raise InvalidInputError(f"--grouping {p}: a grouping CSV starts with the header 'task,group'.")
    by_group: dict[str, list[str]] = {}
    for i, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise InvalidInputError(f"--grouping {p}: line {i} needs a task name and a group.")
        by_group.setdefault(row[1].strip(), []).append(row[0].strip())
    if not by_group:
        raise InvalidInputError(f"--grouping {p}: lists no task.")

    def order(key: str) -> tuple:
        return (0, int(key), "") if key.lstrip("-").isdigit() else (1, 0, key)

    return [by_group[g] for g in sorted(by_group, key=order)]
