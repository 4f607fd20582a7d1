"""Does grouping pay? Multi-instruction tuning on RTE (issue #7, experiment 2).

    PYTHONPATH=. python bench/bench_grouping_pays_instructions.py [--full] [--work DIR] [--no-gradtag]

Each instruction template of shared/data/instruction_templates (the "100 instructions of RTE"
setting of Li et al., KDD'24) applied to the RTE examples of shared/data/superglue_rte is one task:
the template's input side (before ``|||``) is rendered with jinja2's sandboxed environment (no
code runs), the label is RTE's (entailment / not_entailment). Every task holds the same examples,
so tasks differ only in their instruction. Test = RTE's official validation set (277); val is
carved from train (seeded, the same rows for every task).

Backends: ``--backend transformer`` fine-tunes all-MiniLM-L6-v2 (last ``--train-layers`` layers and
one linear head per task), as the issue asks. On CPU every training step and every scored
example runs the whole encoder, so the CPU table is a heavily reduced run (its flags are in the
printed command and its intro says what was cut): Grad-TAG only (one base model instead of ~70
subset trainings), a few dozen examples and steps, one evaluation seed. ``--backend mlp`` (the
default) trains an MLP on frozen MiniLM embeddings of the rendered texts (max_length 192: 98% of
the rendered RTE inputs fit; 128 would cut 16%); embedding 20 rendered copies of RTE is its cost.

CPU defaults (mlp): 20 instructions (seeded choice) into 4 groups, 200 train / 100 val examples,
1 estimation seed, 5 evaluation seeds, 5 random draws. ``--full`` (GPU machine): 100
instructions into 10 groups as in the paper, 1000 train / 200 val, 3 estimation seeds,
10 evaluation seeds, 10 random draws (with ``--backend transformer`` for the paper's setting).
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
from core.estimation.runs.config import RunConfig, default_data_root  # noqa: E402
from core.estimation.data.loaders import text_task  # noqa: E402
from core.estimation.data.tasks import TaskSet  # noqa: E402
from core.estimation.models.training import TrainSpec  # noqa: E402

CLASSES = ["entailment", "not_entailment"]
LAST_LAYER_OUTPUT = "trunk.encoder.layer.5.output.dense"  # all-MiniLM-L6-v2's last block (Grad-TAG, transformer)
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


def instruction_taskset(n: int, max_train: int, max_val: int, max_test: int | None = None, seed: int = 0) -> tuple[TaskSet, list[int]]:
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
                               max_train=max_train, max_val=max_val, max_test=max_test, seed=seed,
                               sources={"train": f"superglue_rte/train.jsonl x template rte[{i}]",
                                        "test": f"superglue_rte/val.jsonl x template rte[{i}]"}))
    return TaskSet(tasks, name="rte-instructions"), chosen


def setup_eval_seeds(args) -> tuple[int, ...]:
    return tuple(range(100, 100 + (args.eval_seeds or (10 if args.full else 5))))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full size (GPU machine): 100 instructions, 10 groups")
    ap.add_argument("--instructions", type=int, default=None, help="number of instructions (default 20; 100 full)")
    ap.add_argument("--k", type=int, default=None, help="number of groups (default 4; 10 full)")
    ap.add_argument("--max-train", type=int, default=None, help="training examples per task (default 200; 1000 full)")
    ap.add_argument("--max-length", type=int, default=192, help="encoder token cap (default 192: 98%% of RTE inputs fit)")
    ap.add_argument("--backend", choices=("transformer", "mlp"), default="mlp",
                    help="transformer: fine-tune MiniLM's last --train-layers layers; mlp: MLP on frozen embeddings")
    ap.add_argument("--train-layers", type=int, default=1, help="transformer: last encoder layers trained (default 1)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per model (default 200; 300 full)")
    ap.add_argument("--batch-size", type=int, default=32, help="examples per task per step (default 32)")
    ap.add_argument("--max-val", type=int, default=None, help="val examples per task (default 100; 200 full)")
    ap.add_argument("--max-test", type=int, default=None, help="test examples per task (default: all 277)")
    ap.add_argument("--eval-seeds", type=int, default=None, help="evaluation seeds (default 5; 10 full)")
    ap.add_argument("--random-draws", type=int, default=None, help="random partitions (default 5; 10 full)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-3 mlp, 1e-4 transformer)")
    ap.add_argument("--eval-every", type=int, default=None,
                    help="validation (early stopping) every N steps; 0: none, final weights (default 25 mlp, steps/4 "
                         "transformer)")
    ap.add_argument("--methods", default="sdp,spectral,lloyd", help="grouping methods, comma-separated")
    ap.add_argument("--subsets", type=int, default=None,
                    help="sampled subsets of 3 for the estimators (default ~3 per pair; every pair is covered anyway)")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--no-gradtag", action="store_true", help="skip the Grad-TAG affinities")
    ap.add_argument("--no-higher-order", action="store_true",
                    help="skip the higher-order affinities (Grad-TAG only: one base training instead of ~70)")
    args = ap.parse_args(argv)
    if args.no_gradtag and args.no_higher_order:
        ap.error("--no-gradtag and --no-higher-order leave no estimator")
    torch.set_num_threads(1)
    n = args.instructions or (100 if args.full else 20)
    k = args.k or (10 if args.full else 4)
    work = args.work or ROOT / "runs" / "grouping_pays" / (f"instructions-{n}-{args.backend}" + ("-full" if args.full else ""))
    start = time.perf_counter()
    taskset, chosen = instruction_taskset(n, max_train=args.max_train or (1000 if args.full else 200),
                                          max_val=args.max_val or (200 if args.full else 100), max_test=args.max_test)
    steps = args.steps or (300 if args.full else 200)
    if args.backend == "mlp":
        spec = TrainSpec(backend="mlp", steps=steps, batch_size=args.batch_size, lr=args.lr or 1e-3,
                         eval_every=25 if args.eval_every is None else args.eval_every,
                         patience=3, options={"hidden": 256 if args.full else 128, "max_length": args.max_length})
        backend_text = (f"**Backend: mlp on frozen MiniLM embeddings of the rendered texts** (max_length "
                        f"{args.max_length}), hidden {spec.options['hidden']}")
    else:
        # Fine-tuning: a fine-tuning learning rate, and only the last layers trained (no backward through the rest).
        spec = TrainSpec(backend="transformer", steps=steps, batch_size=args.batch_size, lr=args.lr or 1e-4,
                         eval_every=max(1, steps // 4) if args.eval_every is None else args.eval_every, patience=2,
                         options={"max_length": args.max_length, "train_layers": args.train_layers})
        backend_text = (f"**Backend: transformer** (all-MiniLM-L6-v2 fine-tuned: last {args.train_layers} encoder "
                        f"layer(s) and one linear head per task, mean pooling, max_length {args.max_length}, lr {spec.lr:g}, "
                        + (f"validation every {spec.eval_every} steps)" if spec.eval_every else
                           "no early stopping: final weights)"))
    cfg = RunConfig(name=taskset.name, taskset=taskset, spec=spec)
    print("embedding rendered texts (cached after the first run)...", flush=True)
    t_embed = time.perf_counter()
    cfg.prepare()
    t_embed = time.perf_counter() - t_embed
    sampling = {"subsets": args.subsets} if args.subsets else {}
    # transformer: differentiate the last layer's output projection (shared by every task) and the heads, projected
    # to 100 dims; each subset's lift regenerates P (params x dim), which over the whole layer costs seconds.
    gradtag = None if args.no_gradtag else ({**sampling} if args.backend == "mlp" else
                                            {**sampling, "grad_batch_size": 16, "dim": 100,
                                             "params": [LAST_LAYER_OUTPUT, "heads"]})
    reduction = ""
    if args.backend == "transformer" and not args.full:
        t0 = next(iter(taskset.values()))
        reduction = (
            "**Reduced for a CPU run of about half an hour on one shared core** (fine-tuning runs the whole encoder forward "
            f"for every example; the full setting needs a GPU): {len(t0.train)} train / {len(t0.val)} val / "
            f"{len(t0.test)} test examples per task, {steps} steps of {args.batch_size}, max_length {args.max_length}, "
            f"only the last {args.train_layers} layer(s) trained, {len(setup_eval_seeds(args))} evaluation seed(s), "
            f"{args.random_draws or 5} random draw(s), grouping methods {args.methods}"
            + (", Grad-TAG as the only estimator" if args.no_higher_order else "")
            + (f", {args.subsets} sampled subsets (+ covering ones)" if args.subsets else "")
            + (f", Grad-TAG differentiates only {LAST_LAYER_OUTPUT} and the heads (projected to 100 dims)"
               if not args.no_gradtag else "")
            + ". ")
    setup = PaysSetup(k=k, est_seeds=(0,), gradtag=gradtag, higher_order=None if args.no_higher_order else {**sampling},
                      methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()))
    if args.full:
        setup.est_seeds, setup.eval_seeds, setup.random_draws = (0, 1, 2), tuple(range(100, 110)), 10
    setup.eval_seeds = setup_eval_seeds(args)
    if args.random_draws:
        setup.random_draws = args.random_draws
    result = compare(cfg, work, setup, log=lambda m: print(m, flush=True))
    wall = time.perf_counter() - start
    ho = result["costs"].get("higher-order")
    gt = result["costs"].get("Grad-TAG")
    t0 = next(iter(taskset.values()))
    estimators = []
    if ho:
        estimators.append(f"higher-order (subsets of 3, every pair covered, {len(setup.est_seeds)} seed(s), "
                          f"{ho.get('trainings')} trainings, {ho.get('seconds', 0):.0f}s of training)")
    else:
        estimators.append("higher-order skipped (--no-higher-order: ~70 subset trainings are out of reach here)")
    if gt:
        estimators.append(f"Grad-TAG (1 seed, one base model on all tasks, {gt.get('seconds', 0):.0f}s)")
    else:
        estimators.append(f"Grad-TAG: {result['gradtag_note'] or 'skipped (--no-gradtag)'}")
    intro = (
        f"**{n} instructions of RTE as {n} tasks** (templates {chosen} of "
        "shared/data/instruction_templates, rendered with a jinja2 sandbox; every task holds the same RTE examples "
        f"under its own instruction): {len(t0.train)} train / {len(t0.val)} val / {len(t0.test)} test (from RTE's "
        f"official validation set) examples per task. {backend_text}, {spec.steps} steps of {spec.batch_size} "
        f"examples per task. {reduction}Preparing the tasks took {t_embed:.0f}s. Affinities on **val**: "
        + "; ".join(estimators)
        + f". k = {k} groups (the paper: 100 instructions into 10). Evaluation seeds {list(setup.eval_seeds)}, "
        f"scored on **test** (accuracy); random groups: {setup.random_draws} draws with the SDP's sizes. "
        f"{result['trainings']} group trainings ({result['train_seconds']:.0f}s); whole benchmark {wall:.0f}s wall "
        "on this machine. Columns as in the text-task table above.\n\n")
    note = ""
    best = max(r["mean test perf"] for r in result["summary"])
    if best < 0.6:  # RTE is balanced: about 0.5 is chance
        note = (f" Note: every partition is near chance (best mean test accuracy {best:.3f} on {len(t0.test)} test "
                "examples per task), so at this reduced size the differences between partitions are noise, not "
                "evidence for or against grouping; the comparison needs the full size (`--full`, GPU).")
    body = intro + render(result) + "\n" + verdict(result).rstrip() + note + "\n"
    print(body)
    given = list(sys.argv[1:] if argv is None else argv)
    if "--work" in given:  # a scratch folder is not part of what regenerates the table
        w = given.index("--work")
        del given[w:w + 2]
    cmd = " ".join(["PYTHONPATH=. python bench/bench_grouping_pays_instructions.py", *given])
    write_section("pays_instructions" + ("_full" if args.full else ""),
                  "Does grouping pay? Multi-instruction tuning on RTE" + (" (full size)" if args.full else ""),
                  cmd, body, {**to_json(result), "wall_seconds": wall, "k": k, "templates": chosen,
                              "embed_seconds": t_embed})


if __name__ == "__main__":
    main()
