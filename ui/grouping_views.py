"""What the Grouping page shows besides its controls: the groups table, the k explanation, the rounding at c,
the method comparison and the agreement figure. Pages render these; the numbers come from core.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.grouping.base import GroupingResult
from core.grouping.choose_k import KChoice
from core.grouping.rounding import threshold_groups
from core.grouping.summary import MEAN_INSIDE, MEAN_INSIDE_HELP, group_rows
from core.matrix.affinity import AffinityMatrix


def use_k(k: int) -> None:
    """Button callback: set the shared k (runs before the k widget is drawn again)."""
    st.session_state["w.k"] = st.session_state["p.k"] = int(k)  # a callback runs on the Grouping page itself


def number(x: float | None, digits: int = 4, *, scale: float = 1.0) -> str:
    """A table cell: blank for a missing value, 0 for what is zero up to rounding at this scale."""
    if x is None or not np.isfinite(x):
        return ""
    if abs(x) <= 1e-9 * max(1.0, abs(scale)):
        return "0"
    return f"{x:.{digits}g}"


def gap_words(result: GroupingResult) -> str:
    """The gap to the bound as a metric value ("0: proven best" when it is zero up to solver accuracy)."""
    if result.gap is None:
        return "—"
    tol = 1e-6 * max(1.0, abs(result.sdp_value or 0.0))
    return "0 (proven best)" if result.gap <= tol else f"{result.gap:.3g}"


def full_scan_words(choice: KChoice) -> str:
    """choose_k's suggestion in plain words (its own reason string names the rules by their code names)."""
    rows = {r["k"]: r for r in choice.table}
    share = rows.get(choice.k, {}).get("lam_share", 0.0)
    sweep, eig = choice.suggestions.get("sweep"), choice.suggestions.get("eigengap")
    others = []
    others.append(f"the mean affinity of each task to its own group is highest at k = {sweep}"
                  + (" too" if sweep == choice.k else ""))
    others.append(f"the eigenvalues of the matrix drop most after the {eig}th")
    return (f"**Full scan suggests k = {choice.k}.** The SDP was solved for k = {choice.k_range[0]} to "
            f"{choice.k_range[-1]}; when a price is put on each extra group, the relaxation settles on "
            f"{choice.k} groups over the widest range of prices ({share:.0%} of the prices tried). "
            f"For comparison: {'; '.join(others)}.")


def groups_table(matrix: AffinityMatrix, result: GroupingResult) -> pd.DataFrame:
    """Group, size, mean affinity inside and the full list of task names (for st.table, which wraps them)."""
    rows = group_rows(matrix, result.groups)
    scale = float(np.max(np.abs(matrix.values))) if matrix.n else 1.0
    return pd.DataFrame([{"group": r["group"], "size": r["size"], MEAN_INSIDE: number(r[MEAN_INSIDE], scale=scale),
                          "tasks": ", ".join(r["tasks"])} for r in rows])


def render_groups(matrix: AffinityMatrix, result: GroupingResult) -> None:
    """The groups table (every name shown, wrapped) with the definition of its value."""
    st.table(groups_table(matrix, result).style.hide(axis="index"))
    st.caption(f"{MEAN_INSIDE.capitalize()}: {MEAN_INSIDE_HELP}.")


def threshold_curve(X: np.ndarray, k: int, c: float, cs: Sequence[float]) -> go.Figure:
    """How many groups the links ``X[u,v] > c/n`` form, for each c of the slider, with this c and k marked."""
    counts = [int(threshold_groups(X, float(x)).max()) + 1 for x in cs]
    fig = go.Figure(go.Scatter(x=list(cs), y=counts, mode="lines+markers", marker=dict(size=4),
                               name="groups formed by the links", hovertemplate="c = %{x}: %{y} groups<extra></extra>"))
    fig.add_hline(y=k, line_dash="dot", line_color="gray", annotation_text=f"k = {k}",
                  annotation_position="bottom right")
    fig.add_vline(x=c, line_color="#d62728", annotation_text=f"c = {c:g}", annotation_position="top")
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                      xaxis_title="rounding threshold c", yaxis_title="groups before merging/splitting",
                      yaxis=dict(rangemode="tozero"))
    return fig


