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
            fig = px.bar(t, x="run", y="trainings/hour", title="Training throughput per backend",
                         hover_data=[c for c in t.columns if c not in ("run",)])
            charts.append(("Trainings per hour on this machine.", _layout(fig, 340)))
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
    return [(f"The first measured column against {x}; every column is in 'Tables and notes' below.", _layout(fig))]


#: The Grad-TAG paper's reported operating point (seeds: "within 2.7% distance to the true affinities while
#: needing only 3% of FLOPs in full training").
GRADTAG_TARGET = (0.03, 0.027)


def _mean_column(frame: pd.DataFrame) -> str | None:
    return next((c for c in frame.columns if str(c).startswith("mean test")), None)


def pays_charts(data: Any) -> Charts:
    """Does grouping pay? Mean test metric per way of splitting the tasks, with the spread over seeds."""
    rows = (data.get("summary") or data.get("table")) if isinstance(data, dict) else None
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    metric = _mean_column(frame)
    if metric is None or "partition" not in frame.columns:
        return []
    lower_better = "MSE" in metric or "loss" in metric.lower()
    frame = frame.sort_values(metric, ascending=lower_better is False)  # plotly draws the first category at the bottom
    sd = pd.to_numeric(frame.get("sd (seeds)"), errors="coerce") if "sd (seeds)" in frame.columns else None
    # Dots, not bars: the axis does not start at 0, and a bar's length would suggest it does.
    fig = go.Figure(go.Scatter(x=frame[metric], y=frame["partition"], mode="markers",
                               marker=dict(size=11, color="#4e79a7"),
                               error_x=dict(type="data", array=sd, visible=True) if sd is not None else None,
                               hovertemplate="%{y}: %{x:.4g}<extra></extra>"))
    lo, hi = float(frame[metric].min()), float(frame[metric].max())
    pad = (hi - lo) * 0.6 + (float(sd.max()) if sd is not None and sd.notna().any() else 0.0) + 1e-9
    fig.update_layout(title=f"{metric} per way of grouping the tasks ({'lower' if lower_better else 'higher'} is "
                      "better; bars: ± 1 sd over seeds)",
                      xaxis=dict(title=metric, range=[lo - pad, hi + pad]),
                      yaxis=dict(title="", automargin=True, type="category"))
    return [("Best at the top. Differences smaller than the error bars are within seed noise.",
             _layout(fig, max(260, 70 + 34 * len(frame))))]


def pays_headline(data: Any) -> str:
    rows = (data.get("summary") or data.get("table")) if isinstance(data, dict) else None
    if not rows:
        return ""
    frame = pd.DataFrame(rows)
    metric = _mean_column(frame)
    if metric is None:
        return ""
    lower_better = "MSE" in metric or "loss" in metric.lower()
    best = frame.sort_values(metric, ascending=lower_better).iloc[0]
    out = f"Best: **{best['partition']}** ({metric} {best[metric]:.4g})"
    vs = next((c for c in frame.columns if str(c).startswith("vs all-in-one")), None)
    if vs is not None and str(best.get(vs, "-")) not in ("-", "nan") and "nan" not in str(best.get(vs)):
        out += f"; against one model for all tasks: {best[vs]}"
    return out + "."


def gradtag_charts(data: Any) -> Charts:
    """Estimate error against the share of full-training FLOPs, per case, with the paper's target point."""
    rows = data.get("rows") if isinstance(data, dict) else None
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    if not {"T err raw", "FLOPs frac", "estimate", "case"} <= set(frame.columns):
        return []
    fig = px.scatter(frame, x="FLOPs frac", y="T err raw", color="case", symbol="estimate",
                     hover_data=[c for c in ("d", "reg", "projection") if c in frame.columns],
                     title="Affinity estimate error against its cost (lower left is better)")
    fig.add_trace(go.Scatter(x=[GRADTAG_TARGET[0]], y=[GRADTAG_TARGET[1]], mode="markers+text",
                             marker=dict(symbol="star", size=16, color="black"), text=["paper: 2.7% at 3% FLOPs"],
                             textposition="top right", name="paper's reported point"))
    fig.update_xaxes(title="FLOPs as a share of retraining every subset (log scale)", tickformat=".0%", type="log")
    fig.update_yaxes(title="distance to the retrained affinities (T err raw)", tickformat=".0%", rangemode="tozero")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return [("Each point is one estimate (dimension d, penalty) on one case; the star is what the Grad-TAG paper "
             "reports for its own setting.", _layout(fig, 480))]


def gradtag_headline(data: Any) -> str:
    rows = data.get("rows") if isinstance(data, dict) else None
    if not rows:
        return ""
    frame = pd.DataFrame(rows)
    if not {"T err raw", "FLOPs frac"} <= set(frame.columns):
        return ""
    g = frame[frame["estimate"].astype(str).str.startswith("Grad-TAG")] if "estimate" in frame.columns else frame
    cheap = g[pd.to_numeric(g["FLOPs frac"], errors="coerce") < 1.0]  # above 1 it costs more than retraining
    if cheap.empty:
        return "Every Grad-TAG estimate here cost more FLOPs than retraining; the paper reports 2.7% error at 3%."
    best = cheap.sort_values("T err raw").iloc[0]
    return (f"Lowest Grad-TAG error while cheaper than retraining: **{best['T err raw']:.1%}** at "
            f"{best['FLOPs frac']:.0%} of the FLOPs ({best.get('case', '')}); the paper reports 2.7% at 3%.")


