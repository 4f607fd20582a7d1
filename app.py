"""taskaffinity dashboard: `streamlit run app.py`.

Builds the navigation over the pages in pages/ (st.navigation turns off the
legacy pages/ auto-discovery). Each page renders the shared data-source picker in
the sidebar itself (ui.state.current_source). Pages render; core computes.
"""
import streamlit as st

st.set_page_config(page_title="taskaffinity", page_icon="🧩", layout="wide")

PAGES = [
    st.Page("pages/affinity.py", title="Affinity", icon="🟦", default=True),
    st.Page("pages/negative_transfer.py", title="Negative transfer", icon="🔻"),
    st.Page("pages/grouping.py", title="Grouping", icon="🧩"),
    st.Page("pages/benchmarks.py", title="Benchmarks", icon="📊"),
    st.Page("pages/runs.py", title="Runs", icon="▶️"),
    st.Page("pages/export.py", title="Export", icon="📤"),
]

st.navigation(PAGES).run()
