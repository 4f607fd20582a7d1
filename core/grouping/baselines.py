"""Baseline grouping methods: spectral clustering and Lloyd's k-means.

Both are seeded (deterministic) and return exactly k non-empty groups: if the
clustering yields fewer distinct labels, :func:`core.grouping.rounding.fix_group_count`
splits on ``S`` (weakest maximum-spanning-tree link) until there are k.
By default neither refines its answer (the published baselines); ``refine=True``
runs the same local search as the SDP method (:func:`core.grouping.refine.refine_partition`)
so that comparisons can give every method the same refinement.
"""
from __future__ import annotations

import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from core.errors import InvalidInputError
from core.grouping.base import BaseGrouping
from core.grouping.objective import average_density
from core.grouping.refine import refine_partition
from core.grouping.rounding import fix_group_count
from core.matrix.preprocess import Preprocessing


def spectral_affinity(S: np.ndarray, tau: float | str = "auto") -> tuple[np.ndarray, float]:
    """Non-negative symmetric affinity ``exp((S - max S) / tau)`` for spectral clustering.

    The authors feed ``exp(T / tau)`` (tau = 1) to ``SpectralClustering``. Subtracting
    ``max S`` only rescales every entry by the same factor (spectral clustering is
    invariant to that) and avoids overflow. ``tau="auto"`` is the standard deviation
    of the off-diagonal entries of S (1 if they are all equal), which makes the
    affinity independent of the units of T; the authors' fixed tau = 1 is not.
    """
    S = np.asarray(S, dtype=np.float64)
    S = (S + S.T) / 2.0
    n = S.shape[0]
    if isinstance(tau, str):
        if tau != "auto":
            raise InvalidInputError(f"spectral tau={tau!r}: give a positive number or 'auto'.")
        off = S[~np.eye(n, dtype=bool)]
        sd = float(off.std()) if off.size else 0.0
        tau = sd if sd > 0 else 1.0
    tau = float(tau)
    if not (np.isfinite(tau) and tau > 0):
        raise InvalidInputError(f"spectral tau={tau!r} must be a positive number or 'auto'.")
    return np.exp((S - S.max()) / tau), tau


class SpectralGrouping(BaseGrouping):
    """Spectral clustering (scikit-learn, ``affinity="precomputed"``) on ``exp((S - max S)/tau)``.

    Parameters
    ----------
    k : int
    tau : float or "auto", default "auto"
        Temperature of the exponential affinity (see :func:`spectral_affinity`).
    n_init : int, default 10
    random_state : int, default 0
    refine : bool, default False
        Refine the clustering by moves and swaps (as the SDP method does).
    preprocessing : Preprocessing or None
    """

    method = "spectral"

    def __init__(self, k: int, *, tau: float | str = "auto", n_init: int = 10, random_state: int = 0,
                 refine: bool = False, preprocessing: Preprocessing | None = None) -> None:
        super().__init__(k, preprocessing=preprocessing)
        self.refine = refine
        self.tau = tau
        self.n_init = n_init
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        _check_positive_int(self.n_init, "n_init")

    def _fit_sorted(self, T: np.ndarray, S: np.ndarray, k: int) -> np.ndarray:
        from sklearn.cluster import SpectralClustering

        A, tau = spectral_affinity(S, self.tau)
        if k == 1:
            labels = np.zeros(S.shape[0], dtype=np.int64)
        else:
            with warnings.catch_warnings(), threadpool_limits(1):  # one thread: see rows_kmeans_labels
                warnings.simplefilter("ignore")  # "graph is not fully connected" on near-zero affinities
                labels = SpectralClustering(n_clusters=k, affinity="precomputed", n_init=self.n_init,
                                            random_state=self.random_state).fit_predict(A)
        labels, info = _maybe_refine(S, *fix_group_count(labels, k, S), self.refine)
        self.tau_ = tau
        self.details_.update(tau=tau, affinity="exp((S - max S) / tau)", n_init=self.n_init,
                             random_state=self.random_state, **info)
        return labels


class LloydGrouping(BaseGrouping):
    """Lloyd's k-means (scikit-learn ``KMeans``) on the rows of T (each task's profile as a source).

    Parameters
    ----------
    k : int
    n_init : int, default 10
    random_state : int, default 0
    refine : bool, default False
        Refine the clustering by moves and swaps (as the SDP method does).
    preprocessing : Preprocessing or None
    """

    method = "lloyd"

    def __init__(self, k: int, *, n_init: int = 10, random_state: int = 0, refine: bool = False,
                 preprocessing: Preprocessing | None = None) -> None:
        super().__init__(k, preprocessing=preprocessing)
        self.refine = refine
        self.n_init = n_init
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        _check_positive_int(self.n_init, "n_init")

    def _fit_sorted(self, T: np.ndarray, S: np.ndarray, k: int) -> np.ndarray:
        from sklearn.cluster import KMeans

        with warnings.catch_warnings(), threadpool_limits(1):  # one thread: see rows_kmeans_labels
            warnings.simplefilter("ignore")  # duplicate rows: fewer distinct clusters than k
            labels = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.random_state).fit_predict(T)
        labels, info = _maybe_refine(S, *fix_group_count(labels, k, S), self.refine)
        self.details_.update(features="rows of T", n_init=self.n_init, random_state=self.random_state, **info)
        return labels


def _check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}.")


def _maybe_refine(S: np.ndarray, labels: np.ndarray, info: dict, refine: bool) -> tuple[np.ndarray, dict]:
    """``labels`` after the SDP method's local search when ``refine``, with what it did in ``info``."""
    info = dict(info, refine=bool(refine))
    if refine:
        info["clustered_objective"] = average_density(S, labels)
        labels, info["refinement"] = refine_partition(S, labels)
    return labels, info
