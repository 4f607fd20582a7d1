"""Dashboard latency in a real browser: first paint, changing k at n = 60, 200, 500, switching pages.

Run from the repo root: ``PYTHONPATH=$PWD python -m bench.bench_dashboard [--starts 3]``.

Protocol (fixed before looking at the figures):

* a real server (``python -m ui.serve``, i.e. ``streamlit run app.py`` with the pages' imports done while it
  starts, no file watcher, as ``make run``) on a free localhost port and Debian's chromium driven by
  playwright, window 1600 x 1000, a fresh browser context (empty cache) per start;
* **first paint**: seconds to the first Affinity heatmap drawn (the default run, planted-60), ``--starts``
  fresh servers, each in five cases (PAINT_CASES): the dashboard with the browser opened with the server
  (timed from the server's start) and with the link clicked 3 s after the start (timed from the click: what
  a user who runs ``make run`` and then clicks waits); and three floors, Streamlit pages that compute
  nothing: a header and one 60 x 60 plotly heatmap, opened either way, and the same under the Affinity
  page's sidebar and controls (most of the time to a first chart is Streamlit's frontend and plotly.js in
  the browser);
* **k change**: on the Grouping page of planted-60, planted-200 and planted-500, type each k of a fixed
  list (the suggestion's neighbours first, then far ones) and wait until the page shows "k groups" and
  has finished running; timed with the browser's clock (``performance.now()``);
* **page switch**: on planted-200, click each page in the sidebar and wait for its content.

The machine's load (``os.getloadavg``) is recorded next to every figure: on a busy 2-core machine the
goals (first paint < 3 s; k change median < 1 s at n <= 200 and < 2 s at 500) are judged on that load.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.report import markdown_table, write_section

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("TASKAFFINITY_CHROMIUM", "/usr/bin/chromium")
HEATMAP = ".js-plotly-plot .heatmaplayer, .js-plotly-plot .hm"
PAGES = [("Grouping", "Task grouping", '[data-testid="stTable"]'),
         ("Negative transfer", "Negative transfer", '[data-testid="stDataFrame"] canvas'),
         ("Export", "Export", "text=Report (Markdown)"),
         ("Benchmarks", "Benchmarks", ".js-plotly-plot"),
         ("Affinity", "Task affinity", HEATMAP)]
# New k values per size, in the order typed: neighbours of the suggestion first (solved in the background
# while the user reads the page), then values no one asked for yet.
K_STEPS = {"planted-60": [5, 3, 6, 8, 2], "planted-200": [8, 6, 9, 4, 12], "planted-500": [11, 9, 12, 5, 15]}
GOALS = {"first paint": 3.0, "planted-60": 1.0, "planted-200": 1.0, "planted-500": 2.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(command: list[str] | None = None) -> tuple[subprocess.Popen, str, float]:
    """The dashboard as ``make run`` starts it (``python -m ui.serve``), or ``command``; (process, url, t0)."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TASKAFFINITY_RUNS_ROOT", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *(command or ["-m", "ui.serve"]), "--server.port", str(port),
                             "--server.headless", "true", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    return proc, url, t0


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_idle(page, timeout_ms: int = 120_000) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)


