"""Launching, stopping and resuming real (small) estimation runs the way the Runs page does."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.errors import InvalidInputError, RunStateError
from core.estimation.runs.orchestrator import run_estimation
from core.estimation.runs.lock import RunLock
from ui.services.launches import LaunchManager, plan_launch, plan_resume
from core.estimation.runs.folder import RunDir, load_run

# The bundled planted config, shrunk to 4 tasks in 2 groups: pairwise = 10 real trainings, a few seconds.
TINY = """name: planted-tiny
tasks:
  - builtin: planted
    params: {n_groups: 2, tasks_per_group: 2, dim: 8, n_train: 32, between: 0.0, within: 0.1, seed: 0}
training:
  backend: mlp
  steps: 60
  batch_size: 16
  lr: 0.01
  eval_every: 30
  patience: 0
  options: {hidden: [1], activation: linear}
estimator:
  name: pairwise
  seeds: [0]
"""


def tiny_config(folder: Path) -> Path:
    path = folder / "planted-tiny.yaml"
    path.write_text(TINY)
    return path


def wait(job, seconds: float = 180.0):
    t0 = time.monotonic()
    while job.running and time.monotonic() - t0 < seconds:
        time.sleep(0.1)
    assert not job.running, "run did not finish in time"
    return job.snapshot()


def test_launch_stop_and_resume_a_real_run(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    cfg = tiny_config(tmp_path)
    jobs = LaunchManager()

    def stop_after_three(config, *, progress, **kw):  # the real runner; the user presses Stop after 3 trainings
        def prog(done, total, msg):
            if done >= 3:
                job.stop()
            progress(done, total, msg)
        return run_estimation(config, progress=prog, **kw)

    job = plan_launch(cfg, "tiny", "pairwise", root=root, runner=stop_after_three)
    snap = wait(jobs.start(job))
    assert snap.status == "interrupted", snap.error
    man = json.loads(RunDir(root / "tiny").manifest_path.read_text())
    assert man["status"] == "interrupted" and 3 <= man["cost"]["trainings"] < 10
    assert not RunDir(root / "tiny").lock_path.exists()

    with pytest.raises(InvalidInputError, match="already holds a run"):
        plan_launch(cfg, "tiny", "pairwise", root=root)
    resumed = wait(jobs.start(plan_resume(root / "tiny", root=root)))
    assert resumed.status == "complete", resumed.error
    assert resumed.done == resumed.total == 10 and any("already stored" in line for line in resumed.log)
    run = load_run(root / "tiny")
    assert run.status == "complete" and run.main.n == 4
    assert run.manifest["cost"]["trainings"] == 10 and [e["event"] for e in run.manifest["events"]][-2:] == \
        ["resumed", "complete"]
    assert sorted(p.name for p in root.iterdir()) == ["tiny"]  # nothing written beside the run


def test_launch_refuses_a_locked_folder_and_paths_outside_the_root(tmp_path):
    root = tmp_path / "runs"
    (root / "busy").mkdir(parents=True)
    cfg = tiny_config(tmp_path)
    with RunLock(RunDir(root / "busy").lock_path):
        with pytest.raises(RunStateError, match="another process .* is writing this run"):
            plan_launch(cfg, "busy", "pairwise", root=root)
    for bad in ("../escape", "a/b", "", ".hidden"):
        with pytest.raises(InvalidInputError, match="run name"):
            plan_launch(cfg, bad, "pairwise", root=root)
    with pytest.raises(InvalidInputError, match="no such file"):
        plan_launch(tmp_path / "missing.yaml", "x", "pairwise", root=root)
    with pytest.raises(InvalidInputError, match="only runs directly in the runs root"):
        plan_resume(tmp_path, root=root)
    assert not (tmp_path / "escape").exists() and sorted(p.name for p in root.iterdir()) == ["busy"]
