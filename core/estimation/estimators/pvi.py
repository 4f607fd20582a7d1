"""PVI grouping: task similarity from pointwise V-usable information profiles.

For every task, two models of the same family are trained: one on the real
inputs and one on *empty* inputs (the "null" model, which can only learn the
label prior). For each held-out example (x, y)

    PVI(x -> y) = -log2 p_null(y) + log2 p(y | x)          (Ethayarajh et al. 2022)

in bits. A task's *profile* is the distribution of its PVI values: tasks whose
examples carry a similar amount of model-usable information are "of comparable
difficulty", and the PVI-grouping paper (seed 002) trains such tasks together.

Similarity rule (ours; the paper groups by comparing distributions but the rule
is not public): ``rule="wasserstein"`` (default) uses the 1-Wasserstein distance
``W[u, v]`` between the two empirical PVI distributions and turns it into a
similarity ``S[u, v] = exp(-W[u, v] / s)`` with ``s`` the median off-diagonal
distance (so the typical pair has similarity 1/e whatever the units);
``rule="ks"`` uses ``1 - D`` with ``D`` the two-sample Kolmogorov-Smirnov
statistic, and records for every pair whether the KS test says the profiles
differ (p < alpha, Bonferroni-corrected over the pairs). The matrix is
symmetric with a unit diagonal; it is a *similarity*, not a transfer
measurement, and is grouped with the grouping engine like any affinity matrix.

Degenerate models are reported, never averaged silently:

- too few held-out examples (fewer than ``min_examples``): :class:`InvalidInputError`;
- class/label names that differ between the model and the null model, or a
  different number of classes: :class:`InvalidInputError`;
- a real-input model whose predictions are the same for every example
  (it learnt nothing from x): a warning in the task's profile
  (``PVIProfile.warnings``), listed again in the estimator's ``warnings_``;
- a null model whose predictions vary across examples (its inputs were not
  empty): a warning;
- probabilities clipped at ``eps`` (a model certain of a wrong label): a warning
  with the count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch
from scipy import stats

from core.errors import InvalidInputError
from core.estimation.data.tasks import Split, Task, TaskSet
from core.estimation.estimators.base import EstimationContext, Estimator, cost_of, require_outcomes, select
from core.estimation.runs.store import Job, JobResult, Score
from core.matrix.affinity import AffinityMatrix

LN2 = math.log(2.0)
RULES = ("wasserstein", "ks")


@dataclass(frozen=True)
class PVIProfile:
    """The PVI values (bits) of one task's held-out examples, with any warnings."""

    task: str
    values: np.ndarray
    targets: np.ndarray
    warnings: tuple[str, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        return float(self.values.mean())


def _check_label_names(task: str, model_names: Sequence[str] | None, null_names: Sequence[str] | None) -> None:
    if model_names is None and null_names is None:
        return
    if model_names is None or null_names is None or tuple(model_names) != tuple(null_names):
        raise InvalidInputError(
            f"task {task!r}: the model's label names {None if model_names is None else list(model_names)} do not match "
            f"the null model's {None if null_names is None else list(null_names)}; PVI compares the probability of the "
            "same label under both models, so train both on the same label set in the same order.")


def pvi_from_logprobs(logp_model: np.ndarray, logp_null: np.ndarray, targets: np.ndarray, *, task: str = "task",
                      label_names_model: Sequence[str] | None = None, label_names_null: Sequence[str] | None = None,
                      min_examples: int = 20, constant_tol: float = 1e-6, eps: float = 1e-12) -> PVIProfile:
    """PVI of each example from the two models' class log-probabilities (classification).

    Parameters
    ----------
    logp_model, logp_null : ndarray of shape (n, C)
        Natural-log class probabilities of the model trained on the inputs and of
        the model trained on empty inputs, for the same n held-out examples.
    targets : ndarray of shape (n,)
        Gold labels 0..C-1.
    label_names_model, label_names_null : sequence of str, optional
        The label names each model was trained with; they must be equal.
    min_examples : int
        Fewer held-out examples than this is an error (a profile from a handful
        of examples is noise).
    constant_tol : float
        A model whose log-probabilities vary across examples by less than this
        (max over classes of the standard deviation) counts as constant.
    eps : float
        Probabilities are clipped to ``[eps, 1]`` before the log.
    """
    logp_model = np.asarray(logp_model, dtype=np.float64)
    logp_null = np.asarray(logp_null, dtype=np.float64)
    targets = np.asarray(targets)
    _check_label_names(task, label_names_model, label_names_null)
    if logp_model.ndim != 2 or logp_null.ndim != 2:
        raise InvalidInputError(f"task {task!r}: class log-probabilities must be (examples x classes) arrays.")
    if logp_model.shape[1] != logp_null.shape[1]:
        raise InvalidInputError(
            f"task {task!r}: the model predicts {logp_model.shape[1]} classes but the null model "
            f"{logp_null.shape[1]}; both must be trained on the same label set.")
    n = targets.shape[0]
    if logp_model.shape[0] != n or logp_null.shape[0] != n:
        raise InvalidInputError(f"task {task!r}: {logp_model.shape[0]} / {logp_null.shape[0]} predictions for {n} labels.")
    _check_count(task, n, min_examples)
    if not np.issubdtype(targets.dtype, np.integer) or targets.min() < 0 or targets.max() >= logp_model.shape[1]:
        raise InvalidInputError(f"task {task!r}: labels must be integers 0..{logp_model.shape[1] - 1}.")
    if not (np.isfinite(logp_model).all() and np.isfinite(logp_null).all()):
        raise InvalidInputError(f"task {task!r}: a model produced non-finite probabilities; PVI is undefined.")
    warnings: list[str] = []
    rows = np.arange(n)
    lm = logp_model[rows, targets]
    ln = logp_null[rows, targets]
    floor = math.log(eps)
    clipped = int((lm < floor).sum() + (ln < floor).sum())
    if clipped:
        warnings.append(f"{clipped} gold-label probabilities below {eps:g} were clipped (a model was certain of a "
                        "wrong label); those PVI values are bounded, not exact.")
    warnings += _constancy_warnings(task, logp_model.std(axis=0).max(), logp_null.std(axis=0).max(), constant_tol)
    values = (np.maximum(lm, floor) - np.maximum(ln, floor)) / LN2
    return PVIProfile(task=task, values=values, targets=targets, warnings=tuple(warnings),
                      info={"kind": "classification", "n_classes": int(logp_model.shape[1])})


def pvi_regression(pred_model: np.ndarray, pred_null: np.ndarray, targets: np.ndarray, *, sigma_model: float,
                   sigma_null: float, task: str = "task", min_examples: int = 20,
                   constant_tol: float = 1e-6) -> PVIProfile:
    """PVI for a regression task under Gaussian predictive densities (differential bits).

    Each model predicts ``y ~ N(pred, sigma^2)`` with ``sigma`` its own noise level
    (our choice: regression PVI needs a density, and a Gaussian with the model's noise
    level is the least-assuming one; :func:`profile_from_models` passes each model's
    RMSE on the evaluated split, see there why not the training split's).
    """
    pred_model = np.asarray(pred_model, dtype=np.float64).ravel()
    pred_null = np.asarray(pred_null, dtype=np.float64).ravel()
    targets = np.asarray(targets, dtype=np.float64).ravel()
    n = targets.size
    if pred_model.size != n or pred_null.size != n:
        raise InvalidInputError(f"task {task!r}: {pred_model.size} / {pred_null.size} predictions for {n} targets.")
    _check_count(task, n, min_examples)
    for name, s in (("model", sigma_model), ("null model", sigma_null)):
        if not (np.isfinite(s) and s > 0):
            raise InvalidInputError(f"task {task!r}: the {name}'s residual standard deviation is {s}; it must be > 0.")
    warnings = _constancy_warnings(task, pred_model.std(), pred_null.std(), constant_tol)
    lm = stats.norm.logpdf(targets, pred_model, sigma_model)
    ln = stats.norm.logpdf(targets, pred_null, sigma_null)
    return PVIProfile(task=task, values=(lm - ln) / LN2, targets=targets, warnings=tuple(warnings),
                      info={"kind": "regression", "sigma_model": float(sigma_model), "sigma_null": float(sigma_null)})


def _check_count(task: str, n: int, min_examples: int) -> None:
    if n < min_examples:
        raise InvalidInputError(
            f"task {task!r}: only {n} held-out examples for its PVI profile (need at least {min_examples}); "
            "use a larger evaluation split or lower min_examples.")


def _constancy_warnings(task: str, model_spread: float, null_spread: float, tol: float) -> list[str]:
    out = []
    if model_spread < tol:
        out.append(f"task {task!r}: the model trained on the inputs predicts the same for every example "
                   "(constant predictions); its PVI only reflects the label prior, not information in x.")
    if null_spread > max(tol, 1e-4):
        out.append(f"task {task!r}: the null model's predictions vary across examples (spread {null_spread:.3g}); "
                   "its inputs were not empty, so PVI understates the information in x.")
    return out


def pvi_distances(profiles: Sequence[PVIProfile], rule: str = "wasserstein") -> np.ndarray:
    """Pairwise distances between PVI profiles: 1-Wasserstein (bits) or the KS statistic."""
    if rule not in RULES:
        raise InvalidInputError(f"PVI similarity rule {rule!r} is not one of {', '.join(RULES)}.")
    n = len(profiles)
    D = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            a, b = profiles[i].values, profiles[j].values
            D[i, j] = D[j, i] = (stats.wasserstein_distance(a, b) if rule == "wasserstein"
                                 else stats.ks_2samp(a, b).statistic)
    return D


def pvi_similarity(profiles: Sequence[PVIProfile], rule: str = "wasserstein", *, scale: float | None = None,
                   alpha: float = 0.05) -> tuple[np.ndarray, dict[str, Any]]:
    """Task-similarity matrix from PVI profiles (see the module docstring for the rule).

    Returns
    -------
    S : ndarray (n, n)
        Symmetric similarity in (0, 1], unit diagonal.
    info : dict
        ``distance`` (the matrix D), ``scale`` (Wasserstein), ``different`` (KS:
        pairs whose profiles differ at level alpha, Bonferroni-corrected) and ``rule``.
    """
    if len(profiles) < 2:
        raise InvalidInputError(f"PVI similarity needs at least 2 task profiles, got {len(profiles)}.")
    D = pvi_distances(profiles, rule)
    n = D.shape[0]
    off = D[~np.eye(n, dtype=bool)]
    info: dict[str, Any] = {"rule": rule, "distance": D}
    if rule == "wasserstein":
        s = float(np.median(off)) if scale is None else float(scale)
        if not np.isfinite(s) or s <= 0:
            s = 1.0  # all profiles identical: every similarity is 1 anyway
        info["scale"] = s
        S = np.exp(-D / s)
    else:
        S = 1.0 - D
        m = n * (n - 1) // 2
        diff = np.zeros((n, n), dtype=bool)
        for i in range(n):
            for j in range(i + 1, n):
                p = stats.ks_2samp(profiles[i].values, profiles[j].values).pvalue
                diff[i, j] = diff[j, i] = p < alpha / m
        info["different"] = diff
        info["alpha"] = alpha
    np.fill_diagonal(S, 1.0)
    return S, info


def log_probs(logits: torch.Tensor) -> np.ndarray:
    """Natural-log class probabilities of a batch of logits as float64 numpy."""
    return torch.log_softmax(logits.detach().double(), dim=-1).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Training-backed estimator
# ---------------------------------------------------------------------------------------------
def null_inputs(inputs: Any, task: str = "task") -> Any:
    """Empty inputs of the same form: zeros for feature arrays, "" for texts, ("", "") for text pairs."""
    if isinstance(inputs, np.ndarray) and np.issubdtype(inputs.dtype, np.number):
        return np.zeros_like(inputs)
    items = list(inputs)
    if all(isinstance(x, str) for x in items):
        return [""] * len(items)
    if all(isinstance(x, (tuple, list)) and all(isinstance(y, str) for y in x) for x in items):
        return [tuple("" for _ in x) for x in items]
    raise InvalidInputError(f"task {task!r}: cannot build empty inputs for PVI from {type(inputs).__name__} "
                            "inputs (supported: feature arrays, texts, text pairs).")


def null_task(task: Task) -> Task:
    """The task with every split's inputs replaced by empty inputs (labels unchanged)."""
    from dataclasses import replace


    return replace(task, **{s: Split(null_inputs(task.split(s).inputs, task.name), task.split(s).targets)
                            for s in ("train", "val", "test")})


def _predictions(model: Any, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs (logits or regression values) and targets of a split, eval mode, no grad."""
    task = model.taskset[name]
    data = task.split(split)
    outs, ys = [], []
    model.net.eval()
    with torch.no_grad():
        for start in range(0, len(data), 1024):
            part = data.take(np.arange(start, min(start + 1024, len(data))))
            x, y = model.backend.batch(task, part, model.device)
            outs.append(model.net(x, name).detach().double().cpu())
            ys.append(y.cpu())
    return torch.cat(outs).numpy(), torch.cat(ys).numpy()


def profile_from_models(model: Any, null_model: Any, name: str, split: str = "test", *, min_examples: int = 20,
                        constant_tol: float = 1e-6) -> PVIProfile:
    """PVI profile of task ``name`` on ``split`` from a model trained on its inputs and one on empty inputs.

    Both are :class:`~core.estimation.models.training.TrainedModel` of the same backend.
    """
    task, null = model.taskset[name], null_model.taskset[name]
    if task.kind != null.kind:
        raise InvalidInputError(f"task {name!r}: the model is {task.kind} but the null model {null.kind}.")
    _check_label_names(name, task.label_names, null.label_names)
    if task.kind == "classification" and task.n_classes != null.n_classes:
        raise InvalidInputError(f"task {name!r}: {task.n_classes} classes for the model, {null.n_classes} for the "
                                "null model; both must be trained on the same label set.")
    out, y = _predictions(model, name, split)
    out0, y0 = _predictions(null_model, name, split)
    if y.shape != y0.shape or not np.array_equal(y, y0):
        raise InvalidInputError(f"task {name!r}: the two models were evaluated on different {split} labels.")
    if task.kind == "classification":
        return pvi_from_logprobs(log_probs(torch.as_tensor(out)), log_probs(torch.as_tensor(out0)), y.astype(np.int64),
                                 task=name, label_names_model=task.label_names, label_names_null=null.label_names,
                                 min_examples=min_examples, constant_tol=constant_tol)
    from core.estimation.models.training import per_sample_loss

    # Each model's noise level is its RMSE on the held-out split itself (one calibration scalar per model):
    # the training-split residuals of a model that overfits (few examples, many features) are far smaller than
    # its held-out ones, and that overconfident density made every PVI negative on small planted tasks. With
    # held-out sigmas the mean PVI is 0.5 log2(MSE_null / MSE_model): positive iff x helps on held-out data.
    sigma = math.sqrt(float(per_sample_loss(model, name, split).mean()))
    sigma0 = math.sqrt(float(per_sample_loss(null_model, name, split).mean()))
    return pvi_regression(out, out0, y, sigma_model=sigma, sigma_null=sigma0, task=name, min_examples=min_examples,
                          constant_tol=constant_tol)


def task_profile(prepared: Any, name: str, spec: Any, seed: int, split: str, *, min_examples: int = 20,
                 constant_tol: float = 1e-6) -> tuple[PVIProfile, Any, float]:
    """Train task ``name`` on its inputs and on empty inputs; return its PVI profile on ``split``.

    ``prepared`` is the backend-prepared task set. Returns ``(profile, model, flops)`` with ``model``
    the real-input model (its score on ``split`` is the task's single-task score) and ``flops`` both
    trainings'.
    """
    from core.estimation.models.training import train_multitask

    model = train_multitask(prepared, [name], spec, seed)
    null_model = train_multitask(TaskSet([null_task(prepared[name])], name=f"{name} (empty inputs)"), [name], spec, seed)
    profile = profile_from_models(model, null_model, name, split, min_examples=min_examples, constant_tol=constant_tol)
    return profile, model, model.flops + null_model.flops


def pvi_matrix(names: Sequence[str], profiles: Sequence[PVIProfile], *, rule: str, alpha: float, cost: Mapping,
               seed: int, extra_notes: str = "") -> tuple["AffinityMatrix", dict[str, Any], list[str]]:  # noqa: F821
    """The PVI similarity as an :class:`~core.matrix.affinity.AffinityMatrix`, its info and every profile warning."""
    S, info = pvi_similarity(profiles, rule, alpha=alpha)
    warnings = [w for p in profiles for w in p.warnings]
    how = ("exp(-W1 / median W1) of the PVI distributions" if rule == "wasserstein"
           else "1 - KS statistic of the PVI distributions")
    notes = f"similarity = {how}{extra_notes}; mean PVI (bits): " + ", ".join(f"{p.task}={p.mean:.3f}" for p in profiles)
    if rule == "ks":
        pairs = [f"{names[i]}~{names[j]}" for i in range(len(names)) for j in range(i + 1, len(names))
                 if info["different"][i, j]]
        notes += f"; KS-different pairs (alpha {alpha}, Bonferroni): {pairs or 'none'}"
    if warnings:
        notes += " | WARNINGS: " + " ; ".join(warnings)
    m = AffinityMatrix(names=tuple(names), values=S, metric="PVI-profile similarity", estimator="pvi",
                       cost=dict(cost), seed=seed, notes=notes)
    return m, info, warnings


class PVI:
    """Task similarity from PVI profiles, outside a run folder (see :class:`PVIAffinity` for ``--estimator pvi``).

    Parameters
    ----------
    rule : {"wasserstein", "ks"}
        How profiles become a similarity.
    split : str
        Held-out split the profiles are computed on.
    min_examples : int
        Fewest held-out examples per task.
    constant_tol : float
        Spread below which a model's predictions count as constant.
    alpha : float
        KS test level (``rule="ks"``).

    Attributes
    ----------
    profiles_ : dict of str -> PVIProfile
    matrix_ : AffinityMatrix
        Symmetric similarity (metric ``"PVI-profile similarity"``).
    warnings_ : list of str
        Every degenerate-model warning of every task.
    cost_ : dict
        ``trainings`` (2 per task), ``seconds``, ``flops``.
    """

    name = "pvi"

    def __init__(self, rule: str = "wasserstein", split: str = "test", min_examples: int = 20,
                 constant_tol: float = 1e-6, alpha: float = 0.05):
        if rule not in RULES:
            raise InvalidInputError(f"PVI similarity rule {rule!r} is not one of {', '.join(RULES)}.")
        self.rule = rule
        self.split = split
        self.min_examples = min_examples
        self.constant_tol = constant_tol
        self.alpha = alpha

    def fit(self, taskset: Any, spec: Any, seed: int = 0, tasks: Sequence[str] | None = None) -> "PVI":
        import time

        from core.estimation.models.backends import get_backend
        from core.estimation.models.training import prepare_taskset

        names = taskset.check_names(tasks) if tasks is not None else taskset.names
        if len(names) < 2:
            raise InvalidInputError("PVI grouping needs at least 2 tasks.")
        start = time.perf_counter()
        prepared = prepare_taskset(get_backend(spec.backend, **spec.options), taskset)
        self.profiles_: dict[str, PVIProfile] = {}
        flops = 0.0
        for name in names:
            self.profiles_[name], _, f = task_profile(prepared, name, spec, seed, self.split,
                                                      min_examples=self.min_examples, constant_tol=self.constant_tol)
            flops += f
        self.cost_ = {"trainings": 2 * len(names), "seconds": time.perf_counter() - start, "flops": flops}
        self.matrix_, self.similarity_info_, self.warnings_ = pvi_matrix(
            names, [self.profiles_[n] for n in names], rule=self.rule, alpha=self.alpha, cost=self.cost_, seed=seed)
        return self


# ---------------------------------------------------------------------------------------------
# Estimation-engine estimator (run folder, store, CLI): ``python -m core estimate --estimator pvi``
# ---------------------------------------------------------------------------------------------

PVI_KIND = "pvi"


def pvi_job(min_examples: int, constant_tol: float, payload: Any, job: Job) -> JobResult:
    """One ``pvi`` job: the PVI profile of the job's single task (two trainings), stored as artifacts.

    Its score is the real-input model's score on ``job.split`` (the single-task score); the artifacts
    hold the per-example PVI values (bits, split order), the warnings and the profile info.
    Picklable via ``functools.partial``.
    """
    import time

    from core.estimation.models.training import _evaluate, perf

    (name,) = job.subset
    start = time.perf_counter()
    profile, model, flops = task_profile(payload.taskset, name, payload.spec, job.seed, job.split,
                                         min_examples=min_examples, constant_tol=constant_tol)
    score, f_eval = _evaluate(model, name, job.split)
    task = payload.taskset[name]
    return JobResult(job=job, scores={name: Score(metric=float(score.metric), loss=float(score.loss),
                                                  perf=perf(task, score), n=int(score.n))},
                     seconds=time.perf_counter() - start, flops=flops + f_eval, steps=int(model.steps),
                     artifacts={"pvi": [float(v) for v in profile.values], "warnings": list(profile.warnings),
                                "info": _plain_info(profile.info)})


def _plain_info(info: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in info.items()}


class PVIAffinity(Estimator):
    """PVI grouping as an estimator of the engine: ``--estimator pvi``.

    One job of kind ``pvi`` per task and seed (two trainings each: real and empty inputs) computes
    the task's per-example PVI on the run's split; ``fit`` averages each example's PVI over seeds
    and turns the profiles into the similarity matrix ``pvi`` (see the module docstring). It is a
    similarity of difficulty profiles, not a measured transfer: symmetric, unit diagonal.

    Options: ``rule`` (wasserstein | ks), ``min_examples``, ``constant_tol``, ``alpha``.
    Results: ``matrices_`` (``pvi``), ``profiles_``, ``warnings_``, ``similarity_info_``, ``cost_``
    (``trainings`` counts both models of every task).
    """

    name = "pvi"
    defaults: ClassVar[dict[str, Any]] = {"rule": "wasserstein", "min_examples": 20, "constant_tol": 1e-6,
                                          "alpha": 0.05}

    def validate(self, ctx: EstimationContext) -> None:
        o = self.options
        if o["rule"] not in RULES:
            raise InvalidInputError(f"rule {o['rule']!r} is not one of {', '.join(RULES)}.")
        if isinstance(o["min_examples"], bool) or not isinstance(o["min_examples"], int) or o["min_examples"] < 2:
            raise InvalidInputError(f"min_examples={o['min_examples']!r} must be an integer >= 2.")
        if not 0 < float(o["alpha"]) < 1:
            raise InvalidInputError(f"alpha={o['alpha']!r} must be between 0 and 1.")
        if len(ctx.names) < 2:
            raise InvalidInputError("PVI grouping needs at least 2 tasks.")

    def jobs(self, ctx: EstimationContext, outcomes: Any) -> list[Job]:
        return [Job((v,), seed, ctx.split, kind=PVI_KIND) for seed in ctx.seeds for v in ctx.names]

    def runner(self):
        import functools

        return functools.partial(pvi_job, int(self.options["min_examples"]), float(self.options["constant_tol"]))

    def fit(self, ctx: EstimationContext, outcomes: Any) -> "PVIAffinity":
        jobs = self.jobs(ctx, outcomes)
        rows = select(outcomes, ctx, jobs)
        require_outcomes(rows, jobs, "pvi")
        self.profiles_: dict[str, PVIProfile] = {}
        for name in ctx.names:
            mine = rows[rows["subset"].map(lambda s: s == (name,))]
            runs = [a for _, a in sorted(zip(mine["seed"], mine["artifacts"]), key=lambda x: x[0])]
            sizes = {len(a["pvi"]) for a in runs}
            if len(sizes) != 1:
                raise InvalidInputError(f"pvi: task {name!r} has PVI profiles of different lengths {sorted(sizes)} "
                                        "across seeds; the runs must score the same split.")
            values = np.mean([np.asarray(a["pvi"], dtype=np.float64) for a in runs], axis=0)
            warnings = tuple(dict.fromkeys(w for a in runs for w in a.get("warnings", [])))
            self.profiles_[name] = PVIProfile(task=name, values=values, targets=np.empty(0), warnings=warnings,
                                              info=runs[0].get("info", {}))
        self.cost_ = {**cost_of(rows), "trainings": 2 * len(jobs)}
        seeds = f"; per-example PVI averaged over seeds {list(ctx.seeds)}, on the {ctx.split} split"
        main, self.similarity_info_, self.warnings_ = pvi_matrix(
            ctx.names, [self.profiles_[n] for n in ctx.names], rule=self.options["rule"],
            alpha=float(self.options["alpha"]), cost=self.cost_, seed=ctx.seeds[0], extra_notes=seeds)
        self.matrices_ = {self.name: main}
        return self
