"""Result store, subset sampling, run lock and executors (no training needed)."""
import os
import subprocess
import sys
import textwrap
from itertools import combinations
from math import comb

import numpy as np
import pytest

from core.errors import InvalidInputError, RunStateError
from core.estimation.runs.executors import JobFailed, LocalExecutor, get_executor
from core.estimation.runs.lock import RunLock, read_lock
from core.estimation.estimators.sampling import pair_coverage, sample_subsets
from core.estimation.runs.store import Job, JobResult, ResultStore, Score


def _result(subset, seed=0, value=0.5):
    return JobResult(job=Job(subset, seed), scores={t: Score(value, 1 - value, value, 10) for t in subset},
                     seconds=0.1, flops=1e6, steps=5)


def test_store_records_atomically_and_refuses_duplicates(tmp_path):
    with ResultStore.open(tmp_path / "r.sqlite") as store:
        assert store.record(_result(("a", "b")))
        assert not store.record(_result(("a", "b"), value=0.9))  # same job: no second row
        assert store.record(_result(("a", "b"), seed=1))
        assert store.record(_result(("c",)))
        out = store.outcomes()
        assert len(out) == 5 and out.duplicated(["subset", "task", "seed", "split"]).sum() == 0
        assert out.loc[(out.subset == ("a", "b")) & (out.seed == 0), "perf"].tolist() == [0.5, 0.5]
        assert store.cost() == {"trainings": 3, "seconds": pytest.approx(0.3), "flops": pytest.approx(3e6)}
        store.export_csv(tmp_path / "results.csv")
    text = (tmp_path / "results.csv").read_text().splitlines()
    assert text[0].startswith("subset,task,metric,loss,seed,seconds")
    assert "a|b,a," in text[1]
    with ResultStore.open(tmp_path / "r.sqlite") as again:  # reopening keeps everything (WAL committed)
        assert again.n_jobs() == 3
        import sqlite3

        mode = sqlite3.connect(tmp_path / "r.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_store_rejects_scores_outside_subset_and_bad_names(tmp_path):
    with ResultStore.open(tmp_path / "r.sqlite") as store:
        bad = JobResult(job=Job(("a",), 0), scores={"b": Score(1, 0, 1)}, seconds=1)
        with pytest.raises(InvalidInputError, match="outside its subset"):
            store.record(bad)
        assert store.n_jobs() == 0
    with pytest.raises(InvalidInputError, match="separator"):
        Job(("a|b",), 0).key


def test_store_refuses_a_non_database(tmp_path):
    (tmp_path / "r.sqlite").write_text("not a database at all" * 100)
    with pytest.raises(RunStateError, match="not a usable result store"):
        ResultStore.open(tmp_path / "r.sqlite")


@pytest.mark.parametrize("n, m, s", [(6, 3, 2), (10, 5, 3), (12, 8, 4), (7, 1, 7)])
def test_sampler_covers_every_pair_and_is_deterministic(n, m, s):
    names = [f"t{i}" for i in range(n)]
    a = sample_subsets(names, m, s, seed=3)
    b = sample_subsets(names, m, s, seed=3)
    assert a.subsets == b.subsets
    assert len(set(a.subsets)) == len(a.subsets) and a.n_random == m
    assert all(len(x) == s and len(set(x)) == s for x in a.subsets)
    assert a.min_pair_coverage >= 1
    np.testing.assert_array_equal(a.coverage, pair_coverage(names, a.subsets))
    if comb(n - 2, s - 2) >= 2:
        twice = sample_subsets(names, m, s, seed=3, min_pair_coverage=2)
        assert twice.min_pair_coverage >= 2 and twice.subsets[:m] == a.subsets[:m]
    else:
        with pytest.raises(InvalidInputError, match="min_pair_coverage 2 is impossible"):
            sample_subsets(names, m, s, seed=3, min_pair_coverage=2)


def test_sampler_without_coverage_leaves_holes_and_options_are_checked():
    names = [f"t{i}" for i in range(10)]
    raw = sample_subsets(names, 3, 3, seed=0, min_pair_coverage=0)
    assert raw.n_added == 0 and raw.min_pair_coverage == 0
    for kwargs, word in [(dict(n_subsets=0, size=3), "subsets"), (dict(n_subsets=5, size=1), "subset_size"),
                         (dict(n_subsets=5, size=11), "subset_size"), (dict(n_subsets=comb(10, 3) + 1, size=3), "subsets"),
                         (dict(n_subsets=5, size=3, min_pair_coverage=-1), "min_pair_coverage"),
                         (dict(n_subsets=5, size=3, min_pair_coverage=9), "min_pair_coverage"),
                         (dict(n_subsets=2.5, size=3), "subsets")]:
        with pytest.raises(InvalidInputError, match=word):
            sample_subsets(names, **kwargs)


def test_run_lock_refuses_second_holder_and_takes_over_stale(tmp_path):
    path = tmp_path / "run.lock"
    with RunLock(path):
        assert read_lock(path)["pid"] == os.getpid()
        # A second process cannot take it while we hold it.
        code = textwrap.dedent(f"""
            from core.estimation.runs.lock import RunLock
            from core.errors import RunStateError
            try:
                RunLock({str(path)!r}).acquire()
            except RunStateError as e:
                print("REFUSED", e)
        """)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=60)
        assert "REFUSED" in res.stdout and f"PID {os.getpid()}" in res.stdout, res.stderr
    assert not path.exists()
    # A lock file left by a dead process (no flock held) is taken over and reported.
    path.write_text('{"pid": 999999, "host": "x", "started": "then"}')
    with RunLock(path) as lock:
        assert lock.stale["pid"] == 999999


def _square(shared, item):
    return shared * item * item


def _boom(shared, item):
    if item == 3:
        raise ValueError("three is bad")
    return item


def test_local_executor_maps_and_names_failures():
    exe = get_executor("local")
    assert isinstance(exe, LocalExecutor)
    assert dict(exe.map(_square, range(5), 2)) == {i: 2 * i * i for i in range(5)}
    with pytest.raises(JobFailed, match="three is bad"):
        list(exe.map(_boom, range(5)))
    with pytest.raises(InvalidInputError, match="address"):
        get_executor("local", address="1.2.3.4:6379")
    with pytest.raises(InvalidInputError, match="executor 'dask'"):
        get_executor("dask")
    with pytest.raises(InvalidInputError, match="gpu_share"):
        get_executor("ray", gpu_share=0)
