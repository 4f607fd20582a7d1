"""Runs that others touch: concurrent writers, disk full, permission denied mid-run, and SIGKILL at
random moments. Every check uses real processes (forked from this one, so torch is not imported
again for each) and real files; every resumed run must end with the same matrices as an
uninterrupted one.

The figures of RELIABILITY.md come from ``pytest -q -s -m "slow or not slow" tests/hardening/test_hardening_runs.py``
(the stress test prints its kill log).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from core.errors import RunStateError, TaskAffinityError
from core.estimation.runs.config import load_run_config
from core.estimation.runs.orchestrator import run_estimation
from core.estimation.runs.lock import RunLock
from core.estimation.runs.folder import RunDir, load_run

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[2]
FORK = mp.get_context("fork")
PLANTED = dict(n_groups=2, tasks_per_group=[2, 1], dim=20, n_train=40, between=0.0, within=0.1, seed=0)
TRAINING = dict(backend="mlp", steps=20, batch_size=32, lr=0.02, eval_every=20, patience=0, device="cpu",
                options=dict(hidden=[1], activation="linear"))
N_JOBS = 12  # 3 singles + 3 pairs, two seeds
KILLS = 20


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "planted.yaml"
    path.write_text(yaml.safe_dump({"name": "planted-3", "tasks": [{"builtin": "planted", "params": PLANTED}],
                                    "training": TRAINING, "estimator": {"name": "pairwise", "seeds": [0, 1]}}))
    return path


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """The uninterrupted run every disturbed run must reproduce."""
    return run_estimation(config, out=tmp_path_factory.mktemp("ref") / "run")


def assert_same_matrices(run, ref) -> None:
    assert run.status == "complete"
    assert set(run.matrices) == set(ref.matrices)
    for name, m in ref.matrices.items():
        got = run.matrices[name]
        assert got.names == m.names, name
        np.testing.assert_array_equal(got.values, m.values, err_msg=name)
        for extra in ("uncertainty", "counts"):
            a, b = getattr(got, extra), getattr(m, extra)
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_array_equal(a, b, err_msg=f"{name}.{extra}")


def store_state(db: Path) -> tuple[int, int, str]:
    """(jobs, duplicate score rows, integrity) of a store, read-only."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        if con.execute("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('jobs', 'scores')").fetchone()[0] < 2:
            return 0, 0, con.execute("PRAGMA integrity_check").fetchone()[0]  # killed before the schema
        jobs = con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        dup = con.execute("SELECT COUNT(*) FROM (SELECT kind, subset, task, seed, split FROM scores "
                          "GROUP BY kind, subset, task, seed, split HAVING COUNT(*) > 1)").fetchone()[0]
        # every job has all its scores (a job and its scores are one transaction)
        partial = con.execute("SELECT COUNT(*) FROM jobs j WHERE (SELECT COUNT(*) FROM scores s WHERE s.kind = j.kind "
                              "AND s.subset = j.subset AND s.seed = j.seed AND s.split = j.split) = 0").fetchone()[0]
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        return jobs, dup + partial, ok
    finally:
        con.close()


def jobs_stored(db: Path) -> int:
    try:
        return store_state(db)[0]
    except sqlite3.Error:
        return 0


def _child(queue, fn, args):
    try:
        queue.put(("ok", fn(*args)))
    except TaskAffinityError as exc:
        queue.put(("error", f"{type(exc).__name__}: {exc}"))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as a failure
        queue.put(("crash", f"{type(exc).__name__}: {exc}"))


def start_child(fn, *args):
    queue = FORK.Queue()
    proc = FORK.Process(target=_child, args=(queue, fn, args), daemon=True)
    proc.start()
    return proc, queue


def _estimate(cfg, out, resume=False, barrier=None):
    if barrier is not None:
        barrier.wait(timeout=60)
    run = run_estimation(cfg, out=out, resume=resume)
    return run.status, os.getpid()


def test_concurrent_writers_one_wins_the_rest_are_refused_naming_it(config, reference, tmp_path):
    out = tmp_path / "run"
    barrier = FORK.Barrier(4)
    children = [start_child(_estimate, config, out, False, barrier) for _ in range(4)]
    results = [q.get(timeout=240) for _, q in children]
    for proc, _ in children:
        proc.join(timeout=30)
    won = [r for r in results if r[0] == "ok"]
    refused = [r[1] for r in results if r[0] == "error"]
    assert len(won) == 1 and len(refused) == 3, results
    winner = won[0][1][1]
    for msg in refused:  # refused while the winner writes: the message names the winner
        assert msg.startswith("RunStateError") and f"PID {winner}" in msg and "Two writers" in msg, msg
    assert store_state(RunDir(out).store_path) == (N_JOBS, 0, "ok")
    assert_same_matrices(load_run(out), reference)


