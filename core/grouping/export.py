"""Grouping results as files: a task,group CSV and a self-describing JSON."""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Mapping

from core.matrix.affinity import AffinityMatrix
from core.grouping.base import GroupingResult

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
