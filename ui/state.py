"""Session state shared by the pages: the data source, persistent controls, error display."""
from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from core.matrix.affinity import AffinityMatrix
from core.errors import InvalidInputError, TaskAffinityError
from core.matrix.io import MISSING_NOTE, parse_affinity
from core.matrix.preprocess import DIAGONAL_MODES, TRANSFORMS, Preprocessing
from ui.services.roots import (configured_roots, discover_runs, display_name, redact, resolve_within, run_health,
                               unreadable_reason)
from core.estimation.runs.folder import RunDir, RunFolder, load_run

log = logging.getLogger("taskaffinity.dashboard")
MAX_UPLOAD_MB = 25
MAX_UPLOAD_TASKS = 3000
#: Memory one upload may take while parsed (checked from the file's declared sizes before anything is expanded):
#: a 3000-task matrix needs about 0.6 GB as CSV, an .npz of zeros can declare any size.
MAX_UPLOAD_MEMORY = 2 * 2**30


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Show errors as messages on the page, never as a traceback."""
    try:
        yield
    except TaskAffinityError as exc:
        st.error(shown(str(exc)))
    except Exception as exc:  # a bug, not bad input: say so plainly, keep the details in the server log
        log.exception("dashboard error")
        st.error(shown(f"Unexpected problem ({type(exc).__name__}: {exc}). The details are in the server log."))


def shown(text: str, typed: Sequence[str] = ()) -> str:
    """``text`` as a page may show it: absolute paths outside the run roots replaced by a placeholder
    (except what the user ``typed``, which a refusal repeats)."""
    return redact(text, configured_roots(), keep=typed)


# ---------------------------------------------------------------- persistent controls
def keep(name: str, default: Any, options: Sequence[Any] | None = None) -> str:
    """Widget key for a control whose value survives page switches (Streamlit drops widget state off-page).

    The value is written back through the Session State API on every run: a widget on a new page
    is a new widget (its id includes the page), and a new widget ignores a value its key holds only
    as an old widget's state, falling back to its default (seen with the sidebar run picker).
    """
    wkey, pkey = f"w.{name}", f"p.{name}"
    value = st.session_state[wkey] if wkey in st.session_state else st.session_state.get(pkey, default)
    if options is not None and value not in options:
        value = default
    st.session_state[wkey] = value
    return wkey


def remember(name: str) -> Any:
    """Store the widget's current value so other pages (and this one, later) see it."""
    value = st.session_state.get(f"w.{name}")
    st.session_state[f"p.{name}"] = value
    return value


def setting(name: str, default: Any) -> Any:
    """A control's current value from any page."""
    return st.session_state.get(f"w.{name}", st.session_state.get(f"p.{name}", default))


# ---------------------------------------------------------------- data source
@dataclass(frozen=True)
class Source:
    """The matrix the pages show and where it came from."""

    label: str
    kind: str  # "run" or "upload"
    matrix: AffinityMatrix
    matrix_name: str
    key: str  # content hash: cache key for everything computed from the matrix
    run: RunFolder | None = None

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self.run.manifest) if self.run is not None else {}

    @property
    def planted_groups(self) -> list[list[str]] | None:
        groups = self.manifest.get("planted_groups")
        if self.run is None or not isinstance(groups, list):
            return None
        if sorted(x for g in groups for x in g) != sorted(self.matrix.names):
            return None
        return [list(g) for g in groups]


def matrix_key(matrix: AffinityMatrix) -> str:
    h = hashlib.sha1()
    h.update("\x1f".join(matrix.names).encode())
    h.update(np.ascontiguousarray(matrix.values).tobytes())
    return h.hexdigest()[:16]


@st.cache_data(max_entries=16, show_spinner=False)
def _load_run_cached(path: str, stamp: tuple) -> RunFolder:
    return load_run(path)


@st.cache_data(max_entries=256, show_spinner=False)
def _health(path: str, stamp: tuple) -> str | None:
    return run_health(Path(path), configured_roots())


def _stamp(path: Path) -> tuple:
    try:
        return RunDir(path).stamp()
    except OSError:  # a file vanished or cannot be read: the health check says which
        return ()


def _opens(path: Path) -> bool:
    """Whether the run loads (manifest and matrices); a load that works is cached for the pages."""
    try:
        read_run(path)
    except Exception:  # noqa: BLE001 - whatever breaks the load, the run is not a default choice
        return False
    return True


def read_run(path: Path) -> RunFolder:
    """Load a run folder, re-reading it only when its files change."""
    return _load_run_cached(str(path), RunDir(path).stamp())


@st.cache_data(ttl=10, show_spinner=False)
def _discover(roots: tuple[str, ...]) -> list[str]:
    return [str(p) for p in discover_runs([Path(r) for r in roots])]


