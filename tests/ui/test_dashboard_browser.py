"""The dashboard in a real headless Chromium: every page renders, k changes the groups, no error boxes.

Starts the dashboard as ``make run`` does (``python -m ui.serve``) on a free localhost port and drives Debian's
chromium with playwright (playwright's own browsers are never downloaded).
Screenshots go to test-artifacts/.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import ARTIFACTS, assert_clean, chromium_page, require_browser, streamlit_server, wait_idle

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
# (sidebar link, page header, a selector present once the page has rendered its content, screenshot name)
PAGES = [("Affinity", "Task affinity", ".js-plotly-plot .hm, .js-plotly-plot .heatmaplayer", "affinity"),
         ("Negative transfer", "Negative transfer", '[data-testid="stDataFrame"] canvas', "negative_transfer"),
         ("Grouping", "Task grouping", '[data-testid="stTable"]', "grouping"),
         ("Benchmarks", "Benchmarks", ".js-plotly-plot .barlayer", "benchmarks"),
         ("Runs", "Estimation runs", '[data-testid="stDataFrame"] canvas', "runs"),
         ("Export", "Export", "text=Report (Markdown)", "export")]
#: The bundled runs of every size the dashboard is made for.
SIZES = ("planted-12", "planted-60", "planted-200", "planted-500")


@pytest.fixture(scope="module")
def server():
    require_browser()
    with streamlit_server() as (url, proc):
        yield url


def _pick_run(page, name: str) -> None:
    """Choose a run in the sidebar picker (the session keeps it across page switches)."""
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(has_text="Run").first
    box.click()
    page.keyboard.type(name)
    page.keyboard.press("Enter")
    page.locator('[data-testid="stSidebar"]').get_by_text(f"{name.split('-')[1]} tasks ·").wait_for(timeout=60_000)
    wait_idle(page, 60_000)


def _visit(page, link: str, header: str, ready: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=link).first.click()
    page.get_by_role("heading", name=header).wait_for(timeout=90_000)
    page.locator(ready).first.wait_for(timeout=90_000)
    wait_idle(page, 90_000)
    page.wait_for_timeout(500)  # grids and plots paint after they attach


def test_every_page_at_every_size_in_chromium(server):
    """Every page on the 12-, 60-, 200- and 500-task runs: no error element, no request off this machine."""
    ARTIFACTS.mkdir(exist_ok=True)
    outside: list[str] = []
    with chromium_page(1600, 1000) as page:
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:",
                                                                                          "blob:")) else None)
        page.goto(server)
        page.get_by_role("heading", name="Task affinity").wait_for(timeout=90_000)
        assert page.title() == "Affinity · taskaffinity"
        for run in SIZES:
            _pick_run(page, run)
            for link, header, ready, shot in PAGES:
                _visit(page, link, header, ready)
                assert_clean(page, f"{run} {shot}")
                assert page.title() == f"{link} · taskaffinity"
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{run}-{shot}.png"), full_page=True)
    assert not outside, f"requests left the machine: {outside[:5]}"


def test_k_change_in_chromium(server):
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(1400, 1000) as page:
        page.goto(f"{server}/grouping")
        page.get_by_role("heading", name="Task grouping").wait_for(timeout=60_000)
        wait_idle(page, 60_000)
        groups = page.get_by_role("heading", name="groups (", exact=False)
        before = groups.first.inner_text()
        k_input = page.get_by_label("Number of groups k")
        k_input.fill("6")
        k_input.press("Enter")
        page.get_by_role("heading", name="6 groups", exact=False).wait_for(timeout=60_000)
        wait_idle(page, 60_000)
        assert groups.first.inner_text() != before
        assert_clean(page, "grouping k=6")
        page.screenshot(path=str(ARTIFACTS / "dashboard-grouping-k6.png"), full_page=True)
        # The user picks light or dark in the main menu.
        page.get_by_test_id("stMainMenu").click()
        page.get_by_test_id("stMainMenuItem-theme-Dark").click()
        page.wait_for_timeout(800)
        bg = page.evaluate("getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor")
        rgb = [int(x) for x in bg[bg.index("(") + 1:bg.index(")")].split(",")[:3]]
        assert sum(rgb) < 3 * 80, bg
        page.screenshot(path=str(ARTIFACTS / "dashboard-grouping-dark.png"), full_page=True)


def test_tree_inside_groups_and_the_rounding_panel_in_chromium(server):
    """The Affinity page's tree beside the rows (one line trace next to the heatmap) and the Grouping page's
    'what c did' panel, on the 60-task run."""
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(1600, 1000) as page:
        page.goto(server)
        _pick_run(page, "planted-60")
        _visit(page, *PAGES[0][:3])
        # The SDP for the first view starts once the browser has drawn it (its first poll), then re-orders it.
        page.get_by_text("ordered by the current grouping (sdp", exact=False).wait_for(timeout=60_000)
        page.get_by_text("Show the tree inside groups").click()
        page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=60_000)
        wait_idle(page, 60_000)
        assert_clean(page, "affinity tree")
        assert page.locator(".js-plotly-plot .heatmaplayer").count() >= 1
        page.locator(".js-plotly-plot").first.screenshot(path=str(ARTIFACTS / "dashboard-affinity-tree.png"))
        _visit(page, *PAGES[2][:3])
        page.get_by_text("what it did", exact=False).first.click()
        page.get_by_text("The links form", exact=False).wait_for(timeout=60_000)
        words = page.get_by_text("The links form", exact=False).first.inner_text()
        assert "None" not in words and "groups;" in words
        assert_clean(page, "grouping rounding panel")
        page.screenshot(path=str(ARTIFACTS / "dashboard-grouping-rounding.png"), full_page=True)
