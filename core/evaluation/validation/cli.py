"""``python -m core validate``: train a grouping's groups and baselines over seeds, and say whether it pays.

Examples::

    python -m core validate --run sample_data/est-planted-pairwise --method sdp --k 3 --seeds 3
    python -m core validate --run RUN --grouping groups.csv --seeds 5 --baselines all,single,random,spectral
    python -m core validate --run RUN --name sdp-k3-test --resume             # after a kill
    python -m core validate --run RUN --method sdp --k 3 --seeds 5 --plan-only  # trainings run elsewhere
    python -m core validate --run RUN --name sdp-k3-test --ingest results.csv   # training_id,task,metric
    python -m core validate --run RUN --list
"""
from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from core.cli import progress_bar
from core.errors import InvalidInputError
from core.evaluation.validation.folder import list_validations
from core.evaluation.validation.orchestrator import Validation, prepare_validation, run_validation, validation_status


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "validate", help="train a grouping and baselines over seeds: does the grouping pay?",
        description="Train each group of a partition and of each baseline partition (one model on all tasks, one per "
                    "task, random groups of the same sizes, other grouping methods) over N seeds with the run's "
                    "backend, spec and data; score every task on a split the affinities never saw; write "
                    "RUN/validations/NAME/ (manifest, store, plan, per-task table, summary).")
    p.add_argument("--run", required=True, help="the estimation run folder whose affinities produced the grouping")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--grouping", help="grouping file: CSV task,group or the JSON grouping export")
    src.add_argument("--method", help="group the run's matrix: sdp (default), spectral, lloyd, exhaustive; or the "
                                      "named strategies all (k=1) and single (k=n)")
    p.add_argument("--k", help="number of groups for --method (or auto)")
    p.add_argument("--name", help="validation name (folder under RUN/validations; default from the grouping)")
    p.add_argument("--seeds", type=int, default=3,
                   help="number of training seeds, 0..N-1 (default 3; intervals need >= 2)")
    p.add_argument("--split", default="test", choices=("test", "val", "train"),
                   help="split every task is scored on (default test; must differ from the estimation's)")
    p.add_argument("--allow-estimation-split", action="store_true",
                   help="allow validating on the split the affinities were estimated on (optimistic; said in the output)")
    p.add_argument("--baselines", default="all,single,random",
                   help="comma-separated: all, single, random, spectral, lloyd; or none (default all,single,random)")
    p.add_argument("--random-draws", type=int, default=3, help="random partitions of the grouping's sizes (default 3)")
    p.add_argument("--executor", default="local", choices=("local", "ray"), help="where trainings run (default local)")
    p.add_argument("--address", help="Ray cluster address (with --executor ray)")
    p.add_argument("--config", help="the run's config (default: the one recorded in its manifest)")
    p.add_argument("--resume", action="store_true", help="continue the validation --name, skipping stored trainings")
    p.add_argument("--plan-only", action="store_true",
                   help="write the plan (plan.csv, plan.json) and the budget, train nothing")
    p.add_argument("--ingest", metavar="RESULTS.csv",
                   help="add results trained elsewhere (training_id,task,metric[,loss]) to the validation --name")
    p.add_argument("--list", action="store_true", help="list the run's validations")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_command)
    return p


def _fmt(x: Any, digits: int = 4) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "-"
    return "-" if x != x else f"{x:.{digits}g}"


