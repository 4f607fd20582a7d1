"""Negative transfer: which source tasks hurt which targets, and how sure we are."""
import numpy as np
import streamlit as st

from core.matrix.transfer import negative_transfers
from ui.figures import harm_bars
from ui.negative_views import CLEAR, EVERY, STRONGEST, negative_columns, pick_pairs, styled
from ui.state import current_source, guard, keep, remember

st.header("Negative transfer")
src = current_source()
m = src.matrix
st.caption(f"**{src.label}** · {m.n} tasks. A pair (source → target) is negative when training the target "
           "together with the source makes it worse: T[source, target] < 0 (raw values, before preprocessing).")

with guard():
    table = negative_transfers(m, 0.0)
    has_unc = bool(table["uncertainty"].notna().any())
    modes = [CLEAR, STRONGEST, EVERY] if has_unc else [STRONGEST, EVERY]
    c1, c2 = st.columns([1, 1])
    mode = c1.radio("Show", modes, key=keep("neg_mode", modes[0], modes),
                    help="Clearly harmful: the harm is at least 2 standard errors, so noise alone hardly explains "
                    "it. Strongest: the largest harms, whatever their uncertainty.")
    remember("neg_mode")
    target = c2.selectbox("Who hurts this task? (target)", ["all tasks", *m.names], key=keep("neg_target", "all tasks"))
    remember("neg_target")
    span = float(np.max(np.abs(m.values))) or 1.0
    threshold = c2.slider("Only harm of at least", 0.0, round(span, 4), 0.0, step=round(span / 100, 6) or 0.001,
                          key=f"neg.threshold.{src.key}", help="Pairs with T[source, target] < -threshold.")
    shown, headline = pick_pairs(table, mode, threshold=threshold, target=None if target == "all tasks" else target,
                                 n=m.n)
    st.markdown(headline)
    cols, config = negative_columns(shown)
    st.dataframe(styled(shown[cols]), column_config=config, hide_index=True, width="stretch", key="neg_table")
    if target != "all tasks" and not shown.empty:
        st.plotly_chart(harm_bars(shown, target), width="stretch", key="neg_bars")
