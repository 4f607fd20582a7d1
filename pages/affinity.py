"""Affinity: the heatmap ordered by the current grouping, with in/out transfer per task."""
import streamlit as st

from core.report.ordering import order_by_groups
from ui.coverage import SHOWN, low_count_caption, low_count_entries
from ui.figures import MAX_CELLS_SIDE, heatmap, transfer_bars
from ui.grouping import current_grouping
from ui.state import current_source, guard, keep, preprocessed, preprocessing_controls, remember

st.header("Task affinity")
src = current_source()
m = src.matrix
st.caption(f"**{src.label}** · matrix `{src.matrix_name}` · {m.n} tasks · metric: {m.metric} · "
           f"estimator: {m.estimator}. Row = source (trained with), column = target (evaluated on); "
           "blue helps, red hurts.")

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
    shown = preprocessed(src, pre.__class__(diagonal=pre.diagonal, transform=pre.transform,
                                            symmetrize=view == "symmetrized"))
    labels, note = None, "tasks in their original order"
    if order_mode == "by current grouping":
        try:
            result = current_grouping(src)
            labels = result.labels
            note = (f"ordered by the current grouping ({result.method}, k={result.k}; "
                    "change it on the Grouping page); lines mark group boundaries")
        except Exception as exc:  # still show the heatmap, say why it is unordered
            st.warning(f"Cannot order by the current grouping: {exc}")
    order = order_by_groups(shown.values, labels)
    window = None
    if m.n > 60:
        lo, hi = st.slider("Zoom: positions shown (in the current order)", 0, m.n, (0, m.n), key=f"zoom.{src.key}")
        if hi - lo < 2:
            st.warning("Pick a range of at least 2 tasks.")
            lo, hi = 0, m.n
        window = (lo, hi)
        if hi - lo > MAX_CELLS_SIDE:
            st.info(f"{hi - lo} tasks: the heatmap shows block means (hover for each block's range). "
                    f"Narrow the range to {MAX_CELLS_SIDE} or fewer tasks to see every entry.")
    st.caption(note + (f" · preprocessing: {', '.join(shown.preprocessing)}" if shown.preprocessing else ""))
    st.plotly_chart(heatmap(shown, order, window=window), width="stretch", key="heatmap")
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
