"""``python -m core estimate``: estimate a task-affinity matrix into a run folder.

Example::

    python -m core estimate --config sample_data/configs/planted.yaml --estimator pairwise --out runs/planted
    python -m core estimate --config RUN.yaml --estimator higher-order --subsets 40 --subset-size 3 \\
        --executor ray --address ray://head:10001 --out runs/ho
    python -m core group --affinity runs/planted/affinity.csv --k 3
"""
from __future__ import annotations

import argparse
from typing import Any

from core.cli import device_arg, progress_bar
from core.devices import DEVICE_HELP
from core.errors import InvalidInputError
from core.estimation.estimators.base import ESTIMATORS
from core.estimation.runs.orchestrator import run_estimation
from core.inputs import loads_yaml
from core.matrix.transfer import negative_transfers


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--option {text!r} must look like KEY=VALUE (e.g. min_pair_coverage=2).")
    try:
        parsed = loads_yaml(value, f"--option {key.strip()}") if value.strip() else None
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return key.strip().replace("-", "_"), parsed


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "estimate", help="estimate task affinity (trains subsets; resumable run folder)",
        description="Estimate a task-affinity matrix T[u, v] (row = source, column = target, higher is better) "
                    "and write a run folder: manifest.json, results.sqlite, results.csv, affinity.csv/json, matrices/.")
    p.add_argument("--config", required=True, help="run config (YAML or TOML): tasks, training, estimator")
    p.add_argument("--data-root", metavar="DIR",
                   help="what {data}/ in the config means (default: $TASKAFFINITY_DATA, else shared/data beside the "
                        "checkout)")
    p.add_argument("--allow-path", metavar="DIR", action="append", default=[],
                   help="a further folder the run may read data, models or caches from (repeatable; also "
                        "$TASKAFFINITY_ALLOW_PATHS). A config can never widen these itself.")
    p.add_argument("--estimator", help=f"estimator: {', '.join(ESTIMATORS.names())} (default: the config's estimator.name)")
    p.add_argument("--out", required=True, help="run folder to write (or to resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished trainings")
    p.add_argument("--executor", default="local", choices=("local", "ray"), help="where trainings run (default local)")
    p.add_argument("--address", help="Ray cluster address (with --executor ray); default: a private local instance")
    p.add_argument("--num-cpus", type=int, help="CPUs of a private local Ray instance (default 2)")
    p.add_argument("--gpu-share", type=float, help="GPUs per training on a Ray cluster with GPUs (default 1.0)")
    p.add_argument("--no-ship-code", action="store_true",
                   help="with --address: do not ship this taskaffinity's code to the nodes (they must have the same "
                        "version installed; a node with other code refuses the run)")
    p.add_argument("--device", type=device_arg, metavar="DEVICE",
                   help=f"where trainings run: {DEVICE_HELP} (default: the config's training.device, else auto)")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: the config's, else 0)")
    p.add_argument("--split", choices=("val", "test", "train"), help="split scored for affinities (default val)")
    p.add_argument("--subsets", type=int, help="higher-order: number of random subsets")
    p.add_argument("--subset-size", type=int, help="higher-order: tasks per subset")
    p.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="any other estimator option (repeatable), e.g. --option min_pair_coverage=2")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_command)
    return p


def run_command(args: argparse.Namespace) -> int:
    options: dict[str, Any] = dict(args.option)
    for flag, key in (("subsets", "subsets"), ("subset_size", "subset_size")):
        value = getattr(args, flag)
        if value is not None:
            options[key] = value
    exe_opts = {k: v for k, v in (("num_cpus", args.num_cpus), ("gpu_share", args.gpu_share),
                                  ("ship_code", False if args.no_ship_code else None)) if v is not None}
    if exe_opts and args.executor != "ray":
        raise InvalidInputError(f"--{next(iter(exe_opts)).replace('_', '-')} is for the ray executor; add --executor ray.")
    import signal

    def _terminate(signum, frame):  # SIGTERM (e.g. a scheduler) ends the run like Ctrl-C: status "interrupted"
        raise KeyboardInterrupt

    if args.data_root is not None and not str(args.data_root).strip():
        raise InvalidInputError("--data-root is empty; give a folder.")
    # deferred: the config module imports torch (through the training spec), which `group` never needs
    from core.estimation.runs.config import load_run_config

    # the sandbox comes from the flags and the environment of whoever started this process
    config = load_run_config(args.config, data_root=args.data_root, allow_paths=args.allow_path)
    previous = signal.signal(signal.SIGTERM, _terminate)
    progress, close = progress_bar(not args.no_progress, "job")
    try:
        run = run_estimation(config, out=args.out, estimator=args.estimator, options=options or None,
                             resume=args.resume, executor=args.executor, address=args.address,
                             executor_options=exe_opts, seeds=args.seeds, split=args.split, progress=progress,
                             device=args.device)
    finally:
        close()
        signal.signal(signal.SIGTERM, previous)
    main = run.main
    cost = run.manifest.get("cost", {})
    print(f"run {run.path}: {run.status}; {main.estimator} affinity of {main.n} tasks -> {run.dir.affinity_csv_path}")
    used = run.manifest.get("device", {}).get("used")
    if used:
        print(f"device: {used}")
    print(f"cost: {cost.get('trainings')} trainings, {cost.get('seconds', 0):.1f} s of training, "
          f"{cost.get('wall_seconds', 0):.1f} s wall" + (f", {cost['flops']:.3g} FLOPs" if cost.get("flops") else ""))
    neg = negative_transfers(main)
    if len(neg):
        print(f"negative transfers (T < 0): {len(neg)}; worst:")
        print(neg.head(10).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"next: python -m core group --affinity {run.dir.affinity_csv_path}")
    return 0
