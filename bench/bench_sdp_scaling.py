"""SDP solver scaling: cvxpy + SCS versus the torch first-order solver on the same matrices.

Run from the repo root: ``PYTHONPATH=$PWD python -m bench.bench_sdp_scaling [--quick] [--max-scs-n N]``.
Structured matrices are planted groups (within 1, between -0.5, noise 0.5, n/k tasks per group);
unstructured ones are symmetric standard Gaussian noise. Both solvers run with the same tol.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.report import markdown_table, write_section
from core.grouping.planted import planted_affinity
from core.grouping.sdp.relaxation import solve_sdp

COLUMNS = ["n", "k", "matrix", "scs_value", "torch_value", "rel_diff", "scs_gap", "torch_gap", "torch_solver",
           "torch_status", "torch_iters", "scs_s", "torch_s", "speedup"]


def make_matrix(n: int, k: int, kind: str, seed: int) -> np.ndarray:
    if kind == "structured":
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        return planted_affinity(sizes, within=1.0, between=-0.5, noise=0.5, seed=seed).matrix.values
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(n, n))
    return (g + g.T) / np.sqrt(2.0)


def run(ns: list[int], ks: list[int], max_scs_n: int, max_unstructured_n: int, tol: float,
        torch_max_iters: int) -> list[dict]:
    rows = []
    for n in ns:
        for kind in ("structured", "unstructured"):
            if kind == "unstructured" and n > max_unstructured_n:
                continue
            for k in ks:
                S = make_matrix(n, k, kind, seed=n + k)
                row: dict = dict(n=n, k=k, matrix=kind)
                t = solve_sdp(S, k, solver="torch", tol=tol, max_iters=torch_max_iters)
                row.update(torch_value=t.value, torch_gap=t.gap, torch_solver=t.solver, torch_status=t.status,
                           torch_iters=t.iterations, torch_s=t.seconds, torch_ub=t.upper_bound)
                if n <= max_scs_n:
                    c = solve_sdp(S, k, solver="cvxpy", tol=tol)
                    row.update(scs_value=c.value, scs_gap=c.gap, scs_s=c.seconds, scs_status=c.status,
                               scs_ub=c.upper_bound,
                               rel_diff=abs(t.value - c.value) / max(1.0, abs(c.value)),
                               speedup=c.seconds / t.seconds)
                else:
                    row.update(scs_value="skipped", scs_gap="", scs_s="", rel_diff="", speedup="")
                rows.append(row)
                print(markdown_table([row], COLUMNS).splitlines()[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="n up to 200 only")
    ap.add_argument("--max-scs-n", type=int, default=1000, help="skip SCS above this n (about 150 s per solve at 1000)")
    ap.add_argument("--max-unstructured-n", type=int, default=1000,
                    help="skip unstructured matrices above this n (the torch solver falls back to full-eigh ADMM)")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--torch-max-iters", type=int, default=2000)
    ap.add_argument("--no-write", action="store_true", help="print only; do not write BENCHMARKS.md")
    args = ap.parse_args(argv)
    ns = [50, 100, 200] if args.quick else [50, 100, 200, 500, 1000]
    print("| " + " | ".join(COLUMNS) + " |")
    rows = run(ns, [5, 10], args.max_scs_n, args.max_unstructured_n, args.tol, args.torch_max_iters)
    table = markdown_table(rows, COLUMNS)
    body = (
        f"cvxpy + SCS versus the torch solver (dual projected gradient with Chebyshev-filtered subspace "
        f"iteration, ADMM fallback) on the same matrices, tol = {args.tol:g} for both, torch max_iters = "
        f"{args.torch_max_iters}, CPU float64, torch on 1 thread. Machine: 2 cores shared with other jobs, so "
        "absolute seconds are noisy; compare the ratio within a row. `gap` is the certified relative gap "
        "(upper bound from a dual feasible point minus the value of the returned X); a slightly negative gap "
        "means X violates X >= 0 by up to tol. `rel_diff` = |torch - SCS| / max(1, |SCS|). Structured: planted "
        "groups of n/k tasks (within 1, between -0.5, noise 0.5); unstructured: symmetric Gaussian noise.\n\n"
        + table)
    if not args.no_write:
        cmd = "python -m bench.bench_sdp_scaling " + " ".join(argv if argv is not None else sys.argv[1:])
        write_section(name="sdp_scaling", title="SDP solver scaling (cvxpy + SCS vs torch)", command=cmd.strip(),
                      body_md=body, data=rows)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
