"""Does grouping pay? In-context learning of function classes (issue #7, experiment 3).

    PYTHONPATH=. python bench/bench_grouping_pays_icl.py [--full] [--work DIR]

Tasks: sample_data/configs/icl.yaml (Garg et al. function classes: linear, sparse linear,
depth-3 decision trees, two-layer ReLU nets; a small random-init GPT-2 over interleaved (x, f(x))
prompts; metric = in-context MSE over prompt positions, perf = -MSE). The seed's finding: training
one model on a mixture of some classes degrades their in-context MSE while other mixtures are
harmless, and the grouping recovers which.

1. Pairwise affinities on the **val** split (every single class and every pair, one seed):
   T[u, v] = -MSE of v trained with u minus -MSE of v alone (negative = mixing hurts v).
2. SDP (and spectral, Lloyd's, exhaustive) groups into k = 2 on that matrix.
3. On the **test** split, with evaluation seeds distinct from the estimation seed: single-class
   models, one model on all classes, and *every* partition into 2 groups (with 4 classes there are
   7, so the table says where the SDP's choice ranks among all of them, which a random baseline
   only samples).

CPU (default): the config's sizes (2000 train prompts per class, 500 steps), 2 evaluation seeds by default;
the table in BENCHMARKS.md used --eval-seeds 3 (about 19 minutes on 2 shared cores). ``--full`` (GPU machine): 4 layers / width 128, 2000 steps,
5 evaluation seeds, 3 estimation seeds.
"""
from __future__ import annotations

import argparse
import sys
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from bench.grouping_pays import estimate  # noqa: E402
from bench.report import markdown_table, write_section  # noqa: E402
from core.estimation.runs.config import load_run_config  # noqa: E402
from core.evaluation.group_training import PartitionTrainer, paired_gain, summarize  # noqa: E402
from core.grouping.api import group  # noqa: E402
from core.grouping.objective import average_density, groups_to_labels  # noqa: E402

CONFIG = ROOT / "sample_data" / "configs" / "icl.yaml"
SINGLE, ALL = "single-class models", "one model, all classes"


def two_group_partitions(names: list[str]) -> list[list[list[str]]]:
    """Every partition of ``names`` into exactly 2 non-empty groups (the first task fixed in group 0)."""
    first, rest = names[0], names[1:]
    out = []
    for r in range(0, len(rest)):
        for combo in combinations(rest, r):
            a = [first, *combo]
            b = [x for x in names if x not in a]
            if b:
                out.append([a, b])
    return out


def load(full: bool, work: Path, steps: int | None = None):
    raw = yaml.safe_load(CONFIG.read_text())
    if full:
        raw["training"] = {**raw["training"], "steps": 2000, "options": {"n_layer": 4, "n_embd": 128, "n_head": 4}}
    if steps:
        raw["training"] = {**raw["training"], "steps": int(steps)}
    work.mkdir(parents=True, exist_ok=True)
    path = work / "icl.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_run_config(path)


def label_of(groups: list[list[str]]) -> str:
    return " / ".join("+".join(g) for g in groups)  # not "|": it would split a markdown table cell


def closing_note(single_mse: dict[str, float]) -> str:
    """Why the verdict may not reproduce the seed's finding: say so when the models barely learned in context."""
    worst = max(single_mse.values())
    if worst < 0.8:
        return ""
    return (f" Note: at this budget the single-class models barely learn in context (test MSE up to {worst:.2f}; "
            "predicting 0 gives about 1), so a group's test MSE likely reflects mostly the extra training signal per step "
            "that more classes bring (batches are per class), not interference between classes; the seed's finding "
            "(some mixtures hurt) needs models that have learned their class, i.e. the full size (`--full`, GPU).")


