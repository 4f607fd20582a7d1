"""``python -m scripts.sample_data --out sample_data``: regenerate the dashboard's bundled runs.

Every run folder under ``sample_data/`` is produced by this command from the
project's own code, so the dashboard opens on real results with no set-up:

* ``planted-*``: affinity matrices with planted groups (core.grouping.planted),
  averaged over several noise seeds so each entry carries a standard error; the
  noiseless matrix is kept as ``matrices/true.json`` and the planted groups in
  the manifest (``planted_groups``) so a grouping can be scored against them.
  Seconds.
* ``est-*``: real estimation runs (:func:`core.estimation.runs.orchestrator.run_estimation`) of
  the bundled configs in ``sample_data/configs``: the planted regression tasks
  (pairwise, 45 trainings, about a minute on 2 CPU cores), digits one-vs-rest
  (higher-order, about a minute), the ten text tasks (pairwise, 55 trainings on
  cached MiniLM embeddings; about a minute when the embeddings are cached in
  ``~/.cache/taskaffinity``, plus about 10 minutes on a CPU to compute them on a
  fresh machine; ``--skip-text`` leaves it out, and it needs the shared data
  folder) and in-context learning (``icl.yaml``, made when that config exists).
  The store (``results.sqlite``) is dropped when over 1 MB; ``results.csv`` and the
  matrices are always kept.

Each folder is written under a temporary name and swapped in at the end, so an
interrupted regeneration never leaves a half-written run behind.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from core.matrix.affinity import AffinityMatrix
from core.errors import InvalidInputError, TaskAffinityError
from core.grouping.planted import planted_affinity
from core.estimation.runs.folder import RUN_FORMAT, RUN_VERSION, RunDir
from core.estimation.runs.orchestrator import run_estimation

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python -m scripts.sample_data --out sample_data"
CONFIG_DIR = REPO_ROOT / "sample_data" / "configs"
MAX_STORE_BYTES = 1_000_000


@dataclass(frozen=True)
class PlantedSpec:
    """A planted sample run: group sizes, noise and how many seeds are averaged."""

    name: str
    sizes: tuple[int, ...]
    noise: float
    asym_noise: float
    scale_spread: float
    seeds: int
    seed: int
    description: str
    #: Also store the noiseless matrix (matrices/true.json); off for the largest run to keep the checkout small.
    keep_truth: bool = True


PLANTED = (
    PlantedSpec("planted-12", (4, 4, 4), 0.5, 0.15, 0.0, 3, 1,
                "12 tasks in 3 planted groups; small enough for the exhaustive search."),
    PlantedSpec("planted-60", (20, 15, 15, 10), 0.8, 0.2, 0.6, 4, 2,
                "60 tasks in 4 planted groups whose targets move on different scales (try per-target z-scores)."),
    PlantedSpec("planted-200", (40, 35, 30, 30, 25, 20, 20), 1.0, 0.2, 0.3, 3, 3,
                "200 tasks in 7 planted groups; a readability check for large heatmaps."),
    # One draw (no standard errors) and no stored truth: the 500 x 500 run stays under 5 MB.
    PlantedSpec("planted-500", (80, 70, 60, 60, 50, 50, 40, 40, 30, 20), 0.5, 0.2, 0.3, 1, 5,
                "500 tasks in 10 planted groups; the dashboard's largest bundled size (speed and readability).",
                keep_truth=False),
)


def planted_run_matrices(spec: PlantedSpec) -> tuple[AffinityMatrix, AffinityMatrix, list[list[str]]]:
    """The averaged noisy matrix (with standard errors), the noiseless one, and the planted groups."""
    draws = [planted_affinity(spec.sizes, noise=spec.noise, asym_noise=spec.asym_noise, scale_spread=0.0,
                              shuffle=False, seed=spec.seed * 1000 + s) for s in range(spec.seeds)]
    truth = planted_affinity(spec.sizes, noise=0.0, asym_noise=0.0, shuffle=False, seed=spec.seed)
    rng = np.random.default_rng(spec.seed)
    n = truth.matrix.n
    # One target scale per column shared by every seed: a target's metric has one scale whatever the seed.
    scale = np.exp(rng.normal(0.0, spec.scale_spread, size=n)) if spec.scale_spread > 0 else np.ones(n)
    stack = np.stack([d.matrix.values * scale[None, :] for d in draws])
    mean = stack.mean(axis=0)
    stderr = stack.std(axis=0, ddof=1) / np.sqrt(spec.seeds) if spec.seeds > 1 else np.full((n, n), np.nan)
    # Shuffle so the names do not give the groups away; names follow the shuffled order.
    perm = rng.permutation(n)
    names = [f"task{i:0{len(str(n - 1))}d}" for i in range(n)]
    labels = truth.labels[perm]
    sel = np.ix_(perm, perm)
    # Four decimals are far below the noise and keep the bundled files small.
    mean, stderr = np.round(mean, 4), np.round(stderr, 4)
    common = dict(metric="planted affinity (arbitrary units)", seed=spec.seed,
                  cost={"trainings": 0, "seconds": 0.0, "flops": 0.0})
    noisy = AffinityMatrix(names=names, values=mean[sel], estimator="planted (mean of noisy draws)",
                           uncertainty=stderr[sel] if spec.seeds > 1 else None,
                           counts=np.full((n, n), float(spec.seeds)) if spec.seeds > 1 else None,
                           notes=f"{spec.description} Mean of {spec.seeds} noisy draws; uncertainty = standard error.",
                           **common)
    true = AffinityMatrix(names=names, values=np.round(truth.matrix.values * scale[None, :], 4)[sel], estimator="true",
                          notes="Noiseless planted affinity (the ground truth the noisy draws scatter around).", **common)
    groups = [[names[i] for i in np.flatnonzero(labels == g)] for g in np.unique(labels)]
    return noisy, true, groups


@dataclass(frozen=True)
class EstimationSpec:
    """A sample estimation run: a bundled config and the estimator run on it."""

    name: str
    config: str  # file name in sample_data/configs
    estimator: str
    description: str
    text: bool = False  # needs the shared text data and MiniLM embeddings (slow on a fresh machine)


ESTIMATION = (
    EstimationSpec("est-planted-pairwise", "planted.yaml", "pairwise",
                   "9 planted regression tasks in 3 groups (rank-one trunk): pairwise affinity from 45 real trainings; "
                   "cross-group pairs show negative transfer."),
    EstimationSpec("est-digits-higher-order", "digits.yaml", "higher-order",
                   "Digits one-vs-rest (10 tasks, scikit-learn's bundled digits): higher-order affinity from sampled "
                   "subsets of 3 tasks."),
    EstimationSpec("est-text-pairwise", "text.yaml", "pairwise",
                   "Ten real text-classification tasks (GLUE, SuperGLUE, LM-BFF) on MiniLM sentence embeddings with "
                   "an MLP trunk: pairwise affinity from 55 trainings.", text=True),
    EstimationSpec("est-icl-pairwise", "icl.yaml", "pairwise",
                   "In-context learning of function classes (Garg et al.) with a small GPT-2: pairwise affinity."),
)


def write_estimation_run(out: Path, spec: EstimationSpec, config_dir: Path = CONFIG_DIR,
                         log: Callable[[str], None] = print) -> Path:
    """Run ``spec``'s estimation into ``out/spec.name`` (replacing an older one) and tidy it for bundling."""
    config = Path(config_dir) / spec.config
    last = [0.0]

    def progress(done: int, total: int, msg: str) -> None:
        if time.monotonic() - last[0] > 10 or done == total:
            last[0] = time.monotonic()
            log(f"  {spec.name}: {done}/{total} {msg}")

    def fill(tmp: Path) -> None:
        run_estimation(config, out=tmp, estimator=spec.estimator, progress=progress)
        run = RunDir(tmp)
        if run.store_path.is_file() and run.store_path.stat().st_size > MAX_STORE_BYTES:
            run.drop_store()  # the results CSV holds the same rows; only --resume needs the store
        run.drop_lock()
        manifest = run.read_manifest()
        manifest.update(name=spec.name, description=spec.description, command=COMMAND)
        source = manifest.get("config", {}).get("source")
        if source:
            try:  # the bundled run must not name this machine's checkout
                manifest["config"]["source"] = Path(source).resolve().relative_to(REPO_ROOT).as_posix()
            except ValueError:
                pass
        run.write_manifest(manifest)

    return _swap_in(out / spec.name, fill)


