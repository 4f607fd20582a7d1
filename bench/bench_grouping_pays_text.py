"""Does grouping pay? Grouped multitask training on 10 real text tasks (issue #7, experiment 1).

    PYTHONPATH=. python bench/bench_grouping_pays_text.py [--full] [--k 3] [--work DIR] [--no-gradtag]

Tasks: sample_data/configs/text.yaml (sst2, cola, mrpc, rte, mr, cr, mpqa, subj, trec, sst5; MiniLM
sentence embeddings + an MLP trunk with one head per task). Affinities (higher-order, and Grad-TAG)
are estimated on the validation split; every partition (single-task, one model for all, SDP /
spectral / Lloyd's groups on each matrix, random groups with the SDP's sizes) is trained with 5
evaluation seeds and scored on the test split.

CPU (default): the config's sizes (500 train / 200 val / 500 test per task), 2 estimation seeds,
5 evaluation seeds, 5 random draws, about 10 minutes on 2 shared cores. ``--full`` (for a GPU
machine): 2000 train / 500 val / 2000 test per task, 5 estimation seeds, 10 evaluation seeds,
10 random draws, a wider trunk.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from bench.grouping_pays import PaysSetup, compare, render, to_json, verdict  # noqa: E402
from bench.report import write_section  # noqa: E402
from core.estimation.runs.config import load_run_config  # noqa: E402

CONFIG = ROOT / "sample_data" / "configs" / "text.yaml"


def load(full: bool, work: Path):
    raw = yaml.safe_load(CONFIG.read_text())
    if full:
        raw["defaults"] = {**raw["defaults"], "max_train": 2000, "max_val": 500, "max_test": 2000}
        raw["training"] = {**raw["training"], "steps": 500, "options": {"hidden": 256}}
    work.mkdir(parents=True, exist_ok=True)
    path = work / "text.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_run_config(path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full size (GPU machine)")
    ap.add_argument("--k", type=int, default=3, help="number of groups (default 3)")
    ap.add_argument("--work", type=Path, default=None, help="run folders (default runs/grouping_pays/text[-full])")
    ap.add_argument("--no-gradtag", action="store_true", help="skip the Grad-TAG affinities")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    work = args.work or ROOT / "runs" / "grouping_pays" / ("text-full" if args.full else "text")
    cfg = load(args.full, work)
    setup = PaysSetup(k=args.k, gradtag=None if args.no_gradtag else {})
    if args.full:
        setup.est_seeds, setup.eval_seeds, setup.random_draws = (0, 1, 2, 3, 4), tuple(range(100, 110)), 10
    start = time.perf_counter()
    result = compare(cfg, work, setup, log=lambda m: print(m, flush=True))
    wall = time.perf_counter() - start
    ho = result["costs"]["higher-order"]
    gt = result["costs"].get("Grad-TAG")
    t = cfg.taskset
    sizes = {s: len(getattr(next(iter(t.values())), s)) for s in ("train", "val", "test")}
    intro = (
        f"**{len(t)} real text tasks** ({', '.join(t.names)}), MiniLM sentence embeddings + MLP "
        f"(hidden {cfg.spec.options.get('hidden')}, {cfg.spec.steps} steps, early stopping on val), up to "
        f"{sizes['train']} train / {sizes['val']} val / {sizes['test']} test examples per task. Affinities estimated "
        f"on **val**: higher-order (subsets of 3, every pair covered, {len(setup.est_seeds)} seeds, "
        f"{ho.get('trainings')} trainings, {ho.get('seconds', 0):.0f}s of training)"
        + (f", Grad-TAG (1 seed, {gt.get('seconds', 0):.0f}s of training)" if gt else
           f"; Grad-TAG: {result['gradtag_note'] or 'skipped (--no-gradtag)'}")
        + f". k = {setup.k} groups. Every partition trained with evaluation seeds {list(setup.eval_seeds)} "
        f"(one model per group, same spec) and scored on **test** (accuracy; never used for estimation or early "
        f"stopping); random groups: {setup.random_draws} draws with the SDP's group sizes, each with every seed. "
        f"{result['trainings']} group trainings ({result['train_seconds']:.0f}s); whole benchmark {wall:.0f}s "
        "wall on this machine.\n\n`mean test perf` = test accuracy averaged over tasks, then over seeds (and draws); "
        "`sd` across seeds (x draws); `vs X` = seed-paired difference of task-average accuracy, ± standard error "
        "over seeds; `tasks worse than single` counts tasks whose seed-mean accuracy is below their single-task "
        "model's; `HO density` = average density of the partition on the symmetrised higher-order matrix (the "
        "objective the groupings maximise; the random value is the mean over draws).\n\n")
    body = intro + render(result) + "\n" + verdict(result) + "\n"
    print(body)
    cmd = "PYTHONPATH=. python bench/bench_grouping_pays_text.py" + (" --full" if args.full else "") + \
        (f" --k {args.k}" if args.k != 3 else "") + (" --no-gradtag" if args.no_gradtag else "")
    write_section("pays_text" + ("_full" if args.full else ""),
                  "Does grouping pay? Grouped multitask training on 10 real text tasks" +
                  (" (full size)" if args.full else ""), cmd, body,
                  {**to_json(result), "wall_seconds": wall, "k": setup.k})


if __name__ == "__main__":
    main()
