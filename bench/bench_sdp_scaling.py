"""SDP solver scaling: cvxpy + SCS versus the torch first-order solver on the same matrices, plus the floor.

Run from the repo root: ``PYTHONPATH=$PWD python -m bench.bench_sdp_scaling [--quick] [--large 2000 5000]``.

Matrices (k = 8 groups, seed = n):

- ``structured``: planted groups of n/k tasks, within 1, between -0.5, noise sd 0.5;
- ``noisy``: planted groups of random sizes, within 1.0, between 0, noise sd 0.8 (the issue's case);
- ``unstructured``: symmetric standard Gaussian noise (no groups at all).

Both solvers run with the same tol. ``eigh_s`` is one full float64 eigendecomposition of an n x n
matrix (torch, 1 thread) and ``floor_s`` = eigh_s x the full eigendecompositions the torch run did:
the part of its time spent in the one kernel the method cannot avoid (ADMM needs one per step,
the certificate one more); ``torch_s / floor_s`` near 1 means the rest of the solver costs little.
Large n (``--large``) run the torch solver alone, each in a fresh process so that its peak
resident memory (``peak_mb``) is its own; SCS is left out there (hours).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import markdown_table, write_section  # noqa: E402
from core.grouping.planted import planted_affinity  # noqa: E402
from core.grouping.sdp.relaxation import solve_sdp  # noqa: E402

K = 8
KINDS = ("structured", "noisy", "unstructured")
COLUMNS = ["n", "k", "matrix", "scs_value", "torch_value", "rel_diff", "scs_gap", "torch_gap", "torch_solver",
           "torch_status", "torch_iters", "n_eigh", "scs_s", "torch_s", "speedup", "eigh_s", "floor_s",
           "torch/floor", "peak_mb"]


def make_matrix(n: int, k: int, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "structured":
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        return planted_affinity(sizes, within=1.0, between=-0.5, noise=0.5, seed=seed).matrix.values
    if kind == "noisy":
        cuts = np.sort(rng.choice(np.arange(1, n), size=k - 1, replace=False))
        sizes = np.diff(np.concatenate([[0], cuts, [n]]))
        return planted_affinity(sizes, within=1.0, between=0.0, noise=0.8, seed=seed).matrix.values
    g = rng.normal(size=(n, n))
    return (g + g.T) / np.sqrt(2.0)


def eigh_seconds(n: int, repeats: int = 3) -> float:
    """Best of ``repeats`` full float64 eigendecompositions of a symmetric n x n matrix (1 thread)."""
    import torch

    torch.set_num_threads(1)
    g = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    a = (g + g.T) / 2
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.linalg.eigh(a)
        best = min(best, time.perf_counter() - t0)
    return best


def _eigh_count(note: str) -> int:
    m = re.search(r"full eigendecompositions: (\d+)", note or "")
    return int(m.group(1)) if m else 0


def torch_row(n: int, k: int, kind: str, tol: float, max_iters: int) -> dict:
    """One torch solve (in this process): the row's torch columns."""
    import torch

    from core.grouping.sdp import solver_torch

    torch.set_num_threads(1)
    S = make_matrix(n, k, kind, seed=n)
    notes: list[str] = []
    solve = solver_torch.solve_torch

    def spy(*a, **kw):  # the backend's note holds its eigendecomposition count
        raw = solve(*a, **kw)
        notes.append(raw.note)
        return raw

    solver_torch.solve_torch = spy
    try:
        t = solve_sdp(S, k, solver="torch", tol=tol, max_iters=max_iters)
    finally:
        solver_torch.solve_torch = solve
    return dict(n=n, k=k, matrix=kind, torch_value=t.value, torch_gap=t.gap, torch_solver=t.solver,
                torch_status=t.status, torch_iters=t.iterations, torch_s=t.seconds, torch_ub=t.upper_bound,
                n_eigh=_eigh_count(notes[0] if notes else ""))


def run(ns: list[int], max_scs_n: int, tol: float, torch_max_iters: int, kinds=KINDS,
        max_scs_n_hard: int | None = None) -> list[dict]:
    rows = []
    for n in ns:
        e = eigh_seconds(n)
        for kind in kinds:
            row = torch_row(n, K, kind, tol, torch_max_iters)
            limit = max_scs_n if kind == "structured" or max_scs_n_hard is None else min(max_scs_n, max_scs_n_hard)
            if n <= limit:
                S = make_matrix(n, K, kind, seed=n)
                c = solve_sdp(S, K, solver="cvxpy", tol=tol)
                row.update(scs_value=c.value, scs_gap=c.gap, scs_s=c.seconds, scs_status=c.status,
                           scs_ub=c.upper_bound, rel_diff=abs(row["torch_value"] - c.value) / max(1.0, abs(c.value)),
                           speedup=c.seconds / row["torch_s"])
            row.update(eigh_s=e, floor_s=e * row["n_eigh"])
            row["torch/floor"] = row["torch_s"] / row["floor_s"] if row["floor_s"] else float("nan")
            rows.append(row)
            print(markdown_table([row], COLUMNS).splitlines()[-1], flush=True)
    return rows


