"""Training throughput per backend on CPU: how many subset trainings an hour buys.

One training of a two-task subset (what a pairwise estimation runs) per case, in the
same run, one CPU thread (as estimation runs use), after the one-time preparation
(embeddings, graph propagation, model loading), which is not timed. A training is
``train_and_evaluate``: the config's steps (or fewer if early stopping ends it),
validations, and scoring of the tasks' validation split. Reported: seconds, trainings
per hour, steps, training examples per second (steps x batch x tasks / seconds) and
FLOPs per second by the project's FLOPs rule (2 x parameters on an example's path x
tokens per forward, 3x for a training step).

Cases: ``mlp`` on planted tasks and on digits, ``mlp`` on cached MiniLM embeddings of the
real text tasks (only when ``sample_data/configs/text.yaml``'s embeddings are already
cached: encoding them is a separate one-time cost), ``graph`` on an SBM, ``transformer``
(MiniLM, last two layers, and all layers) on two tiny real text tasks, and ``gpt2-icl``
on in-context function classes.

    PYTHONPATH=. python bench/bench_training.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import markdown_table, write_section  # noqa: E402
from core.estimation.models.backends import get_backend  # noqa: E402
from core.estimation.runs.config import default_data_root, load_run_config  # noqa: E402
from core.estimation.data.tasks import TaskSet  # noqa: E402
from core.estimation.models.training import TrainSpec, prepare_taskset, train_and_evaluate  # noqa: E402

CONFIGS = ROOT / "sample_data" / "configs"


def tiny_text_tasks() -> TaskSet:
    """SST-2 and CR, 64 training sentences each, from the shared data folder."""
    from core.estimation.data.loaders import read_table, text_task

    data = default_data_root()
    sst2 = text_task("sst2", {"train": read_table(data / "glue_sst2" / "train.tsv")}, text="sentence", label="label",
                     max_train=64, max_val=32, max_test=32, seed=0)
    cr = text_task("cr", {"train": read_table(data / "lmbff_textcls" / "cr" / "train.jsonl")}, text="sentence",
                   label="label", max_train=64, max_val=32, max_test=32, seed=0)
    return TaskSet([sst2, cr], name="tiny-text")


def text_embeddings_cached(cfg) -> bool:
    from core.estimation.data.embeddings import is_embedded

    opts = cfg.spec.options
    return is_embedded(cfg.taskset, opts.get("encoder"), opts.get("max_length", 128), opts.get("cache_dir"))


def cases(quick: bool) -> list[tuple[str, TaskSet, TrainSpec]]:
    out = []
    for label, name in (("mlp / planted", "planted"), ("mlp / digits", "digits"), ("mlp / text embeddings", "text"),
                        ("graph / sbm", "graph"), ("gpt2-icl / icl", "icl")):
        cfg = load_run_config(CONFIGS / f"{name}.yaml")
        if name == "text" and not text_embeddings_cached(cfg):
            print(f"skipping {label}: embeddings of text.yaml are not cached (run an estimation on it once)")
            continue
        spec = replace(cfg.spec, device="cpu", steps=min(cfg.spec.steps, 30) if quick else cfg.spec.steps)
        out.append((f"{label} ({name}.yaml)", cfg.taskset, spec))
    tiny = tiny_text_tasks()
    for layers, steps in ((2, 20), ("all", 10)):
        spec = TrainSpec(backend="transformer", steps=2 if quick else steps, batch_size=16, lr=1e-4, eval_every=10,
                         patience=0, device="cpu", options={"max_length": 32, "train_layers": layers})
        out.append((f"transformer / tiny text (MiniLM, train_layers {layers})", tiny, spec))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps per case, no JSON/BENCHMARKS.md write")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    load_before = os.getloadavg()[0]
    todo = cases(args.quick)
    warm_label, warm_set, warm_spec = todo[0]
    train_and_evaluate(warm_set, warm_set.names[:2], replace(warm_spec, steps=1), seed=0)  # torch's lazy start-up, untimed
    for label, taskset, spec in todo:
        backend = get_backend(spec.backend, **spec.options)
        prepared = prepare_taskset(backend, taskset)  # one-time work, not timed
        subset = taskset.names[:2]
        net = backend.build(prepared, subset, seed=0)
        params = sum(p.numel() for p in net.parameters())
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        start = time.perf_counter()
        outcome = train_and_evaluate(taskset, subset, spec, seed=0, split="val")
        seconds = time.perf_counter() - start
        examples = outcome.steps * sum(min(spec.batch_size, len(prepared[n].train)) for n in subset)
        row = {"case": label, "backend": spec.backend, "params": params, "trainable": trainable,
               "steps": outcome.steps, "seconds": seconds, "trainings/h": 3600.0 / seconds,
               "train examples/s": examples / seconds, "GFLOPs": outcome.flops / 1e9,
               "GFLOP/s": outcome.flops / 1e9 / seconds}
        rows.append(row)
        print(f"{label:60s} {seconds:7.1f} s  {row['trainings/h']:8.0f}/h  {outcome.steps:4d} steps  "
              f"{row['train examples/s']:8.0f} ex/s  {row['GFLOP/s']:6.2f} GFLOP/s", flush=True)
    cols = ["case", "params", "trainable", "steps", "seconds", "trainings/h", "train examples/s", "GFLOPs", "GFLOP/s"]
    body = ("One training of a two-task subset per case (the first two tasks), 1 CPU thread, after one-time "
            "preparation; seconds include validations and scoring the validation split. FLOPs by the project rule "
            "(2 x parameters outside embedding tables x tokens per forward, 3x per training step), so GFLOP/s shows how "
            "well each backend uses the CPU (a train_layers run counts the backward of its trained layers only). "
            f"Machine load average (shared machine) {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
            "end.\n\n" + markdown_table(rows, cols, floatfmt=".3g"))
    print()
    print(body)
    if not args.quick:
        write_section(name="training", title="Training throughput per backend (CPU)",
                      command="PYTHONPATH=. python bench/bench_training.py", body_md=body, data=rows)


if __name__ == "__main__":
    main()
