"""Runs trained elsewhere: plan -> results table -> ingest, with generated metrics (no training; seconds).

The metrics come from a planted model (tasks in two groups: within-group subsets help, across hurt,
plus seeded noise), so the matrices have structure to check. The native-run equality (real training,
real processes) is in test_external_native.py; the README example in test_external_readme.py.
"""
from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli import main as cli_main
from core.errors import InvalidInputError, RunStateError
from core.estimation.external.ingest import ingest
from core.estimation.external.plan import plan_next, plan_run, read_plan
from core.estimation.external.results import planned, read_results
from core.estimation.runs.folder import RunDir, load_run
from core.estimation.runs.store import Job, ResultStore
from core.estimation.estimators.base import get_estimator

TASKS = ["a0", "a1", "a2", "b0", "b1", "b2"]


def metric(subset, task, seed) -> float:
    """A planted loss (lower is better): same-group partners lower it, other-group ones raise it."""
    g = task[0]
    effect = sum(-0.1 if u[0] == g else 0.15 for u in subset if u != task) / max(len(subset) - 1, 1)
    noise = np.random.default_rng(zlib.crc32(f"{'|'.join(subset)}/{task}/{seed}".encode())).normal(0, 0.01)
    return float(1.0 + 0.05 * TASKS.index(task) + effect + noise)


def results_table(plan_dir: Path, ids=None) -> pd.DataFrame:
    plan = pd.read_csv(Path(plan_dir) / "plan.csv")
    if ids is not None:
        plan = plan[plan["id"].isin(ids)]
    rows = [{"id": t.id, "task": task, "metric": metric(t.tasks.split("|"), task, t.seed), "n": 50,
             "seconds": 1.5}
            for t in plan.itertuples() for task in t.tasks.split("|")]
    return pd.DataFrame(rows)


def write(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def folder_hashes(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(path).iterdir()) if p.is_file()}


@pytest.fixture
def pairwise(tmp_path):
    return plan_run(out=tmp_path / "run", estimator="pairwise", tasks=TASKS, seeds=[0, 1])


