"""Grad-TAG at the paper's subset counts (hundreds to thousands), on CPU, against retraining every subset.

Protocol (fixed before looking at any result):

- tasks: the 20 most frequent labels of BlogCatalog (one binary node task per label), SGC
  propagated features (k = 2 hops of a 16-d spectral embedding, computed once) into a small MLP
  trunk (hidden 16) with one head per task (the ``graph`` backend, i.e. the ``mlp`` backend on
  cached graph features); 300 train / 150 val / 300 test nodes per task; one seed (0); scored on
  the test split;
- training budget: 60 AdamW steps of 32 nodes per task, lr 0.01, final weights (no early
  stopping), one CPU thread;
- subsets: the library's sampler (``sample_subsets``: uniform subsets of 5 tasks, sampler seed 0,
  topped up until every pair is covered once); the draws for M subsets are the first M draws of
  the largest M, so the counts are nested;
- truth: every sampled subset (and every single task) trained from scratch; ``T_true(M)`` is the
  higher-order aggregation of the real outcomes of the same M subsets (what Grad-TAG estimates),
  ``T_ref`` that of the largest M (the best matrix we have; groupings are scored against it);
- Grad-TAG: one base model on all tasks, per-sample gradients of all its parameters, Rademacher
  projection to d = 64, the default penalty, one logistic fit per subset, the lifted network scored;
  the fixed part (base + gradients) is paid once and counted in full at every M;
- trivial estimate: the base model scored for every subset (theta = 0);
- higher-order at equal FLOPs: real retraining of as many sampled subsets as Grad-TAG's FLOPs at
  M pay for (the sampler's first draws, topped up for coverage);
- grouping: SDP grouping (``group(..., method="sdp")``, k = 4) of each estimate's gain matrix
  (minus single-task perf); scored by its average density on ``T_ref`` and its adjusted Rand
  index against the grouping of ``T_ref``.

Errors: ``T err raw`` = ||T_hat - T||_F / ||T||_F of the raw averaged matrices (the reading of the
paper's "distance" used in docs/gradtag.md), ``T err gain`` the same for the gain matrices, ``rho
gain`` = Spearman of the off-diagonal gain entries, ``loss rel err`` = mean |L_hat - L| / L over
(subset, task). FLOPs by the backend's documented rule (core/estimation/models/training.py).

Run: ``PYTHONPATH=. python bench/bench_gradtag_scale.py [--subsets 50 200 1000 2000] [--quick]``
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_gradtag import offdiag, true_outcomes  # noqa: E402
from bench.report import markdown_table, write_section  # noqa: E402
from core.estimation.estimators.base import EstimationContext  # noqa: E402
from core.estimation.estimators.sampling import sample_subsets  # noqa: E402
from core.estimation.estimators.subsets import HigherOrderAffinity  # noqa: E402
from core.estimation.runs.config import load_run_config  # noqa: E402
from core.evaluation.gradtag_accuracy import matrix_distance, subset_errors  # noqa: E402
from core.gradtag.aggregate import GradTAGAggregation  # noqa: E402
from core.gradtag.pipeline import GradTAG  # noqa: E402
from core.grouping.api import group  # noqa: E402
from core.grouping.objective import average_density, groups_to_labels  # noqa: E402

# $TASKAFFINITY_DATA, else shared/data beside the checkout (as the configs resolve {data})
DATA = Path(os.environ.get("TASKAFFINITY_DATA") or ROOT.parent / "shared" / "data")
CONFIG = """
name: blogcatalog{n}
tasks:
  - graph: "{data}/graphs/blogcatalog/blogcatalog.mat"
    select: {n}
    max_train: 300
    max_val: 150
    max_test: 300
training: {{backend: graph, steps: 60, batch_size: 32, lr: 0.01, eval_every: 0, patience: 0, device: cpu,
            options: {{k: 2, dim: 16, hidden: 16}}}}
