"""Runs: launch, stop or resume an estimation run with live progress; list past runs with their cost."""
from pathlib import Path

import pandas as pd
import streamlit as st

from core.estimation.estimators.base import ESTIMATORS
from core.estimation.runs.folder import RunDir
from ui.services.launches import launch_root, launches, plan_launch, plan_resume
from ui.coverage import remaining_plan, remaining_plan_csv
from ui.services.roots import REPO_ROOT, configured_roots, discover_runs, display_name, run_row
from ui.state import guard, shown, sidebar_source
from ui.units import flops_words

CONFIG_DIR = REPO_ROOT / "sample_data" / "configs"
OTHER = "other config file…"


def _estimators() -> list[str]:
    return [e for e in ESTIMATORS.names() if e != "single"]


sidebar_source()  # keep the data picker in the sidebar on every page
st.header("Estimation runs")
root = launch_root()

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
            choices = [p.name for p in configs] + [OTHER]
            cfg_choice = c1.selectbox("Task config", choices, key="launch.config",
                                      help="Built-in configs ship in taskaffinity's sample_data/configs.")
            other = c1.text_input("Path of your config (YAML or TOML)", placeholder="my_tasks.yaml",
                                  key="launch.other", help=f"Used when '{OTHER}' is chosen: a file under the runs "
                                  "root (paths outside it are refused).")
            estimator = c2.selectbox("Estimator", estimators, key="launch.estimator",
                                     index=estimators.index("pairwise") if "pairwise" in estimators else 0)
            budget = c2.number_input("Budget: sampled subsets (higher-order; 0 = the estimator's default)",
                                     min_value=0, max_value=100_000, value=0, step=10, key="launch.budget")
            name = c1.text_input(f"Run name (a folder in {root})", value="", key="launch.name",
                                 placeholder="(config-estimator)")
            resume = c2.checkbox("Resume this run name if it was interrupted", value=False, key="launch.resume")
            submitted = st.form_submit_button("Start", type="primary")
        if submitted:
            cfg = other.strip() if cfg_choice == OTHER else str(CONFIG_DIR / cfg_choice)
            run_name = name.strip() or f"{Path(cfg).stem or 'run'}-{estimator}"
            options = {"subsets": int(budget)} if budget and estimator == "higher-order" else {}
            launch = launches().start(plan_launch(cfg, run_name, estimator, options, resume=resume, root=root,
                                              config_roots=(CONFIG_DIR, *configured_roots())))
            st.success(f"Started {estimator} on {Path(cfg).name} → {display_name(Path(launch.out), (root,))}.")

    @st.fragment(run_every=1.0)
    def live() -> None:
        snaps = launches().snapshots()
        if not snaps:
            st.caption("No run started from this dashboard yet.")
            return
        for s in snaps:
            label = f"**{Path(s.out).name}** · {s.estimator} · {s.status} · {s.seconds:.0f} s"
            st.progress(s.fraction, text=f"{label} · {s.done}/{s.total} · {shown(s.message)[:120]}")
            if s.status == "failed":
                st.error(shown(s.error))
            if s.status in ("starting", "running"):
                if st.button("Stop after the training in flight", key=f"stop.{s.id}", icon=":material/stop:"):
                    launches().stop(s.id)
            with st.expander("log", expanded=s.status in ("running", "stopping")):
                st.code(shown("\n".join(s.log[-40:])) or "(empty)", language=None)

    st.subheader("Runs started here")
    live()

    st.subheader("Past runs")
    roots = configured_roots()
    active = any(x.status in ("starting", "running", "stopping") for x in launches().snapshots())

    # Re-read while a run started here is in flight, so this table never lags the live panel above.
    @st.fragment(run_every=2.0 if active else None)
    def past() -> tuple[list[Path], list]:
        rows, stopped, elsewhere = [], [], []
        for path in discover_runs(roots):
            row, resumable = run_row(path, roots)  # never raises: a damaged run is one "unreadable: why" row
            if resumable and path.parent == root:
                stopped.append(path)
            if row.get("trained") == "elsewhere" and row.get("missing"):
                elsewhere.append((display_name(path, roots), path, RunDir(path).overview()))
            if "flops" in row:
                row["compute"] = flops_words(row.pop("flops"))
            rows.append(row)
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="past_runs",
                         column_config={"compute": st.column_config.TextColumn("compute (FLOPs, estimated)"),
                                        "seconds": st.column_config.NumberColumn("training seconds", format="%.1f")})
            st.caption("Cost: trainings run, their summed seconds and estimated FLOPs. Open a run's matrix by "
                       "choosing it in the sidebar. Runs trained elsewhere (python -m core plan, then ingest) are "
                       "planned, partial or complete; missing counts their planned trainings not ingested yet.")
        else:
            st.info("No run folders under " + ", ".join(str(r) for r in roots) + ".")
        return stopped, elsewhere

    stopped, elsewhere = past() or ([], [])
    if elsewhere:
        st.subheader("Runs trained elsewhere: missing trainings")
        labels = [name for name, _, _ in elsewhere]
        pick = st.selectbox("Run", labels, key="elsewhere.pick")
        name, path, run = elsewhere[labels.index(pick)]
        st.caption(f"{name}: {run.status}, {run.progress} planned trainings ingested, {run.missing} missing. "
                   + (f"Coverage: {run.coverage}. " if run.coverage else "")
                   + "Train the trainings below, then run python -m core ingest --run FOLDER --results FILE.")
        st.dataframe(remaining_plan(path), hide_index=True, width="stretch", key="elsewhere.remaining")
        st.download_button("Download the remaining plan (CSV)", remaining_plan_csv(path),
                           file_name=f"{path.name}-remaining-plan.csv", mime="text/csv", key="elsewhere.download")
    if stopped:
        st.subheader("Resume an interrupted run")
        c1, c2 = st.columns([3, 1])
        pick = c1.selectbox("Interrupted run", [p.name for p in stopped], key="resume.pick",
                            help="Continues with the config, estimator, options and seeds it started with; the "
                            "trainings already stored are not run again.")
        if c2.button("Resume", key="resume.go", icon=":material/replay:"):
            launches().start(plan_resume(root / pick, root=root, config_roots=(CONFIG_DIR, *configured_roots())))
            st.success(f"Resuming {pick}.")