def test_plan_lists_the_estimators_jobs_with_stable_ids(tmp_path, pairwise):
    t = pairwise.trainings
    n = len(TASKS)
    assert len(t) == 2 * (n + n * (n - 1) // 2) and t["id"].is_unique
    again = plan_run(out=tmp_path / "again", estimator="pairwise", tasks=TASKS, seeds=[0, 1])
    assert list(again.trainings["id"]) == list(t["id"])  # stable: same training, same id
    man = RunDir(pairwise.run.path).read_manifest()
    assert man["status"] == "planned" and man["external"] and man["budget"]["trainings"] == len(t)
    assert RunDir(pairwise.run.path).overview().missing == len(t)
    csv = pd.read_csv(pairwise.run.plan_csv_path)
    assert list(csv.columns[:4]) == ["id", "tasks", "seed", "split"]
    with pytest.raises(RunStateError, match="already holds a run"):
        plan_run(out=tmp_path / "run", estimator="pairwise", tasks=TASKS)
    with pytest.raises(InvalidInputError, match="cannot be trained elsewhere"):
        plan_run(out=tmp_path / "g", estimator="gradtag", tasks=TASKS)


def test_partial_ingest_marks_missing_then_completes_like_one_shot(tmp_path, pairwise):
    run = pairwise.run.path
    full = results_table(run)
    half_ids = list(pairwise.trainings["id"][::2])
    first = write(full[full["id"].isin(half_ids)], tmp_path / "half.csv")
    rep = ingest(run, first, direction="lower")
    assert rep.status == "partial" and rep.added == len(half_ids) and rep.done == len(half_ids)
    assert set(rep.remaining["id"]) == set(pairwise.trainings["id"]) - set(half_ids)
    assert set(RunDir(run).read_remaining_plan()["id"]) == set(rep.remaining["id"])
    m = load_run(run).main
    assert "PARTIAL" in m.notes and (m.counts[~np.eye(len(TASKS), dtype=bool)] == 0).any()
    assert load_run(run).status == "partial"
    again = ingest(run, first)  # the direction is remembered; repeating adds nothing
    assert again.added == 0 and again.repeated == len(half_ids)
    done = ingest(run, write(full, tmp_path / "full.csv"))
    assert done.status == "complete" and done.added == len(full["id"].unique()) - len(half_ids)
    assert done.remaining.empty and RunDir(run).read_remaining_plan().empty

    other = plan_run(out=tmp_path / "oneshot", estimator="pairwise", tasks=TASKS, seeds=[0, 1])
    ingest(other.run.path, tmp_path / "full.csv", direction="lower")
    a, b = load_run(run), load_run(other.run.path)
    assert set(a.matrices) == set(b.matrices) == {"pairwise", "single", "main"}
    np.testing.assert_array_equal(a.main.values, b.main.values)
    # what the estimator itself computes from the stored outcomes
    with ResultStore.open(RunDir(run).store_path) as store:
        est = get_estimator("pairwise").fit(pairwise.ctx, store.outcomes())
    np.testing.assert_array_equal(est.main_.values, a.main.values)
    # the planted structure: within-group transfer is positive (the loss goes down), across negative
    T = pd.DataFrame(a.main.values, index=TASKS, columns=TASKS)
    assert T.loc["a0", "a1"] > 0 > T.loc["a0", "b1"]


def test_shapes_long_wide_jsonl_parquet_give_the_same_matrix(tmp_path):
    long = None
    mats = {}
    for shape in ("long", "wide", "jsonl", "parquet", "subset"):
        plan = plan_run(out=tmp_path / shape, estimator="higher-order", tasks=TASKS, seeds=[0],
                        options={"subsets": 6, "subset_size": 3})
        long = results_table(plan.run.path)
        if shape == "long":
            path = write(long, tmp_path / "long.csv")
        elif shape == "wide":
            wide = long.pivot(index="id", columns="task", values="metric").reset_index()
            path = write(wide, tmp_path / "wide.csv")
        elif shape == "jsonl":
            path = tmp_path / "r.jsonl"
            subsets = dict(zip(plan.trainings["id"], plan.trainings["tasks"]))
            with open(path, "w") as f:
                for r in long.itertuples():
                    f.write(json.dumps({"subset": subsets[r.id].split("|")[::-1], "task": r.task, "metric": r.metric})
                            + "\n")
        elif shape == "parquet":
            path = tmp_path / "r.parquet"
            long.rename(columns={"metric": "val_loss"}).to_parquet(path)
        else:
            subsets = dict(zip(plan.trainings["id"], plan.trainings["tasks"]))
            path = write(long.assign(subset=[subsets[i] for i in long["id"]], seed=0).drop(columns="id"),
                         tmp_path / "subset.csv")
        rep = ingest(plan.run.path, path, direction="lower",
                     metric_column="val_loss" if shape == "parquet" else "metric")
        assert rep.status == "complete", shape
        mats[shape] = load_run(plan.run.path).main
    for shape, m in mats.items():
        np.testing.assert_array_equal(m.values, mats["long"].values, err_msg=shape)
        np.testing.assert_array_equal(m.counts, mats["long"].counts, err_msg=shape)


def test_higher_order_partial_counts_grow_to_the_native_fit(tmp_path):
    plan = plan_run(out=tmp_path / "ho", estimator="higher-order", tasks=TASKS, seeds=[0, 1],
                    options={"subsets": 8, "subset_size": 3})
    full = results_table(plan.run.path)
    ids = list(plan.trainings["id"])
    ingest(plan.run.path, write(full[full["id"].isin(ids[: len(ids) // 3])], tmp_path / "p.csv"), direction="lower")
    part = load_run(plan.run.path).main
    ingest(plan.run.path, write(full, tmp_path / "f.csv"))
    whole = load_run(plan.run.path).main
    assert (part.counts <= whole.counts).all() and part.counts.sum() < whole.counts.sum()
    assert "PARTIAL" not in whole.notes and whole.estimator == "higher-order"


def test_adaptive_is_planned_batch_by_batch(tmp_path):
    tasks = [f"{g}{i}" for g in "ab" for i in range(4)]
    global TASKS
    saved, TASKS = TASKS, tasks
    try:
        plan = plan_run(out=tmp_path / "ad", estimator="adaptive-batch", tasks=tasks, seeds=[0],
                        options=None)
        run = plan.run.path
        with pytest.raises(RunStateError, match="not ingested yet"):
            plan_next(run)
        batches = 1
        for _ in range(20):
            rep = ingest(run, write(results_table(run, RunDir(run).read_remaining_plan()["id"]),
                                    tmp_path / f"b{batches}.csv"), direction="lower")
            if rep.status == "complete":
                break
            assert rep.next_batch
            _, added = plan_next(run)
            assert added > 0
            batches += 1
        assert rep.status == "complete" and batches > 1
        assert read_plan(run).n_batches == batches
        assert load_run(run).main.estimator == "adaptive"
    finally:
        TASKS = saved


def test_read_results_is_reusable_without_a_run(tmp_path):
    jobs = {"g1": Job(("x", "y"), 0), "g2": Job(("z",), 0)}
    path = write(pd.DataFrame({"id": ["g1", "g1", "g2"], "task": ["x", "y", "z"], "metric": [0.9, 0.8, 0.7]}),
                 tmp_path / "r.csv")
    rows = read_results(path, planned(jobs), direction="higher")
    assert sorted(rows["task"]) == ["x", "y", "z"] and (rows["perf"] == rows["metric"]).all()


# ----------------------------------------------------------------------------------------------- catalogue

def _bad(name: str, tmp: Path, plan) -> tuple[Path, dict]:
    """Write the malformed results file ``name``; return its path and the ingest options."""
    good = results_table(plan.run.path)
    ids = list(plan.trainings["id"])
    opts: dict = {"direction": "lower"}
    p = tmp / f"{name}.csv"
    if name == "missing-file":
        return tmp / "nope.csv", opts
    if name == "directory":
        (tmp / "adir.csv").mkdir()
        return tmp / "adir.csv", opts
    if name == "unknown-format":
        p = tmp / "r.xlsx"
        p.write_bytes(b"SECRET42")
    elif name == "empty-file":
        p.write_bytes(b"")
    elif name == "header-only":
        p.write_text("id,task,metric\n")
    elif name == "binary-garbage":
        p.write_bytes(bytes(range(256)) * 8)
    elif name == "ragged-csv":
        p.write_text("id,task,metric\n" + f"{ids[0]},a0,1.0,SECRET42,9\n")
    elif name == "bad-jsonl":
        p = tmp / "r.jsonl"
        p.write_text('{"id": "x", "task": "a0", "metric": 1}\n{SECRET42\n')
    elif name == "jsonl-not-object":
        p = tmp / "r.jsonl"
        p.write_text('["SECRET42"]\n')
    elif name == "damaged-parquet":
        p = tmp / "r.parquet"
        p.write_bytes(b"PAR1SECRET42")
    elif name == "no-metric-column":
        write(good.rename(columns={"metric": "SECRET42"}), p)
    elif name == "no-training-column":
        write(good.drop(columns="id"), p)
    elif name == "unknown-id":
        write(good.assign(id=["SECRET42"] + list(good["id"][1:])), p)
    elif name == "unknown-task":
        write(good.assign(task=["SECRET42"] + list(good["task"][1:])), p)
    elif name == "task-not-in-subset":
        single = plan.trainings[plan.trainings["n_tasks"] == 1].iloc[0]
        other = next(t for t in TASKS if t != single["tasks"])
        write(pd.concat([good, pd.DataFrame([{"id": single["id"], "task": other, "metric": 1.0}])]), p)
    elif name == "conflicting-duplicate":
        dup = good.iloc[[0]].assign(metric=good["metric"].iloc[0] + 1.0)
        write(pd.concat([good, dup]), p)
    elif name == "missing-task-of-training":
        pair = plan.trainings[plan.trainings["n_tasks"] == 2]["id"].iloc[0]
        write(good.drop(good.index[good["id"] == pair][:1]), p)
    elif name == "nan-metric":
        write(good.assign(metric=["nan"] + list(good["metric"][1:])), p)
    elif name == "empty-metric":
        write(good.assign(metric=[""] + list(good["metric"][1:])), p)
    elif name == "inf-metric":
        write(good.assign(metric=["inf"] + list(good["metric"][1:])), p)
    elif name == "text-metric":
        write(good.assign(metric=["SECRET42"] + list(good["metric"][1:])), p)
    elif name == "negative-seconds":
        write(good.assign(seconds=-1.0), p)
    elif name == "fractional-n":
        write(good.assign(n=0.5), p)
    elif name == "seed-disagrees-with-id":
        write(good.assign(seed=7), p)
    elif name == "split-disagrees":
        write(good.assign(split="test"), p)
    elif name == "unknown-subset":
        write(good.drop(columns="id").assign(subset="a0|SECRET42", seed=0), p)
    elif name == "subset-without-seed":
        subsets = dict(zip(plan.trainings["id"], plan.trainings["tasks"]))
        write(good.assign(subset=[subsets[i] for i in good["id"]]).drop(columns="id"), p)
    elif name == "wide-unknown-column":
        wide = good.pivot(index="id", columns="task", values="metric").reset_index()
        write(wide.rename(columns={"a0": "SECRET42"}), p)
    elif name == "wide-cell-outside-subset":
        wide = good.pivot(index="id", columns="task", values="metric").reset_index()
        single = plan.trainings[plan.trainings["n_tasks"] == 1].iloc[0]
        other = next(t for t in TASKS if t != single["tasks"])
        wide.loc[wide["id"] == single["id"], other] = 1.0
        write(wide, p)
    elif name == "duplicate-column":
        p.write_text("id,task,metric,metric\n" + f"{ids[0]},a0,1.0,2.0\n")
    elif name == "direction-contradicts-run":
        write(good, p)
        opts = {"direction": "higher"}
    elif name == "higher-is-better-loss":
        write(good.rename(columns={"metric": "val_loss"}), p)
        opts = {"direction": "higher", "metric_column": "val_loss"}
    elif name == "changed-stored-value":
        write(good.assign(metric=good["metric"] + 0.5), p)
    else:
        raise AssertionError(name)
    return p, opts


CATALOGUE = ["missing-file", "directory", "unknown-format", "empty-file", "header-only", "binary-garbage",
             "ragged-csv", "bad-jsonl", "jsonl-not-object", "damaged-parquet", "no-metric-column",
             "no-training-column", "unknown-id", "unknown-task", "task-not-in-subset", "conflicting-duplicate",
             "missing-task-of-training", "nan-metric", "empty-metric", "inf-metric", "text-metric",
             "negative-seconds", "fractional-n", "seed-disagrees-with-id", "split-disagrees", "unknown-subset",
             "subset-without-seed", "wide-unknown-column", "wide-cell-outside-subset", "duplicate-column",
             "direction-contradicts-run", "higher-is-better-loss", "changed-stored-value"]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """A pairwise run (2 seeds) with a third of its trainings ingested: the store exists and holds results."""
    tmp = tmp_path_factory.mktemp("cat")
    plan = plan_run(out=tmp / "run", estimator="pairwise", tasks=TASKS, seeds=[0, 1])
    full = results_table(plan.run.path)
    ingest(plan.run.path, write(full[full["id"].isin(plan.trainings["id"][::3])], tmp / "first.csv"),
           direction="lower")
    return plan


@pytest.mark.parametrize("name", CATALOGUE)
def test_malformed_results_give_one_line_and_leave_the_run_unchanged(name, ingested, tmp_path, capsys):
    plan = ingested
    run = plan.run.path
    path, opts = _bad(name, tmp_path, plan)
    before = folder_hashes(run)
    with pytest.raises(InvalidInputError) as exc:
        ingest(run, path, **opts)
    msg = str(exc.value)
    assert "\n" not in msg and "SECRET42" not in msg and "Traceback" not in msg
    argv = ["ingest", "--run", str(run), "--results", str(path)]
    argv += ["--metric-column", opts["metric_column"]] if "metric_column" in opts else []
    argv += ["--higher-is-better"] if opts.get("direction") == "higher" else ["--lower-is-better"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "SECRET42" not in err
    assert folder_hashes(run) == before, "the run folder changed"
    assert not (run / "results.sqlite-wal").exists()


# ----------------------------------------------------------------------------------------------- plan input, lock

@pytest.mark.parametrize("text,match", [
    ("a\n", "list at least 2"),
    ("a\nb\na\n", "line 3 is listed twice"),
    ("a|x\nb\n", "contains '|'"),
])
def test_bad_task_lists_are_refused_in_one_line(tmp_path, text, match):
    (tmp_path / "tasks.txt").write_text(text)
    with pytest.raises(InvalidInputError, match=match) as exc:
        plan_run(out=tmp_path / "run", estimator="pairwise", tasks=tmp_path / "tasks.txt")
    assert "\n" not in str(exc.value) and not (tmp_path / "run").exists()


def test_plan_cli_needs_one_source_and_an_estimator(tmp_path, capsys):
    (tmp_path / "tasks.txt").write_text("a\nb\nc\n")
    assert cli_main(["plan", "--tasks", str(tmp_path / "tasks.txt"), "--out", str(tmp_path / "r")]) == 2
    assert cli_main(["plan", "--estimator", "pairwise", "--out", str(tmp_path / "r")]) == 2
    assert cli_main(["plan", "--tasks", str(tmp_path / "tasks.txt"), "--estimator", "higher-order", "--subsets", "2",
                     "--subset-size", "2", "--seeds", "0", "1", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "planned" in out and (tmp_path / "r" / "plan.csv").is_file()


def test_ingest_while_another_process_writes_the_run_is_refused(tmp_path, pairwise):
    import subprocess
    import sys

    run = pairwise.run.path
    path = write(results_table(run), tmp_path / "r.csv")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom core.estimation.runs.lock import RunLock\n"
         f"with RunLock({str(RunDir(run).lock_path)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
        cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = folder_hashes(run)
        with pytest.raises(RunStateError) as exc:
            ingest(run, path, direction="lower")
        assert "\n" not in str(exc.value)
        assert {k: v for k, v in folder_hashes(run).items() if k != "run.lock"} == \
            {k: v for k, v in before.items() if k != "run.lock"}
    finally:
        holder.kill()
        holder.wait()
    assert ingest(run, path, direction="lower").status == "complete"  # the kernel freed the lock of the dead holder
