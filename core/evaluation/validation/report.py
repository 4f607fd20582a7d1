"""A validation as a self-contained HTML page (no script, no outside request) for the team."""
from __future__ import annotations

import html
import math
from typing import Any, Sequence

from core.evaluation.validation.orchestrator import Validation


def _num(x: Any, digits: int = 4) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(x) else f"{x:.{digits}g}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def validation_html(v: Validation) -> str:
    """The validation's summary: verdicts, strategies, paired differences, per-task gains (predicted next to measured)."""
    s, man = v.summary or {}, v.manifest
    labels = s.get("labels") or {}
    cost = man.get("cost") or {}
    parts = [f"<h1>Validation {html.escape(v.dir.name)}</h1>",
             f"<p>Status {html.escape(str(man.get('status')))}; scored on <b>{html.escape(str(s.get('split')))}</b> "
             f"(affinities estimated on {html.escape(str(man.get('estimation_split')))}); seeds "
             f"{html.escape(', '.join(map(str, s.get('seeds') or [])))}; cost {cost.get('trainings')} trainings, "
             f"{_num(cost.get('seconds'), 3)} s of training.</p>",
             "<h2>Verdicts</h2><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in s.get("verdicts") or []) + "</ul>",
             "<h2>Strategies (mean over seeds of the task-average perf, SE over seeds)</h2>",
             _table(["strategy", "mean", "SE", "seeds", "draws"],
                    [[labels.get(r["strategy"], r["strategy"]), _num(r["mean"]), _num(r["se"], 2), r["seeds"], r["draws"]]
                     for r in s.get("strategies") or []]),
             f"<h2>The grouping minus each baseline (paired on seed, {s.get('level', 0.95):.0%} t-interval)</h2>",
             _table(["baseline", "difference", "SE", "low", "high", "seeds"],
                    [[labels.get(d["baseline"], d["baseline"]), _num(d["diff"]), _num(d["se"], 2), _num(d["low"]),
                      _num(d["high"]), d["seeds"]] for d in s.get("differences") or []])]
    if s.get("task_gains"):
        ref = labels.get(s.get("task_gains_reference"), s.get("task_gains_reference"))
        parts += [f"<h2>Per task: gain over {html.escape(str(ref))} (measured) and predicted from the affinities</h2>",
                  _table(["task", "perf", "reference perf", "measured gain", "SE", "predicted gain"],
                         [[r["task"], _num(r["perf"]), _num(r["reference_perf"]), _num(r["gain"]), _num(r["se"], 2),
                           _num(r.get("predicted"))] for r in sorted(s["task_gains"], key=lambda r: -(r["gain"] or 0))])]
        a = s.get("agreement") or {}
        if a:
            parts.append(f"<p>Predicted vs measured: Spearman {_num(a.get('spearman'), 3)}; same sign for "
                         f"{_num(a.get('sign_agreement'), 3)} of {a.get('tasks')} tasks.</p>")
    parts.append("<h2>Partitions</h2><ul>" + "".join(
        f"<li>{html.escape(labels.get(k, k))}: " + " | ".join(
            "; ".join(", ".join(g) for g in p) for p in parts_) + "</li>"
        for k, parts_ in (s.get("partitions") or {}).items()) + "</ul>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Validation {html.escape(v.dir.name)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
