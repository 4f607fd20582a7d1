"""Plotly figures of the dashboard. They draw; core computes the order, aggregation and numbers."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.matrix.affinity import AffinityMatrix
from core.report.ordering import HeatmapOrder, aggregate, transfer_in_out

# Red = harm, blue = help, white = 0 (zmid=0 keeps 0 white whatever the range).
COLORSCALE = "RdBu"
MAX_CELLS_SIDE = 250  # above this many tasks per side the heatmap shows block means


def _fmt(x: float) -> str:
    return "unknown" if not np.isfinite(x) else f"{x:.3g}"


def heatmap(matrix: AffinityMatrix, order: HeatmapOrder, *, window: tuple[int, int] | None = None,
            max_side: int = MAX_CELLS_SIDE, title: str = "") -> go.Figure:
    """Heatmap of ``matrix`` in ``order`` with group boundaries; ``window`` = (start, stop) positions to zoom into.

    Above ``max_side`` tasks the matrix is averaged over blocks (hover shows the block's range).
    """
    idx = order.order
    lo, hi = window or (0, len(idx))
    idx = idx[lo:hi]
    names = [matrix.names[i] for i in idx]
    vals = matrix.values[np.ix_(idx, idx)]
    n = len(idx)
    vmax = float(np.max(np.abs(vals))) or 1.0
    fig = go.Figure()
    bounds = [b - lo for b in order.boundaries if lo < b < hi]
    if n <= max_side:
        unc = matrix.uncertainty[np.ix_(idx, idx)] if matrix.uncertainty is not None else np.full((n, n), np.nan)
        cnt = matrix.counts[np.ix_(idx, idx)] if matrix.counts is not None else np.full((n, n), np.nan)
        text = [[f"source {names[i]} → target {names[j]}<br>T = {vals[i, j]:.4g}"
                 + (f" ± {unc[i, j]:.2g} (s.e.)" if np.isfinite(unc[i, j]) else "")
                 + (f"<br>observations: {cnt[i, j]:.0f}" if np.isfinite(cnt[i, j]) else "")
                 for j in range(n)] for i in range(n)]
        fig.add_trace(go.Heatmap(z=vals, x=names, y=names, text=text, hoverinfo="text", colorscale=COLORSCALE,
                                 zmid=0, zmin=-vmax, zmax=vmax, colorbar=dict(title="T[u,v]")))
        scale = 1.0
        font = 11 if n <= 40 else 9 if n <= 100 else 7
        axis = dict(tickfont=dict(size=font), tickmode="linear" if n <= 220 else "auto", type="category")
        if n > 220:
            axis = dict(showticklabels=False, type="category")
    else:
        agg = aggregate(vals, max_side)
        e = agg.edges
        labels = [f"{names[e[b]]}…{names[e[b + 1] - 1]}" for b in range(agg.bins)]
        text = [[f"sources {labels[i]} → targets {labels[j]}<br>mean T = {agg.values[i, j]:.4g}"
                 f"<br>range {agg.low[i, j]:.3g} … {agg.high[i, j]:.3g}" for j in range(agg.bins)]
                for i in range(agg.bins)]
        fig.add_trace(go.Heatmap(z=agg.values, x=labels, y=labels, text=text, hoverinfo="text",
                                 colorscale=COLORSCALE, zmid=0, zmin=-vmax, zmax=vmax,
                                 colorbar=dict(title="mean T")))
        scale = agg.bins / n
        axis = dict(showticklabels=False, type="category")
    m = len(fig.data[0].x)
    for b in bounds:
        p = b * scale - 0.5
        fig.add_shape(type="line", x0=p, x1=p, y0=-0.5, y1=m - 0.5, line=dict(color="black", width=1.5))
        fig.add_shape(type="line", x0=-0.5, x1=m - 0.5, y0=p, y1=p, line=dict(color="black", width=1.5))
    size = int(min(1100, max(420, 160 + 5.5 * min(n, 200))))
    fig.update_layout(title=title or None, height=size, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      xaxis=dict(title="target (evaluated on)", side="top", **axis),
                      yaxis=dict(title="source (trained with)", autorange="reversed", **axis),
                      plot_bgcolor="white")
    return fig


def transfer_bars(matrix: AffinityMatrix, order: HeatmapOrder) -> go.Figure:
    """Mean transfer each task gives (out) and receives (in), in heatmap order."""
    inn, out = transfer_in_out(matrix.values)
    names = [matrix.names[i] for i in order.order]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=names, y=out[order.order], name="out: mean effect on the other tasks (row)",
                         marker_color="#2166ac"))
    fig.add_trace(go.Bar(x=names, y=inn[order.order], name="in: mean effect of the other tasks (column)",
                         marker_color="#f4a582"))
    n = len(names)
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.15),
                      xaxis=dict(type="category", showticklabels=n <= 120, tickfont=dict(size=9 if n <= 60 else 7)),
                      yaxis=dict(title="mean transfer", zeroline=True))
    return fig


def objective_vs_k(table: pd.DataFrame, x: str, ys: Sequence[str], suggested: int | None = None) -> go.Figure:
    """Objective (and bound) against k, with the suggested k marked."""
    fig = go.Figure()
    for y in ys:
        if y in table:
            fig.add_trace(go.Scatter(x=table[x], y=table[y], mode="lines+markers", name=y))
    if suggested is not None:
        fig.add_vline(x=suggested, line_dash="dash", line_color="gray", annotation_text=f"suggested k={suggested}")
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="k", yaxis_title="objective")
    return fig
