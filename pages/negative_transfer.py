"""Negative transfer: which source tasks hurt which targets, and how sure we are."""
import numpy as np
import streamlit as st

from core.matrix.transfer import negative_transfers
from ui.state import current_source, guard, keep, remember

st.header("Negative transfer")
src = current_source()
m = src.matrix
st.caption(f"**{src.label}** · {m.n} tasks. A pair (source → target) is negative when training the target "
           "together with the source makes it worse: T[source, target] < 0 (raw values, before preprocessing).")

with guard():
    span = float(np.max(np.abs(m.values))) or 1.0
    c1, c2 = st.columns([1, 1])
    threshold = c1.slider("Show harm of at least", 0.0, round(span, 4), 0.0, step=round(span / 100, 6) or 0.001,
                          key=f"neg.threshold.{src.key}", help="Pairs with T[source, target] < -threshold.")
    target = c2.selectbox("Who hurts this task? (target)", ["all tasks", *m.names], key=keep("neg_target", "all tasks"))
    remember("neg_target")
    table = negative_transfers(m, threshold, target=None if target == "all tasks" else target)
    table = table.assign(magnitude=-table["transfer"])
    has_unc = table["uncertainty"].notna().any()
    if has_unc:
        conf = st.checkbox("Only pairs at least 2 standard errors below 0", key=keep("neg_conf", False))
        remember("neg_conf")
        if conf:
            table = table[table["z"] <= -2]
    total = int((m.values < 0).sum() - (np.diag(m.values) < 0).sum())
    st.write(f"**{len(table)}** pairs shown, of {total} negative off-diagonal pairs and {m.n * (m.n - 1)} in all.")
    columns = {"source": st.column_config.TextColumn("source (trained with)"),
               "target": st.column_config.TextColumn("target (hurt)"),
               "transfer": st.column_config.NumberColumn("T[source, target]", format="%.4g"),
               "magnitude": st.column_config.NumberColumn("harm", format="%.4g"),
               "uncertainty": st.column_config.NumberColumn("std. error", format="%.3g"),
               "z": st.column_config.NumberColumn("z = T / s.e.", format="%.2f",
                                                  help="Standard errors below 0: the confidence of the harm."),
               "count": st.column_config.NumberColumn("observations (seeds/subsets)", format="%d")}
    shown = ["source", "target", "transfer", "magnitude"] + (["uncertainty", "z"] if has_unc else []) + \
        (["count"] if table["count"].notna().any() else [])
    st.dataframe(table[shown], column_config=columns, hide_index=True, width="stretch", key="neg_table")
    if target != "all tasks" and not table.empty:
        st.bar_chart(table.set_index("source")["magnitude"], horizontal=True, x_label="harm", y_label="source")
