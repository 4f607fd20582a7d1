"""The Validation page in a real headless Chromium: a finished validation's result view, launching with the
budget shown, stopping it, and the Grouping page's hand-over. Same approach as test_dashboard_browser.py."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.evaluation.validation.orchestrator import run_validation

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("TASKAFFINITY_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium) to run this test")
    pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")
    root = tmp_path_factory.mktemp("valroot")
    run = root / "planted"
    shutil.copytree(ROOT / "sample_data" / "est-planted-pairwise", run,
                    ignore=shutil.ignore_patterns("validations", "run.lock"))
    # a finished validation to show (real trainings: 3 groups + one model on all tasks, 2 seeds)
    run_validation(run, name="done", method="sdp", k=3, seeds=[0, 1], baselines="all")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), TASKAFFINITY_RUNS_ROOT=str(root), OMP_NUM_THREADS="1")
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
        yield url, run
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_idle(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
    page.wait_for_timeout(300)


def _assert_clean(page, where: str) -> None:
    assert "Traceback" not in page.inner_text("body"), where
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{where}: " + " | ".join(errors.all_inner_texts())
    assert page.locator('[data-testid="stException"]').count() == 0, where


def test_validation_page_in_chromium(server):
    from playwright.sync_api import sync_playwright

    url, run = server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        try:
            # the result view of the finished validation
            page.goto(f"{url}/validation")
            page.get_by_role("heading", name="Validation", exact=True).wait_for(timeout=60_000)
            page.get_by_text("the grouping beats one model on all tasks", exact=False).first.wait_for(timeout=60_000)
            page.locator(".js-plotly-plot .barlayer").first.wait_for(timeout=60_000)
            page.locator('[data-testid="stDataFrame"]').nth(1).wait_for(timeout=60_000)
            _wait_idle(page)
            body = page.inner_text("body")
            assert "Predicted vs measured" in body and "Report (HTML)" in body
            assert page.locator(".js-plotly-plot").count() >= 3  # strategies, differences, predicted vs measured
            _assert_clean(page, "validation result")
            page.screenshot(path=str(ARTIFACTS / "validation-result.png"), full_page=True)

            # hand-over from the Grouping page
            page.goto(f"{url}/grouping")
            page.get_by_role("heading", name="Task grouping").wait_for(timeout=60_000)
            _wait_idle(page)
            page.get_by_text("Validate this grouping (train it", exact=False).click()
            page.get_by_role("button", name="Validate this grouping").click()
            page.get_by_role("heading", name="Validation", exact=True).wait_for(timeout=60_000)
            page.get_by_text("the grouping from the Grouping page").wait_for(timeout=60_000)
            _wait_idle(page)
            # the budget is shown before starting
            assert page.get_by_text("Trainings", exact=True).count() >= 1
            assert page.get_by_text("Estimated time", exact=True).count() >= 1
            page.get_by_label("Validation name").fill("ui")
            page.get_by_label("Validation name").press("Enter")
            _wait_idle(page)
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
            _wait_idle(page)
            _assert_clean(page, "validation stopped")
            page.screenshot(path=str(ARTIFACTS / "validation-stopped.png"), full_page=True)
        finally:
            browser.close()