#: The SDP grouping's rounding families (core.grouping.sdp.grouping) in plain words; only the first uses c.
ROUNDING_NAMES = {"threshold": "links at c, then merge/split",
                  "rows": "k-means on the rows of X (ignores c)",
                  "sweep": "links at every level of X, then merge/split (ignores c)",
                  "random": "random roundings of X's factors (ignores c)"}


def rounding_words(result: GroupingResult) -> tuple[str, pd.DataFrame]:
    """What the rounding did at this c, in plain words, and one row per rounding family tried."""
    d = result.details
    cands: list[dict[str, Any]] = d.get("candidates") or []
    chosen = str(d.get("chosen_rounding") or "").split("#")[0]
    rows = []
    for e in cands:
        ref = e.get("refine")
        rows.append({"rounding": ROUNDING_NAMES.get(e.get("rounding"), e.get("rounding")),
                     "distinct starts": e.get("starts", 1),
                     "best objective straight from the rounding": number(e.get("rounded_objective")),
                     "moves, swaps by refinement": f"{ref.get('moves', 0)}, {ref.get('swaps', 0)}" if ref else "off",
                     "best final objective": number(e.get("objective")),
                     "chosen": "yes" if e.get("rounding") == chosen else ""})
    thr = next((e for e in cands if e.get("rounding") == "threshold"), None)
    if thr is None:
        return "", pd.DataFrame(rows)
    merges, splits = int(thr.get("merges") or 0), int(thr.get("splits") or 0)
    fix = (f"{merges} merge{'s' * (merges > 1)} of the most similar groups" if merges else
           f"{splits} cut{'s' * (splits > 1)} of the weakest links" if splits else "no change")
    ref = thr.get("refine")
    refined = (f" Refinement then made {ref.get('moves', 0)} single moves and {ref.get('swaps', 0)} swaps "
               f"({number(thr.get('rounded_objective'))} → {number(thr.get('objective'))})." if ref else
               " Refinement is off.")
    if len(cands) == 1:
        won = " The other roundings gave this same partition."
    elif chosen == "threshold":
        won = " No other rounding ended higher, so this one is shown."
    else:
        won = (f" Another rounding ({ROUNDING_NAMES.get(chosen, chosen).split(' (')[0]}) ended higher, so it is "
               "shown; moving c changes only the threshold row below.")
    words = (f"At c = {d.get('c', 0):g}, tasks u and v are linked when the SDP solution puts X[u,v] above c/n = "
             f"{d.get('threshold', 0):.3g}. The links form {thr.get('threshold_groups')} groups; {fix} gave "
             f"k = {result.k} (objective {number(thr.get('rounded_objective'))}).{refined}{won}")
    return words, pd.DataFrame(rows)


def compare_table(results: Mapping[str, GroupingResult], labels: Mapping[str, str]) -> pd.DataFrame:
    """One row per method, numbers formatted alike; no bound is a blank, not "None"."""
    rows = []
    for key, r in results.items():
        scale = abs(r.sdp_value) if r.sdp_value is not None else abs(r.objective)
        rows.append({"method": labels.get(key, key), "objective": number(r.objective, 6),
                     "SDP bound": number(r.sdp_value, 6), "gap to bound": number(r.gap, 3, scale=scale),
                     "seconds": f"{r.seconds:.2f}"})
    return pd.DataFrame(rows)


def agreement_figure(ari: pd.DataFrame) -> go.Figure:
    """Adjusted Rand index between the groupings compared (1 = same groups)."""
    fig = go.Figure(go.Heatmap(z=ari.values, x=list(ari.columns), y=list(ari.index), zmin=0, zmax=1,
                               colorscale="Greens", text=ari.round(3).values, texttemplate="%{text}",
                               colorbar=dict(title="ARI")))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), title="Agreement (adjusted Rand index)",
                      yaxis=dict(autorange="reversed"))
    return fig


def differences_words(n_diff: int, n: int, n_methods: int) -> str:
    """The headline over the differences grid, without a double negative."""
    if n_diff == 0:
        return f"**All {n_methods} groupings put every one of the {n} tasks in the same group.**"
    return (f"**{n_diff} of {n} tasks** are placed differently by at least one grouping (group numbers aligned "
            "to the first by overlap):")
