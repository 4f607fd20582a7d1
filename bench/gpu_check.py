"""The GPU check: every GPU path of the engine, with real work, in one command (issue #16).

    make gpu-check                              # = python -m bench.gpu_check --device cuda
    python -m bench.gpu_check --device cuda:1   # another GPU
    python -m bench.gpu_check --dry-run         # CPU only, small sizes: tests this script's plumbing

Stages (each records the device it ran on, read back from the tensors and models it used, and
fails the check if that is not the device asked for):

- ``sdp``: the torch SDP solver at n = 1,000, 2,000 and 5,000 (the matrices of
  bench/bench_sdp_scaling.py: noisy planted groups of random sizes at 1,000, clearly planted groups
  at 1,000 to 5,000): value, certified gap, seconds, peak memory; the CPU solve of the same matrix at
  n <= 1,000 for the value and gap against it;
- ``training``: one training per backend (MiniLM fine-tuning all layers with bf16 mixed precision,
  GPT-2 in-context learning, the graph backend), on the device and on the CPU, as trainings per hour;
- ``gradtag``: Grad-TAG's gradient collection (vmap), projection and per-subset scoring at 1,000
  subsets, seconds per stage;
- ``ray``: an estimation run through the Ray executor (private local instance) with a GPU share of
  0.5 per training, device recorded in its manifest.

A real run (not ``--dry-run``) is sized for at most 8 minutes on one modern GPU and writes
``bench/results/gpu_check.json`` and its BENCHMARKS.md section. ``--dry-run`` runs the same code
on the CPU at small sizes, checks that asking for CUDA where there is none is refused, and writes
only the JSON file given by ``--json`` (never BENCHMARKS.md). Asking for CUDA that is not there
stops at once with one line (exit status 2): the check never falls back to the CPU.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_sdp_scaling import make_matrix  # noqa: E402
from bench.report import markdown_table, write_section  # noqa: E402
from core.devices import DEVICE_HELP, check_device, describe_device, resolve_device  # noqa: E402
from core.errors import InvalidInputError, TaskAffinityError  # noqa: E402
from core.estimation.data.builtin.graphs import sbm_tasks  # noqa: E402
from core.estimation.data.builtin.icl import icl_tasks  # noqa: E402
from core.estimation.data.builtin.planted import planted_tasks  # noqa: E402
from core.estimation.data.loaders import text_task  # noqa: E402
from core.estimation.data.tasks import TaskSet  # noqa: E402
from core.estimation.models.training import TrainSpec, train_multitask  # noqa: E402
from core.grouping.sdp.relaxation import solve_sdp  # noqa: E402

STAGES = ("sdp", "training", "gradtag", "ray")
# real run (one GPU, <= 8 min in all) and dry run (CPU, seconds): same code, other sizes
SIZES = {
    # SDP: a noisy matrix needs ~400 full eigendecompositions (and its CPU reference 2 min on one thread at
    # n = 1,000), so the noisy case stays at 1,000 to keep the check under 8 minutes; planted groups go to 5,000
    "full": dict(sdp_cases=((1000, "noisy"), (1000, "structured"), (2000, "structured"), (5000, "structured")), sdp_cpu_max_n=1000, sdp_k=8, train_steps=200, cpu_steps=10,
                 text_examples=512, max_length=64, gradtag_tasks=24, gradtag_subsets=1000, ray_tasks=6),
    "dry": dict(sdp_cases=((40, "noisy"),), sdp_cpu_max_n=40, sdp_k=3, train_steps=2, cpu_steps=2,
                text_examples=32, max_length=16, gradtag_tasks=8, gradtag_subsets=30, ray_tasks=3),
}
COMMAND = "make gpu-check"


class CheckFailed(TaskAffinityError):
    """A stage ran somewhere other than asked, or its numbers are wrong."""


def _peak_reset(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)


def _peak_mb(dev: torch.device) -> float:
    """Peak GPU memory since the last reset, or (CPU) the process's peak resident size so far."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        return torch.cuda.max_memory_allocated(dev) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _on(used: torch.device | str, dev: torch.device, what: str) -> str:
    """``used`` described; fails the check if it is not ``dev``'s kind (no silent CPU fall-back)."""
    used = torch.device(used) if isinstance(used, str) else used
    if used.type != dev.type:
        raise CheckFailed(f"{what} ran on {used}, but {dev} was asked for.")
    return describe_device(used)


