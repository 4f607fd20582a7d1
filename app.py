"""taskaffinity dashboard: `streamlit run app.py`.

Builds the navigation over the pages in pages/ (st.navigation turns off the
legacy pages/ auto-discovery). Each page renders the shared data-source picker in
the sidebar itself (ui.state.current_source). Pages render; core computes.
"""
import streamlit as st

st.set_page_config(page_title="taskaffinity", page_icon=":material/workspaces:", layout="wide")

PAGES = [
    st.Page("pages/affinity.py", title="Affinity", icon=":material/grid_on:", default=True),
    st.Page("pages/negative_transfer.py", title="Negative transfer", icon=":material/trending_down:"),
    st.Page("pages/grouping.py", title="Grouping", icon=":material/workspaces:"),
    st.Page("pages/benchmarks.py", title="Benchmarks", icon=":material/bar_chart:"),
    st.Page("pages/validation.py", title="Validation", icon=":material/fact_check:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/play_circle:"),
    st.Page("pages/export.py", title="Export", icon=":material/download:"),
]

st.navigation(PAGES).run()