def _manifest(name: str, estimator: str, matrix: AffinityMatrix, config: dict[str, Any], seconds: float,
              extra: dict[str, Any]) -> dict[str, Any]:
    import numpy

    return {
        "format": RUN_FORMAT, "version": RUN_VERSION, "name": name,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "status": "complete", "estimator": estimator, "config": config,
        "seeds": list(range(int(config.get("seeds", 1)))),
        "packages": {"python": platform.python_version(), "numpy": numpy.__version__},
        "data_hashes": {}, "cost": {"trainings": 0, "seconds": round(seconds, 3), "flops": 0.0},
        "tasks": list(matrix.names), "command": COMMAND, **extra,
    }


def write_planted_run(out: Path, spec: PlantedSpec) -> Path:
    """Write one planted sample run folder under ``out`` (replacing an older one)."""
    t0 = time.perf_counter()
    noisy, true, groups = planted_run_matrices(spec)
    config = dict(sizes=list(spec.sizes), noise=spec.noise, asym_noise=spec.asym_noise,
                  scale_spread=spec.scale_spread, seeds=spec.seeds, seed=spec.seed)

    def fill(tmp: Path) -> None:
        run = RunDir(tmp)
        run.write_matrices({"true": true} if spec.keep_truth else {}, main=noisy)
        manifest = _manifest(spec.name, "planted", noisy, config, time.perf_counter() - t0,
                             {"description": spec.description, "planted_groups": groups})
        run.write_manifest(manifest)

    return _swap_in(out / spec.name, fill)