def now(page) -> float:
    return float(page.evaluate("performance.now()")) / 1000.0


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# Floors: what any Streamlit page needs to show one plotly heatmap of 60 tasks, bare or under the same sidebar and
# controls as the Affinity page (nothing computed); the dashboard cannot be faster than these on this machine.
FLOOR_CHART = """import numpy as np, plotly.graph_objects as go, streamlit as st
st.header("Task affinity")
"""
FLOOR_CONTROLS = """
with st.sidebar:
    st.subheader("Data")
    st.radio("Source", ["Run folder", "Upload a matrix"], horizontal=True)
    st.text_input("Folder under the runs root", placeholder="(all runs)", help="h")
    st.selectbox("Run", ["sample_data/planted-60", "sample_data/planted-200"])
    st.selectbox("Matrix", ["main"])
    st.caption("60 tasks")
c1, c2 = st.columns([2, 1])
a, b = c1.columns(2)
a.selectbox("Diagonal", ["keep", "zero", "gain"], help="h")
b.selectbox("Per-target transform", ["none", "center"], help="h")
c2.radio("View", ["directed", "symmetrized"], horizontal=True, help="h")
c2.radio("Order", ["by current grouping", "as given"], horizontal=True)
c2.checkbox("Show the tree inside groups", help="h")
st.caption("Row = source, column = target; blue helps, red hurts.")
st.selectbox("Zoom into", ["all tasks", "group 1"])
"""
FLOOR_PLOT = "st.plotly_chart(go.Figure(go.Heatmap(z=np.random.default_rng(0).normal(size=(60, 60)))))\n"
FLOOR_APPS = {"floor.py": FLOOR_CHART + FLOOR_PLOT, "floor_controls.py": FLOOR_CHART + FLOOR_CONTROLS + FLOOR_PLOT}
# case: (what, floor app or None for the dashboard, seconds between the server's start and the click, baseline case)
PAINT_CASES = {
    "at once": ("dashboard, browser opened with the server", None, 0.0, "floor"),
    "after 3 s": ("dashboard, link clicked 3 s after the server started", None, 3.0, "floor after 3 s"),
    "floor": ("one-chart Streamlit page, browser opened with the server", "floor.py", 0.0, "floor"),
    "floor after 3 s": ("one-chart Streamlit page, clicked after 3 s", "floor.py", 3.0, "floor after 3 s"),
    "controls floor after 3 s": ("the same sidebar and controls and one chart, nothing computed, clicked after 3 s",
                                 "floor_controls.py", 3.0, "floor after 3 s"),
}


def first_paints(browser, starts: int, apps: Path) -> list[dict]:
    """Per server start and case: seconds to the page frame and to the heatmap (see PAINT_CASES)."""
    rows = []
    for i in range(starts):
        for case, (_, app, delay, _) in PAINT_CASES.items():
            load_before = load()
            proc, url, t0 = start_server(None if app is None else ["-m", "streamlit", "run", str(apps / app)])
            try:
                if delay:
                    time.sleep(max(0.0, delay - (time.perf_counter() - t0)))
                    t0 = time.perf_counter()  # the user's wait starts with the click
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(url)
                page.get_by_role("heading", name="Task affinity").wait_for(timeout=120_000)
                frame = time.perf_counter() - t0
                page.locator(HEATMAP).first.wait_for(timeout=120_000)
                paint = time.perf_counter() - t0
                rows.append(dict(measure="first paint", case=case, start=i + 1, page_frame_s=frame, heatmap_s=paint,
                                 goal_s="" if app else GOALS["first paint"], load=load_before))
                page.close()
            finally:
                stop(proc)
            print(rows[-1], flush=True)
    return rows


def pick_run(page, name: str) -> None:
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(has_text="Run").first
    box.click()
    page.keyboard.type(name)
    page.keyboard.press("Enter")
    page.locator('[data-testid="stSidebar"]').get_by_text(f"{name.split('-')[1]} tasks ·").wait_for(timeout=120_000)
    wait_idle(page)


def goto(page, link: str, header: str, ready: str) -> float:
    t0 = now(page)
    page.locator('[data-testid="stSidebarNav"] a', has_text=link).first.click()
    page.get_by_role("heading", name=header).wait_for(timeout=120_000)
    page.locator(ready).first.wait_for(timeout=120_000)
    wait_idle(page)
    return now(page) - t0


def k_changes(page, run: str) -> list[dict]:
    pick_run(page, run)
    goto(page, "Grouping", "Task grouping", '[data-testid="stTable"]')
    page.wait_for_timeout(3000)  # the user reads the first grouping; the neighbouring k solve meanwhile
    rows = []
    k_input = page.get_by_label("Number of groups k")
    for k in K_STEPS[run]:
        load_before = load()
        t0 = now(page)
        k_input.fill(str(k))
        k_input.press("Enter")
        page.get_by_role("heading", name=f"{k} groups (", exact=False).wait_for(timeout=120_000)
        shown = now(page) - t0
        sdp = None
        if run != "planted-500":  # n > 100: the spectral grouping first, replaced by the SDP when solved
            page.get_by_role("heading", name=f"{k} groups (SDP relaxation)").wait_for(timeout=180_000)
            sdp = now(page) - t0
        wait_idle(page)
        done = now(page) - t0
        method = page.get_by_role("heading", name=f"{k} groups (", exact=False).first.inner_text()
        rows.append(dict(measure="k change", run=run, k=k, groups_shown_s=shown, sdp_shown_s=sdp, page_done_s=done,
                         method=method.split("(")[-1].rstrip(")"), goal_s=GOALS[run], load=load_before))
        print(rows[-1], flush=True)
        page.wait_for_timeout(1500)  # a user's pause between two changes
    return rows


