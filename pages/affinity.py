"""Affinity: the heatmap ordered by the current grouping, with in/out transfer per task."""
import streamlit as st

from core.report.ordering import order_by_groups
from ui.coverage import SHOWN, low_count_caption, low_count_entries
from ui.affinity_views import zoom_controls
from ui.figures import MAX_CELLS_SIDE, heatmap, transfer_bars
from ui.grouping import await_background, current_grouping, current_settings
from ui.state import (current_preprocessing, current_source, guard, keep, preprocessed, preprocessing_controls,
                      remember)

st.header("Task affinity")
src = current_source()
m = src.matrix

with guard():
    c1, c2 = st.columns([2, 1])
    with c1:
        pre = preprocessing_controls()
    with c2:
        view = st.radio("View", ["directed", "symmetrized"], horizontal=True, key=keep("view", "directed"),
                        help="symmetrized shows (T + T')/2, the part the grouping objective sees.")
        remember("view")
        order_mode = st.radio("Order", ["by current grouping", "as given"], horizontal=True,
                              key=keep("order", "by current grouping"))
        remember("order")
        tree = False
        if order_mode == "by current grouping":
            tree = st.checkbox("Show the tree inside groups", key=keep("tree", False),
                               help="Draws, right of the rows, the clustering of each group's tasks that orders "
                               "the rows inside the group. Branches that join close to the rows are tasks that "
                               "help each other most; branches that join far out help each other least.")
            remember("tree")
    sym = view == "symmetrized"
    st.caption(f"**{src.label}** · matrix `{src.matrix_name}` · {m.n} tasks · metric: {m.metric} · "
               f"estimator: {m.estimator}. " + (
                   "Each cell is (T[u,v] + T[v,u])/2, the mutual effect of two tasks; " if sym else
                   "Row = source (trained with), column = target (evaluated on); ") + "blue helps, red hurts.")
    shown = preprocessed(src, pre.__class__(diagonal=pre.diagonal, transform=pre.transform, symmetrize=sym))
    labels, note, pending = None, "tasks in their original order", False
    if order_mode == "by current grouping":
        try:
            # First paint does not wait for an SDP: the spectral grouping orders the heatmap until it is solved.
            result = current_grouping(src, wait=False)
            labels = result.labels
            pending = result.details.get("sdp_pending")
            note = (f"ordered by the current grouping ({result.method}, k={result.k}; change it on the Grouping "
                    "page), and inside each group by a clustering of the group's affinities so sub-groups sit "
                    "together; lines and coloured bands mark the groups")
            if pending:
                note = (f"ordered by the spectral grouping (k={result.k}) while the SDP grouping is solved in the "
                        "background (the heatmap re-orders itself when it is ready), "
                        + note.split("), ", 1)[1])
        except Exception as exc:  # still show the heatmap, say why it is unordered
            st.warning(f"Cannot order by the current grouping: {exc}")
    order = order_by_groups(shown.values, labels)
    subset, what = zoom_controls(src, shown, order)
    if subset is None and m.n > MAX_CELLS_SIDE:
        st.info(f"{m.n} tasks: the heatmap shows block means (hover for each block's range). Zoom into a group "
                f"or choose up to {MAX_CELLS_SIDE} tasks to see every entry.")
    st.caption(note + (f" · preprocessing: {', '.join(shown.preprocessing)}" if shown.preprocessing else "")
               + (f" · showing {what}" if what else ""))
    st.plotly_chart(heatmap(shown, order, subset=subset, symmetric=sym, dendrogram=tree), width="content",
                    key="heatmap")
    few = low_count_entries(m)
    if m.counts is not None:
        st.caption(low_count_caption(m, few))
    if len(few):
        with st.expander(f"Entries on few observations ({len(few)}"
                         + (f"; the {SHOWN} with fewest shown)" if len(few) > SHOWN else ")")):
            st.dataframe(few.head(SHOWN), hide_index=True, width="stretch", key="few_observations")
    st.subheader("Transfer in and out per task")
    st.caption("out: how much training with this task helps the others on average (row mean); "
               "in: how much the others help it (column mean). Diagonal left out.")
    st.plotly_chart(transfer_bars(shown, order), width="stretch", key="bars")
    if pending:  # last: the solve starts once this page is drawn
        await_background(src, result.k, current_preprocessing(), current_settings(m.n)["solver"], after_draw=True)