def large_row(n: int, kind: str, tol: float, max_iters: int) -> dict:
    """A torch solve in a fresh process (its own peak memory), plus one eigendecomposition's time."""
    code = ("import json, resource, sys; from bench.bench_sdp_scaling import torch_row, eigh_seconds; "
            f"r = torch_row({n}, {K}, {kind!r}, {tol!r}, {max_iters}); r['eigh_s'] = eigh_seconds({n}, 1); "
            "r['peak_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; print(json.dumps(r))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        return dict(n=n, k=K, matrix=kind, torch_status=f"failed: {proc.stderr.strip().splitlines()[-1][:120]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row.update(floor_s=row["eigh_s"] * row["n_eigh"])
    row["torch/floor"] = row["torch_s"] / row["floor_s"] if row["floor_s"] else float("nan")
    return row


def write_results(rows: list[dict], tol: float, torch_max_iters: int, large_max_iters: int, command: str,
                  note: str = "") -> None:
    """The BENCHMARKS.md section and bench/results/sdp_scaling.json."""
    body = (
        f"cvxpy + SCS versus the torch solver (dual projected gradient with Chebyshev-filtered subspace "
        f"iteration, then over-relaxed ADMM) on the same matrices, k = {K}, tol = {tol:g} for both, torch "
        f"max_iters = {torch_max_iters} ({large_max_iters} at the large sizes), CPU float64, torch on 1 "
        "thread. Machine: 2 cores shared with other jobs, so absolute seconds are noisy; compare the ratios within "
        "a row. `gap` is the certified relative gap (upper bound from a dual feasible point minus the value of the "
        "returned X); a negative gap means X violates X >= 0 by up to tol per entry. `rel_diff` = |torch - SCS| / "
        "max(1, |SCS|). `n_eigh`: full eigendecompositions the torch run did; `eigh_s`: one of them; `floor_s` = "
        "their time, the part the method cannot avoid once it needs them; `peak_mb`: peak resident memory of a "
        "fresh process doing only that solve (large sizes). Matrices: see the bench's docstring.\n\n"
        + note + markdown_table(rows, COLUMNS))
    write_section(name="sdp_scaling", title="SDP solver scaling (cvxpy + SCS vs torch)", command=command,
                  body_md=body, data=rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="n = 100 and 200 only")
    ap.add_argument("--max-scs-n", type=int, default=1000, help="skip SCS above this n (minutes per solve at 1000)")
    ap.add_argument("--max-scs-n-hard", type=int, default=500,
                    help="skip SCS above this n on noisy and unstructured matrices (7 min at 500, about an hour at "
                         "1000 on a shared 2-core CPU)")
    ap.add_argument("--ns", type=int, nargs="+", help="sizes run side by side with SCS (default 200 500 1000)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the saved rows (bench/results/sdp_scaling.json) of sizes not run now")
    ap.add_argument("--large", type=int, nargs="*", default=[2000, 5000],
                    help="torch alone at these n, structured matrices (each in a fresh process, peak memory)")
    ap.add_argument("--large-max-iters", type=int, default=300, help="iteration cap at the large sizes")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--torch-max-iters", type=int, default=6000)
    ap.add_argument("--no-write", action="store_true", help="print only; do not write BENCHMARKS.md")
    args = ap.parse_args(argv)
    ns = args.ns or ([100, 200] if args.quick else [200, 500, 1000])
    print("| " + " | ".join(COLUMNS) + " |")
    rows = run(ns, args.max_scs_n, args.tol, args.torch_max_iters, max_scs_n_hard=args.max_scs_n_hard)
    for n in ([] if args.quick else args.large):
        row = large_row(n, "structured", args.tol, args.large_max_iters)
        rows.append(row)
        print(markdown_table([row], COLUMNS).splitlines()[-1], flush=True)
    if args.merge:
        saved = ROOT / "bench" / "results" / "sdp_scaling.json"
        fresh = {(r["n"], r["matrix"]) for r in rows}
        old_rows = [r for r in json.loads(saved.read_text())["data"] if (r["n"], r["matrix"]) not in fresh]
        rows = sorted(old_rows + rows, key=lambda r: (r["n"], KINDS.index(r["matrix"])))
    if not args.no_write:
        cmd = "PYTHONPATH=$PWD python -m bench.bench_sdp_scaling " + " ".join(argv if argv is not None else sys.argv[1:])
        write_results(rows, args.tol, args.torch_max_iters, args.large_max_iters, cmd.strip())
    table = markdown_table(rows, COLUMNS)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