@st.cache_data(max_entries=8, show_spinner=False)
def _parse_upload(data: bytes, kind: str, name: str, missing: str = "refuse") -> AffinityMatrix:
    # sizes (task count from the header or array shapes, memory) are checked before the values are expanded
    return parse_affinity(data, kind, source=name, missing=missing, max_tasks=MAX_UPLOAD_TASKS,
                          max_memory=MAX_UPLOAD_MEMORY,
                          limit_hint="the dashboard's limit; group a subset, or use python -m core group")


#: Missing-entries policies offered for uploads, in plain words (core.matrix.io.MISSING_POLICIES).
MISSING_CHOICES = {"zero": "set to 0 (no effect)", "target-mean": "set to the target's mean effect",
                   "refuse": "refuse the file"}


def parse_upload(name: str, data: bytes, missing: str = "refuse") -> AffinityMatrix:
    """Validate an uploaded matrix file (type, size, content); ``missing``: core.matrix.io.MISSING_POLICIES."""
    kind = Path(name).suffix.lstrip(".").lower()
    if kind not in ("csv", "json", "npz"):
        raise InvalidInputError(f"{name}: unknown file type {Path(name).suffix or '(none)'!r}; upload .csv, .json or .npz.")
    if len(data) > MAX_UPLOAD_MB * 2**20:
        raise InvalidInputError(f"{name}: {len(data) / 2**20:.1f} MB is over the {MAX_UPLOAD_MB} MB limit.")
    matrix = _parse_upload(data, kind, name, missing)
    if matrix.n > MAX_UPLOAD_TASKS:
        raise InvalidInputError(f"{name}: {matrix.n} tasks; the dashboard takes at most {MAX_UPLOAD_TASKS}.")
    return matrix


def _upload_changed() -> None:
    """The user replaced or removed the file (a page switch alone does not call this)."""
    if st.session_state.get("w.src.upload") is None:
        st.session_state["p.src.upload"] = None


def roots() -> tuple[Path, ...]:
    return configured_roots()


VIA_APP = "_via_app"  # set by app.py: this session runs its pages through app.py's navigation


def through_app() -> None:
    """Serve a page opened from its own URL (a bookmark, a shared link) inside app.py's navigation.

    Streamlit keeps a pages/ folder beside app.py in its older multipage mode until app.py's
    st.navigation has run once in the server process; a link to a page opened before that runs the page
    file alone, under a navigation of file names. Leave that mode and run again, through app.py.
    """
    if PagesManager.uses_pages_directory and not st.session_state.get(VIA_APP):
        PagesManager.uses_pages_directory = False  # what st.navigation itself sets; private, hence tested
        st.rerun()


