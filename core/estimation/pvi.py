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
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from scipy import stats

from core.errors import InvalidInputError

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

    Each model predicts ``y ~ N(pred, sigma^2)`` with ``sigma`` its own residual
    standard deviation on the training split (our choice: regression PVI needs a
    density, and a Gaussian with the fitted noise level is the least-assuming one).
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
