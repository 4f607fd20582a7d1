"""Uploads that would expand far beyond the 25 MB limit, through a real dashboard server and a real Chromium.

A 2 MB ``.npz`` of zeros declaring a 16000 x 16000 matrix (it grew to about 1.9 GB before it was
refused) and a 3001 x 3001 CSV (18 MB; parsed in full before the task limit applied) must be
refused with one message on the page, quickly, while the server's peak memory stays small: the
sizes are read from the NPZ array headers and the CSV header row before anything is expanded.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest

from tests.browser import CHROMIUM, require_browser, streamlit_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real server and browser: about 90 s on 2 cores

ROOT = Path(__file__).resolve().parents[2]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.fixture(scope="module")
def server():
    require_browser()
    with streamlit_server(quiet=True) as (url, proc):
        yield url, proc


def _npz_bomb() -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, names=np.array(["a", "b"]), values=np.zeros((16000, 16000), dtype=np.float64))
    return buf.getvalue()


def _csv_3001() -> bytes:
    names = [f"t{i}" for i in range(3001)]
    row = "," + ",".join(["0"] * 3001) + "\n"
    return ("task," + ",".join(names) + "\n" + "".join(x + row for x in names)).encode()


def test_oversized_uploads_are_refused_from_their_headers(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, proc = server
    files = {"zeros.npz": _npz_bomb(), "wide.csv": _csv_3001()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert len(files["zeros.npz"]) < 3 * 2**20 and len(files["wide.csv"]) < 25 * 2**20
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="networkidle")
        page.get_by_text("Upload a matrix").click()
        page.wait_for_selector('[data-testid="stFileUploaderDropzoneInput"]', state="attached", timeout=60_000)
        base = _peak_rss_mb(proc.pid)
        for name, expected in (("zeros.npz", "16000 tasks"), ("wide.csv", "3001 tasks")):
            start = time.monotonic()
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(tmp_path / name))
            page.wait_for_function(f"() => document.body.innerText.includes({expected!r})", timeout=60_000)
            body = page.inner_text("body")
            assert "at most 3000" in body and "Traceback" not in body, body[-500:]
            assert time.monotonic() - start < 30
        grown = _peak_rss_mb(proc.pid) - base
        browser.close()
    # before: about 1.9 GB for the .npz and +536 MB for the CSV; now the header is all that is read
    assert grown < 400, f"the server's peak memory grew by {grown:.0f} MB"
