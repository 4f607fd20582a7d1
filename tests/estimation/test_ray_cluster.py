"""The cluster path on a real multi-node Ray cluster (one raylet per node, all on this machine).

A training whose worker process or node is lost is retried on the nodes that remain and the run ends
identical to a local one; only when no node is left does the run fail, with one line. An address where
no cluster listens fails within seconds, before anything is prepared or written; a cluster with token
authentication says so. Every node runs the driver's own code (shipped with Ray's runtime environment),
and a node with other code refuses the run, naming itself.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.cli import main as cli_main
from core.errors import RunStateError
from core.estimation.runs.executors import RayExecutor
from core.estimation.runs.folder import RunDir
from core.estimation.runs.orchestrator import run_estimation
from tests.estimation.ray_cluster import LocalCluster, free_ports
from tests.estimation.test_estimation_run import RAY_STEPS, small_config, write_config

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
# The driver runs outside the checkout: Ray puts the driver's working directory on its workers' path, which
# would hide whether the code reaches the nodes by itself (on separate machines that folder does not exist).
# RAY_AUTH_MODE=disabled: a token left in ~/.ray/auth_token would otherwise switch token authentication on
DRIVER_ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
              "RAY_AUTH_MODE": "disabled"}


def _estimate(cfg: Path, out: Path, address: str, *extra: str, env: dict | None = None,
              timeout: float = 180) -> subprocess.Popen:
    return subprocess.Popen([PY, "-m", "core", "estimate", "--config", str(cfg), "--out", str(out), "--no-progress",
                             "--executor", "ray", "--address", address, *extra],
                            env=env or DRIVER_ENV, cwd=cfg.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    return lines[0]


def _kill_when_training(cluster: LocalCluster, node: int, events: list, worker_first: bool = False,
                        timeout: float = 120) -> threading.Thread:
    """In the background: once node ``node`` runs a training, kill that worker process (``worker_first``),
    then, once it runs a training again, lose the whole node."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        stage = "worker" if worker_first else "node"
        while time.monotonic() < deadline and stage != "done":
            pids = cluster.pids(node, "ray::_ray_call")
            if pids:
                if stage == "worker":
                    os.kill(pids[0], 9)
                    events.append(("worker killed", node))
                    stage = "node"
                    time.sleep(0.5)
                    continue
                cluster.kill(node)
                events.append(("node lost", node))
                stage = "done"
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