def all_in_one_note(all_mse: float, best_mse: float, sdp_vs_all: str) -> str:
    """Say whether one model on every class beats every two-group split (then grouping does not pay here)."""
    if all_mse < best_mse:
        return (f" One model on all classes is lower than every two-group partition (SDP minus all-in-one: "
                f"{sdp_vs_all} MSE, seed-paired), so at this budget splitting into 2 groups does not pay.")
    return f" SDP minus all-in-one: {sdp_vs_all} MSE (seed-paired)."


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full size (GPU machine)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per model (default: the config's 500; "
                    "2000 full)")
    ap.add_argument("--eval-seeds", type=int, default=None, help="evaluation seeds (default 2; 5 full)")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    work = args.work or ROOT / "runs" / "grouping_pays" / (("icl-full" if args.full else "icl")
                                                            + (f"-steps{args.steps}" if args.steps else ""))
    cfg = load(args.full, work, args.steps)
    est_seeds = (0, 1, 2) if args.full else (0,)
    eval_seeds = tuple(range(100, 100 + (args.eval_seeds or (5 if args.full else 2))))
    start = time.perf_counter()
    names = list(cfg.taskset.names)
    print("pairwise affinities on val...", flush=True)
    T, cost = estimate(cfg, work / "pairwise", "pairwise", {}, est_seeds)
    methods = {}
    for method in ("sdp", "exhaustive", "spectral", "lloyd"):
        res = group(T, 2, method)
        methods[method] = [list(g) for g in res.groups]
    trainer = PartitionTrainer(cfg.taskset, cfg.spec, seeds=list(eval_seeds), split="test")
    frames = [trainer.score(SINGLE, [[x] for x in names]), trainer.score(ALL, [names])]
    parts = two_group_partitions(names)
    for p in parts:
        print(f"training {label_of(p)}", flush=True)
        frames.append(trainer.score(label_of(p), p))
    rows = pd.concat(frames, ignore_index=True)
    wall = time.perf_counter() - start
    table = summarize(rows, reference=SINGLE)
    S = (T.values + T.values.T) / 2

    # pairwise table (val): mixing effect of each source on each target
    pair_rows = [{"source": u, **{v: float(T.values[i, j]) for j, v in enumerate(names)}} for i, u in enumerate(names)]
    pair_md = markdown_table(pair_rows, ["source"] + names, floatfmt="+.3f")
    single_mse = rows[rows["partition"] == SINGLE].groupby("task")["metric"].mean()

    def key(groups):
        return frozenset(frozenset(g) for g in groups)

    chosen = {key(g): [m for m, gg in methods.items() if key(gg) == key(g)] for g in parts}
    lines = []
    for _, line in table.iterrows():
        lab = line["partition"]
        sub = rows[rows["partition"] == lab]
        per = sub.groupby("task")["metric"].mean()
        groups = [[x] for x in names] if lab == SINGLE else [names] if lab == ALL else \
            next(p for p in parts if label_of(p) == lab)
        g_all = paired_gain(rows, lab, ALL) if lab != ALL else None
        lines.append({
            "partition": lab, "chosen by": ", ".join(chosen.get(key(groups), [])) if lab not in (SINGLE, ALL) else "-",
            "mean test MSE": float(-line["mean"]), "sd (seeds)": line["sd"],
            "vs single (MSE change)": float(-line["vs_ref"]),
            "vs all-in-one (MSE change)": f"{-g_all['gain']:+.4f} ± {g_all['se']:.4f}" if g_all else "-",
            "classes worse than alone": int(line["worse_tasks"]),
            **{f"MSE {t}": float(per[t]) for t in names},
            "val density": average_density(S, groups_to_labels(groups, names))})
    grouped = [x for x in lines if x["partition"] not in (SINGLE, ALL)]
    grouped.sort(key=lambda x: x["mean test MSE"])
    for rank, x in enumerate(grouped, 1):
        x["test rank"] = rank
    sdp_line = next(x for x in grouped if "sdp" in x["chosen by"])
    best_line = grouped[0]
    order = [x for x in lines if x["partition"] in (SINGLE, ALL)] + grouped
    cols = ["partition", "chosen by", "test rank", "mean test MSE", "sd (seeds)", "vs single (MSE change)",
            "vs all-in-one (MSE change)", "classes worse than alone"] + [f"MSE {t}" for t in names] + ["val density"]
    main_md = markdown_table(order, cols, floatfmt=".4f")
    neg = [(names[i], names[j], float(T.values[i, j])) for i in range(len(names)) for j in range(len(names))
           if i != j and T.values[i, j] < 0]
    neg.sort(key=lambda t: t[2])
    hurt = "; ".join(f"{u} -> {v}: {d:+.3f}" for u, v, d in neg) or "none"
    verdict = (f"**Verdict at this scale:** the SDP groups ({sdp_line['partition']}) rank {sdp_line['test rank']} of "
               f"{len(grouped)} two-group partitions on test (mean MSE {sdp_line['mean test MSE']:.4f}; best "
               f"{best_line['partition']} {best_line['mean test MSE']:.4f}); one model on all classes: "
               f"{next(x for x in lines if x['partition'] == ALL)['mean test MSE']:.4f}; single-class models: "
               f"{next(x for x in lines if x['partition'] == SINGLE)['mean test MSE']:.4f}."
               + all_in_one_note(next(x for x in lines if x["partition"] == ALL)["mean test MSE"],
                                 best_line["mean test MSE"], sdp_line["vs all-in-one (MSE change)"])
               + closing_note({t: float(single_mse[t]) for t in names}))
    body = (
        f"**In-context learning of {len(names)} function classes** ({', '.join(names)}; icl.yaml: prompts of "
        f"{cfg.taskset[names[0]].train.inputs.shape[1]} (x, f(x)) pairs, x in R^{cfg.taskset[names[0]].train.inputs.shape[2]}, "
        f"{len(cfg.taskset[names[0]].train)} training prompts per class; GPT-2 {cfg.spec.options}, {cfg.spec.steps} "
        f"steps, batch {cfg.spec.batch_size} prompts per class per step). MSE is over prompt positions, targets "
        "scaled to unit variance (predicting 0 gives about 1). Pairwise affinities on **val** "
        f"({cost.get('trainings')} trainings, {cost.get('seconds', 0):.0f}s of training, seeds {list(est_seeds)}): T[u,v] = "
        "change in v's -MSE when trained with u (negative = mixing hurts v):\n\n" + pair_md +
        f"\nMixtures that hurt the target (val): {hurt}.\n\nSingle-class test MSE: " +
        ", ".join(f"{t} {single_mse[t]:.3f}" for t in names) +
        f".\n\nEvery partition into 2 groups, one model per group, scored on **test** with seeds {list(eval_seeds)} "
        f"({trainer.trainings_} trainings, {trainer.seconds_:.0f}s; whole benchmark {wall:.0f}s wall); `chosen by` = "
        "the grouping methods (k = 2, on the val pairwise matrix) that return it; `test rank` = rank by mean test "
        "MSE among the two-group partitions (an exhaustive stand-in for random groups); `vs` columns: change in "
        "task-average MSE (negative = better), seed-paired ± s.e.; `val density` = the grouping objective on the "
        "symmetrised val matrix.\n\n" + main_md + "\n" + verdict + "\n")
    print(body)
    name = "pays_icl" + ("_full" if args.full else "")
    command = ("PYTHONPATH=. python bench/bench_grouping_pays_icl.py" + (" --full" if args.full else "")
               + (f" --steps {args.steps}" if args.steps else "")
               + (f" --eval-seeds {args.eval_seeds}" if args.eval_seeds else ""))
    data = {"names": names, "affinity": np.asarray(T.values).tolist(), "groupings": methods,
            "table": order, "rows": rows.to_dict(orient="records"), "wall_seconds": wall,
            "estimation_cost": cost, "trainings": trainer.trainings_, "steps": cfg.spec.steps,
            "eval_seeds": list(eval_seeds)}
    body, data = with_earlier_runs(body, data, command, earlier_runs(name, command))
    write_section(name, "Does grouping pay? In-context learning of function classes"
                  + (" (full size)" if args.full else ""), command, body, data)


