"""The dashboard in a real headless Chromium: every page renders, k changes the groups, no error boxes.

Starts ``streamlit run app.py`` on a free localhost port and drives Debian's
chromium with playwright (playwright's own browsers are never downloaded).
Screenshots go to test-artifacts/.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("TASKAFFINITY_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
# (url slug, page header, a selector present once the page has rendered its content)
PAGES = [("", "Task affinity", ".js-plotly-plot .hm, .js-plotly-plot .heatmaplayer"),
         ("negative_transfer", "Negative transfer", '[data-testid="stDataFrame"] canvas'),
         ("grouping", "Task grouping", '[data-testid="stDataFrame"] canvas'),
         ("benchmarks", "Benchmarks", ".js-plotly-plot .barlayer"),
         ("runs", "Estimation runs", '[data-testid="stDataFrame"] canvas'),
         ("export", "Export", "text=Report (Markdown)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium) to run this test")
    pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TASKAFFINITY_RUNS_ROOT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1", "--server.port",
         str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stdout.read().decode(errors="replace"))
                time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_idle(page, timeout_ms: int = 30_000) -> None:
    """Wait until Streamlit has finished the script run (no 'Running' status widget)."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
    page.wait_for_timeout(300)


def _assert_clean(page, where: str) -> None:
    body = page.inner_text("body")
    assert "Traceback" not in body, where
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{where}: " + " | ".join(errors.all_inner_texts())
    assert page.locator('[data-testid="stException"]').count() == 0, where


def test_every_page_in_chromium(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            for slug, header, ready in PAGES:
                page.goto(f"{server}/{slug}")
                page.get_by_role("heading", name=header).wait_for(timeout=60_000)
                page.locator(ready).first.wait_for(timeout=60_000)
                _wait_idle(page, 60_000)
                page.wait_for_timeout(700)  # grids and plots paint after they attach
                _assert_clean(page, slug or "affinity")
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{slug or 'affinity'}.png"), full_page=True)

            page.goto(f"{server}/grouping")
            page.get_by_role("heading", name="Task grouping").wait_for(timeout=60_000)
            _wait_idle(page, 60_000)
            groups = page.get_by_role("heading", name="groups (", exact=False)
            before = groups.first.inner_text()
            k_input = page.get_by_label("Number of groups k")
            k_input.fill("6")
            k_input.press("Enter")
            page.get_by_role("heading", name="6 groups", exact=False).wait_for(timeout=60_000)
            _wait_idle(page, 60_000)
            assert groups.first.inner_text() != before
            _assert_clean(page, "grouping k=6")
            page.screenshot(path=str(ARTIFACTS / "dashboard-grouping-k6.png"), full_page=True)
        finally:
            browser.close()
