"""Grouping with caches: each SDP is solved once per (matrix, k, preprocessing, solver) and re-rounded for new c.

Above :data:`SDP_ON_REQUEST_N` tasks an SDP solve takes from several seconds to minutes on a CPU, so it runs
only when the user asks for it (:func:`request_sdp`); until then every page gets the spectral grouping and says so.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import streamlit as st

from core.errors import InvalidInputError
from core.grouping.api import GROUPING_METHODS, group
from core.grouping.base import GroupingResult
from core.grouping.choose_k import KChoice, choose_k
from core.grouping.exhaustive import ExhaustiveGrouping
from core.grouping.k_screen import KScreen, screen_k
from core.grouping.objective import validate_k
from core.grouping.sdp.grouping import SDPGrouping
from core.grouping.sdp.relaxation import AUTO_CVXPY_MAX_N, DEFAULT_TOL, SDPSolution
from core.matrix.affinity import AffinityMatrix
from core.matrix.preprocess import Preprocessing
from ui.state import Source, current_preprocessing, setting

log = logging.getLogger("taskaffinity.dashboard")
EXHAUSTIVE_MAX_N = 12
#: Above this many tasks the SDP is solved only on the user's request (n = 400 takes tens of seconds on 2 CPU cores).
SDP_ON_REQUEST_N = 300
#: Solver tolerance above AUTO_CVXPY_MAX_N tasks: the torch solver reaches a 1e-3 relative gap about 10x sooner than
#: 1e-5 (1.2 s against 11 s for sample planted-200 on a busy 2-core CPU) with the same grouping, and the page shows
#: the certified gap, so nothing is hidden.
LARGE_SDP_TOL = 1e-3
#: Above this many tasks an SDP not solved yet is shown as the spectral grouping first (the solve takes seconds).
SPECTRAL_FIRST_N = 100
#: Above this many tasks "choose k automatically" (one SDP per k and a penalty sweep) is not offered.
AUTO_K_MAX_N = 150
METHOD_LABELS = {"sdp": "SDP relaxation", "spectral": "Spectral", "lloyd": "Lloyd (k-means style)",
                 "exhaustive": "Exhaustive (exact)"}


def solvers_available() -> list[str]:
    """SDP solvers this installation can run ("auto" needs the torch solver for n > 150)."""
    import importlib.util

    return ["auto", "cvxpy", "torch"] if importlib.util.find_spec("core.grouping.sdp.solver_torch") else ["cvxpy"]


def default_method(n: int) -> str:
    """SDP where it answers within seconds on a CPU (cvxpy up to 150 tasks, torch up to 300), else spectral."""
    limit = SDP_ON_REQUEST_N if "torch" in solvers_available() else AUTO_CVXPY_MAX_N
    return "sdp" if n <= limit else "spectral"


def _request_key(source: Source, k: int, pre: Preprocessing, solver: str) -> tuple:
    return (source.key, int(k), pre_key(pre), solver)


def request_sdp(source: Source, k: int, pre: Preprocessing, solver: str) -> None:
    """The user asked for the SDP of this large matrix (for this k, preprocessing and solver)."""
    st.session_state.setdefault("sdp_requested", set()).add(_request_key(source, k, pre, solver))


def sdp_allowed(source: Source, k: int, pre: Preprocessing, solver: str) -> bool:
    """Whether the SDP may be solved now: small enough, or asked for."""
    return source.matrix.n <= SDP_ON_REQUEST_N or \
        _request_key(source, k, pre, solver) in st.session_state.get("sdp_requested", set())


def methods_for(n: int) -> list[str]:
    """Grouping methods offered for n tasks (the exhaustive search only when n is small)."""
    return [m for m in GROUPING_METHODS if m != "exhaustive" or n <= EXHAUSTIVE_MAX_N]


def _pre(pre: tuple) -> Preprocessing:
    return Preprocessing(diagonal=pre[0], transform=pre[1])


#: SDP groupings solved and rounded in this process: (matrix key, k, preprocessing, solver). A page asks :func:`sdp_ready`
#: before it would block on a solve, and the background worker fills it ahead of the user (neighbouring k).
_SOLVED: set[tuple] = set()
_QUEUED: set[tuple] = set()
_LOCK = threading.Lock()
# One worker: on 2 cores a second solver thread would only slow the page the user is looking at. Its queue
# takes the solve a page is waiting for ahead of the warm-ups (neighbouring k) queued before it.
_TASKS: deque[tuple] = deque()
_WAKE = threading.Condition(_LOCK)
_WORKER: threading.Thread | None = None


def _work() -> None:
    while True:
        with _WAKE:
            while not _TASKS:
                _WAKE.wait()
            task = _TASKS.popleft()
        _solve_quietly(*task)


@st.cache_data(max_entries=64, show_spinner="Solving the SDP relaxation…")
def _sdp_solution(key: str, k: int, pre: tuple, solver: str, _matrix: AffinityMatrix) -> tuple[SDPSolution, float]:
    tol = LARGE_SDP_TOL if _matrix.n > AUTO_CVXPY_MAX_N else DEFAULT_TOL
    solution = SDPGrouping(k, solver=solver, preprocessing=_pre(pre), tol=tol).solve(_matrix)
    return solution, float(solution.seconds)


def _solve_quietly(key: str, k: int, pre: tuple, solver: str, matrix: AffinityMatrix, c: float,
                   refine: bool) -> None:
    try:
        # Solve and round with the page's settings: the page then finds the grouping itself in the shared
        # cache, not only the solution (rounding and refinement take about a second at 200 tasks).
        _grouping(key, "sdp", k, c, refine, pre, solver, matrix)
    except Exception:  # a failed warm-up costs nothing: the page solves again and shows the error itself
        log.debug("background SDP solve failed", exc_info=True)
    finally:
        with _LOCK:
            _QUEUED.discard((key, int(k), tuple(pre), solver))


def sdp_ready(source: Source, k: int, pre: Preprocessing, solver: str) -> bool:
    """Whether the SDP for these settings is solved already (a page can then show it without waiting)."""
    with _LOCK:
        return (source.key, int(k), pre_key(pre), solver) in _SOLVED


def solve_in_background(source: Source, ks: list[int], pre: Preprocessing, solver: str, *,
                        urgent: bool = False) -> None:
    """Queue SDP solves (e.g. the neighbouring k of the one shown) so the user's next k is already there.

    ``urgent``: a page is waiting for it: it goes ahead of the queued warm-ups.
    """
    global _WORKER
    n = source.matrix.n
    settings = current_settings(n)
    for k in ks:
        if not 1 <= k <= n or not sdp_allowed(source, k, pre, solver):
            continue
        key = (source.key, int(k), pre_key(pre), solver)
        task = (*key, source.matrix, settings["c"], settings["refine"])
        with _WAKE:
            if key in _SOLVED:
                continue
            if key in _QUEUED:
                waiting = [queued for queued in _TASKS if queued[:4] == key]
                if not urgent or not waiting:  # a warm-up keeps its place; one being solved is not queued again
                    continue
                _TASKS.remove(waiting[0])  # urgent: move it to the front
            _QUEUED.add(key)
            _TASKS.appendleft(task) if urgent else _TASKS.append(task)
            if _WORKER is None or not _WORKER.is_alive():
                _WORKER = threading.Thread(target=_work, name="sdp-warm", daemon=True)
                _WORKER.start()
            _WAKE.notify()


def await_background(source: Source, k: int, pre: Preprocessing, solver: str, every: float = 0.5, *,
                     after_draw: bool = False) -> None:
    """Solve the SDP for k in the background and rerun the page once it is solved.

    Call it last on the page: the solve then starts after the server has sent the page's quick answer.
    ``after_draw``: start it only when the browser asks for the first poll, i.e. once it has drawn the page.
    For a first view: the browser then spends about a second evaluating plotly.js and drawing the
    heatmap, and a solve started at once takes CPU from it on 2 cores (0.2-0.4 s later heatmap, measured).
    """
    if not after_draw:
        solve_in_background(source, [int(k)], pre, solver, urgent=True)
    first = {"run": True}

    @st.fragment(run_every=every)
    def _poll() -> None:
        initial = first.pop("run", False)  # the page's own run, before the browser has drawn anything
        if after_draw:
            if initial:
                return
            # the browser's timer asked, so it has drawn the page; queued once, later calls find it queued
            solve_in_background(source, [int(k)], pre, solver, urgent=True)
        if sdp_ready(source, k, pre, solver):
            st.rerun(scope="app")

    _poll()


@st.cache_data(max_entries=256, show_spinner=False)
def _grouping(key: str, method: str, k: int, c: float, refine: bool, pre: tuple, solver: str,
              _matrix: AffinityMatrix) -> GroupingResult:
    if method == "sdp":
        solution, solve_seconds = _sdp_solution(key, k, pre, solver, _matrix)
        t0 = time.perf_counter()
        est = SDPGrouping(k, c=c, refine=refine, solver=solver, preprocessing=_pre(pre)).fit(_matrix, solution=solution)
        result = est.result()
        result.seconds = solve_seconds + (time.perf_counter() - t0)
        with _LOCK:  # ready once rounded too: a page that sees it ready does not round it a second time
            _SOLVED.add((key, int(k), tuple(pre), solver))
        return result
    if method == "exhaustive":
        return ExhaustiveGrouping(k, preprocessing=_pre(pre)).fit(_matrix).result()
    return group(_matrix, k, method, preprocessing=_pre(pre), refine=refine)  # same refinement as the SDP


@st.cache_data(max_entries=16, show_spinner="Scanning k (objective versus k)…")
def _choose_k(key: str, pre: tuple, solver: str, _matrix: AffinityMatrix) -> KChoice:
    return choose_k(_matrix, preprocessing=_pre(pre), solver=solver)


@st.cache_data(max_entries=32, show_spinner=False)
def _screen(key: str, pre: tuple, _matrix: AffinityMatrix) -> KScreen:
    return screen_k(_matrix, preprocessing=_pre(pre))


def k_screen(source: Source, pre: Preprocessing | None = None) -> KScreen:
    """The fast k suggestion (core.grouping.k_screen) for this matrix and preprocessing (cached)."""
    pre = pre or current_preprocessing()
    return _screen(source.key, pre_key(pre), source.matrix)


def sync_k(source: Source, *, widget: bool = False) -> int:
    """Open each matrix on its suggested k: the first time a source is shown, k is set to the screen's suggestion.

    k is one setting shared by the pages (``p.k``); it belongs to the source it was chosen for
    (``p.k_source``), so switching to another matrix starts that matrix on its own suggestion instead of the
    last matrix's k. Only the Grouping page (``widget=True``, before drawing the k widget) writes the widget's
    own key: written from another page, Streamlit restores the widget's last value on the next run.
    """
    if st.session_state.get("p.k_source") != source.key:
        st.session_state["p.k"] = int(k_screen(source).k)
        st.session_state["p.k_source"] = source.key
    if widget and st.session_state.get("k_widget_source") != source.key:
        st.session_state["w.k"] = st.session_state["p.k"]
        st.session_state["k_widget_source"] = source.key
    return int(st.session_state["p.k"])


def pre_key(pre: Preprocessing) -> tuple:
    return (pre.diagonal, pre.transform)


def k_choice(source: Source, pre: Preprocessing, solver: str | None = None) -> KChoice:
    solver = solver or solvers_available()[0]
    return _choose_k(source.key, pre_key(pre), solver, source.matrix)


def sdp_solution(source: Source, k: int, pre: Preprocessing, solver: str) -> SDPSolution:
    """The cached SDP solution behind an SDP grouping (the rounding threshold's curve reads its X)."""
    return _sdp_solution(source.key, int(k), pre_key(pre), solver, source.matrix)[0]


def run_grouping(source: Source, method: str, k: int | str, *, c: float = 1.0, refine: bool = True,
                 pre: Preprocessing | None = None, solver: str | None = None) -> GroupingResult:
    """The grouping for these settings (cached); ``k="auto"`` takes choose_k's suggestion.

    An SDP on more than :data:`SDP_ON_REQUEST_N` tasks that was not asked for gives the spectral
    grouping instead (``result.method == "spectral"``); the Grouping page offers the button.
    """
    pre = pre or current_preprocessing()
    solver = solver or solvers_available()[0]
    if k == "auto":
        if source.matrix.n > AUTO_K_MAX_N:
            raise InvalidInputError(f"choosing k automatically solves one SDP per k; with {source.matrix.n} tasks "
                                    f"(over {AUTO_K_MAX_N}) set k yourself.")
        k = k_choice(source, pre, solver).k
    k = validate_k(k, source.matrix.n)
    if method == "sdp" and not sdp_allowed(source, k, pre, solver):
        method = "spectral"
    return _grouping(source.key, method, k, float(c), bool(refine), pre_key(pre), solver, source.matrix)


def current_settings(n: int) -> dict[str, Any]:
    """The Grouping page's controls as they stand (defaults before the page was opened)."""
    method = st.session_state.get("p.method") or default_method(n)  # set only by the user's pick
    if method not in methods_for(n):
        method = default_method(n)
    auto = bool(setting("auto_k", False)) and n <= AUTO_K_MAX_N
    k = "auto" if auto else int(st.session_state.get("p.k") or min(4, n))  # p.k: w.k may be a stale widget value
    return dict(method=method, k=k, c=float(setting("c", 1.0)), refine=bool(setting("refine", True)),
                solver=setting("solver", solvers_available()[0]))


def current_grouping(source: Source, *, wait: bool = True) -> GroupingResult:
    """The grouping the Grouping page shows, for the other pages (ordering, export).

    ``wait=False``: when that is an SDP not solved yet, return the spectral grouping at the same k at once
    (``details["sdp_pending"] = True``); the page calls :func:`await_background` (last) to solve the SDP
    in the background and show the SDP grouping when it is ready.
    """
    sync_k(source)
    settings = current_settings(source.matrix.n)
    pre = current_preprocessing()
    k = settings["k"]
    if not wait and settings["method"] == "sdp" and k != "auto" and sdp_allowed(source, k, pre, settings["solver"]) \
            and not sdp_ready(source, k, pre, settings["solver"]):
        fast = run_grouping(source, "spectral", k, pre=pre)
        fast.details = {**fast.details, "sdp_pending": True}
        return fast
    return run_grouping(source, pre=pre, **settings)
