"""Start the dashboard: ``python -m ui.serve [streamlit options]`` is ``streamlit run app.py [options]``.

The one difference is when the pages' modules are imported (pandas, scipy, scikit-learn, plotly, the
engine: about 1.5 s of CPU on 2 cores). ``streamlit run`` imports them when the first browser connects;
here a background thread imports them while the server starts, so a browser opened once the server is up
(the usual case: start it, then click the link) gets its first page about a second sooner
(``bench/bench_dashboard.py`` measures both). The server is Streamlit's own command line, called in this
process with the same arguments.
"""
from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path

from streamlit.web import cli

APP = Path(__file__).resolve().parent.parent / "app.py"
# What the first page (Affinity) and the sidebar import, heaviest first; the rest load on their own pages.
WARM = ("pandas", "scipy.stats", "sklearn.cluster", "sklearn.metrics", "plotly.graph_objects", "core",
        "core.report.ordering", "core.grouping.api", "ui.state", "ui.grouping", "ui.figures", "ui.affinity_views",
        "ui.coverage")


def warm(modules: tuple[str, ...] = WARM) -> None:
    """Import ``modules``; a module that fails is left for the page that needs it to report in its own words."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            return


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    threading.Thread(target=warm, name="warm-imports", daemon=True).start()
    sys.argv = ["streamlit", "run", str(APP), *args]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
