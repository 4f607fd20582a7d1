"""Runs: launch or resume an estimation run with live progress; list past runs with their cost."""
import re
from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import InvalidInputError
from core.run_jobs import JobManager, RunJob
from core.run_roots import REPO_ROOT, configured_roots, discover_runs, display_name
from core.runfolder import read_manifest
from ui.state import guard, sidebar_source

CONFIG_DIR = REPO_ROOT / "sample_data" / "configs"
RUNS_DIR = REPO_ROOT / "runs"


@st.cache_resource
def jobs() -> JobManager:
    """One job list per dashboard process: runs keep going while pages change."""
    return JobManager()


def _estimators() -> list[str]:
    try:
        from core.estimation.estimators import available
    except ImportError:
        return []
    return [e for e in available() if e != "single"]


sidebar_source()  # keep the data picker in the sidebar on every page
st.header("Estimation runs")

with guard():
    st.subheader("Launch a run")
    estimators = _estimators()
    configs = sorted(p for ext in ("*.yaml", "*.yml", "*.toml") for p in CONFIG_DIR.glob(ext)) \
        if CONFIG_DIR.is_dir() else []
    if not estimators:
        st.info("The estimation engine (core.estimation) is not installed in this build; past runs are listed below.")
    else:
        with st.form("launch"):
            c1, c2 = st.columns(2)
            choices = [p.name for p in configs] + ["other config file…"]
            cfg_choice = c1.selectbox("Task config", choices, help=f"Built-in configs live in {CONFIG_DIR}.")
            other = c1.text_input("Path of your config (YAML or TOML)", placeholder="my_tasks.yaml",
                                  help="Used when 'other config file…' is chosen.")
            estimator = c2.selectbox("Estimator", estimators,
                                     index=estimators.index("pairwise") if "pairwise" in estimators else 0)
            budget = c2.number_input("Budget: sampled subsets (higher-order; 0 = the estimator's default)",
                                     min_value=0, max_value=100_000, value=0, step=10)
            name = c1.text_input("Run name (a folder under runs/)", value="")
            resume = c2.checkbox("Resume this run name if it was interrupted", value=False)
            submitted = st.form_submit_button("Start", type="primary")
        if submitted:
            if cfg_choice == "other config file…":
                cfg = Path(other.strip()).expanduser()
                if not other.strip() or not cfg.is_file():
                    raise InvalidInputError(f"config {other.strip() or '(empty)'}: no such file; give the path of a "
                                            "YAML or TOML run config.")
            else:
                cfg = CONFIG_DIR / cfg_choice
            run_name = name.strip() or f"{cfg.stem}-{estimator}"
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}", run_name):
                raise InvalidInputError(f"run name {run_name!r}: use letters, digits, '.', '_' or '-' (no paths).")
            out = RUNS_DIR / run_name
            if out.exists() and any(out.iterdir()) and not resume:
                raise InvalidInputError(f"runs/{run_name} already holds a run; pick another name, or tick resume "
                                        "to continue it.")
            options = {"subsets": int(budget)} if budget and estimator == "higher-order" else {}
            jobs().start(RunJob(cfg, out, estimator, options, resume=resume))
            st.success(f"Started {estimator} on {cfg.name} → runs/{run_name}.")

    @st.fragment(run_every=1.0)
    def live() -> None:
        snaps = jobs().snapshots()
        if not snaps:
            st.caption("No run started from this dashboard yet.")
            return
        for s in snaps:
            label = f"**{Path(s.out).name}** · {s.estimator} · {s.status} · {s.seconds:.0f} s"
            st.progress(s.fraction, text=f"{label} · {s.done}/{s.total} · {s.message[:120]}")
            if s.status == "failed":
                st.error(s.error)
            with st.expander("log", expanded=s.status == "running"):
                st.code("\n".join(s.log[-40:]) or "(empty)", language=None)

    st.subheader("Runs started here")
    live()

    st.subheader("Past runs")
    roots = configured_roots()
    rows = []
    for path in discover_runs(roots):
        try:
            man = read_manifest(path)
        except Exception as exc:
            rows.append({"run": display_name(path, roots), "status": f"unreadable: {exc}"})
            continue
        cost = man.get("cost") or {}
        prog = man.get("progress") or {}
        rows.append({"run": display_name(path, roots), "status": man.get("status", "?"),
                     "estimator": man.get("estimator", "?"), "tasks": len(man.get("tasks") or []),
                     "progress": f"{prog.get('done', '')}/{prog.get('total', '')}" if prog else "",
                     "trainings": cost.get("trainings"), "seconds": cost.get("seconds"), "flops": cost.get("flops"),
                     "created": man.get("created", "")})
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="past_runs",
                     column_config={"flops": st.column_config.NumberColumn(format="%.3g"),
                                    "seconds": st.column_config.NumberColumn(format="%.1f")})
        st.caption("An interrupted run is continued by starting it again under the same name with resume ticked. "
                   "Open a run's matrix by choosing it in the sidebar.")
    else:
        st.info("No run folders under " + ", ".join(str(r) for r in roots) + ".")
