"""End-to-end estimation runs with real training: planted negative transfer, kill + resume, one writer,
Ray vs local (in a loopback-only network namespace), and clear errors for malformed options."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli import main as cli_main
from core.errors import RunStateError
from core.estimation.runs.orchestrator import run_estimation
from core.estimation.runs.folder import RunDir, load_run
from core.matrix.transfer import negative_transfers

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
PLANTED = dict(n_groups=2, tasks_per_group=[2, 1], dim=20, n_train=40, between=0.0, within=0.1, seed=0)
TRAINING = dict(backend="mlp", steps=100, batch_size=32, lr=0.02, eval_every=50, patience=0, device="cpu",
                options=dict(hidden=[1], activation="linear"))
CROSS = {("g0_t0", "g1_t0"), ("g1_t0", "g0_t0"), ("g0_t1", "g1_t0"), ("g1_t0", "g0_t1")}


RAY_STEPS = 20


def small_config(steps: int | None = None):
    """Three planted tasks: g0_t0 and g0_t1 share parameters, g1_t0 wants orthogonal ones."""
    from core.estimation.data.builtin import builtin_taskset
    from core.estimation.models.training import TrainSpec

    training = dict(TRAINING, **({"steps": steps, "eval_every": steps} if steps else {}))
    return types.SimpleNamespace(name="planted-3", taskset=builtin_taskset("planted", **PLANTED),
                                 spec=TrainSpec(**training), estimator={}, raw={}, path=None)


def write_config(path: Path, **estimator) -> Path:
    import yaml

    cfg = {"name": "planted-3", "tasks": [{"builtin": "planted", "params": PLANTED}], "training": TRAINING,
           "estimator": {"name": "pairwise", "seeds": [0, 1], **estimator}}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted in-process pairwise run (seeds 0, 1), with the progress it reported."""
    calls = []
    out = tmp_path_factory.mktemp("ref") / "run"
    run = run_estimation(small_config(), out=out, estimator="pairwise", seeds=[0, 1],
                         progress=lambda d, t, m: calls.append((d, t, m)))
    return run, calls


def test_pairwise_finds_the_planted_negative_transfers(reference):
    run, calls = reference
    assert run.status == "complete" and set(run.matrices) == {"main", "pairwise", "single"}
    m = run.main
    neg = negative_transfers(m, threshold=0.1)
    assert set(zip(neg.source, neg.target)) == CROSS  # exactly the cross-group pairs hurt
    assert m.values[m.index("g0_t0"), m.index("g0_t1")] > -0.1
    assert m.cost["trainings"] == 12 and m.uncertainty is not None and m.counts.max() == 2
    assert calls[-1][0] == calls[-1][1] == 12 and calls[-1][2] == "complete"
    manifest = run.manifest
    assert manifest["cost"]["trainings"] == 12 and manifest["data_hashes"].keys() == set(m.names)
    assert {"python", "numpy", "torch"} <= set(manifest["packages"]) and manifest["seeds"] == [0, 1]
    table = run.results()
    assert list(table.columns[:6]) == ["subset", "task", "metric", "loss", "seed", "seconds"] and len(table) == 18
    assert not RunDir(run.path).lock_path.exists()


