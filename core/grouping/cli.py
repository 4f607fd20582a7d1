"""``python -m core group``: group the tasks of an affinity-matrix file.

Prints the groups (task names), the objective, the SDP value (certified upper
bound) and gap, and the seconds taken; ``--json`` prints exactly one JSON object
with keys ``method, k, groups, objective, sdp_value, gap, seconds`` (and more).

A size budget (``--max-tasks``, by default the dashboard's limits: 150 tasks for ``--k auto``, 500
for the SDP, 5000 for spectral and Lloyd) refuses a matrix too large for the work asked before its
values are read; a step that runs longer than a few seconds says so on stderr every few seconds.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import threading
import time
from typing import Iterator

from core.cli import device_arg
from core.devices import DEVICE_HELP
from core.errors import InvalidInputError
from core.grouping.api import GROUPING_METHODS, group
from core.grouping.sdp.relaxation import SOLVERS
from core.matrix.io import read_affinity
from core.matrix.preprocess import DIAGONAL_MODES, TRANSFORMS, Preprocessing


def _k_arg(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k must be a whole number or 'auto', got {text!r}") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"--k must be at least 1, got {k}")
    return k


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


# Default --max-tasks: the sizes the dashboard offers (ui.grouping) for the same work. On 2 CPU cores an
# SDP of 400 tasks takes tens of seconds, and --k auto solves one per candidate k plus a penalty sweep.
AUTO_K_MAX_N = 150
SDP_MAX_N = 500
FAST_MAX_N = 5000
PROGRESS_EVERY_S = 5.0


def default_max_tasks(k: int | str, method: str) -> int:
    """The default size budget for grouping with ``method`` into ``k`` (or ``"auto"``) groups."""
    if k == "auto":
        return AUTO_K_MAX_N
    return SDP_MAX_N if method == "sdp" else FAST_MAX_N


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 2, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 2, got {text!r}")
    return value


@contextlib.contextmanager
def progress(step: str, enabled: bool = True, every: float = PROGRESS_EVERY_S) -> Iterator[None]:
    """Say on stderr, every ``every`` seconds, that ``step`` is still running (nothing for a quick step)."""
    if not enabled:
        yield
        return
    done = threading.Event()
    start = time.monotonic()

    def beat() -> None:
        while not done.wait(every):
            print(f"... {step}: {time.monotonic() - start:.0f} s so far", file=sys.stderr, flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if time.monotonic() - start >= every:
            print(f"... {step}: done in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("group", help="group tasks from an affinity matrix (CSV, JSON or NPZ)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--affinity", required=True, metavar="FILE", help="affinity matrix file (.csv, .json, .npz)")
    p.add_argument("--k", required=True, type=_k_arg, metavar="K|auto", help="number of groups, or 'auto'")
    p.add_argument("--method", default="sdp", choices=list(GROUPING_METHODS))
    p.add_argument("--solver", default="auto", choices=list(SOLVERS), help="SDP solver (method sdp)")
    p.add_argument("--device", type=device_arg, metavar="DEVICE",
                   help=f"torch solver's device: {DEVICE_HELP} (default auto)")
    p.add_argument("--c", type=_positive_float, default=1.0, help="rounding threshold factor: link X[u,v] > c/n")
    p.add_argument("--no-refine", action="store_true", help="skip local refinement (method sdp)")
    p.add_argument("--refine", action="store_true",
                   help="refine spectral or lloyd by the SDP's moves and swaps (same setting for every method)")
    p.add_argument("--diagonal", default="keep", choices=list(DIAGONAL_MODES), help="diagonal preprocessing")
    p.add_argument("--transform", default="none", choices=list(TRANSFORMS), help="per-target transform")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--max-tasks", type=_positive_int, metavar="N",
                   help=f"size budget: refuse a matrix of more tasks before reading its values (default "
                        f"{AUTO_K_MAX_N} with --k auto, {SDP_MAX_N} for sdp, {FAST_MAX_N} for spectral and lloyd)")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    budget = args.max_tasks or default_max_tasks(args.k, args.method)
    work = "--k auto (one SDP per candidate k)" if args.k == "auto" else f"method {args.method}"
    with progress("reading the matrix", not args.quiet):
        matrix = read_affinity(args.affinity, max_tasks=budget,
                               limit_hint=f"the budget for {work}; give --max-tasks N to allow more"
                               + ("" if args.k != "auto" else ", or give a k")
                               + ("" if args.method != "sdp" else ", or use --method spectral"))
    pre = None
    if args.diagonal != "keep" or args.transform != "none":
        pre = Preprocessing(diagonal=args.diagonal, transform=args.transform)
    opts: dict = {"preprocessing": pre}
    if args.method == "sdp":
        if args.device is not None and args.solver == "cvxpy":
            raise InvalidInputError("--device applies to the torch solver; add --solver torch (or drop --device).")
        opts.update(solver=args.solver, c=args.c, refine=not args.no_refine, device=args.device)
    elif args.no_refine or args.c != 1.0 or args.solver != "auto" or args.device is not None:
        raise InvalidInputError(f"--solver, --device, --c and --no-refine apply to method sdp only, not {args.method!r}.")
    elif args.refine:
        opts.update(refine=True)
    step = "choosing k (one SDP per candidate k, then the grouping)" if args.k == "auto" else f"grouping ({args.method})"
    with progress(step, not args.quiet):
        result = group(matrix, args.k, args.method, **opts)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"method {result.method}, k = {result.k}, {len(result.names)} tasks"
          + (f", preprocessing: {'; '.join(result.preprocessing)}" if result.preprocessing else ""))
    for i, members in enumerate(result.groups, 1):
        print(f"  group {i}: {', '.join(members)}")
    print(f"objective (average density): {result.objective:.6g}")
    if result.sdp_value is not None:
        print(f"SDP value (upper bound): {result.sdp_value:.6g}   gap: {result.gap:.3g}")
    if "choose_k" in result.details:
        print(f"k chosen automatically: {result.details['choose_k']['reason']}")
    if "device" in result.details:
        print(f"solver device: {result.details['device']}")
    print(f"seconds: {result.seconds:.3f}")
    return 0
