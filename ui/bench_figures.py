"""Charts of the benchmark results in bench/results/NAME.json (one builder per benchmark, a generic one otherwise).

Each builder takes the result's ``data`` as bench/ wrote it and returns ``[(caption, figure)]``; data it
does not recognise gives no chart (the page still shows the benchmark's own tables).
"""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

Charts = list[tuple[str, go.Figure]]
HEIGHT = 380
SOLVER_COLUMNS = {"torch_s": "torch (first-order)", "scs_s": "cvxpy + SCS"}
AGREEMENT = ("spearman", "spearman_per_target", "sign_agreement", "negatives_found")


def _layout(fig: go.Figure, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend_title_text="")
    return fig


def _fraction(text: Any) -> float | None:
    """'11/12' -> 0.9167 (None when not a fraction)."""
    try:
        a, b = str(text).split("/")
        return float(a) / float(b) if float(b) else None
    except ValueError:
        return None


def recovery_charts(data: Any) -> Charts:
    """Exact recovery rate of the planted groups per method and planted family."""
    rows = data.get("table") if isinstance(data, dict) else None
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    if not {"family", "method", "exact"} <= set(frame.columns):
        return []
    frame["exact recovery"] = frame["exact"].map(_fraction)
    hover = [c for c in ("exact", "mean_ARI", "mean_shortfall", "median_seconds") if c in frame.columns]
    fig = px.bar(frame, x="family", y="exact recovery", color="method", barmode="group", hover_data=hover,
                 range_y=[0, 1.05], title="Exact recovery of the planted groups (share of cases)")
    fig.update_yaxes(tickformat=".0%")
    charts = [("Per planted family: the share of cases each method returns exactly the planted groups.", _layout(fig))]
    opt = data.get("optimum_table")
    if opt:
        o = pd.DataFrame(opt)
        methods = [c for c in o.columns if c not in ("set", "cases")]
        long = o.melt(id_vars=["set"], value_vars=methods, var_name="method", value_name="found")
        long["rate"] = long["found"].map(_fraction)
        fig2 = px.bar(long, x="set", y="rate", color="method", barmode="group", hover_data=["found"],
                      range_y=[0, 1.05], title="Finds the optimum when it is known to be the planted grouping")
        fig2.update_yaxes(tickformat=".0%")
        charts.append(("Cases where the planted grouping is provably optimal (exhaustive search or SDP bound).",
                       _layout(fig2)))
    return charts


def scaling_charts(data: Any) -> Charts:
    """Seconds per SDP solve against the number of tasks, one line per solver, log-log."""
    if not isinstance(data, list) or not data:
        return []
    frame = pd.DataFrame(data)
    solvers = [c for c in SOLVER_COLUMNS if c in frame.columns]
    if "n" not in frame.columns or not solvers:
        return []
    ids = [c for c in ("n", "k", "matrix") if c in frame.columns]
    long = frame.melt(id_vars=ids, value_vars=solvers, var_name="solver", value_name="seconds")
    long["seconds"] = pd.to_numeric(long["seconds"], errors="coerce")
    long = long.dropna(subset=["seconds"])
    long["solver"] = long["solver"].map(SOLVER_COLUMNS)
    if "k" in long.columns:
        long["k"] = "k = " + long["k"].astype(str)
    fig = px.line(long.sort_values("n"), x="n", y="seconds", color="solver",
                  line_dash="k" if "k" in long.columns else None,
                  facet_col="matrix" if "matrix" in long.columns else None, markers=True, log_x=True, log_y=True,
                  title="SDP solve time against the number of tasks")
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1] + " matrices"))
    fig.update_xaxes(title="tasks n")
    fig.update_yaxes(title="seconds (log)")
    return [("Each point is one solve to tolerance 1e-5 (missing points: the solver was not run at that n).",
             _layout(fig, 420))]


def estimation_charts(data: Any) -> Charts:
    """Agreement of the cheaper estimators with pairwise (per data set), and training throughput per backend."""
    if not isinstance(data, dict):
        return []
    rows = []
    for dataset, block in data.items():
        if not isinstance(block, dict):
            continue
        for variant, res in block.items():
            agree = res.get("agreement") if isinstance(res, dict) else None
            if not isinstance(agree, dict):
                continue
            cost = res.get("cost") or {}
            for metric in AGREEMENT:
                if metric in agree:
                    rows.append({"data set": dataset, "estimator": variant.replace("_", " "), "measure": metric,
                                 "value": agree[metric], "trainings": cost.get("trainings")})
    charts: Charts = []
    if rows:
        frame = pd.DataFrame(rows)
        fig = px.bar(frame, x="measure", y="value", color="estimator", barmode="group", facet_col="data set",
                     hover_data=["trainings"], range_y=[0, 1.05],
                     title="Agreement with the pairwise affinity (1 = identical ranking / signs)")
        fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
        charts.append(("How close cheaper estimators come to pairwise estimates on the same tasks.", _layout(fig)))
    thr = data.get("throughput")
    if isinstance(thr, list) and thr and all(isinstance(r, dict) for r in thr):
        t = pd.DataFrame(thr)
        if {"backend", "trainings/hour"} <= set(t.columns):
            t["run"] = t["backend"] + (" · " + t["tasks"].astype(str) if "tasks" in t.columns else "")
            fig = px.bar(t, x="run", y="trainings/hour", log_y=True, title="Training throughput per backend",
                         hover_data=[c for c in t.columns if c not in ("run",)])
            charts.append(("Trainings per hour on this machine (log scale).", _layout(fig, 340)))
    return charts


def _records(data: Any) -> list[dict] | None:
    """A list of flat records inside a benchmark's data, if there is one."""
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return data
    if isinstance(data, dict):
        for key in ("rows", "table", "results"):
            if isinstance(data.get(key), list) and data[key] and all(isinstance(r, dict) for r in data[key]):
                return data[key]
    return None


def generic_charts(data: Any) -> Charts:
    """A line chart of a size-like column against the next numeric one, coloured by a method-like column."""
    rows = _records(data)
    if not rows:
        return []
    frame = pd.json_normalize(rows)
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].notna().any()]
    cats = [c for c in frame.columns if c not in numeric and frame[c].astype(str).nunique() <= 12]
    if len(numeric) < 2:
        return []
    x = next((c for c in ("n", "snr", "noise", "k", "budget", "trainings", "steps") if c in numeric), numeric[0])
    y = next(c for c in numeric if c != x)
    color = next((c for c in ("method", "estimator", "solver", "backend") if c in cats), cats[0] if cats else None)
    fig = px.line(frame.sort_values(x), x=x, y=y, color=color, markers=True, title=f"{y} against {x}")
    return [(f"The first measured column against {x}; the full table is above.", _layout(fig))]


BUILDERS: dict[str, Callable[[Any], Charts]] = {
    "recovery": recovery_charts,
    "sdp_scaling": scaling_charts,
    "estimation": estimation_charts,
}


def charts_for(name: str, data: Any) -> Charts:
    """The charts for benchmark ``name`` (its own builder, else the generic one)."""
    return BUILDERS.get(name, generic_charts)(data)