def earlier_runs(name: str, command: str) -> list[dict]:
    """Every earlier run of this section with another command (other steps or seeds): kept, never dropped."""
    import json

    path = ROOT / "bench" / "results" / f"{name}.json"
    if not path.exists():
        return []
    rec = json.loads(path.read_text())
    runs = list(rec["data"].get("earlier_runs", []))
    if rec["command"] != command:
        runs.insert(0, {"command": rec["command"], "run": rec["run"], "markdown": rec["markdown"].split(EARLIER)[0],
                        "data": {k: v for k, v in rec["data"].items() if k != "earlier_runs"}})
    return [r for r in runs if r["command"] != command]


EARLIER = "\n---\n\n**Earlier run"


def sdp_rank(data: dict) -> str:
    grouped = [x for x in data["table"] if x.get("test rank") not in ("", None)]
    line = next(x for x in grouped if "sdp" in str(x["chosen by"]))
    return f"{line['test rank']} of {len(grouped)}"


def setting(data: dict) -> str:
    return f"{data.get('steps', '?')} steps, {len(data.get('eval_seeds', []))} eval seeds"


def noise_line(data: dict) -> str:
    """Range of the gaps between neighbouring ranks and of the seed-paired standard errors in one run's table."""
    grouped = sorted((x for x in data["table"] if x.get("test rank") not in ("", None)), key=lambda x: x["test rank"])
    mse = [float(x["mean test MSE"]) for x in grouped]
    gaps = [b - a for a, b in zip(mse, mse[1:])]
    ses = [float(str(x["vs all-in-one (MSE change)"]).split("±")[1]) for x in grouped
           if "±" in str(x["vs all-in-one (MSE change)"])]
    return f"{min(gaps):.4f}-{max(gaps):.4f} MSE, standard errors {min(ses):.3f}-{max(ses):.3f}"


