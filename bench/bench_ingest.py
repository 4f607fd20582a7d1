"""Ingest throughput: how long planning and ingesting results of trainings run elsewhere take.

Protocol (fixed before running): generated metrics (a planted loss, lower is better: same-group
partners lower it, others raise it, plus seeded noise), written as a long CSV (one row per training
and task). Cases: pairwise on 20, 50 and 100 tasks (1 seed) and higher-order on 100 tasks (600
subsets of 5, 1 seed). For each: ``plan`` seconds, reading and validating the file (``read_results``),
the first ingest of the whole file (validation, storing, the estimator's fit, writing the run
folder), a repeated ingest of the same file (nothing new: validation, comparison with the store,
recompute) and a partial ingest of half the file into a fresh plan. Each case runs once (timings
are noisy on a shared machine; the read/ingest ratio is the stable figure).

Side by side in the same run: storing the 5,050 trainings of pairwise-100 with one transaction per
training (``ResultStore.record``, as a native run stores a training when it finishes) vs one for the
whole file (``record_many``, what ingest does).

    PYTHONPATH=. python bench/bench_ingest.py
"""
from __future__ import annotations

import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import markdown_table, write_section  # noqa: E402
from core.estimation.external.ingest import _job_results, ingest  # noqa: E402
from core.estimation.external.plan import plan_run, read_plan  # noqa: E402
from core.estimation.external.results import read_results  # noqa: E402
from core.estimation.runs.store import ResultStore  # noqa: E402

CASES = [("pairwise", 20, {}), ("pairwise", 50, {}), ("pairwise", 100, {}),
         ("higher-order", 100, {"subsets": 600, "subset_size": 5})]


def metric(subset: list[str], task: str, seed: int, groups: int = 4) -> float:
    g = int(task[1:]) % groups
    others = [u for u in subset if u != task]
    effect = sum(-0.1 if int(u[1:]) % groups == g else 0.15 for u in others) / max(len(others), 1)
    noise = np.random.default_rng(zlib.crc32(f"{'|'.join(subset)}/{task}/{seed}".encode())).normal(0, 0.01)
    return float(1.0 + effect + noise)


def results_csv(plan_csv: Path, out: Path, every: int = 1) -> int:
    plan = pd.read_csv(plan_csv).iloc[::every]
    rows = [{"id": t.id, "task": task, "metric": metric(t.tasks.split("|"), task, t.seed), "seconds": 60.0}
            for t in plan.itertuples() for task in t.tasks.split("|")]
    pd.DataFrame(rows).to_csv(out, index=False)
    return len(rows)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    rows, data = [], []
    stores = None
    for est, n, opts in CASES:
        tasks = [f"t{i}" for i in range(n)]
        name = f"{est}-{n}"
        plan, t_plan = timed(lambda: plan_run(out=tmp / name, estimator=est, tasks=tasks, seeds=[0],
                                              options=opts or None))
        n_rows = results_csv(plan.run.plan_csv_path, tmp / f"{name}.csv")
        table, t_read = timed(lambda: read_results(tmp / f"{name}.csv", plan, direction="lower"))
        rep, t_first = timed(lambda: ingest(plan.run.path, tmp / f"{name}.csv", direction="lower"))
        assert rep.status == "complete", rep
        again, t_again = timed(lambda: ingest(plan.run.path, tmp / f"{name}.csv"))
        assert again.added == 0
        half = plan_run(out=tmp / f"{name}-half", estimator=est, tasks=tasks, seeds=[0], options=opts or None)
        results_csv(half.run.plan_csv_path, tmp / f"{name}-half.csv", every=2)
        prep, t_half = timed(lambda: ingest(half.run.path, tmp / f"{name}-half.csv", direction="lower"))
        assert prep.status == "partial"
        r = {"case": name, "trainings": len(plan.trainings), "rows": n_rows, "plan s": t_plan, "read s": t_read,
             "first ingest s": t_first, "repeat ingest s": t_again, "half ingest s": t_half,
             "rows/s (first ingest)": n_rows / t_first}
        rows.append(r)
        data.append(r)
        print(r, flush=True)
        if name == "pairwise-100":
            stores = (plan, table)

    plan, table = stores
    results = list(_job_results(read_plan(plan.run.path), table).values())
    one = tmp / "one.sqlite"
    many = tmp / "many.sqlite"
    with ResultStore.open(one) as s:
        _, t_one = timed(lambda: [s.record(r) for r in results])
    with ResultStore.open(many) as s:
        _, t_many = timed(lambda: s.record_many(results))
    store_rows = [{"store": "one transaction per training (record)", "trainings": len(results), "seconds": t_one},
                  {"store": "one transaction for the file (record_many)", "trainings": len(results),
                   "seconds": t_many}]
    print(store_rows, f"ratio {t_one / t_many:.1f}x", flush=True)
    body = (markdown_table(rows, floatfmt=".3g") + "\n"
            f"Storing the {len(results)} trainings of pairwise-100 (same run, same data):\n\n"
            + markdown_table(store_rows, floatfmt=".3g")
            + f"\nOne transaction for the file is {t_one / t_many:.1f}x faster here (each SQLite commit syncs to "
              "disk); the ratio depends on the disk. 'first ingest' includes the estimator's fit and writing the "
              "run folder; 'repeat ingest' stores nothing and compares every row with the store; 'half ingest' "
              "writes a partial matrix.\n")
    write_section("ingest", "Ingesting trainings run elsewhere: plan and ingest time",
                  "PYTHONPATH=. python bench/bench_ingest.py", body, {"cases": data, "store": store_rows})


if __name__ == "__main__":
    main()
