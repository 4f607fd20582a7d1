"""A one-page report of an affinity matrix and its grouping, as Markdown or HTML, for sharing.

Built from plain data (the matrix, its run manifest, the groups and the
negative-transfer table); the caller may pass an SVG of the heatmap to embed.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from html import escape
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from core.grouping.summary import MEAN_INSIDE, MEAN_INSIDE_HELP, group_rows
from core.matrix.affinity import AffinityMatrix
from core.matrix.transfer import negative_transfers


@dataclass(frozen=True)
class ReportInput:
    """What the report describes.

    Parameters
    ----------
    matrix : AffinityMatrix
        The matrix the grouping was computed on (after preprocessing).
    source : str
        Where it came from (run folder path or uploaded file name).
    groups : list of list of str, optional
        The task groups, if a grouping was computed.
    grouping : mapping
        Method, k, objective, SDP value, gap, seconds and options of the grouping.
    manifest : mapping
        The run folder's manifest, if the matrix comes from a run.
    top_negative : int
        How many of the worst negative transfers to list.
    """

    matrix: AffinityMatrix
    source: str
    groups: Sequence[Sequence[str]] | None = None
    grouping: Mapping[str, Any] = field(default_factory=dict)
    manifest: Mapping[str, Any] = field(default_factory=dict)
    top_negative: int = 15


def _facts(inp: ReportInput) -> list[tuple[str, str]]:
    m = inp.matrix
    facts = [("Source", inp.source), ("Tasks", str(m.n)), ("Metric", m.metric), ("Estimator", m.estimator),
             ("Direction", m.direction),
             ("Preprocessing", ", ".join(m.preprocessing) or "none")]
    man = inp.manifest or {}
    if man.get("status"):
        facts.append(("Run status", str(man["status"])))
    cost = dict(man.get("cost") or m.cost or {})
    if cost:
        facts.append(("Cost", ", ".join(f"{k}={_fmt(v)}" for k, v in cost.items())))
    if man.get("created"):
        facts.append(("Run created", str(man["created"])))
    return facts


def _grouping_facts(inp: ReportInput) -> list[tuple[str, str]]:
    labels = {"method": "Method", "k": "Groups (k)", "objective": "Objective (sum of group densities)",
              "sdp_value": "SDP upper bound", "gap": "Gap to the SDP bound", "seconds": "Seconds",
              "options": "Options"}
    return [(labels.get(k, k), _fmt(v)) for k, v in inp.grouping.items() if v is not None]


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v)


def _negative(inp: ReportInput) -> pd.DataFrame:
    table = negative_transfers(inp.matrix).head(inp.top_negative)
    return table[["source", "target", "transfer", "uncertainty", "count"]]


def _group_rows(inp: ReportInput) -> list[tuple[int, int, str, float]]:
    return [(r["group"], r["size"], ", ".join(r["tasks"]), r[MEAN_INSIDE])
            for r in group_rows(inp.matrix, inp.groups or [])]


def to_markdown(inp: ReportInput) -> str:
    """The report as Markdown."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# taskaffinity report: {inp.manifest.get('name') or inp.source}", "", f"Generated {now}.", ""]
    out += ["| | |", "|---|---|"] + [f"| {k} | {v.replace('|', '/')} |" for k, v in _facts(inp)] + [""]
    if inp.matrix.notes:
        out += [inp.matrix.notes, ""]
    if inp.groups:
        out += ["## Grouping", "", "| | |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in _grouping_facts(inp)] + [""]
        out += [f"{MEAN_INSIDE.capitalize()}: {MEAN_INSIDE_HELP}.", ""]
        out += [f"| group | size | {MEAN_INSIDE} | tasks |", "|---|---|---|---|"]
        out += [f"| {i} | {s} | {d:.4g} | {t} |" for i, s, t, d in _group_rows(inp)] + [""]
    neg = _negative(inp)
    out += ["## Worst negative transfers", ""]
    if neg.empty:
        out += ["No pair has negative transfer.", ""]
    else:
        out += ["| source | target | transfer | uncertainty | count |", "|---|---|---|---|---|"]
        out += [f"| {r.source} | {r.target} | {r.transfer:.4g} | {_opt(r.uncertainty)} | {_opt(r.count)} |"
                for r in neg.itertuples()] + [""]
    return "\n".join(out)


def _opt(v: float) -> str:
    return "" if v is None or not np.isfinite(v) else f"{v:.3g}"


def to_html(inp: ReportInput, heatmap_svg: str | None = None) -> str:
    """The report as one self-contained HTML page (optionally embedding an SVG heatmap)."""
    title = f"taskaffinity report: {inp.manifest.get('name') or inp.source}"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
        head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>"
             "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:left;vertical-align:top}th{background:#f3f3f3}</style></head><body>",
             f"<h1>{escape(title)}</h1><p>Generated {now}.</p>",
             table(["", ""], _facts(inp))]
    if inp.matrix.notes:
        parts.append(f"<p>{escape(inp.matrix.notes)}</p>")
    if heatmap_svg:
        parts.append(f"<h2>Affinity heatmap</h2><div>{heatmap_svg}</div>")
    if inp.groups:
        parts.append("<h2>Grouping</h2>" + table(["", ""], _grouping_facts(inp)))
        parts.append(f"<p>{escape(MEAN_INSIDE.capitalize())}: {escape(MEAN_INSIDE_HELP)}.</p>")
        parts.append(table(["group", "size", MEAN_INSIDE, "tasks"],
                           [(i, s, f"{d:.4g}", t) for i, s, t, d in _group_rows(inp)]))
    neg = _negative(inp)
    parts.append("<h2>Worst negative transfers</h2>")
    if neg.empty:
        parts.append("<p>No pair has negative transfer.</p>")
    else:
        parts.append(table(["source", "target", "transfer", "uncertainty", "count"],
                           [(r.source, r.target, f"{r.transfer:.4g}", _opt(r.uncertainty), _opt(r.count))
                            for r in neg.itertuples()]))
    parts.append("</body></html>")
    return "\n".join(parts)