# ---------------------------------------------------------------------------------------------- sdp
def stage_sdp(dev: torch.device, size: dict, log: Callable) -> list[dict]:
    rows = []
    for n, kind in size["sdp_cases"]:
        k = size["sdp_k"]
        S = make_matrix(n, k, kind, seed=n)  # the matrices of bench/bench_sdp_scaling.py
        _peak_reset(dev)
        t0 = time.perf_counter()
        sol = solve_sdp(S, k, solver="torch", device=str(dev))
        sec = time.perf_counter() - t0
        row = {"stage": "sdp", "what": f"torch solver, {kind}, n = {n}, k = {k}", "device": describe_device(dev),
               "seconds": sec, "peak_mb": _peak_mb(dev), "value": sol.value, "gap": sol.gap, "status": sol.status,
               "iterations": sol.iterations, "solver": sol.solver}
        if n <= size["sdp_cpu_max_n"]:
            t0 = time.perf_counter()
            ref = solve_sdp(S, k, solver="torch", device="cpu")
            row.update(cpu_seconds=time.perf_counter() - t0, cpu_value=ref.value, cpu_gap=ref.gap,
                       rel_diff=abs(sol.value - ref.value) / max(1.0, abs(ref.value)))
            if row["rel_diff"] > 10 * max(abs(sol.gap), abs(ref.gap), 1e-5):
                raise CheckFailed(f"SDP n = {n}: {dev} value {sol.value:.8g} and CPU value {ref.value:.8g} differ "
                                  "by more than their certified gaps allow.")
        if not np.isfinite(sol.gap) or abs(sol.gap) > 1e-3:
            raise CheckFailed(f"SDP n = {n} on {dev}: certified gap {sol.gap:.3g} (status {sol.status}).")
        rows.append(row)
        log(row)
    return rows


# ---------------------------------------------------------------------------------------- training
WORDS_POS = ["good", "great", "fine", "lovely", "bright", "warm"]
WORDS_NEG = ["bad", "awful", "poor", "grim", "dull", "cold"]
FILLER = ["the", "film", "was", "a", "day", "very", "and", "story", "food", "service", "it", "felt"]


def text_tasks(n_examples: int, seed: int = 0) -> TaskSet:
    """Two generated text tasks (sentiment words among filler; the second flips half the words):
    the check measures speed and devices, not accuracy, and needs no data files."""
    rng = np.random.default_rng(seed)
    tasks = []
    for t in range(2):
        rows = []
        for _ in range(n_examples):
            label = int(rng.integers(2))
            words = list(rng.choice(FILLER, size=10)) + list(rng.choice(WORDS_POS if label else WORDS_NEG, size=2))
            rng.shuffle(words)
            rows.append({"text": " ".join(words), "label": label if t == 0 else int(rng.integers(2)) ^ label})
        frame = pd.DataFrame(rows)
        tasks.append(text_task(f"text{t}", {"train": frame}, text="text", label="label", seed=seed))
    return TaskSet(tasks, name="generated-text")


def _training_cases(size: dict) -> list[tuple[str, TaskSet, TrainSpec]]:
    steps = size["train_steps"]
    return [
        ("transformer: MiniLM, all layers, bf16 autocast", text_tasks(size["text_examples"]),
         TrainSpec(backend="transformer", steps=steps, batch_size=16, lr=2e-5, eval_every=0, precision="bf16",
                   options={"max_length": size["max_length"], "train_layers": "all"})),
        ("gpt2-icl: in-context learning, 2 layers", icl_tasks(classes=["linear", "relu_nn"], dim=4, n_points=10,
                                                              n_train=512, n_val=64, n_test=64, seed=0),
         TrainSpec(backend="gpt2-icl", steps=steps, batch_size=32, lr=3e-3, eval_every=0,
                   options={"n_layer": 2, "n_embd": 64, "n_head": 2})),
        ("graph: SBM, SGC features + MLP", sbm_tasks(n_communities=4, community_size=60, super_groups=2, seed=0),
         TrainSpec(backend="graph", steps=steps, batch_size=32, lr=0.01, eval_every=0, options={"k": 2, "dim": 16})),
    ]


def _train_seconds(ts: TaskSet, spec: TrainSpec, dev: torch.device, steps: int) -> tuple[float, str]:
    import dataclasses

    spec = dataclasses.replace(spec, device=str(dev), steps=steps)
    if dev.type == "cuda":  # warm-up: CUDA context, kernels (the task preparation is memoised either way)
        train_multitask(ts, ts.names, dataclasses.replace(spec, steps=1), seed=0)
    _peak_reset(dev)
    t0 = time.perf_counter()
    model = train_multitask(ts, ts.names, spec, seed=0)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    used = next(model.net.parameters()).device
    return time.perf_counter() - t0, _on(used, dev, f"training ({spec.backend})")


