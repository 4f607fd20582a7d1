"""Export: groups and matrices (CSV, JSON), the heatmap (PNG, SVG, HTML) and a one-page report."""
import json

import numpy as np
import streamlit as st

from core.grouping.export import grouping_json, groups_csv
from core.report.ordering import order_by_groups
from core.report.svg import heatmap_svg
from core.matrix.io import to_csv_text, to_json_dict
from core.report.page import ReportInput, to_html, to_markdown
from ui.figures import heatmap
from ui.grouping import current_grouping
from ui.images import NO_BROWSER, browser_path, render_static
from ui.state import current_preprocessing, current_source, guard, preprocessed, shown

st.header("Export")
src = current_source()
m = src.matrix
slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in src.label.split("/")[-1].rsplit(".", 1)[0])

with guard():
    pre = current_preprocessing()
    pm = preprocessed(src, pre)
    result = None
    try:
        result = current_grouping(src)
    except Exception as exc:
        st.warning(f"No grouping to export ({exc}); fix it on the Grouping page. Matrices can still be exported.")
    st.caption(f"**{src.label}** · {m.n} tasks · grouping: "
               + (f"{result.method}, k={result.k} (as set on the Grouping page)" if result else "none")
               + f" · preprocessing: {pre.describe()}")

    st.subheader("Groups")
    if result is not None:
        c1, c2 = st.columns(2)
        c1.download_button("Groups (CSV: task, group)", groups_csv(result), f"{slug}-groups.csv", "text/csv",
                           on_click="ignore", key="dl_groups_csv")
        c2.download_button("Groups (JSON, self-describing)", grouping_json(result, pm, source=src.label),
                           f"{slug}-groups.json", "application/json", on_click="ignore", key="dl_groups_json")

    st.subheader("Matrices")
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("Raw matrix (CSV)", to_csv_text(m), f"{slug}-affinity.csv", "text/csv", on_click="ignore", key="dl_raw_csv")
    c2.download_button("Raw matrix (JSON)", json.dumps(to_json_dict(m), indent=1), f"{slug}-affinity.json",
                       "application/json", on_click="ignore", key="dl_raw_json")
    c3.download_button("Preprocessed (CSV)", to_csv_text(pm), f"{slug}-affinity-preprocessed.csv", "text/csv",
                       on_click="ignore", key="dl_pre_csv")
    c4.download_button("Preprocessed (JSON)", json.dumps(to_json_dict(pm), indent=1),
                       f"{slug}-affinity-preprocessed.json", "application/json", on_click="ignore", key="dl_pre_json")

    st.subheader("Heatmap")
    order = order_by_groups(pm.values, result.labels if result else None)
    fig = heatmap(pm, order, title=f"{src.label}: task affinity", symmetric=pre.symmetrize)
    names = [pm.names[i] for i in order.order]
    vals = pm.values[np.ix_(order.order, order.order)]
    svg = heatmap_svg(vals, names, boundaries=order.boundaries, title=f"{src.label}: task affinity")
    c1, c2, c3 = st.columns(3)
    c1.download_button("SVG (drawn here, no browser needed)", svg, f"{slug}-heatmap.svg", "image/svg+xml",
                       on_click="ignore", key="dl_svg")
    c2.download_button("Interactive HTML (plotly)", fig.to_html(include_plotlyjs=True, full_html=True),
                       f"{slug}-heatmap.html", "text/html", on_click="ignore", key="dl_html")
    if browser_path() is None:
        c3.info(NO_BROWSER)
    elif c3.button("Render PNG and plotly SVG (kaleido, a few seconds)", key="render_png"):
        st.session_state["render_for"] = src.key
    if browser_path() is not None and st.session_state.get("render_for") == src.key:
        try:
            # The figure's own size (set from the matrix): the picture is what the page shows, nothing clipped.
            width, height = int(fig.layout.width or 900), int(fig.layout.height or 800)
            png = render_static(fig.to_json(), "png", width, height)
            psvg = render_static(fig.to_json(), "svg", width, height)
            c3.download_button("PNG (kaleido)", png, f"{slug}-heatmap.png", "image/png", on_click="ignore", key="dl_png")
            c3.download_button("SVG (kaleido)", psvg, f"{slug}-heatmap-plotly.svg", "image/svg+xml", on_click="ignore", key="dl_ksvg")
        except Exception as exc:
            c3.error(shown(f"Static export failed ({type(exc).__name__}: {str(exc)[:300]}). {NO_BROWSER}"))

    st.subheader("Report")
    grouping = {} if result is None else dict(
        method=result.method, k=result.k, objective=result.objective, sdp_value=result.sdp_value, gap=result.gap,
        seconds=result.seconds)
    inp = ReportInput(matrix=pm, source=src.label, groups=result.groups if result else None, grouping=grouping,
                      manifest=src.manifest)
    md = to_markdown(inp)
    c1, c2 = st.columns(2)
    c1.download_button("Report (Markdown)", md, f"{slug}-report.md", "text/markdown", on_click="ignore", key="dl_md")
    c2.download_button("Report (HTML, heatmap embedded)", to_html(inp, heatmap_svg=svg if m.n <= 120 else None),
                       f"{slug}-report.html", "text/html", on_click="ignore", key="dl_report_html")
    with st.expander("Preview the report"):
        st.markdown(md)
