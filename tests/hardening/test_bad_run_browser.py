"""Damaged run folders in a real browser: the dashboard served by ``streamlit run`` over a runs root whose
alphabetically first runs are damaged (manifest nested 100,000 deep, "seed": 1e999, "tasks": 5, binary
garbage, a symlink loop) opens every page in headless Chromium without an error box or a traceback,
and choosing a damaged run says it is unreadable and why."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.browser import CHROMIUM, require_browser, streamlit_server, wait_idle
from tests.hardening.bad_runs import make_bad_runs  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PAGES = [("", "Task affinity"), ("negative_transfer", "Negative transfer"), ("grouping", "Task grouping"),
         ("benchmarks", "Benchmarks"), ("runs", "Estimation runs"), ("export", "Export")]


@pytest.fixture()
def server(tmp_path):
    require_browser()
    root = tmp_path / "runs"
    make_bad_runs(root)
    with streamlit_server(root) as (url, proc):
        yield url, root


def test_damaged_runs_take_no_page_down_in_chromium(server):
    from playwright.sync_api import sync_playwright

    url, root = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            for slug, header in PAGES:
                page.goto(f"{url}/{slug}")
                page.get_by_role("heading", name=header).wait_for(timeout=90_000)
                wait_idle(page)
                body = page.inner_text("body")
                assert "Traceback" not in body, slug
                assert page.locator('[data-testid="stException"]').count() == 0, slug
                errors = page.locator('[data-testid="stAlertContentError"]')
                assert errors.count() == 0, f"{slug}: " + " | ".join(errors.all_inner_texts())
            # choosing the run whose manifest is nested 100,000 deep: one message saying so, on a working page
            page.goto(url)
            page.get_by_role("heading", name="Task affinity").wait_for(timeout=90_000)
            wait_idle(page)
            page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
            page.get_by_role("option", name="runs/a1-deep-manifest (unreadable)").click()
            wait_idle(page)
            errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
            assert len(errors) == 1 and "is unreadable" in errors[0] and "levels deep" in errors[0], errors
            assert str(root.parent) not in page.inner_text("body").replace(str(root), "")
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()
