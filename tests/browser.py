"""What the dashboard tests share: the app and its pages, a real Streamlit server of this checkout, headless Chromium."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("TASKAFFINITY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
ARTIFACTS = ROOT / "test-artifacts"
APP = str(ROOT / "app.py")
#: The pages the AppTest suites open (Validation has its own tests: it needs a run with validations).
PAGE_FILES = ["pages/affinity.py", "pages/negative_transfer.py", "pages/grouping.py", "pages/benchmarks.py",
              "pages/runs.py", "pages/export.py"]


def require_browser() -> None:
    """Skip, with the reason, where Debian's chromium or playwright is missing."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium) to run this test")
    pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(runs_root: Path | str | None = None, *, quiet: bool = False,
                     **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``(url, process)`` of the dashboard as ``make run`` serves it (``python -m ui.serve``, i.e. ``streamlit run
    app.py``) on a free local port, stopped on exit.

    ``runs_root`` sets ``TASKAFFINITY_RUNS_ROOT`` (None: the checkout's defaults); ``env`` adds variables.
    """
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    environ.pop("TASKAFFINITY_RUNS_ROOT", None)
    if runs_root is not None:
        environ["TASKAFFINITY_RUNS_ROOT"] = str(runs_root)
    port = free_port()
    out = subprocess.DEVNULL if quiet else subprocess.PIPE
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.serve", "--server.address", "127.0.0.1", "--server.port",
         str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT if not quiet else subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, proc
    finally:
        stop(proc)


def wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 60.0) -> None:
    """Wait until the server at ``url`` answers its health check; fail with its output if it exits."""
    for _ in range(int(seconds / 0.25)):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the dashboard server exited: "
                                   + (proc.stdout.read().decode(errors="replace") if proc.stdout else ""))
            time.sleep(0.25)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has finished the script run (no 'Running' status widget)."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
    page.wait_for_timeout(300)


def assert_clean(page, where: str) -> None:
    """No traceback, error element or exception on the page."""
    assert "Traceback" not in page.inner_text("body"), where
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{where}: " + " | ".join(errors.all_inner_texts())
    assert page.locator('[data-testid="stException"]').count() == 0, where


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000, **options) -> Iterator:
    """A playwright page in Debian's headless chromium (playwright's own browsers are never downloaded).

    ``options`` go to ``new_page`` (e.g. ``accept_downloads=True``); the browser closes on exit.
    """
    # playwright is a dev dependency: imported here so the helpers above serve without it
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser.new_page(viewport={"width": width, "height": height}, **options)
        finally:
            browser.close()