def print_validation(v: Validation, out: Any = None) -> None:
    """The summary of a validation as plain text: strategies, paired differences and verdicts, per-task gains."""
    out = sys.stdout if out is None else out  # looked up now: a default bound at import keeps a stale stream
    man, s = v.manifest, v.summary or {}
    cost = man.get("cost") or {}
    prog = man.get("progress") or {}
    print(f"validation {v.dir.path}: {man.get('status')}; {prog.get('done')}/{prog.get('total')} trainings; "
          f"scored on {s.get('split', '?')} (affinities estimated on {man.get('estimation_split', '?')})", file=out)
    print(f"cost: {cost.get('trainings')} trainings, {_fmt(cost.get('seconds'), 3)} s of training, "
          f"{_fmt(cost.get('wall_seconds'), 3)} s wall" + (f", {_fmt(cost['flops'], 3)} FLOPs" if cost.get("flops") else ""),
          file=out)
    labels = s.get("labels") or {}
    if s.get("strategies"):
        print("\nstrategy                              mean perf      SE  seeds  draws", file=out)
        for r in s["strategies"]:
            print(f"{labels.get(r['strategy'], r['strategy'])[:36]:36s} {_fmt(r['mean']):>10s} {_fmt(r['se'], 2):>7s} "
                  f"{r['seeds']:>6d} {r['draws']:>6d}", file=out)
    if s.get("differences"):
        print(f"\nthe grouping minus baseline (paired on seed, {s.get('level', 0.95):.0%} t-interval):", file=out)
        for d in s["differences"]:
            print(f"  {d['verdict']}", file=out)
    if s.get("task_gains"):
        ref = labels.get(s.get("task_gains_reference"), s.get("task_gains_reference"))
        print(f"\nper task: gain of the grouping over {ref} (measured) and mean affinity of its group-mates (predicted):",
              file=out)
        print("  task                          measured       SE   predicted", file=out)
        for r in sorted(s["task_gains"], key=lambda r: -(r.get("gain") or 0)):
            print(f"  {str(r['task'])[:28]:28s} {_fmt(r['gain']):>10s} {_fmt(r['se'], 2):>8s} "
                  f"{_fmt(r.get('predicted')):>11s}", file=out)
        a = s.get("agreement") or {}
        if a:
            print(f"  predicted vs measured: Spearman {_fmt(a.get('spearman'), 3)}, same sign for "
                  f"{_fmt(a.get('sign_agreement'), 3)} of {a.get('tasks')} tasks", file=out)


def run_command(args: argparse.Namespace) -> int:
    if args.list:
        for vdir in list_validations(args.run):
            man = vdir.read_manifest()
            prog = man.get("progress") or {}
            print(f"{vdir.name}\t{validation_status(vdir)}\t{prog.get('done')}/{prog.get('total')} trainings")
        return 0
    if args.ingest:
        if not args.name:
            raise InvalidInputError("--ingest needs --name (the validation whose plan the results follow).")
        from core.evaluation.validation.ingest import ingest_results

        v, n = ingest_results(args.run, args.name, args.ingest)
        print(f"ingested {n} training(s).")
        print_validation(v)
        return 0
    if args.seeds < 1:
        raise InvalidInputError(f"--seeds {args.seeds}: give the number of seeds (>= 1; >= 2 for intervals).")
    if args.k is not None and args.method is None and args.grouping is None:
        args.method = "sdp"
    kwargs = dict(name=args.name, grouping=args.grouping, method=args.method, k=args.k,
                  seeds=list(range(args.seeds)), split=args.split, baselines=args.baselines,
                  random_draws=args.random_draws, allow_estimation_split=args.allow_estimation_split)
    resume_alone = args.resume and args.name and args.grouping is None and args.method is None
    if not resume_alone:
        if args.grouping is None and args.method is None:
            raise InvalidInputError("choose the grouping: --grouping FILE, or --method sdp --k K (or --method all / "
                                    "single).")
        prep = prepare_validation(args.run, **kwargs)
        if prep.dir.has_manifest() and not args.resume:
            raise InvalidInputError(f"{prep.dir.path}: already holds a validation; add --resume to continue it, or "
                                    "choose another --name.")
        est = prep.estimated_seconds
        print(f"plan: {prep.trainings} trainings (grouping k={prep.info.get('k')} and baselines "
              f"{args.baselines}, {args.seeds} seed(s)); estimated "
              + (f"{est:.0f} s" if est is not None else "time unknown") + " from the run's seconds per training"
              + (f"; validating on the estimation split {args.split} (optimistic)" if args.allow_estimation_split else ""),
              file=sys.stderr)

    def _terminate(signum, frame):  # SIGTERM ends the validation like Ctrl-C: status "interrupted"
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    progress, close = progress_bar(not args.no_progress and not args.plan_only, "training")
    try:
        v = run_validation(args.run, executor=args.executor, address=args.address, resume=args.resume,
                           plan_only=args.plan_only, config=args.config, progress=progress, **kwargs)
    finally:
        close()
        signal.signal(signal.SIGTERM, previous)
    if args.plan_only:
        print(f"plan written: {v.dir.plan_csv_path} and {v.dir.plan_json_path} ({len(v.plan.trainings())} trainings); "
              f"ingest results with: python -m core validate --run {args.run} --name {v.dir.name} --ingest RESULTS.csv")
        return 0
    print_validation(v)
    return 0
