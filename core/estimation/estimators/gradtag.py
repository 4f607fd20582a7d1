"""``--estimator gradtag``: Grad-TAG behind the estimator registry, writing the same run folder.

Every sampled subset (and every single task when ``baseline: single``) becomes a job of
kind ``"gradtag"``. The job runner keeps one :class:`~core.gradtag.pipeline.GradTAG`
per (tasks, spec, options, seed) in the worker process: the first job trains the base
model, computes and projects the gradients into ``cache_dir`` (resumable, reused by a
resumed run or another worker: the base weights are saved beside the gradient store) and
fits the linearised models of *all* the run's subsets in one batch; each job then lifts
its own subset's coefficients and evaluates the real network. The first job's seconds
and FLOPs carry the base, gradient and scoring stages, so the run's total cost is the
Grad-TAG cost. The stored outcomes go through the higher-order aggregation unchanged
(this class *is* ``HigherOrderAffinity`` with other jobs).
"""
from __future__ import annotations

import functools
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, ClassVar


from core.errors import InvalidInputError
from core.estimation.estimators.base import ESTIMATORS, EstimationContext
from core.estimation.runs.store import Job, JobResult, Score
from core.gradtag.aggregate import GradTAGAggregation
from core.gradtag.gradients import METHODS
from core.gradtag.pipeline import GradTAG
from core.gradtag.projector import PROJECTORS, check_dim
from core.gradtag.scorer import LogisticLinearScorer

try:
    import fcntl
except ImportError:  # not POSIX: workers sharing a cache folder are not serialised
    fcntl = None

GRADTAG_OPTIONS: dict[str, Any] = {"dim": 200, "projection": "rademacher", "projection_seed": 0, "params": None,
                                   "reg": 0.03, "offset": True, "grad_batch_size": 64, "gradient_method": "auto",
                                   "cache_dir": None}


class GradTAGAffinity(GradTAGAggregation):
    """Higher-order affinity from Grad-TAG estimates instead of subset trainings.

    Options: those of ``higher-order`` (subsets, subset_size, min_pair_coverage, sample_seed,
    baseline) plus ``dim`` (projection dimension, default 200), ``projection``
    (rademacher | gaussian | countsketch), ``projection_seed``, ``params`` (parameter-name
    prefixes to differentiate; default all), ``reg`` (L2 on theta), ``offset`` (keep the base
    output), ``grad_batch_size``, ``gradient_method`` (auto | vmap | loop) and ``cache_dir``
    (where the base weights and gradient store live; default a folder under the system's
    temporary directory keyed by data, spec and options).
    """

    name = "gradtag"
    defaults: ClassVar[dict[str, Any]] = {**GradTAGAggregation.defaults, **GRADTAG_OPTIONS}

    def validate(self, ctx: EstimationContext) -> None:
        super().validate(ctx)
        o = self.options
        check_dim(o["dim"])
        if o["projection"] not in PROJECTORS:
            raise InvalidInputError(f"projection {o['projection']!r} must be one of {', '.join(PROJECTORS)}.")
        if o["gradient_method"] not in METHODS:
            raise InvalidInputError(f"gradient_method {o['gradient_method']!r} must be one of {', '.join(METHODS)}.")
        for r in (o["reg"] if isinstance(o["reg"], (list, tuple)) else [o["reg"]]):
            LogisticLinearScorer(reg=r)
        if o["params"] is not None and (isinstance(o["params"], str) or not all(isinstance(p, str) for p in o["params"])):
            raise InvalidInputError(f"params {o['params']!r} must be a list of parameter-name prefixes.")
        self._ctx = ctx

    def runner(self) -> Callable[[Any, Job], Any]:
        ctx = getattr(self, "_ctx", None)
        if ctx is None:
            raise InvalidInputError("gradtag: validate(ctx) must run before runner() (run_estimation does this).")
        opts = {k: self.options[k] for k in GRADTAG_OPTIONS}
        return functools.partial(gradtag_job, json.dumps(opts, sort_keys=True), tuple(self.subsets_to_estimate(ctx)))


ESTIMATORS.register("gradtag", GradTAGAffinity)

# ------------------------------------------------------------------------------------------ job runner

_PIPELINES: dict[str, Any] = {}


def _key(payload: Any, options: str, seed: int, split: str) -> str:
    spec = payload.spec.to_dict() if hasattr(payload.spec, "to_dict") else repr(payload.spec)
    blob = json.dumps({"data": payload.taskset.fingerprints(), "spec": spec, "options": options, "seed": seed,
                       "split": split}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def gradtag_job(options: str, subsets: tuple[tuple[str, ...], ...], payload: Any, job: Job) -> JobResult:
    """Estimate ``job.subset`` (see module docstring); picklable via functools.partial."""
    opts = json.loads(options)
    key = _key(payload, options, job.seed, job.split)
    pipe, seconds, flops = _PIPELINES.get(key), 0.0, 0.0
    if pipe is None:
        t0 = time.perf_counter()
        root = Path(opts.pop("cache_dir") or Path(tempfile.gettempdir()) / "taskaffinity-gradtag")
        folder = root / key
        folder.mkdir(parents=True, exist_ok=True)
        pipe = GradTAG(spec=payload.spec, seed=job.seed, split=job.split, store_dir=folder,
                       **{k: v for k, v in opts.items() if k != "cache_dir"})
        # several workers (Ray) may start on the same run: one computes, the others then load its results
        with open(folder / ".lock", "w") as fh:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                pipe.prepare(payload.taskset)
            finally:
                if fcntl is not None:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        pipe.fit_subsets([s for s in subsets])
        _PIPELINES[key] = pipe
        seconds = time.perf_counter() - t0
        flops = sum(pipe.stage_costs_[s]["flops"] for s in ("base", "gradients", "scoring"))
    try:
        index = pipe.subsets_.index(pipe.base_.taskset.check_names(job.subset))
    except ValueError:
        raise InvalidInputError(f"gradtag: subset {job.subset} is not among the run's subsets.") from None
    f_before = pipe.lifted_.flops_ if hasattr(pipe, "lifted_") else 0.0
    t1 = time.perf_counter()
    rows = pipe.score_subset(index)
    scores = {r["task"]: Score(metric=r["metric"], loss=r["loss"], perf=r["perf"], n=r["n"]) for r in rows}
    return JobResult(job=job, scores=scores, seconds=seconds + time.perf_counter() - t1,
                     flops=flops + pipe.lifted_.flops_ - f_before, steps=0)
