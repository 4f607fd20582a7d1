"""The Validation page in a real headless Chromium: a finished validation's result view, launching with the
budget shown, stopping it, and the Grouping page's hand-over. Same approach as test_dashboard_browser.py."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from core.evaluation.validation.orchestrator import run_validation
from tests.browser import ARTIFACTS, assert_clean, chromium_page, require_browser, streamlit_server, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    root = tmp_path_factory.mktemp("valroot")
    run = root / "planted"
    shutil.copytree(ROOT / "sample_data" / "est-planted-pairwise", run,
                    ignore=shutil.ignore_patterns("validations", "run.lock"))
    # a finished validation to show (real trainings: 3 groups + one model on all tasks, 2 seeds)
    run_validation(run, name="done", method="sdp", k=3, seeds=[0, 1], baselines="all")
    with streamlit_server(root, OMP_NUM_THREADS="1") as (url, proc):
        yield url, run


def test_validation_page_in_chromium(server):
    url, run = server
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(1400, 1100) as page:
        # the result view of the finished validation
        page.goto(f"{url}/validation")
        page.get_by_role("heading", name="Validation", exact=True).wait_for(timeout=60_000)
        page.get_by_text("the grouping beats one model on all tasks", exact=False).first.wait_for(timeout=60_000)
        page.locator(".js-plotly-plot .barlayer").first.wait_for(timeout=60_000)
        page.locator('[data-testid="stDataFrame"]').nth(1).wait_for(timeout=60_000)
        wait_idle(page)
        body = page.inner_text("body")
        assert "Predicted vs measured" in body and "Report (HTML)" in body
        assert page.locator(".js-plotly-plot").count() >= 3  # strategies, differences, predicted vs measured
        assert_clean(page, "validation result")
        page.screenshot(path=str(ARTIFACTS / "validation-result.png"), full_page=True)

        # hand-over from the Grouping page
        page.goto(f"{url}/grouping")
        page.get_by_role("heading", name="Task grouping").wait_for(timeout=60_000)
        wait_idle(page)
        page.get_by_text("Validate this grouping (train it", exact=False).click()
        page.get_by_role("button", name="Validate this grouping").click()
        page.get_by_role("heading", name="Validation", exact=True).wait_for(timeout=60_000)
        page.get_by_text("the grouping from the Grouping page").wait_for(timeout=60_000)
        wait_idle(page)
        # the budget is shown before starting
        assert page.get_by_text("Trainings", exact=True).count() >= 1
        assert page.get_by_text("Estimated time", exact=True).count() >= 1
        page.get_by_label("Validation name").fill("ui")
        page.get_by_label("Validation name").press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Validate", exact=True).click()
        page.get_by_text("Started validation ui", exact=False).wait_for(timeout=60_000)
        stop = page.get_by_role("button", name="Stop after the training in flight")
        stop.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "validation-running.png"), full_page=True)
        stop.click()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            man = run / "validations" / "ui" / "manifest.json"
            if man.is_file() and '"status": "interrupted"' in man.read_text():
                break
            time.sleep(0.5)
        else:
            pytest.fail("the stopped validation never recorded status interrupted")
        page.reload()
        page.get_by_role("button", name="Resume").wait_for(timeout=60_000)
        wait_idle(page)
        assert_clean(page, "validation stopped")
        page.screenshot(path=str(ARTIFACTS / "validation-stopped.png"), full_page=True)
