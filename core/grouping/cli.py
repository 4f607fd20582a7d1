"""``python -m core group``: group the tasks of an affinity-matrix file.

Prints the groups (task names), the objective, the SDP value (certified upper
bound) and gap, and the seconds taken; ``--json`` prints exactly one JSON object
with keys ``method, k, groups, objective, sdp_value, gap, seconds`` (and more).
"""
from __future__ import annotations

import argparse
import json
import math

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


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("group", help="group tasks from an affinity matrix (CSV, JSON or NPZ)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--affinity", required=True, metavar="FILE", help="affinity matrix file (.csv, .json, .npz)")
    p.add_argument("--k", required=True, type=_k_arg, metavar="K|auto", help="number of groups, or 'auto'")
    p.add_argument("--method", default="sdp", choices=list(GROUPING_METHODS))
    p.add_argument("--solver", default="auto", choices=list(SOLVERS), help="SDP solver (method sdp)")
    p.add_argument("--c", type=_positive_float, default=1.0, help="rounding threshold factor: link X[u,v] > c/n")
    p.add_argument("--no-refine", action="store_true", help="skip local refinement (method sdp)")
    p.add_argument("--refine", action="store_true",
                   help="refine spectral or lloyd by the SDP's moves and swaps (same setting for every method)")
    p.add_argument("--diagonal", default="keep", choices=list(DIAGONAL_MODES), help="diagonal preprocessing")
    p.add_argument("--transform", default="none", choices=list(TRANSFORMS), help="per-target transform")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    matrix = read_affinity(args.affinity)
    pre = None
    if args.diagonal != "keep" or args.transform != "none":
        pre = Preprocessing(diagonal=args.diagonal, transform=args.transform)
    opts: dict = {"preprocessing": pre}
    if args.method == "sdp":
        opts.update(solver=args.solver, c=args.c, refine=not args.no_refine)
    elif args.no_refine or args.c != 1.0 or args.solver != "auto":
        raise InvalidInputError(f"--solver, --c and --no-refine apply to method sdp only, not {args.method!r}.")
    elif args.refine:
        opts.update(refine=True)
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
    print(f"seconds: {result.seconds:.3f}")
    return 0