def _swap_in(final: Path, fill: Callable[[Path], None]) -> Path:
    """Build a run folder at a temporary path with ``fill`` and move it to ``final``."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.parent / f".{final.name}.old"
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def generate(out: Path, only: Sequence[str] | None = None, log: Callable[[str], None] = print, *,
             skip_text: bool = False, estimation: bool = True, config_dir: Path = CONFIG_DIR) -> list[Path]:
    """Regenerate the sample runs under ``out``.

    Parameters
    ----------
    only : names or prefixes of the runs to make (default: all).
    skip_text : leave out the text run (needs the shared data; ~10 min to embed on a fresh machine).
    estimation : False leaves out every estimation run (the planted matrices take seconds).
    config_dir : where the run configs are (default sample_data/configs of this checkout).
    """
    out = Path(out)
    known = [s.name for s in PLANTED] + [s.name for s in ESTIMATION]
    if only:
        unknown = [o for o in only if not any(name.startswith(o) for name in known)]
        if unknown:
            raise InvalidInputError(f"sample-data --only {' '.join(unknown)}: matches no sample run; known: "
                                    f"{', '.join(known)}.")
    chosen = lambda name: not only or any(name.startswith(o) for o in only)  # noqa: E731
    written = []
    for spec in PLANTED:
        if chosen(spec.name):
            t0 = time.perf_counter()
            written.append(write_planted_run(out, spec))
            log(f"wrote {written[-1]} ({time.perf_counter() - t0:.1f} s)")
    for est in ESTIMATION if estimation else ():
        if not chosen(est.name):
            continue
        if est.text and skip_text:
            log(f"skipped {est.name} (--skip-text)")
            continue
        if not (Path(config_dir) / est.config).is_file():
            log(f"skipped {est.name}: no {est.config} in {config_dir} in this version")
            continue
        t0 = time.perf_counter()
        log(f"running {est.name} ({est.estimator} on {est.config})…")
        written.append(write_estimation_run(out, est, config_dir, log))
        log(f"wrote {written[-1]} ({time.perf_counter() - t0:.1f} s)")
    return written


def _run(args: argparse.Namespace) -> int:
    generate(Path(args.out), args.only, skip_text=args.skip_text, estimation=not args.skip_estimation)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m scripts.sample_data``."""
    p = argparse.ArgumentParser(prog="python -m scripts.sample_data", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="sample_data", help="folder to write the sample runs into (default: sample_data)")
    p.add_argument("--only", nargs="*", default=None, help="only the sample runs whose names start with these "
                   "(planted-12, planted-60, planted-200, est-planted-pairwise, est-digits-higher-order, "
                   "est-text-pairwise, est-icl-pairwise)")
    p.add_argument("--skip-text", action="store_true",
                   help="leave out the text-task run (it needs shared/data and, on a fresh machine, about 10 minutes "
                   "on a CPU to compute the MiniLM embeddings)")
    p.add_argument("--skip-estimation", action="store_true",
                   help="only the planted matrices (seconds); the estimation runs train real models (minutes)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except TaskAffinityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