def test_a_second_cli_writer_is_refused_while_another_process_holds_the_run(config, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference.path, out)
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with RunLock(RunDir(out).lock_path):  # this test process is the writer
        assert RunDir(out).writer()["pid"] == os.getpid()
        proc = subprocess.run([sys.executable, "-m", "core", "estimate", "--config", str(config), "--out", str(out),
                               "--resume", "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=240,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "\n" not in err and "Traceback" not in err and f"PID {os.getpid()}" in err, err
    after = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def _cli_with_file_size_limit(limit: int, argv: list[str], err_path: str) -> int:
    from core.cli import main

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes past it fail with EFBIG (SIGXFSZ ignored)
    with open(err_path, "w") as err:
        old, sys.stderr = sys.stderr, err
        try:
            return main(argv)
        finally:
            sys.stderr = old


def test_disk_full_while_saving_keeps_the_store_consistent_and_resume_finishes(config, reference, tmp_path):
    out, err = tmp_path / "run", tmp_path / "stderr.txt"
    argv = ["estimate", "--config", str(config), "--out", str(out), "--no-progress"]
    proc, queue = start_child(_cli_with_file_size_limit, 100_000, argv, str(err))
    kind, code = queue.get(timeout=240)
    proc.join(timeout=30)
    message = err.read_text().strip()
    assert (kind, code) == ("ok", 2), (kind, code, message)
    assert "\n" not in message and "Traceback" not in message, message
    assert "File too large" in message or "disk I/O error" in message or "full" in message, message
    assert "--resume" in message
    stored, bad, integrity = store_state(RunDir(out).store_path)
    assert 0 < stored < N_JOBS and bad == 0 and integrity == "ok"
    assert json.loads(RunDir(out).manifest_path.read_text())["status"] == "failed"
    assert_same_matrices(run_estimation(config, out=out, resume=True), reference)


def _as_nobody(cfg, out):
    os.setgid(65534)
    os.setuid(65534)
    return run_estimation(cfg, out=out).status


def test_permission_lost_mid_run_is_reported_and_resume_finishes(config, reference):
    if os.getuid() != 0:
        pytest.skip("needs root to run the writer as another user (chmod does not stop root itself)")
    cfg = load_run_config(config)  # read here: the unprivileged writer cannot read root's temp folders
    base = Path(tempfile.mkdtemp(prefix="ta-perm-"))
    try:
        base.chmod(0o755)
        out = base / "run"
        out.mkdir()
        out.chmod(0o777)
        proc, queue = start_child(_as_nobody, cfg, out)
        deadline = time.time() + 240
        while jobs_stored(RunDir(out).store_path) < 3:
            assert proc.is_alive() and time.time() < deadline, "the writer stored nothing"
            time.sleep(0.02)
        out.chmod(0o555)  # the writer (uid 65534) may no longer create files in its run folder
        kind, message = queue.get(timeout=240)
        proc.join(timeout=30)
        assert kind == "error" and "Permission denied" in message and "--resume" in message, (kind, message)
        stored, bad, integrity = store_state(RunDir(out).store_path)
        assert stored >= 3 and bad == 0 and integrity == "ok"
        out.chmod(0o755)
        assert_same_matrices(run_estimation(config, out=out, resume=True), reference)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_matrices(config, reference, tmp_path):
    out = tmp_path / "run"
    rng = random.Random(8)
    # Time an uninterrupted forked writer on this machine now: start-up until its first stored training, and
    # the whole run, so the kills can land in start-up, training, commits and the final writes rather than
    # after the run has finished.
    t0 = time.monotonic()
    proc, queue = start_child(_estimate, config, tmp_path / "timed", False)
    while jobs_stored(RunDir(tmp_path / "timed").store_path) < 1:
        time.sleep(0.005)
    first = time.monotonic() - t0
    assert queue.get(timeout=240)[0] == "ok"
    proc.join(timeout=30)
    total = time.monotonic() - t0
    per_job = (total - first) / (N_JOBS - 1)
    assert_same_matrices(load_run(tmp_path / "timed"), reference)
    log = []
    for i in range(KILLS):
        before = jobs_stored(RunDir(out).store_path)
        proc, queue = start_child(_estimate, config, out, RunDir(out).manifest_path.is_file())
        # A random moment: in start-up or the first training (2 in 3), else within the training after the
        # next commit, at a uniformly random offset.
        target = before + rng.choice([0, 0, 1])
        while jobs_stored(RunDir(out).store_path) < target and proc.is_alive():
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, (first if target == before else 0.0) + per_job))
        alive = proc.is_alive()
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        else:  # it finished first: it must have completed the run, not failed
            assert queue.get(timeout=10)[0] == "ok"
        proc.join(timeout=30)
        db = RunDir(out).store_path
        state = store_state(db) if db.is_file() else (0, 0, "ok")
        manifest = RunDir(out).manifest_path
        status = json.loads(manifest.read_text())["status"] if manifest.is_file() else "-"  # always whole JSON
        log.append((i, alive, state[0], status))
        assert state[1:] == (0, "ok"), (i, state)
        assert RunDir(out).writer() is None  # the kernel dropped the dead writer's lock
    print(f"\nforked writer: first training stored after {first:.2f} s, run {total:.2f} s\nkill  alive-when-killed  jobs-stored  manifest-status")
    for row in log:
        print("  ".join(str(x) for x in row))
    final = run_estimation(config, out=out, resume=True)
    assert_same_matrices(final, reference)
    assert store_state(RunDir(out).store_path) == (N_JOBS, 0, "ok")
    assert sum(alive for _, alive, _, _ in log) >= KILLS // 2  # most kills hit a live writer
