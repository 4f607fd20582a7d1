"""Grouping with caches: each SDP is solved once per (matrix, k, preprocessing, solver) and re-rounded for new c."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import streamlit as st

from core.affinity import AffinityMatrix
from core.grouping.base import GroupingResult
from core.grouping.choose_k import KChoice, choose_k
from core.grouping.estimators import GROUPING_METHODS, group
from core.grouping.exhaustive import ExhaustiveGrouping
from core.grouping.objective import validate_k
from core.grouping.sdp_grouping import SDPGrouping
from core.preprocess import Preprocessing
from core.regroup import ReroundedSDPGrouping, solver_details
from ui.state import Source, current_preprocessing, setting

EXHAUSTIVE_MAX_N = 12
METHOD_LABELS = {"sdp": "SDP relaxation", "spectral": "Spectral", "lloyd": "Lloyd (k-means style)",
                 "exhaustive": "Exhaustive (exact)"}


def solvers_available() -> list[str]:
    """SDP solvers this installation can run ("auto" needs the torch solver for n > 150)."""
    import importlib.util

    return ["auto", "cvxpy", "torch"] if importlib.util.find_spec("core.grouping.sdp_torch") else ["cvxpy"]


def default_method(n: int) -> str:
    """SDP where it answers in about a second on a CPU (cvxpy up to 150 tasks, or the torch solver), else spectral."""
    from core.grouping.sdp import AUTO_CVXPY_MAX_N

    return "sdp" if n <= AUTO_CVXPY_MAX_N or "torch" in solvers_available() else "spectral"


def methods_for(n: int) -> list[str]:
    """Grouping methods offered for n tasks (the exhaustive search only when n is small)."""
    return [m for m in GROUPING_METHODS if m != "exhaustive" or n <= EXHAUSTIVE_MAX_N]


def _pre(pre: tuple) -> Preprocessing:
    return Preprocessing(diagonal=pre[0], transform=pre[1])


@st.cache_data(max_entries=64, show_spinner="Solving the SDP relaxation…")
def _sdp_solution(key: str, k: int, pre: tuple, solver: str, _matrix: AffinityMatrix) -> dict[str, Any]:
    est = SDPGrouping(k, solver=solver, preprocessing=_pre(pre)).fit(_matrix)
    return dict(X=np.array(est.X_), sdp_value=float(est.sdp_value_), details=solver_details(est),
                seconds=float(est.seconds_))


@st.cache_data(max_entries=256, show_spinner=False)
def _grouping(key: str, method: str, k: int, c: float, refine: bool, pre: tuple, solver: str,
              _matrix: AffinityMatrix) -> GroupingResult:
    if method == "sdp":
        sol = _sdp_solution(key, k, pre, solver, _matrix)
        t0 = time.perf_counter()
        est = ReroundedSDPGrouping(k, X=sol["X"], sdp_value=sol["sdp_value"], c=c, refine=refine,
                                   preprocessing=_pre(pre), solver_details=sol["details"]).fit(_matrix)
        result = est.result()
        result.seconds = sol["seconds"] + (time.perf_counter() - t0)
        return result
    if method == "exhaustive":
        return ExhaustiveGrouping(k, preprocessing=_pre(pre)).fit(_matrix).result()
    return group(_matrix, k, method, preprocessing=_pre(pre))


@st.cache_data(max_entries=16, show_spinner="Scanning k (objective versus k)…")
def _choose_k(key: str, pre: tuple, solver: str, _matrix: AffinityMatrix) -> KChoice:
    return choose_k(_matrix, preprocessing=_pre(pre), solver=solver)


def pre_key(pre: Preprocessing) -> tuple:
    return (pre.diagonal, pre.transform)


def k_choice(source: Source, pre: Preprocessing, solver: str | None = None) -> KChoice:
    solver = solver or solvers_available()[0]
    return _choose_k(source.key, pre_key(pre), solver, source.matrix)


def run_grouping(source: Source, method: str, k: int | str, *, c: float = 1.0, refine: bool = True,
                 pre: Preprocessing | None = None, solver: str | None = None) -> GroupingResult:
    """The grouping for these settings (cached); ``k="auto"`` takes choose_k's suggestion."""
    pre = pre or current_preprocessing()
    solver = solver or solvers_available()[0]
    if k == "auto":
        k = k_choice(source, pre, solver).k
    k = validate_k(k, source.matrix.n)
    return _grouping(source.key, method, k, float(c), bool(refine), pre_key(pre), solver, source.matrix)


def current_settings(n: int) -> dict[str, Any]:
    """The Grouping page's controls as they stand (defaults before the page was opened)."""
    method = st.session_state.get("p.method") or default_method(n)  # set only by the user's pick
    if method not in methods_for(n):
        method = default_method(n)
    auto = bool(setting("auto_k", False))
    k = "auto" if auto else int(setting("k", min(4, n)))
    return dict(method=method, k=k, c=float(setting("c", 1.0)), refine=bool(setting("refine", True)),
                solver=setting("solver", solvers_available()[0]))


def current_grouping(source: Source) -> GroupingResult:
    """The grouping the Grouping page shows, for the other pages (ordering, export)."""
    return run_grouping(source, pre=current_preprocessing(), **current_settings(source.matrix.n))
