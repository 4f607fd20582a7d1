"""Benchmarks: what bench/ measured (recovery, solver scaling, estimator accuracy), read from bench/results/*.json."""
import pandas as pd
import plotly.express as px
import streamlit as st

from core.bench_results import load_results, missing
from ui.state import guard, sidebar_source

sidebar_source()  # keep the data picker in the sidebar on every page
st.header("Benchmarks")
st.caption("Each section was written by the command shown with it (bench/report.py saves bench/results/NAME.json "
           "and rebuilds BENCHMARKS.md). Compare numbers within one table: machines are noisy.")


def _rows(data):
    """A list of flat records inside a benchmark's data, if there is one."""
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return data
    if isinstance(data, dict):
        for key in ("rows", "table", "results"):
            if isinstance(data.get(key), list) and data[key] and all(isinstance(r, dict) for r in data[key]):
                return data[key]
    return None


def _chart(name: str, frame: pd.DataFrame):
    """A line chart of the first numeric column against the others, coloured by a method-like column."""
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    cats = [c for c in frame.columns if c not in numeric and frame[c].nunique() <= 12]
    if len(numeric) < 2:
        return None
    x = next((c for c in ("n", "snr", "noise", "k", "budget", "trainings") if c in numeric), numeric[0])
    ys = [c for c in numeric if c != x][:4]
    color = next((c for c in ("method", "estimator", "solver") if c in cats), cats[0] if cats else None)
    y = st.selectbox("y", ys, key=f"bench.y.{name}") if len(ys) > 1 else ys[0]
    fig = px.line(frame.sort_values(x), x=x, y=y, color=color, markers=True,
                  log_x=name == "sdp_scaling", log_y=name == "sdp_scaling" and "second" in y)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10))
    return fig


with guard():
    results = load_results()
    if not results:
        st.info("No benchmark has been run yet.")
    for rec in results:
        st.subheader(rec.title)
        if rec.error:
            st.error(rec.error)
            continue
        st.caption(f"`{rec.command}` · run {rec.run} · {rec.machine}")
        st.markdown(rec.markdown)
        rows = _rows(rec.data)
        if rows:
            try:
                frame = pd.json_normalize(rows)
                fig = _chart(rec.name, frame)
                if fig is not None:
                    st.plotly_chart(fig, width="stretch", key=f"bench.chart.{rec.name}")
            except Exception as exc:  # an odd data layout only loses the chart, not the table
                st.caption(f"(no chart for this data: {exc})")
    todo = missing(results)
    if todo:
        st.subheader("Not run yet")
        for name, title, command in todo:
            st.write(f"- **{title}** (`bench/results/{name}.json`): run {command}.")
