"""Damaged run folders in a real browser: the dashboard served by ``streamlit run`` over a runs root whose
alphabetically first runs are damaged (manifest nested 100,000 deep, "seed": 1e999, "tasks": 5, binary
garbage, a symlink loop) opens every page in headless Chromium without an error box or a traceback,
and choosing a damaged run says it is unreadable and why."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.hardening.bad_runs import make_bad_runs  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = os.environ.get("TASKAFFINITY_CHROMIUM", "/usr/bin/chromium")
PAGES = [("", "Task affinity"), ("negative_transfer", "Negative transfer"), ("grouping", "Task grouping"),
         ("benchmarks", "Benchmarks"), ("runs", "Estimation runs"), ("export", "Export")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium) to run this test")
    pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")
    root = tmp_path / "runs"
    make_bad_runs(root)
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), TASKAFFINITY_RUNS_ROOT=str(root))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1", "--server.port",
         str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stdout.read().decode(errors="replace"))
                time.sleep(0.25)
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_idle(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
    page.wait_for_timeout(500)


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
                _wait_idle(page)
                body = page.inner_text("body")
                assert "Traceback" not in body, slug
                assert page.locator('[data-testid="stException"]').count() == 0, slug
                errors = page.locator('[data-testid="stAlertContentError"]')
                assert errors.count() == 0, f"{slug}: " + " | ".join(errors.all_inner_texts())
            # choosing the run whose manifest is nested 100,000 deep: one message saying so, on a working page
            page.goto(url)
            page.get_by_role("heading", name="Task affinity").wait_for(timeout=90_000)
            _wait_idle(page)
            page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
            page.get_by_role("option", name="runs/a1-deep-manifest (unreadable)").click()
            _wait_idle(page)
            errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
            assert len(errors) == 1 and "is unreadable" in errors[0] and "levels deep" in errors[0], errors
            assert str(root.parent) not in page.inner_text("body").replace(str(root), "")
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()