def _stored_jobs(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_killed_run_resumes_to_identical_results_and_one_writer_only(tmp_path, reference):
    cfg = write_config(tmp_path / "run.yaml")
    out = tmp_path / "run"
    proc = subprocess.Popen([PY, "-m", "core", "estimate", "--config", str(cfg), "--out", str(out), "--no-progress"],
                            env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while _stored_jobs(RunDir(out).store_path) < 4:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.time() < deadline, "the run stored nothing in time"
            time.sleep(0.05)
        assert RunDir(out).writer()["pid"] == proc.pid
        # A second writer on the same folder is refused while the first runs, naming its PID.
        with pytest.raises(RunStateError, match=f"PID {proc.pid}"):
            run_estimation(cfg, out=out, resume=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stored = _stored_jobs(RunDir(out).store_path)
    assert 4 <= stored < 12
    assert json.loads(RunDir(out).manifest_path.read_text())["status"] == "running"  # died without a word
    assert RunDir(out).lock_path.is_file() and RunDir(out).writer() is None  # a stale lock: killed, resumable
    with pytest.raises(RunStateError, match="already holds a run"):
        run_estimation(cfg, out=out)
    with pytest.raises(RunStateError, match="config differs in seeds"):
        run_estimation(cfg, out=out, resume=True, seeds=[0])
    other = write_config(tmp_path / "other.yaml")
    other.write_text(other.read_text().replace("seed: 0", "seed: 1"))
    with pytest.raises(RunStateError, match="data of task"):
        run_estimation(other, out=out, resume=True)

    run = run_estimation(cfg, out=out, resume=True)
    assert run.status == "complete" and [e["event"] for e in run.manifest["events"]][-2:] == ["resumed", "complete"]
    con = sqlite3.connect(RunDir(out).store_path)
    assert con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 12
    dup = con.execute("SELECT COUNT(*) FROM (SELECT subset, task, seed, split FROM scores "
                      "GROUP BY subset, task, seed, split HAVING COUNT(*) > 1)").fetchone()[0]
    assert dup == 0 and con.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 18
    ref = reference[0]
    np.testing.assert_array_equal(run.main.values, ref.main.values)
    np.testing.assert_array_equal(run.matrices["single"].values, ref.matrices["single"].values)
    assert len(run.results()) == 18 and load_run(out).main.names == ref.main.names


def _netns_available() -> bool:
    try:
        return subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"], capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.slow
def test_ray_executor_matches_local_inside_a_loopback_only_namespace(tmp_path):
    pytest.importorskip("ray")
    if not _netns_available():
        pytest.skip("cannot create a network namespace here (unshare --net needs root or user namespaces)")
    script = (f"ip link set lo up && exec {PY} {ROOT / 'tests' / 'estimation' / 'ray_netns_check.py'} {tmp_path / 'ray'} "
              f"{ROOT / 'tests'} {RAY_STEPS}")
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", script], env={**ENV, "RAY_USAGE_STATS_ENABLED": "0"},
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:  # the local reference trains while Ray boots
        local = run_estimation(small_config(steps=RAY_STEPS), out=tmp_path / "local", estimator="pairwise", seeds=[0])
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    got = json.loads(stdout.strip().splitlines()[-1])
    assert got["interfaces"] == ["lo"]  # nothing but loopback exists, so nothing else can be reached
    assert got["executor"]["nodes"] == ["127.0.0.1"] and got["executor"]["driver_ip"] == "127.0.0.1"
    assert got["executor"]["cluster"]["CPU"] == 2 and got["trainings"] == 6
    np.testing.assert_array_equal(np.array(got["values"]), local.main.values)


@pytest.mark.parametrize("args, fragment", [
    (["--estimator", "nope"], "unknown estimator 'nope'"),
    (["--estimator", "pairwise", "--subsets", "4"], "unknown option 'subsets'"),
    (["--estimator", "higher-order", "--subset-size", "7"], "subset_size 7"),
    (["--estimator", "higher-order", "--subsets", "0"], "subsets must be >= 1"),
    (["--estimator", "higher-order", "--option", "baseline=zscore"], "baseline 'zscore'"),
    (["--estimator", "higher-order", "--option", "colour=red"], "unknown option 'colour'"),
    (["--option", "novalue"], "KEY=VALUE"),
    (["--seeds", "-1"], "seed -1"),
    (["--seeds", "1", "1"], "repeat a seed"),
    (["--address", "10.0.0.1:6379"], "--address is for the ray executor"),
    (["--num-cpus", "4"], "--num-cpus is for the ray executor"),
    (["--executor", "dask"], "invalid choice: 'dask'"),
    (["--split", "dev"], "invalid choice: 'dev'"),
    (["--executor", "ray", "--gpu-share", "0"], "gpu_share must be a number > 0"),
])
def test_malformed_options_fail_with_a_message_naming_them(tmp_path, capsys, args, fragment):
    cfg = write_config(tmp_path / "run.yaml")
    try:
        code = cli_main(["estimate", "--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress", *args])
    except SystemExit as exc:  # argparse rejects choices itself
        code = exc.code
    assert code == 2
    assert fragment in capsys.readouterr().err
    assert not RunDir(tmp_path / "run").store_path.exists()  # nothing started


@pytest.mark.parametrize("estimator, fragment", [
    ({"name": "pairwise", "subset_size": 3}, "unknown option 'subset_size'"),
    ({"name": 5}, "estimator: name must be a string"),
    ({"name": "higher-order", "subsets": "many"}, "subsets must be an integer"),
    ({"name": "pairwise", "seeds": "zero"}, "seeds must be a non-empty list"),
    ({"name": "pairwise", "split": "dev"}, "split 'dev'"),
])
def test_malformed_config_estimator_sections_are_named(tmp_path, capsys, estimator, fragment):
    cfg = write_config(tmp_path / "run.yaml", **estimator)
    assert cli_main(["estimate", "--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert fragment in capsys.readouterr().err


def test_missing_config_and_bad_out_are_named(tmp_path, capsys):
    assert cli_main(["estimate", "--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert "none.yaml" in capsys.readouterr().err
    cfg = write_config(tmp_path / "run.yaml")
    (tmp_path / "file").write_text("x")
    assert cli_main(["estimate", "--config", str(cfg), "--out", str(tmp_path / "file"), "--no-progress"]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert cli_main(["estimate", "--config", str(cfg), "--out", str(tmp_path / "new"), "--resume",
                     "--no-progress"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
