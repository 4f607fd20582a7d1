"""Does grouping pay? Multi-instruction tuning on RTE (issue #7, experiment 2).

    PYTHONPATH=. python bench/bench_grouping_pays_instructions.py [--full] [--work DIR] [--no-gradtag]

Each instruction template of shared/data/instruction_templates (the "100 instructions of RTE"
setting of Li et al., KDD'24) applied to the RTE examples of shared/data/superglue_rte is one task:
the template's input side (before ``|||``) is rendered with jinja2's sandboxed environment (no
code runs), the label is RTE's (entailment / not_entailment). Every task holds the same examples,
so tasks differ only in their instruction. Test = RTE's official validation set (277); val is
carved from train (seeded, the same rows for every task).

Backend: the ``mlp`` backend on MiniLM sentence embeddings of the rendered texts (max_length 192:
98% of the rendered RTE inputs fit, so the hypothesis after the instruction is rarely cut; 128 would
cut 16%). The ``transformer`` backend (fine-tuning
MiniLM) is not used at CPU scale: an affinity estimate needs ~200 subset trainings of 3 tasks,
which would take hours on 2 cores.

CPU (default): 20 instructions (seeded choice) into 4 groups, 200 train / 100 val examples,
1 estimation seed, 5 evaluation seeds, 5 random draws. ``--full`` (GPU machine): 100
instructions into 10 groups as in the paper, 1000 train / 200 val, 3 estimation seeds,
10 evaluation seeds, 10 random draws.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from bench.grouping_pays import PaysSetup, compare, render, to_json, verdict  # noqa: E402
from bench.report import write_section  # noqa: E402
from core.errors import InvalidInputError  # noqa: E402
from core.estimation.config import RunConfig, default_data_root  # noqa: E402
from core.estimation.loaders import text_task  # noqa: E402
from core.estimation.tasks import TaskSet  # noqa: E402
from core.estimation.training import TrainSpec  # noqa: E402

CLASSES = ["entailment", "not_entailment"]
ANSWERS = ["yes", "no"]  # PromptSource's RTE answer_choices; only the input side is rendered here


def input_renderer(template: str):
    """The input side (before ``|||``) of a PromptSource template, compiled in a jinja2 sandbox."""
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(autoescape=False, keep_trailing_newline=False)
    return env.from_string(template.split("|||")[0])


def render_rows(template: str, rows: list[dict]) -> list[str]:
    tpl = input_renderer(template)
    out = []
    for r in rows:
        text = tpl.render(premise=r["premise"], hypothesis=r["hypothesis"], answer_choices=ANSWERS, label=-1)
        out.append(" ".join(text.split()))
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def instruction_taskset(n: int, max_train: int, max_val: int, seed: int = 0) -> tuple[TaskSet, list[int]]:
    data = default_data_root()
    templates = json.loads((data / "instruction_templates" / "task_templates.json").read_text())["rte"]
    if not 2 <= n <= len(templates):
        raise InvalidInputError(f"--instructions {n} must be between 2 and {len(templates)}.")
    chosen = sorted(np.random.default_rng(seed).choice(len(templates), n, replace=False).tolist()) \
        if n < len(templates) else list(range(len(templates)))
    train = read_jsonl(data / "superglue_rte" / "train.jsonl")
    test = read_jsonl(data / "superglue_rte" / "val.jsonl")
    tasks = []
    for i in chosen:
        frames = {"train": pd.DataFrame({"text": render_rows(templates[i], train), "label": [r["label"] for r in train]}),
                  "test": pd.DataFrame({"text": render_rows(templates[i], test), "label": [r["label"] for r in test]})}
        tasks.append(text_task(f"inst{i:02d}", frames, text="text", label="label", classes=CLASSES,
                               max_train=max_train, max_val=max_val, max_test=None, seed=seed,
                               sources={"train": f"superglue_rte/train.jsonl x template rte[{i}]",
                                        "test": f"superglue_rte/val.jsonl x template rte[{i}]"}))
    return TaskSet(tasks, name="rte-instructions"), chosen


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full size (GPU machine): 100 instructions, 10 groups")
    ap.add_argument("--instructions", type=int, default=None, help="number of instructions (default 20; 100 full)")
    ap.add_argument("--k", type=int, default=None, help="number of groups (default 4; 10 full)")
    ap.add_argument("--max-train", type=int, default=None, help="training examples per task (default 200; 1000 full)")
    ap.add_argument("--max-length", type=int, default=192, help="encoder token cap (default 192: 98%% of RTE inputs fit)")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--no-gradtag", action="store_true", help="skip the Grad-TAG affinities")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    n = args.instructions or (100 if args.full else 20)
    k = args.k or (10 if args.full else 4)
    work = args.work or ROOT / "runs" / "grouping_pays" / (f"instructions-{n}" + ("-full" if args.full else ""))
    start = time.perf_counter()
    taskset, chosen = instruction_taskset(n, max_train=args.max_train or (1000 if args.full else 200),
                                          max_val=200 if args.full else 100)
    spec = TrainSpec(backend="mlp", steps=300 if args.full else 200, batch_size=32, lr=1e-3, eval_every=25,
                     patience=3, options={"hidden": 256 if args.full else 128, "max_length": args.max_length})
    cfg = RunConfig(name=taskset.name, taskset=taskset, spec=spec)
    print("embedding rendered texts (cached after the first run)...", flush=True)
    t_embed = time.perf_counter()
    cfg.prepare()
    t_embed = time.perf_counter() - t_embed
    setup = PaysSetup(k=k, est_seeds=(0,), gradtag=None if args.no_gradtag else {})
    if args.full:
        setup.est_seeds, setup.eval_seeds, setup.random_draws = (0, 1, 2), tuple(range(100, 110)), 10
    result = compare(cfg, work, setup, log=lambda m: print(m, flush=True))
    wall = time.perf_counter() - start
    ho = result["costs"]["higher-order"]
    gt = result["costs"].get("Grad-TAG")
    t0 = next(iter(taskset.values()))
    intro = (
        f"**{n} instructions of RTE as {n} tasks** (templates {chosen} of "
        "shared/data/instruction_templates, rendered with a jinja2 sandbox; every task holds the same RTE examples "
        f"under its own instruction): {len(t0.train)} train / {len(t0.val)} val / {len(t0.test)} test (RTE's "
        "official validation set) examples per task. **Backend: mlp on frozen MiniLM embeddings of the rendered "
        f"texts** (max_length {args.max_length}; the transformer backend would need hours of CPU for ~200 subset trainings), "
        f"hidden {spec.options['hidden']}, {spec.steps} steps. Embedding took {t_embed:.0f}s (cached on disk after "
        f"the first run). Affinities on **val**: higher-order (subsets of 3, every pair covered, "
        f"{len(setup.est_seeds)} seed(s), {ho.get('trainings')} trainings, {ho.get('bench_seconds', 0):.0f}s)"
        + (f", Grad-TAG (1 seed, {gt.get('bench_seconds', 0):.0f}s)" if gt else
           f"; Grad-TAG: {result['gradtag_note'] or 'skipped (--no-gradtag)'}")
        + f". k = {k} groups (the paper: 100 instructions into 10). Evaluation seeds {list(setup.eval_seeds)}, "
        f"scored on **test** (accuracy); random groups: {setup.random_draws} draws with the SDP's sizes. "
        f"{result['trainings']} group trainings ({result['train_seconds']:.0f}s); whole benchmark {wall:.0f}s wall "
        "on this machine. Columns as in the text-task table above.\n\n")
    body = intro + render(result) + "\n" + verdict(result) + "\n"
    print(body)
    cmd = "PYTHONPATH=. python bench/bench_grouping_pays_instructions.py" + (" --full" if args.full else "") + \
        (f" --instructions {n}" if args.instructions else "") + (f" --k {k}" if args.k else "") + \
        (" --no-gradtag" if args.no_gradtag else "")
    write_section("pays_instructions" + ("_full" if args.full else ""),
                  "Does grouping pay? Multi-instruction tuning on RTE" + (" (full size)" if args.full else ""),
                  cmd, body, {**to_json(result), "wall_seconds": wall, "k": k, "templates": chosen,
                              "embed_seconds": t_embed})


if __name__ == "__main__":
    main()
