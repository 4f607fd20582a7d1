"""Static images of plotly figures through kaleido, which needs a Chrome/Chromium."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import streamlit as st

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def browser_path() -> str | None:
    """The browser kaleido will use: $BROWSER_PATH if it exists, else Debian's chromium or another Chrome."""
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).is_file():
        return env
    for cand in CANDIDATES:
        if Path(cand).is_file():
            return cand
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


NO_BROWSER = ("PNG export needs Chrome or Chromium for plotly's kaleido, and none was found. Install it "
              "(`apt-get install chromium`) or set BROWSER_PATH to a Chrome binary. The SVG (drawn without a "
              "browser) and the interactive HTML below work as they are.")


@st.cache_data(max_entries=8, show_spinner="Rendering the image with kaleido…")
def render_static(fig_json: str, fmt: str, width: int, height: int) -> bytes:
    """PNG/SVG bytes of a figure (given as JSON so the cache can hash it)."""
    import plotly.io as pio

    path = browser_path()
    if path is None:
        raise RuntimeError(NO_BROWSER)
    os.environ.setdefault("BROWSER_PATH", path)
    fig = pio.from_json(fig_json)
    return fig.to_image(format=fmt, width=width, height=height, scale=1 if fmt == "svg" else 2)
