"""Estimation benchmark: training throughput, higher-order vs pairwise agreement, and a real text pairwise table.

    PYTHONPATH=. python bench/bench_estimation.py [--only planted,digits,text,transformer] [--work DIR]

* planted / digits: exhaustive pairwise and sampled higher-order (subsets of 3, every pair covered)
  on the same tasks; agreement of higher-order with pairwise (Spearman over off-diagonal entries,
  per-target Spearman, sign agreement, share of pairwise negatives found) and the cost of each.
* text: the full pairwise table on the shared text tasks (sample_data/configs/text.yaml, MiniLM
  embeddings + MLP) and its negative transfers.
* throughput: trainings per hour per backend on this CPU, from the runs' own training times.

Runs are kept in --work (default runs/bench, git-ignored) and resumed when rerun.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.report import markdown_table, write_section  # noqa: E402
from core.evaluation.compare import agreement  # noqa: E402
from core.estimation.runs.orchestrator import run_estimation  # noqa: E402
from core.estimation.runs.folder import RunDir, RunFolder  # noqa: E402
from core.matrix.transfer import negative_transfers  # noqa: E402

CONFIGS = ROOT / "sample_data" / "configs"


def run(config: Path, out: Path, estimator: str, **kwargs) -> RunFolder:
    from tqdm.auto import tqdm

    bar = tqdm(total=0, desc=f"{config.stem}/{estimator}", unit="job", file=sys.stderr)

    def progress(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        return run_estimation(config, out=out, estimator=estimator, resume=RunDir(out).has_manifest(),
                              progress=progress, **kwargs)
    finally:
        bar.close()


def throughput_row(label: str, backend: str, r: RunFolder) -> dict:
    table = r.results().drop_duplicates(["subset", "seed", "split"])
    secs = table["seconds"].astype(float)
    sizes = table["subset"].astype(str).str.count(r"\|") + 1
    return {"backend": backend, "tasks": label, "trainings": int(len(table)), "mean s/training": float(secs.mean()),
            "trainings/hour": float(3600 / secs.mean()), "s/training (1 task)": float(secs[sizes == 1].mean()),
            "s/training (2+ tasks)": float(secs[sizes > 1].mean()),
            "GFLOPs/training": float(table["flops"].astype(float).mean() / 1e9)}


# Both matrices subtract the same seed-0 single-task trainings (perf_v({v})), so their errors are
# correlated and the agreement below is higher than two independent estimates would show.
SHARED_SEED_NOTE = (
    "**Flag: these Spearman values are inflated.** Higher-order and pairwise both ran with seed 0 and both subtract "
    "the same seed-0 single-task trainings perf_v({v}) as baseline, so the noise of those baselines is shared by "
    "the two matrices and correlates them (a target whose single-task run was unlucky shifts its whole column in "
    "both). Read 0.80 (planted) as an upper bound on the agreement of independent estimates; the estimator "
    "benchmark (\"Which estimator to trust\") scores estimators trained with seed 3 against a reference without "
    "seed 3, which avoids this.\n")


def agreement_section(name: str, work: Path, rows: list, thr: list, data: dict) -> None:
    config = CONFIGS / f"{name}.yaml"
    pw = run(config, work / f"{name}-pairwise", "pairwise")
    n = pw.main.n
    thr.append(throughput_row(name, "mlp", pw))
    data[name] = {"names": list(pw.main.names), "pairwise": pw.main.values.tolist(), "pairwise_cost": pw.main.cost}
    # dense: the default (3 expected co-occurrences per pair); sparse: 1 expected, holes closed by covering subsets
    for variant, subsets in (("dense", None), ("sparse", -(-n * (n - 1) // 6))):
        opts = {"subset_size": 3, **({"subsets": subsets} if subsets else {})}
        ho = run(config, work / f"{name}-higher-order-{variant}", "higher-order", options=opts)
        a = agreement(ho.main, pw.main)
        rows.append({"tasks": f"{name} ({n})", "higher-order": variant,
                     "trainings (higher-order / pairwise)": f"{ho.main.cost['trainings']} / {pw.main.cost['trainings']}",
                     "min pair count": int(ho.main.counts[~np.eye(n, dtype=bool)].min()),
                     "Spearman": a["spearman"], "per-target Spearman": a["spearman_per_target"],
                     "sign agreement": a["sign_agreement"], "pairwise negatives found": a["negatives_found"]})
        data[name][f"higher_order_{variant}"] = {"agreement": a, "cost": ho.main.cost, "notes": ho.main.notes,
                                                 "values": ho.main.values.tolist()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="planted,digits,text,graph,transformer", help="comma-separated sections")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    only = set(args.only.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    agree, thr, data, body = [], [], {}, []
    for name in ("planted", "digits"):
        if name in only:
            agreement_section(name, args.work, agree, thr, data)
    if agree:
        body.append("**Higher-order (subsets of 3, every pair covered, baseline = single-task perf) vs exhaustive "
                    "pairwise**, same tasks and training spec, one seed, scored on the validation split:\n\n"
                    + markdown_table(agree) + "\n" + SHARED_SEED_NOTE)
    if "text" in only:
        txt = run(CONFIGS / "text.yaml", args.work / "text-pairwise-3seeds", "pairwise", seeds=[0, 1, 2])
        thr.append(throughput_row(f"text ({txt.main.n}, MiniLM embeddings)", "mlp", txt))
        neg = negative_transfers(txt.main)
        neg_rows = [{"source": r.source, "target": r.target, "T (accuracy change)": r.transfer,
                     "standard error": r.uncertainty, "z": r.z} for r in neg.head(15).itertuples()]
        confident = neg[neg["z"] < -2]
        m = txt.main
        body.append(f"**Pairwise transfer on {m.n} real text tasks** ({', '.join(m.names)}); T[u,v] = accuracy of v "
                    f"trained with u minus alone, validation split (200 examples per task), mean of 3 seeds; {len(neg)} of "
                    f"{m.n * (m.n - 1)} ordered pairs are negative, {len(confident)} of them by more than 2 standard "
                    f"errors; the 15 worst:\n\n" + markdown_table(neg_rows)
                    + "\nFull table (rows = source, columns = target):\n\n"
                    + markdown_table([{"source": u, **{v: float(m.values[i, j]) for j, v in enumerate(m.names)}}
                                      for i, u in enumerate(m.names)], floatfmt=".3f"))
        data["text"] = {"names": list(m.names), "pairwise": m.values.tolist(), "cost": m.cost,
                        "negative_transfers": neg.to_dict(orient="records")}
    if "graph" in only:
        g = run(CONFIGS / "graph.yaml", args.work / "graph-pairwise", "pairwise")
        thr.append(throughput_row(f"sbm graph ({g.main.n})", "graph (SGC)", g))
    if "transformer" in only:
        from core.estimation.models.backends import BACKENDS

        try:
            BACKENDS.get("transformer")
        except Exception as exc:  # not built on this branch yet
            body.append(f"Transformer backend not available here ({type(exc).__name__}); no throughput measured.\n")
    if thr:
        body.insert(0, "**Trainings per hour on this CPU** (1 torch thread, from each run's own training times):\n\n"
                    + markdown_table(thr))
    data["throughput"] = thr
    data["wall_seconds"] = time.time() - start
    text = "\n".join(body)
    print(text)
    write_section(name="estimation", title="Affinity estimation: throughput and estimator agreement",
                  command=f"PYTHONPATH=. python bench/bench_estimation.py --only {args.only}", body_md=text, data=data)


if __name__ == "__main__":
    main()