@pytest.mark.slow
def test_lost_workers_and_nodes_are_retried_and_the_run_fails_in_one_line_only_when_none_is_left(tmp_path, monkeypatch):
    # the nodes import a `core` that differs from the driver's (one comment): shipping the driver's code must win
    other = tmp_path / "othercore"
    shutil.copytree(ROOT / "core", other / "core", ignore=shutil.ignore_patterns("__pycache__"))
    with open(other / "core" / "errors.py", "a") as fh:
        fh.write("\n# another version of taskaffinity\n")
    cfg = write_config(tmp_path / "run.yaml")
    cfg.write_text(cfg.read_text().replace("steps: 100", f"steps: {RAY_STEPS * 3}"))
    ref: dict = {}
    local = threading.Thread(target=lambda: ref.update(run=run_estimation(cfg, out=tmp_path / "local", seeds=[0])))
    local.start()  # the local reference trains while the cluster starts
    cluster = LocalCluster(tmp_path / "cluster", cpus=(0, 1, 1),
                           env={"RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(other)})
    try:
        cluster.start()
        # 0. a worker that dies every time it runs a training: retried, then one line (no traceback)
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")

        def crash(shared, item):
            os._exit(1)

        with RayExecutor(address=cluster.address, retries=1) as exe:
            with pytest.raises(RunStateError, match=r"training 'job-1' was lost on the Ray cluster at .* 2 time\(s\) "
                                                    r"\(WorkerCrashedError"):
                list(exe.map(crash, ["job-1"]))
        local.join()
        # 1. a node with other code than the driver's refuses the run, naming itself (code not shipped)
        p = _estimate(cfg, tmp_path / "noship", cluster.address, "--no-ship-code", "--seeds", "0")
        _, err = p.communicate(timeout=180)
        assert p.returncode == 2 and "runs other taskaffinity code than the driver" in _one_error_line(err)

        # 2. a training's worker process is killed, then its whole node is lost: retried on the node that remains
        events: list = []
        p = _estimate(cfg, tmp_path / "lost", cluster.address, "--seeds", "0")
        watcher = _kill_when_training(cluster, 1, events, worker_first=True)
        out, err = p.communicate(timeout=240)
        watcher.join(timeout=5)
        assert p.returncode == 0, err[-3000:]
        assert events == [("worker killed", 1), ("node lost", 1)]
        run = RunDir(tmp_path / "lost").load()
        np.testing.assert_array_equal(run.main.values, ref["run"].main.values)
        places = run.manifest["placements"]
        assert len(places) == 6 and all(pl["ip"] and pl["host"] and len(pl["node_id"]) == 56 for pl in places)
        assert {(pl["subset"], pl["seed"]) for pl in places} == {
            ("|".join(s), seed) for s in (("g0_t0",), ("g0_t1",), ("g1_t0",), ("g0_t0", "g0_t1"),
                                          ("g0_t0", "g1_t0"), ("g0_t1", "g1_t0")) for seed in (0,)}

        # 3. the last node with CPUs is lost: one line, finished trainings kept for --resume
        events = []
        p = _estimate(cfg, tmp_path / "none", cluster.address, "--seeds", "0")
        watcher = _kill_when_training(cluster, 2, events)
        t0 = time.monotonic()
        _, err = p.communicate(timeout=240)
        watcher.join(timeout=5)
        assert events == [("node lost", 2)] and p.returncode == 2
        assert "no node of the Ray cluster at" in _one_error_line(err) and "--resume" in err
        assert time.monotonic() - t0 < 120
        manifest = json.loads(RunDir(tmp_path / "none").manifest_path.read_text())
        assert manifest["status"] == "failed"
    finally:
        cluster.stop()
        local.join()
    # the run resumes, on a local executor, to the same matrix
    resumed = run_estimation(cfg, out=tmp_path / "none", resume=True, seeds=[0])
    np.testing.assert_array_equal(resumed.main.values, ref["run"].main.values)


def _cli(capsys, cfg: Path, out: Path, address: str) -> tuple[int, str]:
    code = cli_main(["estimate", "--config", str(cfg), "--out", str(out), "--no-progress", "--executor", "ray",
                     "--address", address])
    return code, capsys.readouterr().err


def test_an_address_where_no_cluster_listens_fails_in_seconds_and_leaves_no_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cfg = write_config(tmp_path / "run.yaml")
    address = f"127.0.0.1:{free_ports(1)[0]}"
    for _ in range(2):  # the rerun is not refused: nothing was left behind
        t0 = time.monotonic()
        code, err = _cli(capsys, cfg, tmp_path / "run", address)
        assert time.monotonic() - t0 < 10  # the config is read, then the probe fails at once
        line = _one_error_line(err)
        assert code == 2 and address in line and "no Ray cluster answers" in line
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("address, fragment", [
    (" ", "give the cluster's HOST:PORT"), ("head", "expected HOST:PORT"), ("head:99999", "expected HOST:PORT"),
])
def test_malformed_addresses_fail_before_anything_starts(tmp_path, capsys, address, fragment):
    cfg = write_config(tmp_path / "run.yaml")
    code, err = _cli(capsys, cfg, tmp_path / "run", address)
    assert code == 2 and fragment in _one_error_line(err)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_cluster_with_token_authentication_says_the_driver_has_no_token(tmp_path):
    token = "0123456789abcdef" * 4
    cluster = LocalCluster(tmp_path / "cluster", cpus=(1,), env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    cfg = write_config(tmp_path / "run.yaml")
    try:
        cluster.start()
        p = _estimate(cfg, tmp_path / "run", cluster.address)  # The driver runs outside the checkout: Ray puts the driver's working directory on its workers' path, which
# would hide whether the code reaches the nodes by itself (on separate machines that folder does not exist).
# RAY_AUTH_MODE=disabled: sends no token
        _, err = p.communicate(timeout=180)
    finally:
        cluster.stop()
    line = _one_error_line(err)
    assert p.returncode == 2 and cluster.address in line and "authentication token" in line
    assert "RAY_AUTH_TOKEN" in line and not (tmp_path / "run").exists()

