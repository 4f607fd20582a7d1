"""Shared part of the "does grouping pay?" benchmarks (issue #7).

Given tasks and a training spec: estimate affinities on the **validation** split (higher-order,
and Grad-TAG when asked), group the tasks with SDP / spectral / Lloyd's, then train one model
per group and score every task on the **test** split, against single-task models, one model on
all tasks and random partitions with the same group sizes as the SDP's. Every partition is
trained with the same evaluation seeds (distinct from the estimation seeds) under the same spec.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import markdown_table  # noqa: E402
from core.matrix.affinity import AffinityMatrix  # noqa: E402
from core.evaluation.group_training import PartitionTrainer, paired_gain, random_partition, summarize  # noqa: E402
from core.estimation.runs.orchestrator import run_estimation  # noqa: E402
from core.grouping.api import group  # noqa: E402
from core.grouping.objective import average_density, groups_to_labels  # noqa: E402
from core.estimation.runs.folder import RunDir  # noqa: E402

SINGLE, ALL = "single-task", "one model, all tasks"


@dataclass
class PaysSetup:
    """What one "does grouping pay?" experiment runs."""

    k: int = 3
    est_seeds: Sequence[int] = (0, 1)
    eval_seeds: Sequence[int] = (100, 101, 102, 103, 104)
    random_draws: int = 5
    higher_order: dict | None = field(default_factory=dict)   # options of the higher-order estimator; None: skip
    gradtag: dict | None = field(default_factory=dict)  # options of Grad-TAG; None: skip it
    methods: Sequence[str] = ("sdp", "spectral", "lloyd")


def estimate(cfg: Any, out: Path, estimator: str, options: dict, seeds: Sequence[int]) -> tuple[AffinityMatrix, dict]:
    """Affinity matrix of ``estimator`` on the validation split (run folder ``out``, resumed if present)."""
    if estimator == "gradtag":
        import core.estimation.estimators.gradtag  # noqa: F401  (registers --estimator gradtag)
    start = time.perf_counter()
    run = run_estimation(cfg, out=out, estimator=estimator, options=options, seeds=list(seeds), split="val",
                         resume=RunDir(out).has_manifest())
    cost = dict(run.manifest.get("cost", {}))
    cost["bench_seconds"] = time.perf_counter() - start  # this call only (a resumed run reuses stored trainings)
    return run.main, cost


def compare(cfg: Any, work: Path, setup: PaysSetup, log=print) -> dict[str, Any]:
    """Run the whole comparison; returns rows, summaries and the groupings (JSON-ready parts)."""
    t0 = time.perf_counter()
    names = list(cfg.taskset.names)
    matrices: dict[str, AffinityMatrix] = {}
    costs: dict[str, dict] = {}
    if setup.higher_order is None and setup.gradtag is None:
        raise ValueError("PaysSetup needs at least one estimator (higher_order or gradtag).")
    if setup.higher_order is not None:
        log(f"estimating higher-order affinities on val ({len(setup.est_seeds)} seeds)...")
        matrices["higher-order"], costs["higher-order"] = estimate(cfg, work / "higher-order", "higher-order",
                                                                   setup.higher_order, setup.est_seeds)
    gradtag_note = None
    if setup.gradtag is not None:
        log("estimating Grad-TAG affinities on val (1 seed)...")
        try:
            matrices["Grad-TAG"], costs["Grad-TAG"] = estimate(cfg, work / "gradtag", "gradtag", setup.gradtag,
                                                               setup.est_seeds[:1])
        except Exception as exc:  # reported in the table, never hidden
            gradtag_note = f"Grad-TAG failed: {type(exc).__name__}: {exc}"
            log(gradtag_note)
    partitions: dict[str, list[list[str]]] = {}
    details: dict[str, dict] = {}
    for mname, m in matrices.items():
        for method in setup.methods:
            res = group(m, setup.k, method)
            label = f"{method.upper() if method == 'sdp' else method.capitalize()} on {mname}"
            partitions[label] = [list(g) for g in res.groups]
            details[label] = {"objective": res.objective, "sdp_value": res.sdp_value, "seconds": res.seconds}
    if not matrices:
        raise RuntimeError(gradtag_note or "no affinity matrix was estimated")
    primary = next(iter(matrices))  # higher-order when estimated, else Grad-TAG
    focus = f"SDP on {primary}"
    sizes = sorted((len(g) for g in partitions[focus]), reverse=True)
    trainer = PartitionTrainer(cfg.taskset, cfg.spec, seeds=list(setup.eval_seeds), split="test")
    log("training single-task models...")
    frames = [trainer.score(SINGLE, [[x] for x in names])]
    log("training one model on all tasks...")
    frames.append(trainer.score(ALL, [names]))
    for label, groups in partitions.items():
        log(f"training {label}: {groups}")
        frames.append(trainer.score(label, groups))
    rand_label = f"random groups, sizes {sizes}"
    rand_parts = [random_partition(names, sizes, seed=1000 + r) for r in range(setup.random_draws)]
    for r, groups in enumerate(rand_parts):
        log(f"training random draw {r}: {groups}")
        frames.append(trainer.score(rand_label, groups, draw=r))
    rows = pd.concat(frames, ignore_index=True)
    table = summarize(rows, reference=SINGLE)
    S = matrices[primary].values
    S = (S + S.T) / 2.0

    def density(groups):
        return average_density(S, groups_to_labels(groups, names))

    labels = list(dict.fromkeys(rows["partition"]))
    all_parts = {SINGLE: [[x] for x in names], ALL: [names], **partitions}
    summary = []
    for _, line in table.iterrows():
        label = line["partition"]
        vs_single = paired_gain(rows, label, SINGLE) if label != SINGLE else None
        vs_all = paired_gain(rows, label, ALL) if label != ALL else None
        vs_rand = paired_gain(rows, label, rand_label) if label != rand_label else None
        dens = (np.mean([density(p) for p in rand_parts]) if label == rand_label else density(all_parts[label]))
        summary.append({
            "partition": label, "mean test perf": line["mean"], "sd (seeds)": line["sd"], "draws": line["draws"],
            "vs single": _pm(vs_single), "vs all-in-one": _pm(vs_all), "vs random": _pm(vs_rand),
            "tasks worse than single": line["worse_tasks"], "worst task vs single": line["min_task_gain"],
            "density": dens,
            "_vs_single": vs_single, "_vs_all": vs_all, "_vs_random": vs_rand})
    per_task = rows.groupby(["task", "partition"])["perf"].mean().unstack()[labels].reindex(names)
    return {"rows": rows, "summary": summary, "per_task": per_task, "partitions": partitions,
            "random_partitions": rand_parts, "random_label": rand_label, "details": details, "matrices": matrices,
            "costs": costs, "gradtag_note": gradtag_note, "trainings": trainer.trainings_,
            "train_seconds": trainer.seconds_, "seconds": time.perf_counter() - t0, "labels": labels,
            "focus": focus, "density_label": f"{'HO' if primary == 'higher-order' else 'GT'} density"}


def _pm(g: dict | None) -> str:
    if g is None:
        return "-"
    return f"{g['gain']:+.4f} ± {g['se']:.4f}"


SUMMARY_COLUMNS = ["partition", "mean test perf", "sd (seeds)", "draws", "vs single", "vs all-in-one", "vs random",
                   "tasks worse than single", "worst task vs single", "density"]


def render(result: dict[str, Any], metric: str = "accuracy") -> str:
    """Markdown: summary table, groups, per-task table."""
    dl = result.get("density_label", "HO density")
    summary = markdown_table([{(dl if k == "density" else k): v for k, v in r.items() if not k.startswith("_")}
                              for r in result["summary"]], [dl if c == "density" else c for c in SUMMARY_COLUMNS])
    groups = "\n".join(f"- **{label}**: " + " | ".join(", ".join(g) for g in gs)
                       for label, gs in result["partitions"].items())
    groups += f"\n- **{result['random_label']}** (draws): " + "; ".join(
        " | ".join(", ".join(g) for g in gs) for gs in result["random_partitions"])
    pt = result["per_task"]
    short = {lab: lab.replace(" on higher-order", " HO").replace(" on Grad-TAG", " GT").replace(
        "random groups, sizes", "random") for lab in pt.columns}
    rows = [{"task": t, **{short[c]: float(pt.loc[t, c]) for c in pt.columns}} for t in pt.index]
    rows.append({"task": "**average**", **{short[c]: float(pt[c].mean()) for c in pt.columns}})
    per_task = markdown_table(rows, ["task"] + [short[c] for c in pt.columns], floatfmt=".3f")
    return (summary + "\n" + groups + f"\n\nPer-task test {metric} (mean over evaluation seeds; random: over draws "
            "and seeds):\n\n" + per_task)


def to_json(result: dict[str, Any]) -> dict[str, Any]:
    return {"summary": [{k.lstrip("_"): v for k, v in r.items()} for r in result["summary"]],
            "partitions": result["partitions"], "random_partitions": result["random_partitions"],
            "details": result["details"], "costs": result["costs"], "gradtag_note": result["gradtag_note"],
            "trainings": result["trainings"], "train_seconds": result["train_seconds"],
            "seconds": result["seconds"],
            "matrices": {k: {"names": list(m.names), "values": np.asarray(m.values).tolist()}
                         for k, m in result["matrices"].items()},
            "per_task": {t: {c: float(v) for c, v in row.items()} for t, row in result["per_task"].iterrows()},
            "rows": result["rows"].to_dict(orient="records")}


def verdict(result: dict[str, Any], focus: str | None = None) -> str:
    """One honest sentence per comparison of ``focus`` with the alternatives (2 standard errors = clear)."""
    focus = focus or result.get("focus", "SDP on higher-order")
    line = next(r for r in result["summary"] if r["partition"] == focus)
    best = max(result["summary"], key=lambda r: r["mean test perf"])
    parts = []
    for key, name in (("_vs_single", "single-task models"), ("_vs_all", "one model on all tasks"),
                      ("_vs_random", "random groups of the same sizes")):
        g = line[key]
        if g is None:
            continue
        clear = np.isfinite(g["se"]) and abs(g["gain"]) > 2 * g["se"]
        if not np.isfinite(g["se"]):
            word = "is ahead of (one seed, no error bar)" if g["gain"] >= 0 else "is behind (one seed, no error bar)"
        elif clear:
            word = "beats" if g["gain"] > 0 else "loses to"
        else:
            word = "is level with (within 2 s.e., ahead of)" if g["gain"] >= 0 else "is level with (within 2 s.e., behind)"
        parts.append(f"{word} {name} ({g['gain']:+.4f} ± {g['se']:.4f})")
    return (f"**Verdict at this scale:** {focus} " + "; ".join(parts) + f". Best partition by mean: "
            f"{best['partition']} ({best['mean test perf']:.4f}).")
