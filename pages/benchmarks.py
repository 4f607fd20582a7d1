"""Benchmarks: what bench/ measured (recovery, solver scaling, estimator accuracy), read from bench/results/*.json."""
import streamlit as st

from ui.services.bench_results import load_results, missing
from ui.bench_figures import charts_for, headline_for
from ui.state import guard, shown, sidebar_source

sidebar_source()  # keep the data picker in the sidebar on every page
st.header("Benchmarks")
# Wide tables scroll sideways instead of being cut off at the page's edge.
st.markdown("<style>[data-testid='stMarkdownContainer'] table{display:block;overflow-x:auto;max-width:100%}</style>",
            unsafe_allow_html=True)
st.caption("Each section was written by the command shown with it (bench/report.py saves bench/results/NAME.json "
           "and rebuilds BENCHMARKS.md). Compare numbers within one table: machines are noisy.")

with guard():
    results = load_results()
    if not results:
        st.info("No benchmark has been run yet.")
    for rec in results:
        st.subheader(rec.title)
        if rec.error:
            st.error(shown(rec.error))
            continue
        headline = headline_for(rec.name, rec.data)
        if headline:
            st.markdown(headline)
        st.caption(f"`{rec.command}` · run {rec.run} · {rec.machine}")
        try:
            charts = charts_for(rec.name, rec.data)
        except Exception as exc:  # an odd data layout only loses the chart, not the tables
            charts = []
            st.caption(f"(no chart for this data: {type(exc).__name__}: {exc})")
        for i, (caption, fig) in enumerate(charts):
            st.plotly_chart(fig, width="stretch", key=f"bench.chart.{rec.name}.{i}")
            st.caption(caption)
        with st.expander("Tables and notes", expanded=not charts):
            st.markdown(rec.markdown)
    todo = missing(results)
    if todo:
        st.subheader("Not run yet")
        for name, title, command in todo:
            st.write(f"- **{title}** (`bench/results/{name}.json`): run {command}.")
