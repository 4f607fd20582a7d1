"""Plotly figures of the dashboard. They draw; core computes the order, aggregation and numbers."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.matrix.affinity import AffinityMatrix
from core.errors import InvalidInputError
from core.report.ordering import HeatmapOrder, aggregate, transfer_in_out, within_group_dendrogram

# Red = harm, blue = help, white = 0 (zmid=0 keeps 0 white whatever the range).
COLORSCALE = "RdBu"
#: Above this many tasks per side the heatmap shows block means (a cell would be under 1.4 px at the largest size).
MAX_CELLS_SIDE = 600
#: Side of the drawing area in px at most, and the smallest cell that still carries a readable label.
MAX_SIDE_PX = 820
LABEL_CELL_PX = 12
#: Gap between the heatmap and the within-group tree drawn beside it, in px.
TREE_GAP_PX = 6
TREE_COLOUR = "#555555"
#: Colours of the group bands (repeated after 10 groups; the band's name and hover say which group it is).
BAND_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f",
                "#e15759", "#bab0ac")


def _fmt(x: float) -> str:
    return "unknown" if not np.isfinite(x) else f"{x:.3g}"


def heatmap_geometry(n: int, longest_label: int) -> dict[str, float]:
    """Square cells: cell and side in px, whether labels fit, and the margins they need."""
    cell = max(MAX_SIDE_PX / max(n, 1), 0.5) if n * LABEL_CELL_PX > MAX_SIDE_PX else max(LABEL_CELL_PX, min(
        28, MAX_SIDE_PX / max(n, 1)))
    side = cell * n
    labels = cell >= LABEL_CELL_PX
    font = int(min(12, max(8, cell - 2)))
    label_px = int(longest_label * font * 0.62) + 8 if labels else 0
    return dict(cell=cell, side=max(side, 240.0), labels=labels, font=font, label_px=label_px)


def heatmap(matrix: AffinityMatrix, order: HeatmapOrder, *, subset: Sequence[int] | None = None,
            window: tuple[int, int] | None = None, max_side: int = MAX_CELLS_SIDE, title: str = "",
            symmetric: bool | None = None, group_names: Sequence[str] | None = None,
            dendrogram: bool = False) -> go.Figure:
    """Heatmap of ``matrix`` in ``order``: square cells, group bands along both axes, sized to the matrix.

    ``subset`` (positions in the order) or ``window`` = (start, stop) zooms into part of it. Task labels are
    drawn when a cell is at least :data:`LABEL_CELL_PX` px; otherwise the coloured group bands (named
    ``group 1..k`` or ``group_names``) say where each group is and the hover names the tasks. A symmetric
    view (``symmetric``, default: the matrix records a symmetrization) has no source/target axes. Above
    ``max_side`` tasks the matrix is averaged over blocks (hover shows the block's range).

    ``dendrogram`` draws, right of the rows, the within-group trees the order follows (an order built
    with ``within="linkage"``), where cells are drawn one by one and the rows shown are whole groups;
    otherwise it is ignored.
    """
    full = order.order
    if subset is not None:
        pos = np.asarray(sorted(int(p) for p in subset), dtype=int)
    else:
        lo, hi = window or (0, len(full))
        pos = np.arange(lo, hi)
    idx = full[pos]
    groups = order.group_of[pos] if len(order.group_of) == len(full) else np.zeros(len(pos), dtype=int)
    names = [matrix.names[i] for i in idx]
    vals = matrix.values[np.ix_(idx, idx)]
    n = len(idx)
    if symmetric is None:
        symmetric = any("symmetri" in p for p in matrix.preprocessing)
    vmax = float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 1.0
    vmax = vmax or 1.0
    fig = go.Figure()
    src_word, tgt_word = ("task", "task") if symmetric else ("source", "target")
    if n <= max_side:
        extra = []
        parts = [f"{src_word} %{{y}} → {tgt_word} %{{x}}<br>T = %{{z:.4g}}"]
        if matrix.uncertainty is not None:
            extra.append(matrix.uncertainty[np.ix_(idx, idx)])
            parts.append(" ± %{customdata[0]:.2g} (s.e.)")
        if matrix.counts is not None:
            extra.append(matrix.counts[np.ix_(idx, idx)])
            parts.append(f"<br>observations: %{{customdata[{len(extra) - 1}]:.0f}}")
        custom = np.stack(extra, axis=-1) if extra else None
        fig.add_trace(go.Heatmap(z=vals, x=names, y=names, customdata=custom,
                                 hovertemplate="".join(parts) + "<extra></extra>", colorscale=COLORSCALE,
                                 zmid=0, zmin=-vmax, zmax=vmax, colorbar=dict(title="T[u,v]", thickness=14),
                                 hoverongaps=False))
        scale, m = 1.0, n
        ticks = names
    else:
        agg = aggregate(vals, max_side)
        e = agg.edges
        labels = [f"{names[e[b]]}…{names[e[b + 1] - 1]}" for b in range(agg.bins)]
        text = [[f"{src_word}s {labels[i]} → {tgt_word}s {labels[j]}<br>mean T = {agg.values[i, j]:.4g}"
                 f"<br>range {agg.low[i, j]:.3g} … {agg.high[i, j]:.3g}" for j in range(agg.bins)]
                for i in range(agg.bins)]
        fig.add_trace(go.Heatmap(z=agg.values, x=labels, y=labels, text=text, hoverinfo="text",
                                 colorscale=COLORSCALE, zmid=0, zmin=-vmax, zmax=vmax,
                                 colorbar=dict(title="mean T", thickness=14)))
        scale, m = agg.bins / n, agg.bins
        ticks = labels
    geo = heatmap_geometry(m, max((len(t) for t in ticks), default=1))
    show_labels = bool(geo["labels"]) and n <= max_side
    side = geo["side"]
    tree = _tree_lines(order, pos) if dendrogram and n <= max_side else None
    tree_px = int(min(160, max(70, side * 0.16))) if tree else 0
    plot_w = side + (TREE_GAP_PX + tree_px if tree else 0)
    # Group runs along the drawn positions: bands and boundary lines.
    runs = []
    start = 0
    for p in range(1, n + 1):
        if p == n or groups[p] != groups[start]:
            runs.append((start, p, int(groups[start])))
            start = p
    band = 16
    for a, b, g in runs:
        x0, x1 = a * scale - 0.5, b * scale - 0.5
        colour = BAND_COLOURS[g % len(BAND_COLOURS)]
        name = group_names[g] if group_names is not None and g < len(group_names) else f"group {g + 1}"
        fig.add_shape(type="rect", xref="x", yref="paper", x0=x0, x1=x1, y0=1.0 + 3 / side, y1=1.0 + (3 + band) / side,
                      fillcolor=colour, line=dict(width=0.5, color="white"), layer="above")
        fig.add_shape(type="rect", xref="paper", yref="y", x0=-(3 + band) / plot_w, x1=-3 / plot_w, y0=x0, y1=x1,
                      fillcolor=colour, line=dict(width=0.5, color="white"), layer="above")
        if (b - a) * scale * side / m >= 8 * len(name) * 0.62 + 6:
            fig.add_annotation(x=(x0 + x1) / 2, y=1.0 + (3 + band / 2) / side, xref="x", yref="paper", text=name,
                               showarrow=False, yanchor="middle", font=dict(size=9, color="white"))
        if len(runs) > 1 and a > 0:
            fig.add_shape(type="line", x0=x0, x1=x0, y0=-0.5, y1=m - 0.5, line=dict(color="black", width=1.2))
            fig.add_shape(type="line", x0=-0.5, x1=m - 0.5, y0=x0, y1=x0, line=dict(color="black", width=1.2))
    axis = dict(type="category", showgrid=False, ticks="", constrain="domain")
    if show_labels:
        axis.update(tickmode="array", tickvals=ticks, ticktext=ticks, tickfont=dict(size=geo["font"]),
                    ticklabelstandoff=band + 6)
    else:
        axis.update(showticklabels=False)
    label_px = geo["label_px"] if show_labels else 0
    band_px = band + 8
    top = (40 if title else 10) + band_px
    left = 30 + band_px + label_px
    bottom = 40 + label_px
    right = 100
    legend_note = "" if show_labels else (
        f"{n} tasks: names are in the hover; the bands along both axes mark the groups")
    x_title = "task" if symmetric else "target (evaluated on)"
    y_title = "task" if symmetric else "source (trained with)"
    fig.update_layout(
        title=dict(text=title, x=0, xanchor="left", y=1 - 8 / (side + top + bottom), yanchor="top") if title else None,
        width=int(plot_w + left + right), height=int(side + top + bottom),
        margin=dict(l=left, r=right, t=top, b=bottom, autoexpand=False),
        xaxis=dict(title=dict(text=x_title + (f" · {legend_note}" if legend_note else ""), standoff=6),
                   side="bottom", tickangle=-90, **axis),
        yaxis=dict(title=dict(text=y_title, standoff=6 if show_labels else band + 10), autorange="reversed", scaleanchor="x", scaleratio=1,
                   **axis),
        plot_bgcolor="white")
    if tree:
        _add_tree(fig, tree, n, side, plot_w)
    return fig


def _tree_lines(order: HeatmapOrder, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The within-group tree lines for the shown positions, or None where there is no tree to draw.

    A tree is drawn when the order follows trees, the shown positions are whole consecutive groups and
    one of them has two tasks or more.
    """
    if len(pos) == 0 or pos[-1] - pos[0] + 1 != len(pos):
        return None
    try:
        xs, ys = within_group_dendrogram(order, (int(pos[0]), int(pos[-1]) + 1))
    except InvalidInputError:  # the order follows no tree, or the rows shown cut a group
        return None
    return (xs, ys) if xs.size else None


def _add_tree(fig: go.Figure, tree: tuple[np.ndarray, np.ndarray], n: int, side: float, plot_w: float) -> None:
    """The tree lines as one trace on their own axes right of the heatmap, rows aligned with its rows.

    The heatmap's row axis is categorical, which takes no in-between positions, so the tree has a linear
    row axis of its own over the same rows. Both row ranges are fixed: autorange would pad the heatmap's
    for the width of the group lines, and zooming would move one without the other (the page's "Zoom
    into" picker zooms instead). One trace, not a shape per line: hundreds of shapes are slow.
    """
    xs, ys = tree
    # Leaves sit at 0 on a scale shared by all groups, so the lowest merge may sit far out: the axis starts
    # just below it and the leaf stems run in from the heatmap's edge, leaving the width to the branching.
    lowest = float(np.min(xs.reshape(-1, 5)[:, 1]))
    start = max(lowest - 0.08 * (1.0 - lowest), 0.0) - 0.02
    fig.add_trace(go.Scatter(x=xs, y=ys, xaxis="x2", yaxis="y2", mode="lines", hoverinfo="skip",
                             line=dict(color=TREE_COLOUR, width=1), showlegend=False))
    fig.update_layout(
        xaxis=dict(domain=[0.0, side / plot_w], autorange=False, range=[-0.5, n - 0.5], fixedrange=True),
        yaxis=dict(autorange=False, range=[n - 0.5, -0.5], fixedrange=True),
        xaxis2=dict(domain=[(side + TREE_GAP_PX) / plot_w, 1.0], anchor="y2", range=[start, 1.04], visible=False,
                    fixedrange=True),
        yaxis2=dict(domain=[0.0, 1.0], anchor="x2", range=[n - 0.5, -0.5], visible=False, fixedrange=True))


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


def harm_bars(rows: pd.DataFrame, target: str) -> go.Figure:
    """Who hurts one target: one bar per source, the largest harm on top."""
    rows = rows.sort_values("harm", ascending=True)  # plotly draws the first bar at the bottom
    fig = go.Figure(go.Bar(x=rows["harm"], y=rows["source"], orientation="h", marker_color="#b2182b",
                           hovertemplate="%{y} hurts " + target + " by %{x:.4g}<extra></extra>"))
    fig.update_layout(height=max(220, 60 + 18 * len(rows)), margin=dict(l=10, r=10, t=30, b=10),
                      title=f"Sources that hurt {target}, worst on top",
                      xaxis=dict(title="harm to the target (−T[source, target])", rangemode="tozero"),
                      yaxis=dict(title="source task", type="category", automargin=True))
    return fig
