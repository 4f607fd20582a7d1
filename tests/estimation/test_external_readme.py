"""The README's "train elsewhere" example, run as written: plan, the training loop, ingest, group, dashboard.

Every command is a real process (the shell lines of the README with the venv's python first on PATH);
the dashboard line is started as written (plus a free port) and checked in a real headless Chromium:
the Affinity page lists the entries on few observations, and the Runs page lists a partially ingested
run with its missing trainings and a download of the remaining plan.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.estimation.runs.folder import RunDir, load_run
from tests.browser import CHROMIUM, free_port, require_browser, stop, wait_healthy
from ui.coverage import low_count_caption, low_count_entries

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
pytestmark = pytest.mark.slow


def readme_example() -> tuple[list[str], str]:
    """The shell lines and the Python trainer of the README's example."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- example: train-elsewhere -->", 1)[1].split("<!-- end example -->", 1)[0]
    shell = re.search(r"```bash\n(.*?)```", block, re.S).group(1)
    python = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    return [ln for ln in shell.splitlines() if ln.strip() and not ln.startswith("#")], python


def _workdir(tmp: Path) -> Path:
    """A folder laid out like the repository (the example's relative paths), writing only into itself."""
    (tmp / "sample_data" / "configs").mkdir(parents=True)
    shutil.copy(ROOT / "sample_data" / "configs" / "planted-small.yaml", tmp / "sample_data" / "configs")
    for name in ("app.py", "pages", ".streamlit"):
        (tmp / name).symlink_to(ROOT / name)
    return tmp


@pytest.mark.browser
def test_readme_example_plan_train_ingest_group_dashboard(tmp_path):
    lines, trainer = readme_example()
    work = _workdir(tmp_path)
    (work / "train_elsewhere.py").write_text(trainer)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("TASKAFFINITY_RUNS_ROOT", None)
    dashboard = [ln for ln in lines if "ui.serve" in ln]
    assert len(dashboard) == 1 and len(lines) == 5
    outputs = {}
    for line in lines:
        if line in dashboard:
            continue
        done = subprocess.run(line, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        outputs[line.split()[3] if "core" in line else "train"] = done.stdout
    run = load_run(work / "runs" / "elsewhere")
    assert run.status == "complete" and run.main.estimator == "pairwise" and run.main.n == 4
    assert "complete" in outputs["ingest"] and outputs["group"].strip()

    # a second run, half ingested, for the Runs page's missing-trainings view
    half = work / "runs" / "half"
    subprocess.run(lines[0].replace("runs/elsewhere", "runs/half"), shell=True, cwd=work, env=env, check=True,
                   capture_output=True, timeout=300)
    res = pd.read_csv(work / "results.csv")
    plan = pd.read_csv(half / "plan.csv")
    res[res["id"].isin(plan["id"][:6])].to_csv(work / "half.csv", index=False)
    subprocess.run([sys.executable, "-m", "core", "ingest", "--run", str(half), "--results", str(work / "half.csv")],
                   cwd=work, env=env, check=True, capture_output=True, timeout=300)
    assert load_run(half).status == "partial"
    # a higher-order run, 10 of its 14 trainings ingested (made-up metrics: this checks the views, not the numbers)
    ho = work / "runs" / "ho"
    subprocess.run([sys.executable, "-m", "core", "plan", "--config", "sample_data/configs/planted-small.yaml",
                    "--estimator", "higher-order", "--subsets", "3", "--subset-size", "3", "--seeds", "0", "1",
                    "--out", str(ho)], cwd=work, env=env, check=True, capture_output=True, timeout=300)
    hplan = pd.read_csv(ho / "plan.csv").head(10)
    pd.DataFrame([{"id": t.id, "task": k, "metric": 1.0 + 0.01 * i + 0.001 * t.seed}
                  for t in hplan.itertuples() for i, k in enumerate(t.tasks.split("|"))]).to_csv(work / "ho.csv",
                                                                                                 index=False)
    subprocess.run([sys.executable, "-m", "core", "ingest", "--run", str(ho), "--results", str(work / "ho.csv")],
                   cwd=work, env=env, check=True, capture_output=True, timeout=300)
    assert load_run(ho).status == "partial" and load_run(ho).main.estimator == "higher-order"

    # the command-line part above runs everywhere; the dashboard part needs a browser
    require_browser()
    port = free_port()
    cmd = shlex.split(dashboard[0])
    assign = dict(x.split("=", 1) for x in cmd if "=" in x and not x.startswith("-"))
    argv = [x for x in cmd if x not in {f"{k}={v}" for k, v in assign.items()}]
    proc = subprocess.Popen(argv + ["--server.port", str(port), "--server.headless", "true",
                                    "--browser.gatherUsageStats", "false"],
                            cwd=work, env={**env, **assign}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        _check_pages(url, half, load_run(ho).main)
    finally:
        stop(proc)


def _idle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    page.wait_for_timeout(300)


def _clean(page, where: str) -> None:
    assert "Traceback" not in page.inner_text("body"), where
    assert page.locator('[data-testid="stException"]').count() == 0, where


def _check_pages(url: str, half: Path, ho) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        try:
            page.goto(url)
            page.get_by_role("heading", name="Task affinity").wait_for(timeout=60_000)
            _idle(page)
            # the sidebar's first run is runs/elsewhere (complete, one seed: every entry on one observation)
            page.get_by_text("12 of 12 entries rest on fewer than 2 observations", exact=False).wait_for(
                timeout=60_000)
            _clean(page, "affinity")
            page.locator(".js-plotly-plot .hm, .js-plotly-plot .heatmaplayer").first.wait_for(timeout=60_000)
            page.wait_for_timeout(700)  # plots paint after they attach
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "elsewhere-affinity.png"), full_page=True)

            # the partial higher-order run: its caption counts the entries without an observation yet
            page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
            page.get_by_role("option", name="runs/ho").click()
            _idle(page)
            few = low_count_entries(ho)
            page.get_by_text(low_count_caption(ho, few), exact=True).wait_for(timeout=60_000)
            page.get_by_text(f"Entries on few observations ({len(few)})").wait_for(timeout=60_000)
            _clean(page, "affinity, partial higher-order run")
            page.screenshot(path=str(ARTIFACTS / "elsewhere-affinity-partial.png"), full_page=True)

            page.goto(f"{url}/runs")
            page.get_by_role("heading", name="Runs trained elsewhere: missing trainings").wait_for(timeout=60_000)
            _idle(page)
            _clean(page, "runs")
            page.locator('[data-testid="stDataFrame"] canvas').first.wait_for(timeout=60_000)
            page.wait_for_timeout(700)
            page.screenshot(path=str(ARTIFACTS / "elsewhere-runs.png"), full_page=True)
            body = page.inner_text("body")
            assert "partial, 6/10 planned trainings ingested, 4 missing" in body
            with page.expect_download() as dl:
                page.get_by_role("button", name="Download the remaining plan (CSV)").click()
            got = pd.read_csv(dl.value.path())
            assert list(got["id"]) == list(RunDir(half).read_remaining_plan()["id"]) and len(got) == 4
        finally:
            browser.close()
