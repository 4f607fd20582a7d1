"""A link to a page (a bookmark, a shared URL) opened as the first request of a fresh server shows the
page inside the app's own navigation, not Streamlit's automatic list of file names."""
import pytest

from tests.browser import CHROMIUM, require_browser, streamlit_server, wait_idle

pytestmark = [pytest.mark.browser]


def test_a_deep_link_to_a_fresh_server_opens_the_page_in_the_apps_navigation():
    require_browser()
    from playwright.sync_api import sync_playwright

    with streamlit_server(quiet=True) as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url + "/grouping")
            page.wait_for_function("() => document.title.includes('taskaffinity')", timeout=120_000)
            wait_idle(page, 120_000)
            assert page.title() == "Grouping · taskaffinity"
            nav = page.locator('[data-testid="stSidebarNav"]').inner_text().split()
            assert "Negative" in nav and "app" not in nav and "negative" not in nav, nav
            assert page.get_by_role("heading", name="Task grouping").count() == 1
        finally:
            browser.close()
