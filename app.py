"""taskaffinity dashboard: `make run`, i.e. `python -m ui.serve` (= `streamlit run app.py`, imports warmed).

Builds the navigation over the pages in pages/ (st.navigation turns off the
legacy pages/ auto-discovery). Each page renders the shared data-source picker in
the sidebar itself (ui.state.current_source). Pages render; core computes.
The tab shows the page's name, and the icon is a local file: the app makes no request
outside the machine it runs on (an emoji or a material icon as page_icon is fetched from a CDN).
"""
from pathlib import Path

import streamlit as st

from ui.state import VIA_APP

ICON = str(Path(__file__).resolve().parent / "ui" / "static" / "favicon.png")

# No icon per page: Streamlit turns a page icon into the tab's favicon, fetched from fonts.gstatic.com.
PAGES = [
    st.Page("pages/affinity.py", title="Affinity", default=True),
    st.Page("pages/negative_transfer.py", title="Negative transfer"),
    st.Page("pages/grouping.py", title="Grouping"),
    st.Page("pages/benchmarks.py", title="Benchmarks"),
    st.Page("pages/validation.py", title="Validation"),
    st.Page("pages/runs.py", title="Runs"),
    st.Page("pages/export.py", title="Export"),
]

page = st.navigation(PAGES)
st.session_state[VIA_APP] = True
st.set_page_config(page_title=f"{page.title} · taskaffinity", page_icon=ICON, layout="wide")
page.run()
