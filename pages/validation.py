"""Validation: train a grouping and baselines over seeds (budget first), watch it, stop or resume it, read the result."""
from pathlib import Path

import pandas as pd
import streamlit as st

from core.evaluation.validation.folder import list_validations
from core.evaluation.validation.orchestrator import load_validation, validation_status
from core.evaluation.validation.plan import BASELINES, STRATEGY_LABELS
from core.evaluation.validation.report import validation_html
from ui.services.launches import launch_root, launches
from ui.state import current_source, guard
from ui.validation import (KIND, differences_figure, gains_table, predicted_figure, prepare, resume_prep, start,
                           strategies_figure, writable)

METHODS = {"sdp": "SDP", "spectral": "spectral", "lloyd": "Lloyd's k-means", "all": "one group (k = 1)",
           "single": "one task per group (k = n)"}

st.header("Validation")
src = current_source()
st.caption("Does training these groups beat one model on all tasks, one model per task and random groups of the "
           "same sizes? Every group is trained over several seeds with the run's own model, spec and data, and every "
           "task is scored on the test split (the affinities were estimated on val).")

with guard():
    if src.run is None:
        st.info("Validation trains models with a run's config: choose a run folder (not an uploaded matrix) in the "
                "sidebar.")
        st.stop()
    run = src.run
    handed = st.session_state.get("validate.partition")
    if handed and handed.get("run") != str(run.path):
        handed = None

    st.subheader("Start a validation")
    if not writable(run):
        st.info(f"The dashboard writes validations only into runs under **{launch_root().name}/** (this run is "
                "elsewhere, e.g. bundled). Validate it from the command line: "
                f"`python -m core validate --run {run.path.name} --method sdp --k 3 --seeds 3`, or launch the "
                "estimation from the Runs page.")
    else:
        c1, c2, c3 = st.columns(3)
        sources = (["the grouping from the Grouping page"] if handed else []) + ["a grouping method"]
        how = c1.radio("Grouping to validate", sources, key="val.how")
        use_handed = bool(handed) and how == sources[0]
        if use_handed:
            c1.caption(f"{len(handed['groups'])} groups ({handed.get('label', '')}): " +
                       " | ".join(", ".join(g) for g in handed["groups"])[:400])
        method = c1.selectbox("Method", list(METHODS), format_func=METHODS.get, key="val.method",
                              disabled=use_handed)
        k = c1.number_input("Number of groups k", min_value=1, max_value=max(1, src.matrix.n), step=1,
                            value=min(3, src.matrix.n), key="val.k", disabled=use_handed or method in ("all", "single"))
        seeds = c2.number_input("Seeds (2 or more for intervals)", min_value=1, max_value=20, value=3, step=1,
                                key="val.seeds")
        draws = c2.number_input("Random partitions", min_value=1, max_value=20, value=3, step=1, key="val.draws",
                                help="Random groups of the grouping's sizes, drawn this many times (used when the "
                                "random baseline is chosen).")
        baselines = st.multiselect("Baselines", list(BASELINES), default=["all", "single", "random"],
                                   format_func=STRATEGY_LABELS.get, key="val.baselines")
        name = c3.text_input("Validation name (a folder in the run's validations/)", key="val.name",
                             placeholder="(from the grouping)")
        groups = handed["groups"] if use_handed else None
        prep = prepare(src, groups, method, int(k), int(seeds), baselines, int(draws), name.strip(),
                       label=handed.get("label", "") if use_handed else "")
        if not use_handed and method == "sdp" and prep.info.get("method") != "sdp":
            st.caption(f"With {src.matrix.n} tasks the SDP runs only when asked for on the Grouping page; this is "
                       "the spectral grouping (solve the SDP there and use 'Validate this grouping').")
        est = prep.estimated_seconds
        b1, b2, b3 = st.columns(3)
        b1.metric("Trainings", prep.trainings, help="Distinct (group, seed) trainings; a group two strategies share "
                  "is trained once.")
        b2.metric("Estimated time", "unknown" if est is None else (f"{est / 60:.1f} min" if est > 90 else f"{est:.0f} s"),
                  help="From this run's own measured seconds per training, on one worker.")
        exists = prep.dir.has_manifest()
        if exists:
            b3.warning(f"A validation named {prep.dir.name} exists; choose another name or resume it below.")
        if b3.button("Validate", type="primary", key="val.start", icon=":material/play_arrow:", disabled=exists):
            start(prep)
            st.success(f"Started validation {prep.dir.name}: {prep.trainings} trainings.")

    @st.fragment(run_every=1.0)
    def live() -> None:
        snaps = [s for s in launches().snapshots() if s.estimator == KIND and Path(s.config) == Path(run.path)]
        for s in snaps:
            st.progress(s.fraction, text=f"**{Path(s.out).name}** · {s.status} · {s.done}/{s.total} trainings · "
                                         f"{s.seconds:.0f} s · {s.message[:100]}")
            if s.status == "failed":
                st.error(s.error)
            if s.status in ("starting", "running"):
                if st.button("Stop after the training in flight", key=f"val.stop.{s.id}", icon=":material/stop:"):
                    launches().stop(s.id)

    live()

    st.subheader("Validations of this run")
    vdirs = list_validations(run.path)
    if not vdirs:
        st.caption("None yet.")
        st.stop()
    rows = []
    for vd in vdirs:
        man = vd.read_manifest()
        cost, prog = man.get("cost") or {}, man.get("progress") or {}
        g = man.get("grouping") or {}
        rows.append({"validation": vd.name, "status": validation_status(vd),
                     "grouping": f"{g.get('method', g.get('source', ''))} k={g.get('k', '?')}",
                     "progress": f"{prog.get('done')}/{prog.get('total')}", "trainings": cost.get("trainings"),
                     "training seconds": cost.get("seconds"), "created": man.get("created", "")})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="val.list",
                 column_config={"training seconds": st.column_config.NumberColumn(format="%.1f")})
    stopped = [r["validation"] for r in rows if r["status"].startswith(("interrupted", "failed", "planned"))]
    if stopped and writable(run):
        c1, c2 = st.columns([3, 1])
        pick = c1.selectbox("Interrupted validation", stopped, key="val.resume.pick")
        if c2.button("Resume", key="val.resume", icon=":material/replay:"):
            start(resume_prep(run, pick), resume=True)
            st.success(f"Resuming {pick}.")

    names = [r["validation"] for r in rows]
    shown = st.selectbox("Show", names, index=len(names) - 1, key="val.show")
    v = load_validation(next(vd for vd in vdirs if vd.name == shown).path)
    s = v.summary or {}
    prog = v.manifest.get("progress") or {}
    if v.status != "complete":
        st.warning(f"{shown} is {validation_status(v.dir)} ({prog.get('done')}/{prog.get('total')} trainings): the "
                   "numbers below cover only the strategies and seeds whose trainings have all finished.")
    if not s.get("strategies"):
        st.info("No training of this validation has finished yet.")
        st.stop()
    for line in s.get("verdicts") or []:
        (st.success if " beats " in line else st.warning if " worse " in line else st.info)(line)
    c1, c2 = st.columns(2)
    c1.plotly_chart(strategies_figure(s), width="stretch", key="val.fig.strategies")
    c2.plotly_chart(differences_figure(s), width="stretch", key="val.fig.diffs")
    ref = (s.get("labels") or {}).get(s.get("task_gains_reference"), s.get("task_gains_reference"))
    st.markdown(f"**Per task**: the grouping's gain over {ref} (measured, mean over seeds ± SE) and the gain the "
                "affinity matrix predicted (mean affinity of its group-mates). Click a column to sort.")
    gains = gains_table(s)
    c1, c2 = st.columns([1.2, 1])
    c1.dataframe(gains, hide_index=True, width="stretch", key="val.gains",
                 column_config={c: st.column_config.NumberColumn(format="%.4g")
                                for c in gains.columns if c not in ("task", "helps")})
    fig = predicted_figure(s)
    if fig is not None:
        c2.plotly_chart(fig, width="stretch", key="val.fig.pred")
    a = s.get("agreement") or {}
    if a:
        rho = a.get("spearman")
        st.caption(f"Predicted vs measured: Spearman {'–' if rho is None else f'{rho:.2f}'}; the sign agrees for "
                   f"{(a.get('sign_agreement') or 0):.0%} of {a.get('tasks')} tasks.")
    d1, d2, d3 = st.columns(3)
    d1.download_button("Per-task table (CSV)", v.rows.to_csv(index=False), f"{v.dir.name}-tasks.csv", "text/csv",
                       key="val.dl.csv")
    d2.download_button("Summary (JSON)", v.dir.summary_path.read_text(encoding="utf-8"), f"{v.dir.name}-summary.json",
                       "application/json", key="val.dl.json")
    d3.download_button("Report (HTML)", validation_html(v), f"{v.dir.name}-report.html", "text/html", key="val.dl.html")