def sidebar_source() -> None:
    """Render the data-source controls in the sidebar and store the chosen :class:`Source` in the session."""
    through_app()
    sb = st.sidebar
    sb.header("Data")
    # Widgets in a page are new widgets on every page, so their values go through keep/remember.
    modes = ["Run folder", "Upload a matrix"]
    mode = sb.radio("Source", modes, key=keep("src.mode", modes[0], modes), horizontal=True)
    remember("src.mode")
    st.session_state["source"] = None
    st.session_state["source_error"] = None
    try:
        if mode == "Upload a matrix":
            up = sb.file_uploader("Affinity matrix (CSV, JSON or NPZ)", type=["csv", "json", "npz"],
                                  key="w.src.upload", on_change=_upload_changed,
                                  help="CSV (comma, semicolon, tab or | separated): a header of task names and/or a "
                                  "first column of the same names, or numbers only. Rows are sources, columns targets.")
            if up is not None:
                st.session_state["p.src.upload"] = (up.name, up.getvalue())
            kept = st.session_state.get("p.src.upload")
            if kept is None:
                st.session_state["source_error"] = "Upload an affinity matrix in the sidebar to start."
                return
            name, data = kept
            if up is None:
                sb.caption(f"Showing {name} (uploaded earlier).")
            missing = sb.radio("Unmeasured pairs (empty or NA cells)", list(MISSING_CHOICES),
                               format_func=MISSING_CHOICES.get, key=keep("src.missing", "zero", list(MISSING_CHOICES)))
            remember("src.missing")
            matrix = parse_upload(name, data, missing)
            if MISSING_NOTE in matrix.notes:
                sb.warning(matrix.notes, icon=":material/info:")
            st.session_state["source"] = Source(label=name, kind="upload", matrix=matrix, matrix_name="uploaded",
                                                key=matrix_key(matrix))
            return
        allowed = roots()
        sub = sb.text_input("Folder under the runs root", key=keep("src.folder", ""), placeholder="(all runs)",
                            help="Roots: " + ", ".join(str(r) for r in allowed) +
                            ". Set TASKAFFINITY_RUNS_ROOT to change them.")
        remember("src.folder")
        search = (resolve_within(sub, allowed),) if sub.strip() else allowed
        runs = [Path(p) for p in _discover(tuple(str(r) for r in search))]
        if not runs:
            st.session_state["source_error"] = (
                "No run folders under " + ", ".join(str(r) for r in search) +
                ". Run `python -m scripts.sample_data --out sample_data`, launch a run on the Runs page, or upload a matrix.")
            return
        labels = {display_name(p, allowed): p for p in runs}
        names = list(labels)
        bad = {n: why for n in names if (why := _health(str(labels[n]), _stamp(labels[n]))) is not None}
        # the first run that opens (one damaged run must not take every page down with it)
        preferred = sorted(names, key=lambda x: not x.endswith("planted-60"))
        default = next((x for x in preferred if x not in bad and _opens(labels[x])), names[0])
        choice = sb.selectbox("Run", names, key=keep("src.run", default, names),
                              format_func=lambda x: f"{x} (unreadable)" if x in bad else x)
        remember("src.run")
        if choice in bad:
            st.session_state["source_error"] = f"Run {choice} is unreadable: {bad[choice]} Choose another run."
            return
        try:
            run = read_run(labels[choice])
        except Exception as exc:  # noqa: BLE001 - a damaged run is reported as such, never as a page failure
            st.session_state["source_error"] = (f"Run {choice} is unreadable: {unreadable_reason(exc, allowed)} "
                                                "Choose another run.")
            return
        if not run.matrices:
            st.session_state["source_error"] = f"Run {choice} ({run.status}) has no affinity matrix yet."
            return
        mnames = list(run.matrices)
        mname = sb.selectbox("Matrix", mnames, key=keep("src.matrix", mnames[0], mnames)) if len(mnames) > 1 \
            else mnames[0]
        remember("src.matrix")
        matrix = run.matrices[mname]
        sb.caption(f"{matrix.n} tasks · estimator {matrix.estimator} · status {run.status}")
        st.session_state["source"] = Source(label=choice, kind="run", matrix=matrix, matrix_name=mname,
                                            key=matrix_key(matrix), run=run)
    except TaskAffinityError as exc:
        typed = st.session_state.get("w.src.folder") or ""
        st.session_state["source_error"] = shown(str(exc), typed=(typed.strip(),) if isinstance(typed, str) else ())


def current_source() -> Source:
    """Render the sidebar picker and return the chosen source; show why there is none and stop otherwise."""
    sidebar_source()
    src = st.session_state.get("source")
    if src is None:
        msg = st.session_state.get("source_error") or "Choose a run folder or upload a matrix in the sidebar."
        if "Upload an affinity matrix" in msg or msg.startswith("No run folders"):
            st.info(msg)
        else:
            st.error(msg)
        st.stop()
    return src


# ---------------------------------------------------------------- preprocessing controls
DIAGONAL_HELP = "keep: as estimated; zero: ignore a task's effect on itself; gain: T[u,v] - T[v,v]."
TRANSFORM_HELP = ("Per target (column): center subtracts the mean, zscore also divides by the spread, rank maps to "
                  "[-1, 1]; makes targets whose metrics move on different scales comparable.")


def preprocessing_controls(container: Any = None) -> Preprocessing:
    """Diagonal handling and per-target transform, shared by the Affinity and Grouping pages."""
    c = container or st
    cols = c.columns(2)
    diag = cols[0].selectbox("Diagonal", DIAGONAL_MODES, key=keep("diag", "keep", DIAGONAL_MODES), help=DIAGONAL_HELP)
    remember("diag")
    transform = cols[1].selectbox("Per-target transform", TRANSFORMS, key=keep("transform", "none", TRANSFORMS),
                                  help=TRANSFORM_HELP)
    remember("transform")
    return Preprocessing(diagonal=diag, transform=transform)


def current_preprocessing() -> Preprocessing:
    return Preprocessing(diagonal=setting("diag", "keep"), transform=setting("transform", "none"))


@st.cache_data(max_entries=32, show_spinner=False)
def _preprocess(key: str, pre: tuple, _matrix: AffinityMatrix) -> AffinityMatrix:
    diag, transform, sym = pre
    return Preprocessing(diagonal=diag, transform=transform, symmetrize=sym).apply(_matrix)


def preprocessed(source: Source, pre: Preprocessing) -> AffinityMatrix:
    """``pre`` applied to the source's matrix (cached per matrix and recipe)."""
    return _preprocess(source.key, (pre.diagonal, pre.transform, pre.symmetrize), source.matrix)