def training_charts(data: Any) -> Charts:
    """Trainings per hour per backend and case, on a linear axis."""
    if not isinstance(data, list) or not data:
        return []
    frame = pd.DataFrame(data)
    if not {"case", "trainings/h"} <= set(frame.columns):
        return []
    frame = frame.sort_values("trainings/h", ascending=False)
    fig = px.bar(frame, x="trainings/h", y="case", color="backend" if "backend" in frame.columns else None,
                 orientation="h", hover_data=[c for c in ("params", "steps", "seconds", "GFLOP/s") if c in frame],
                 title="Trainings per hour on this machine (more is better)")
    fig.update_yaxes(title="", autorange="reversed", automargin=True)
    fig.update_xaxes(title="trainings per hour", rangemode="tozero")
    return [("One bar per backend and task set: how many trainings one estimation can afford per hour.",
             _layout(fig, max(260, 70 + 34 * len(frame))))]


def training_headline(data: Any) -> str:
    if not isinstance(data, list) or not data or "trainings/h" not in data[0]:
        return ""
    rows = sorted(data, key=lambda r: -float(r.get("trainings/h") or 0))
    fast, slow = rows[0], rows[-1]
    return (f"From **{fast['trainings/h']:,.0f} trainings/h** ({fast['case']}) down to "
            f"**{slow['trainings/h']:,.0f}** ({slow['case']}).")


def dashboard_charts(data: Any) -> Charts:
    """Median latency of each dashboard action against its goal."""
    rows = data.get("summary") if isinstance(data, dict) else None
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    frame["action"] = frame["what"] + " · n=" + frame["n"].astype(str)
    fig = go.Figure(go.Bar(x=frame["median_s"], y=frame["action"], orientation="h", name="median",
                           marker_color="#4e79a7", error_x=dict(type="data", symmetric=False,
                                                                array=frame["worst_s"] - frame["median_s"])))
    goals = frame[pd.to_numeric(frame["goal_s"], errors="coerce").notna()]
    fig.add_trace(go.Scatter(x=pd.to_numeric(goals["goal_s"]), y=goals["action"], mode="markers", name="goal",
                             marker=dict(symbol="line-ns-open", size=22, color="#d62728", line=dict(width=3))))
    fig.update_layout(title="Seconds in the browser (bar: median, whisker: worst; red mark: goal)",
                      xaxis=dict(title="seconds", rangemode="tozero"), yaxis=dict(autorange="reversed",
                                                                              automargin=True, title=""))
    return [("Measured on the machine named above; its load is in the table below.",
             _layout(fig, max(260, 70 + 40 * len(frame))))]


def dashboard_headline(data: Any) -> str:
    rows = data.get("summary") if isinstance(data, dict) else None
    if not rows:
        return ""
    judged = [r for r in rows if r.get("met") in ("yes", "no")]
    met = sum(r["met"] == "yes" for r in judged)
    return f"**{met} of {len(judged)}** latency goals met on this run's machine (see its load below)."


def recovery_headline(data: Any) -> str:
    rows = data.get("table") if isinstance(data, dict) else None
    if not rows or "exact" not in rows[0]:
        return ""
    frame = pd.DataFrame(rows)
    frame["rate"] = frame["exact"].map(_fraction)
    best = frame.groupby("method")["rate"].mean().sort_values(ascending=False)
    return f"Most often exactly right: **{best.index[0]}** ({best.iloc[0]:.0%} of cases on average over families)."


HEADLINES: dict[str, Callable[[Any], str]] = {
    "pays_text": pays_headline, "pays_instructions": pays_headline, "pays_icl": pays_headline,
    "gradtag": gradtag_headline, "training": training_headline, "dashboard": dashboard_headline,
    "recovery": recovery_headline,
}


def headline_for(name: str, data: Any) -> str:
    """One line computed from the data, for above the chart ('' when there is none)."""
    try:
        return HEADLINES.get(name, lambda d: "")(data)
    except (KeyError, TypeError, ValueError, IndexError):  # an odd layout loses the headline only
        return ""


BUILDERS: dict[str, Callable[[Any], Charts]] = {
    "recovery": recovery_charts,
    "sdp_scaling": scaling_charts,
    "estimation": estimation_charts,
    "pays_text": pays_charts, "pays_instructions": pays_charts, "pays_icl": pays_charts,
    "gradtag": gradtag_charts, "training": training_charts, "dashboard": dashboard_charts,
}


def charts_for(name: str, data: Any) -> Charts:
    """The charts for benchmark ``name`` (its own builder, else the generic one)."""
    return BUILDERS.get(name, generic_charts)(data)
