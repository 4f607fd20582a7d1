"""Affinity page controls that are more than one widget: zooming into one group or a chosen set of tasks."""
from __future__ import annotations

import numpy as np
import streamlit as st

from core.matrix.affinity import AffinityMatrix
from core.report.ordering import HeatmapOrder
from ui.state import Source

ALL = "all tasks"
CHOOSE = "tasks I choose…"


def zoom_options(order: HeatmapOrder) -> list[str]:
    """``all tasks``, one entry per group of the order (with its size), and a free choice of tasks."""
    sizes = np.bincount(order.group_of) if len(order.boundaries) else []
    groups = [f"group {g + 1} ({int(s)} tasks)" for g, s in enumerate(sizes)]
    return [ALL, *groups, CHOOSE]


def zoom_controls(source: Source, matrix: AffinityMatrix, order: HeatmapOrder) -> tuple[np.ndarray | None, str]:
    """Render the zoom picker; return the positions (in the order) to show, or None for all, and a description."""
    options = zoom_options(order)
    key = f"zoom.{source.key}"
    if st.session_state.get(key) not in options:  # a new grouping renumbers the groups: start from all tasks
        st.session_state[key] = ALL
    c1, c2 = st.columns([1, 3])
    choice = c1.selectbox("Zoom into", options, key=key,
                          help="One group, or tasks you pick: the sub-matrix with every label readable. "
                          f"Pick '{ALL}' to come back.")
    if choice == ALL:
        return None, ""
    if choice == CHOOSE:
        names_in_order = [matrix.names[i] for i in order.order]
        picked = c2.multiselect("Tasks to show (in heatmap order)", names_in_order, key=f"zoom.pick.{source.key}",
                                placeholder="type task names")
        if len(picked) < 2:
            c2.caption("Pick at least 2 tasks; the whole matrix is shown meanwhile.")
            return None, ""
        pos = {name: p for p, name in enumerate(names_in_order)}
        return np.array(sorted(pos[x] for x in picked)), f"{len(picked)} chosen tasks"
    g = options.index(choice) - 1
    return np.flatnonzero(order.group_of == g), choice