"""
SUBSET_SIZE, K, DIM, SEED, SPLIT = 5, 4, 64, 0, "test"
COMMAND = "PYTHONPATH=. python bench/bench_gradtag_scale.py"


def load_tasks(n_tasks: int):
    folder = Path(tempfile.mkdtemp(prefix="gradtag-scale-"))
    (folder / "tasks.yaml").write_text(CONFIG.format(n=n_tasks, data=DATA))
    cfg = load_run_config(folder / "tasks.yaml")
    return cfg.taskset, cfg.spec


class Truth:
    """Real trainings of subsets, each trained once and kept (rows of the outcome table)."""

    def __init__(self, taskset, spec):
        self.taskset, self.spec = taskset, spec
        self.rows: dict[tuple, pd.DataFrame] = {}
        self.flops: dict[tuple, float] = {}
        self.seconds = 0.0

    def ensure(self, subsets, log_every: int = 200) -> None:
        todo = [tuple(s) for s in dict.fromkeys(map(tuple, subsets)) if tuple(s) not in self.rows]
        t0 = time.perf_counter()
        for i, s in enumerate(todo):
            df, sec, fl = true_outcomes(self.taskset, [s], self.spec, SEED, SPLIT)
            self.rows[s], self.flops[s] = df, fl
            self.seconds += sec
            if log_every and (i + 1) % log_every == 0:
                print(f"   trained {i + 1}/{len(todo)} ({time.perf_counter() - t0:.0f}s)", flush=True)

    def table(self, subsets) -> pd.DataFrame:
        return pd.concat([self.rows[tuple(s)] for s in subsets], ignore_index=True)

    def cost(self, subsets) -> float:
        return float(sum(self.flops[tuple(s)] for s in subsets))


def sampled(names, m: int) -> list[tuple[str, ...]]:
    return list(sample_subsets(names, m, SUBSET_SIZE, seed=0, min_pair_coverage=1).subsets)


def aggregate(names, outcomes: pd.DataFrame, m: int, baseline: str):
    ctx = EstimationContext(names=names, seeds=(SEED,), split=SPLIT)
    opts = dict(subsets=m, subset_size=SUBSET_SIZE, min_pair_coverage=1, sample_seed=0, baseline=baseline)
    gradtag = (outcomes["kind"] == "gradtag").all()  # Grad-TAG's estimates are stored as their own kind
    return (GradTAGAggregation if gradtag else HigherOrderAffinity)(**opts).fit(ctx, outcomes).main_


def grouping(T, names):
    res = group(T, k=K, method="sdp")
    return groups_to_labels(res.groups, names)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subsets", type=int, nargs="+", default=[50, 200, 1000, 2000])
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="smoke run: 10 tasks, 20 and 40 subsets, no results written")
    ap.add_argument("--render", action="store_true", help="rebuild the table from the saved results (no training)")
    args = ap.parse_args(argv)
    if args.render:
        render()
        return
    torch.set_num_threads(1)
    counts = [20, 40] if args.quick else sorted(args.subsets)
    n_tasks = 10 if args.quick else args.tasks
    t_all = time.perf_counter()
    taskset, spec = load_tasks(n_tasks)
    names = tuple(taskset.names)
    singles = [(x,) for x in names]
    print(f"{len(names)} tasks: {', '.join(names)}", flush=True)

    truth = Truth(taskset, spec)
    truth.ensure(singles)
    for m in counts:
        truth.ensure(sampled(names, m))
        print(f"   truth for {m} subsets ready: {len(truth.rows)} trainings, {truth.seconds:.0f}s", flush=True)
    ref_m = counts[-1]
    ref_subsets = singles + sampled(names, ref_m)
    T_ref = aggregate(names, truth.table(ref_subsets), ref_m, "single")
    labels_ref = grouping(T_ref, names)
    ref_obj = average_density(T_ref.values, labels_ref)
    per_subset_flops = np.mean([truth.flops[s] for s in sampled(names, ref_m)])

    t0 = time.perf_counter()
    g = GradTAG(spec=spec, dim=DIM, projection="rademacher", split=SPLIT, seed=SEED, subset_size=SUBSET_SIZE)
    g.prepare(taskset)
    fixed = {k: dict(v) for k, v in g.stage_costs_.items()}
    print(f"   Grad-TAG fixed part: base {fixed['base']['seconds']:.1f}s, gradients "
          f"{fixed['gradients']['seconds']:.1f}s ({fixed['gradients']['method']}), {time.perf_counter() - t0:.1f}s",
          flush=True)
    g0 = GradTAG(spec=spec, dim=DIM, projection="rademacher", split=SPLIT, seed=SEED, subset_size=SUBSET_SIZE,
                 reg=1e12, base=g.base_)
    g0.prepare(taskset)

    rows = []
    for m in counts:
        subs = sampled(names, m)
        est_list = singles + subs
        true_df = truth.table(est_list)
        true_flops = truth.cost(est_list)
        T_gain, T_raw = aggregate(names, true_df, m, "single"), aggregate(names, true_df, m, "none")

        def score(label, outcomes, flops, seconds, T_est_gain=None, T_est_raw=None, marginal=float("nan")):
            T_est_gain = T_est_gain if T_est_gain is not None else aggregate(names, outcomes, m, "single")
            T_est_raw = T_est_raw if T_est_raw is not None else aggregate(names, outcomes, m, "none")
            labels = grouping(T_est_gain, names)
            err = subset_errors(outcomes, true_df) if outcomes is not None else None
            row = {"subsets": m, "estimate": label,
                   "T err raw": matrix_distance(T_est_raw, T_raw), "T err gain": matrix_distance(T_est_gain, T_gain),
                   "rho gain": float(spearmanr(offdiag(T_est_gain), offdiag(T_gain)).statistic),
                   "rho gain vs ref": float(spearmanr(offdiag(T_est_gain), offdiag(T_ref)).statistic),
                   "loss rel err": float(err["loss_rel_err"].mean()) if err is not None else float("nan"),
                   "FLOPs frac": flops / true_flops, "marginal FLOPs frac": marginal / true_flops,
                   "seconds": seconds,
                   "objective on ref": average_density(T_ref.values, labels),
                   "objective / ref's": average_density(T_ref.values, labels) / ref_obj,
                   "ARI vs ref": float(adjusted_rand_score(labels_ref, labels))}
            rows.append(row)
            print("   " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)

        ts = time.perf_counter()
        out = g.estimate(est_list)
        per_subset = ("scoring", "lifting")  # what each subset costs once the base and gradients exist
        score("Grad-TAG", out, g.cost_["flops"], g.cost_["seconds"],
              marginal=sum(g.stage_costs_[k]["flops"] for k in per_subset))
        gt_flops = g.cost_["flops"]
        out0 = g0.estimate(est_list)
        score("trivial (base model for every subset)", out0, g0.cost_["flops"], g0.cost_["seconds"],
              marginal=g0.stage_costs_["lifting"]["flops"])
        # higher-order at Grad-TAG's FLOPs: the singles plus as many real subsets as the rest pays for
        m_eq = int(max(0.0, gt_flops - truth.cost(singles)) // per_subset_flops)
        if m_eq > counts[-1]:  # more real trainings than the run budgets for: say so in the label
            print(f"   equal FLOPs would pay for {m_eq} subsets; capped at {counts[-1]}", flush=True)
        capped = f", capped (equal FLOPs: {m_eq})" if m_eq > counts[-1] else " (equal FLOPs)"
        m_eq = min(m_eq, counts[-1])
        if m_eq >= 4:
            eq = sampled(names, m_eq)
            truth.ensure(eq)
            eq_df = truth.table(singles + eq)
            eq_flops = truth.cost(singles + eq)
            Tg, Tr = aggregate(names, eq_df, m_eq, "single"), aggregate(names, eq_df, m_eq, "none")
            score(f"higher-order, {len(eq)} subsets{capped}", None, eq_flops, float("nan"), Tg, Tr)
        score("true retraining (these subsets)", true_df, true_flops, float("nan"), T_gain, T_raw)
        print(f"   M={m} scored in {time.perf_counter() - ts:.1f}s", flush=True)

    meta = {"tasks": list(names), "counts": counts, "subset_size": SUBSET_SIZE, "k": K, "d": DIM,
            "spec": spec.to_dict(), "split": SPLIT, "trainings": len(truth.rows), "truth_seconds": truth.seconds,
            "fixed": fixed, "ref_objective": ref_obj, "total_seconds": time.perf_counter() - t_all}
    print(f"{len(truth.rows)} real trainings in {truth.seconds:.0f}s; whole run {meta['total_seconds'] / 60:.1f} min")
    report(rows, meta, write=not args.quick)


COLUMNS = ["subsets", "estimate", "T err raw", "T err gain", "rho gain", "rho gain vs ref", "loss rel err", "FLOPs frac",
           "marginal FLOPs frac", "objective on ref", "objective lost", "ARI vs ref"]


def report(rows: list[dict], meta: dict, write: bool = True) -> None:
    """Print the table and (``write``) its BENCHMARKS.md section; also used by ``--render``."""
    for r in rows:  # the reference grouping's objective can be negative: report the difference, not a ratio
        r["objective lost"] = meta["ref_objective"] - r["objective on ref"]
    table = markdown_table(rows, COLUMNS, floatfmt=".3g")
    print(table)
    if not write:
        return
    fixed, counts = meta["fixed"], meta["counts"]
    body = (f"{len(meta['tasks'])} BlogCatalog label tasks (graph backend: SGC features + MLP hidden 16, 60 steps), "
            f"subsets of {meta['subset_size']}, one seed, test split; {meta['trainings']} real trainings took "
            f"{meta['truth_seconds'] / 60:.0f} min, the whole run {meta['total_seconds'] / 60:.0f} min on one CPU thread. "
            f"Grad-TAG: d = {meta['d']}, Rademacher, default penalty; its fixed part (base "
            f"{fixed['base']['seconds']:.1f}s + gradients {fixed['gradients']['seconds']:.1f}s) is counted in full at "
            "every M; `marginal FLOPs frac` is the per-subset part alone (logistic fits + lifted evaluations), the "
            "limit of the fraction as M grows. `T err *` and `rho gain` compare with the real retraining of the same M "
            "subsets; `rho gain vs ref`, `objective on ref` (average density on T_ref of the SDP grouping, k = "
            f"{meta['k']}, of each estimate's gain matrix), `objective lost` (T_ref's own grouping's objective, "
            f"{meta['ref_objective']:.4g}, minus that; 0 is best) and `ARI vs ref` compare with T_ref, the gain matrix "
            f"of all {counts[-1]} retrained subsets. Higher-order at equal FLOPs is capped at the {counts[-1]} subsets "
            "the run trained (the label says what equal FLOPs would pay for). The protocol is in the bench's "
            "docstring.\n\n" + table)
    write_section(name="gradtag_scale", title="Grad-TAG at the paper's subset counts (CPU, graph tasks)",
                  command=COMMAND + " --subsets " + " ".join(map(str, counts)), body_md=body,
                  data={"rows": rows, "meta": meta})


def render() -> None:
    """Rebuild the section from bench/results/gradtag_scale.json (no training)."""
    import json

    data = json.loads((ROOT / "bench" / "results" / "gradtag_scale.json").read_text())["data"]
    report(data["rows"], data["meta"])


if __name__ == "__main__":
    main()