def stage_training(dev: torch.device, size: dict, log: Callable) -> list[dict]:
    rows = []
    cpu = torch.device("cpu")
    for label, ts, spec in _training_cases(size):
        sec, used = _train_seconds(ts, spec, dev, size["train_steps"])
        peak = _peak_mb(dev)
        if dev.type == "cpu":  # the run above is the CPU figure
            cpu_sec, cpu_steps = sec, size["train_steps"]
        else:  # fewer steps: scaled per step below
            cpu_sec, _ = _train_seconds(ts, spec, cpu, size["cpu_steps"])
            cpu_steps = size["cpu_steps"]
        per_step, cpu_per_step = sec / size["train_steps"], cpu_sec / cpu_steps
        row = {"stage": "training", "what": label, "device": used, "seconds": sec, "peak_mb": peak,
               "steps": size["train_steps"], "trainings_per_hour": 3600 / (per_step * size["train_steps"]),
               "cpu_trainings_per_hour": 3600 / (cpu_per_step * size["train_steps"]),
               "speedup_vs_cpu": cpu_per_step / per_step}
        rows.append(row)
        log(row)
    return rows


# ----------------------------------------------------------------------------------------- gradtag
def stage_gradtag(dev: torch.device, size: dict, log: Callable) -> list[dict]:
    from core.gradtag.pipeline import GradTAG

    n = size["gradtag_tasks"]
    ts = planted_tasks(n_groups=3, tasks_per_group=[n // 3 + (1 if i < n % 3 else 0) for i in range(3)], dim=32,
                       n_train=200, n_val=50, n_test=100, kind="classification", seed=0)
    spec = TrainSpec(backend="mlp", steps=100, batch_size=32, lr=0.01, eval_every=0, device=str(dev),
                     options={"hidden": [64]})
    _peak_reset(dev)
    t0 = time.perf_counter()
    g = GradTAG(spec=spec, dim=128, subsets=size["gradtag_subsets"], subset_size=5 if n >= 10 else 3, split="test",
                gradient_method="auto").fit(ts)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    used = _on(g.base_.device, dev, "Grad-TAG")
    _on(g.thetas_.device, dev, "Grad-TAG's per-subset fits")
    st = g.stage_costs_
    row = {"stage": "gradtag", "what": f"{n} tasks, {len(g.subsets_)} subsets (incl. singles), d = 128",
           "device": used, "seconds": time.perf_counter() - t0, "peak_mb": _peak_mb(dev),
           "gradient_method": st["gradients"]["method"], "base_s": st["base"]["seconds"],
           "gradients_s": st["gradients"]["seconds"], "scoring_s": st["scoring"]["seconds"],
           "lifting_s": st["lifting"]["seconds"], "flops": g.cost_["flops"]}
    log(row)
    return [row]


# --------------------------------------------------------------------------------------------- ray
def stage_ray(dev: torch.device, size: dict, log: Callable) -> list[dict]:
    from core.estimation.runs.config import RunConfig
    from core.estimation.runs.orchestrator import run_estimation

    n = size["ray_tasks"]
    ts = planted_tasks(n_groups=1 if n < 4 else 2, tasks_per_group=n if n < 4 else [n // 2, n - n // 2], seed=0)
    spec = TrainSpec(backend="mlp", steps=50, batch_size=32, lr=0.01, eval_every=0, device=str(dev),
                     options={"hidden": [16]})
    cfg = RunConfig(name="gpu-check-ray", taskset=ts, spec=spec, estimator={"name": "single"})
    with tempfile.TemporaryDirectory(prefix="gpu-check-ray-") as tmp:
        t0 = time.perf_counter()
        run = run_estimation(cfg, out=Path(tmp) / "run", estimator="single", executor="ray",
                             executor_options={"num_cpus": 2, "gpu_share": 0.5}, device=str(dev))
        sec = time.perf_counter() - t0
        manifest = run.manifest
    exe = manifest.get("executor", {})
    gpus = float(exe.get("cluster", {}).get("GPU", 0))
    if dev.type == "cuda" and gpus <= 0:
        raise CheckFailed("the Ray instance sees no GPU, but cuda was asked for.")
    row = {"stage": "ray", "what": f"estimation 'single', {n} trainings, Ray executor, gpu_share 0.5",
           "device": f"{manifest['device']['requested']} on workers; cluster GPUs {gpus:g}",
           "seconds": sec, "status": manifest.get("status"), "trainings": manifest.get("cost", {}).get("trainings")}
    if row["status"] != "complete":
        raise CheckFailed(f"the Ray run ended with status {row['status']}.")
    log(row)
    return [row]


STAGE_FUNCS = {"sdp": stage_sdp, "training": stage_training, "gradtag": stage_gradtag, "ray": stage_ray}


# -------------------------------------------------------------------------------------------- main
def refuses_missing_cuda() -> str:
    """What asking for CUDA says on this machine: the error line when there is no GPU (else 'cuda present')."""
    if torch.cuda.is_available():
        return "cuda present"
    try:
        resolve_device("cuda", "--device")
    except InvalidInputError as exc:
        return str(exc)
    raise CheckFailed("asking for cuda on a machine without CUDA did not fail.")


def run_check(device: str, stages: tuple[str, ...], dry: bool, log: Callable = print) -> dict[str, Any]:
    """Run ``stages`` on ``device``; returns the record (rows, per-stage status). Raises nothing for a
    failed stage (it is recorded, with its error line); bad options raise InvalidInputError."""
    dev = resolve_device(device, "--device")
    if dry and dev.type != "cpu":
        raise InvalidInputError("--dry-run runs on the CPU; drop --device or use --device cpu.")
    size = SIZES["dry" if dry else "full"]
    torch.set_num_threads(1 if dry else max(1, torch.get_num_threads()))
    record: dict[str, Any] = {"device": describe_device(dev), "dry_run": dry, "rows": [], "stages": {},
                              "torch": torch.__version__, "cuda": torch.version.cuda,
                              "refuses_missing_cuda": refuses_missing_cuda()}
    t_all = time.perf_counter()
    for name in stages:
        t0 = time.perf_counter()
        try:
            rows = STAGE_FUNCS[name](dev, size, log)
            record["rows"] += rows
            record["stages"][name] = {"status": "ok", "seconds": time.perf_counter() - t0}
        except Exception as exc:  # a failed stage is reported and fails the check; the others still run
            line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            record["stages"][name] = {"status": "failed", "error": line, "seconds": time.perf_counter() - t0}
            log({"stage": name, "failed": line})
            if not isinstance(exc, TaskAffinityError):
                traceback.print_exc(file=sys.stderr)
    record["seconds"] = time.perf_counter() - t_all
    return record


def _log(row: dict) -> None:
    print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help=f"{DEVICE_HELP} (default cuda; cpu with --dry-run)")
    ap.add_argument("--dry-run", action="store_true", help="CPU, small sizes: checks the plumbing in seconds")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {', '.join(STAGES)}")
    ap.add_argument("--json", type=Path, help="also write the record here (a dry run writes only this)")
    args = ap.parse_args(argv)
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    try:
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise InvalidInputError(f"--stages: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}.")
        device = check_device(args.device or ("cpu" if args.dry_run else "cuda"), "--device")
        record = run_check(device, stages, args.dry_run, _log)
    except TaskAffinityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = {k: v["error"] for k, v in record["stages"].items() if v["status"] != "ok"}
    cols = ["stage", "what", "device", "seconds", "peak_mb", "value", "gap", "cpu_value", "cpu_gap", "rel_diff",
            "trainings_per_hour", "cpu_trainings_per_hour", "speedup_vs_cpu", "gradient_method", "gradients_s",
            "scoring_s", "lifting_s"]
    used = [c for c in cols if any(c in r for r in record["rows"])]
    table = markdown_table(record["rows"], used, floatfmt=".4g")
    print(table)
    print(f"asking for cuda here: {record['refuses_missing_cuda']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1, default=str))
    if not args.dry_run and not failed:
        body = (f"Every GPU path on {record['device']} (torch {record['torch']}, CUDA {record['cuda']}), "
                f"{record['seconds'] / 60:.1f} min in all. `peak_mb`: torch's peak allocated GPU memory in the stage. "
                "SDP: the matrices of bench/bench_sdp_scaling.py; `cpu_*`: the same solve on the CPU (1 thread). "
                "Training: trainings per hour of the stage's spec, CPU figure from a shorter run scaled per step. "
                "See bench/gpu_check.py.\n\n" + table)
        write_section(name="gpu_check", title="GPU check", command=COMMAND, body_md=body, data=record)
    if failed:
        for name, line in failed.items():
            print(f"stage {name} failed: {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
