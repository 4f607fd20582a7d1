"""``python -m core plan`` and ``python -m core ingest``: estimation runs trained elsewhere.

Example::

    python -m core plan --config RUN.yaml --estimator pairwise --out runs/ext       # writes runs/ext/plan.csv
    # ... train each row of runs/ext/plan.csv anywhere, write results.csv (id, task, metric) ...
    python -m core ingest --run runs/ext --results results.csv --lower-is-better
    python -m core group --affinity runs/ext/affinity.csv --k 2
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from core.estimation.external.ingest import ingest
from core.estimation.external.plan import EXTERNAL_ESTIMATORS, plan_next, plan_run
from core.estimation.runs.folder import RunDir
from core.matrix.transfer import negative_transfers


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plan", help="plan the trainings of an estimation you train elsewhere (writes plan.csv/json)",
        description="Write the trainings an estimator needs (one row per subset and seed: a stable id, the task list) "
                    "as plan.csv and plan.json, in a run folder in status 'planned'. Train them anywhere, then "
                    "python -m core ingest the metrics.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tasks", help="text file with the task names, one a line")
    src.add_argument("--config", help="run config (YAML or TOML): its tasks, metric directions and training spec")
    p.add_argument("--estimator", help=f"{', '.join(EXTERNAL_ESTIMATORS)} (adaptive-batch = adaptive)")
    p.add_argument("--subsets", type=int, help="higher-order / true: number of random subsets")
    p.add_argument("--subset-size", type=int, help="higher-order / true: tasks per subset")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: the config's, else 0)")
    p.add_argument("--split", choices=("val", "test", "train"), help="split the trainer scores (default val)")
    p.add_argument("--out", help="run folder to create (with --next: the planned run)")
    p.add_argument("--next", action="store_true", help="adaptive: plan the next batch of the run in --out")
    p.set_defaults(func=plan_command)

    q = subparsers.add_parser(
        "ingest", help="ingest metrics of trainings run elsewhere into a planned run",
        description="Read a results table (.csv, .tsv, .jsonl, .parquet; one row per training and task with id, task, "
                    "metric, or one row per training with a column per task), check it against the plan, store the "
                    "new trainings and recompute the run's matrices. Safe to repeat as results arrive.")
    q.add_argument("--run", required=True, help="the run folder made by python -m core plan")
    q.add_argument("--results", required=True, help="results table (.csv, .tsv, .jsonl or .parquet)")
    q.add_argument("--metric-column", default="metric", help="the metric column of a long table (default metric)")
    d = q.add_mutually_exclusive_group()
    d.add_argument("--higher-is-better", dest="direction", action="store_const", const="higher",
                   help="a higher metric is better (accuracy, F1)")
    d.add_argument("--lower-is-better", dest="direction", action="store_const", const="lower",
                   help="a lower metric is better (loss, error)")
    q.set_defaults(func=ingest_command, direction=None)


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def plan_command(args: argparse.Namespace) -> int:
    if not args.out:
        return _usage("plan: give --out (the run folder to create, or with --next the planned run).")
    if args.next:
        plan, added = plan_next(args.out)
        if added:
            print(f"planned batch {plan.n_batches - 1}: {added} trainings -> {plan.run.remaining_plan_path}")
        else:
            print(f"{plan.run.path}: the estimator asks for no further trainings; the run is complete once every "
                  "planned training is ingested.")
        return 0
    if not args.estimator:
        return _usage(f"plan: give --estimator ({', '.join(EXTERNAL_ESTIMATORS)}).")
    options = {k: v for k, v in (("subsets", args.subsets), ("subset_size", args.subset_size)) if v is not None}
    plan = plan_run(out=args.out, estimator=args.estimator, tasks=args.tasks, config=args.config,
                    options=options or None, seeds=args.seeds, split=args.split)
    t = plan.trainings
    print(f"planned {len(t)} trainings ({int(t['n_tasks'].sum())} task-trainings) of {len(plan.ctx.names)} tasks for "
          f"{plan.estimator.name}, seeds {list(plan.ctx.seeds)} -> {plan.run.plan_csv_path}")
    if plan.estimator.name == "adaptive":
        print("adaptive: this is batch 0; after ingesting it run python -m core plan --next --out "
              f"{plan.run.path}")
    print(f"next: train each row, then python -m core ingest --run {plan.run.path} --results RESULTS.csv")
    return 0


def ingest_command(args: argparse.Namespace) -> int:
    rep = ingest(args.run, args.results, metric_column=args.metric_column, direction=args.direction)
    rd = RunDir(rep.run)
    print(f"run {rep.run}: {rep.status}; {rep.added} new training(s) stored, {rep.repeated} already stored; "
          f"{rep.done}/{rep.total} planned trainings ingested; {rep.coverage}")
    if len(rep.remaining):
        print(f"missing: {len(rep.remaining)} training(s), listed in {rd.remaining_plan_path}")
    if rep.next_batch:
        print(f"next batch: python -m core plan --next --out {rep.run}")
    main = rd.load().main
    if main is not None:
        print(f"negative transfers (T < 0): {len(negative_transfers(main))}")
        if rep.status == "complete":
            print(f"next: python -m core group --affinity {rd.affinity_csv_path}")
    return 0