def page_switches(page, run: str) -> list[dict]:
    pick_run(page, run)
    rows = []
    for link, header, ready in PAGES:
        load_before = load()
        rows.append(dict(measure="page switch", run=run, page=link, seconds=goto(page, link, header, ready),
                         load=load_before))
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=3, help="fresh server starts for the first paint")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in FLOOR_APPS.items():
                (Path(tmp) / name).write_text(text)
            paints = first_paints(browser, args.starts, Path(tmp))
        proc, url, _ = start_server()
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url)
            page.locator(HEATMAP).first.wait_for(timeout=120_000)
            wait_idle(page)
            ks = [row for run in K_STEPS for row in k_changes(page, run)]
            switches = page_switches(page, "planted-200")
        finally:
            stop(proc)
        browser.close()

    summary = []
    medians = {case: statistics.median(r["heatmap_s"] for r in paints if r["case"] == case) for case in PAINT_CASES}
    for case, (words, app, _, baseline) in PAINT_CASES.items():
        vals = [r["heatmap_s"] for r in paints if r["case"] == case]
        summary.append(dict(what=f"first paint → heatmap ({words})", n=60, median_s=medians[case],
                            worst_s=max(vals), goal_s="" if app else GOALS["first paint"],
                            vs_floor=medians[case] / medians[baseline]))
    for run in K_STEPS:
        vals = [r["groups_shown_s"] for r in ks if r["run"] == run]
        summary.append(dict(what="k change (new k → first groups shown)", n=int(run.split("-")[1]),
                            median_s=statistics.median(vals), worst_s=max(vals), goal_s=GOALS[run]))
        sdp = [r["sdp_shown_s"] for r in ks if r["run"] == run and r["sdp_shown_s"] is not None]
        if sdp:
            summary.append(dict(what="k change (new k → SDP groups shown)", n=int(run.split("-")[1]),
                                median_s=statistics.median(sdp), worst_s=max(sdp), goal_s=""))
    sw = [r["seconds"] for r in switches]
    summary.append(dict(what="page switch", n=200, median_s=statistics.median(sw), worst_s=max(sw), goal_s=""))
    for row in summary:
        row["met"] = "" if row["goal_s"] == "" else ("yes" if row["median_s"] < row["goal_s"] else "no")
    loads = [r["load"] for r in paints + ks + switches]
    cores = os.cpu_count()
    busy = any(float(x.split("/")[0]) > 0.5 * (cores or 1) for x in loads)
    md = (markdown_table(summary, ["what", "n", "median_s", "worst_s", "goal_s", "met", "vs_floor"], ".3g")
          + "\nvs_floor: the median over the one-chart page's median in this run, opened the same way (the "
          "floors move with the machine's load; the ratio is what compares runs).\n"
          + f"\nLoad average (1/5/15 min) at each measurement ranged over {min(loads)} … {max(loads)} on "
          f"{cores} cores" + (": a busy machine, so the goals were judged under load." if busy else ".")
          + "\n\nFirst paint per server start (seconds from the server's start, or from the click for the "
          "'after 3 s' cases; the floors are Streamlit pages that compute nothing: a header and one 60 x 60 plotly "
          "heatmap, alone or under the Affinity page's sidebar and controls):\n\n"
          + markdown_table(paints, ["case", "start", "page_frame_s", "heatmap_s", "load"], ".3g")
          + "\nEvery k change (the neighbours of the k shown are solved in the background while the page is "
          "read; above 100 tasks an SDP not solved yet is shown as the spectral grouping first and replaced; "
          "planted-500 groups with the spectral method unless the SDP is asked for). First groups shown = the "
          "method named in the last column only once the SDP has replaced the spectral answer:\n\n"
          + markdown_table(ks, ["run", "k", "groups_shown_s", "sdp_shown_s", "page_done_s", "method", "load"], ".3g")
          + "\nPage switches on planted-200:\n\n" + markdown_table(switches, ["page", "seconds", "load"], ".3g"))
    print(md)
    write_section("dashboard", "Dashboard latency in the browser (first paint, k change, page switch)",
                  "PYTHONPATH=$PWD python -m bench.bench_dashboard" + (f" --starts {args.starts}" if args.starts != 3
                                                                        else ""),
                  md, {"summary": summary, "first_paint": paints, "k_change": ks, "page_switch": switches})
    return 0


if __name__ == "__main__":
    sys.exit(main())