def with_earlier_runs(body: str, data: dict, command: str, earlier: list[dict]) -> tuple[str, dict]:
    """This run's section with every earlier setting's table after it and one line comparing them all.

    Reporting only the latest run would hide a setting whose result went the other way (the 300-step
    run ranked the SDP's split 6 of 7, the 500-step run 1 of 7).
    """
    if not earlier:
        return body, data
    # "ran": set when a section is rebuilt from stored results, whose header then shows the rebuild time.
    runs = [(setting(data) + (f", run {data['ran']}" if data.get("ran") else ""), command, data)] + [(setting(r["data"]) + f", run {r['run']}", r["command"], r["data"])
                                               for r in earlier]
    summary = ("**Every setting run, side by side** (SDP's two-group split, rank by mean test MSE among the 7 "
               "two-group partitions): " + "; ".join(f"{when} (`{cmd}`): rank {sdp_rank(d)}" for when, cmd, d in runs)
               + ". The val affinity matrices differ between the runs and so does the SDP's split. "
               + "; ".join(f"{when.split(', run')[0]}: gaps between neighbouring ranks {noise_line(d)}"
                           for when, _, d in runs)
               + ". The gaps are no larger than the seed-paired standard errors (of each split against one model "
               "on all classes), so neither rank is evidence that the SDP's split is better or worse than another "
               "two-group split.\n\n")
    old = "".join(f"{EARLIER}** (`{r['command']}`, {r['run']}, kept so that every setting run is reported):\n\n"
                  f"{r['markdown'].rstrip()}\n" for r in earlier)
    return summary + body + old, dict(data, earlier_runs=earlier)


if __name__ == "__main__":
    main()
