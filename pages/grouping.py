"""Grouping: choose method, k, rounding threshold and preprocessing; compare methods."""
import pandas as pd
import streamlit as st

from core.grouping.compare import agreement_matrix, differences
from core.grouping.objective import groups_to_labels
from ui.figures import objective_vs_k
from ui.grouping import (AUTO_K_MAX_N, METHOD_LABELS, SDP_ON_REQUEST_N, SPECTRAL_FIRST_N, await_background,
                         default_method, k_choice, k_screen, methods_for, request_sdp, run_grouping, sdp_allowed,
                         sdp_ready, sdp_solution, solve_in_background, solvers_available, sync_k)
from ui.grouping_views import (agreement_figure, compare_table, differences_words, full_scan_words, gap_words,
                               render_groups, rounding_words, threshold_curve, use_k)
from ui.state import current_source, guard, keep, preprocessing_controls, remember

st.header("Task grouping")
src = current_source()
m = src.matrix
st.caption(f"**{src.label}** · {m.n} tasks. Groups maximise the sum of average within-group affinity "
           "(sum over groups of v'Sv / |group|, S = (T+T')/2).")

with guard():
    methods = methods_for(m.n)
    c1, c2, c3 = st.columns([1.3, 1, 1])
    if not st.session_state.get("p.method"):
        st.session_state["w.method"] = default_method(m.n)
    # Stored only when the user picks one, so a large matrix opens on a method that answers quickly.
    method = c1.selectbox("Method", methods, format_func=METHOD_LABELS.get,
                          key=keep("method", default_method(m.n), methods), on_change=remember, args=("method",))
    big = m.n > AUTO_K_MAX_N
    auto = c2.checkbox("Check k with the full scan", key=keep("auto_k", False), disabled=big,
                       help=f"Not offered above {AUTO_K_MAX_N} tasks (one SDP per k); the quick suggestion below "
                       "works at any size." if big else
                       "Solve the SDP for every k from 2 to 10 and take the k the relaxation prefers over the widest "
                       "range of group-count penalties (seconds to a minute the first time).")
    remember("auto_k")
    auto = auto and not big
    sync_k(src, widget=True)
    k = c2.number_input("Number of groups k", min_value=1, max_value=10_000, step=1, key=keep("k", min(4, m.n)),
                        disabled=auto)
    remember("k")
    solvers = solvers_available()
    solver = c3.selectbox("SDP solver", solvers, key=keep("solver", solvers[0], solvers), disabled=method != "sdp",
                          help="auto: cvxpy + SCS up to 150 tasks, the first-order torch solver above (GPU if "
                          "present). Both certify an upper bound on the best possible objective.")
    remember("solver")
    c = c3.slider("Rounding threshold c (link u, v when X[u,v] > c/n)", 0.1, 5.0, step=0.1, key=keep("c", 1.0),
                  disabled=method != "sdp")
    remember("c")
    refine = c3.checkbox("Refine by moves and swaps", key=keep("refine", True), disabled=method != "sdp")
    remember("refine")
    with st.expander("Preprocessing (shared with the Affinity page)", expanded=False):
        pre = preprocessing_controls()

    if auto:
        choice = k_choice(src, pre, solver)
        table = pd.DataFrame(choice.table)
        st.plotly_chart(objective_vs_k(table, "k", ["objective", "sdp_value"], choice.k), width="stretch",
                        key="k_chart")
        st.info(full_scan_words(choice))
        with st.expander("Evidence per k"):
            st.dataframe(table.drop(columns=["groups"], errors="ignore"), hide_index=True, width="stretch")
    else:
        screen = k_screen(src, pre)
        if int(k) == screen.k:
            st.info(f"**k = {screen.k} is suggested for this matrix.** {screen.reason}", icon=":material/lightbulb:")
        else:
            cS, cB = st.columns([4, 1])
            cS.info(f"The suggestion for this matrix is **k = {screen.k}** (you chose {int(k)}). {screen.reason}",
                    icon=":material/lightbulb:")
            cB.button(f"Use k = {screen.k}", key="use_suggested_k", on_click=use_k, args=(screen.k,))
    if method == "sdp" and not auto and not sdp_allowed(src, int(k), pre, solver):
        st.info(f"With {m.n} tasks (over {SDP_ON_REQUEST_N}) the SDP takes from tens of seconds to minutes on a CPU "
                "(seconds on a GPU), so it runs only when you ask. Showing the **spectral** grouping meanwhile.")
        if st.button(f"Solve the SDP for {m.n} tasks, k = {int(k)}", key="solve_sdp", icon=":material/play_arrow:"):
            request_sdp(src, int(k), pre, solver)
    pending = (method == "sdp" and not auto and m.n > SPECTRAL_FIRST_N and sdp_allowed(src, int(k), pre, solver)
               and not sdp_ready(src, int(k), pre, solver))
    if pending:  # answer at once with the spectral grouping; the page replaces it when the SDP is solved
        st.info(f"Solving the SDP for k = {int(k)} ({m.n} tasks, a few seconds on a CPU). Showing the **spectral** "
                "grouping meanwhile; the page updates itself when the SDP grouping is ready.",
                icon=":material/hourglass_top:")
        result = run_grouping(src, "spectral", int(k), pre=pre)
    else:
        result = run_grouping(src, method, "auto" if auto else int(k), c=c, refine=refine, pre=pre, solver=solver)

    mc = st.columns(4)
    mc[0].metric("Objective", f"{result.objective:.4g}")
    mc[1].metric("SDP bound", "—" if result.sdp_value is None else f"{result.sdp_value:.4g}",
                 help="Certified upper bound on the objective of any partition into k groups.")
    mc[2].metric("Gap to bound", gap_words(result),
                 help="Bound minus objective: the grouping is at most this far from the best possible one.")
    mc[3].metric("Seconds", f"{result.seconds:.2f}")

    st.subheader(f"{result.k} groups ({METHOD_LABELS[result.method]})")
    render_groups(m, result)
    if result.method == "sdp" and result.details.get("candidates"):
        with st.expander(f"Rounding threshold c = {c:g}: what it did", expanded=False):
            words, rounding_rows = rounding_words(result)
            st.write(words + " Moving c re-rounds the same SDP solution: no new solve.")
            X = sdp_solution(src, result.k, pre, solver).X
            st.plotly_chart(threshold_curve(X, result.k, c, [round(0.1 * i, 1) for i in range(1, 51)]),
                            width="stretch", key="c_curve")
            st.table(rounding_rows.style.hide(axis="index"))
        st.caption(f"solver {result.details.get('solver')} ({result.details.get('status')}), "
                   f"rounding {result.details.get('chosen_rounding')}, preprocessing: "
                   f"{', '.join(result.preprocessing) or 'none'}")

    st.subheader("Compare methods")
    if "w.compare" in st.session_state:  # drop methods this matrix does not offer (exhaustive on large n)
        st.session_state["w.compare"] = [x for x in st.session_state["w.compare"] if x in methods]
    compare_default = [x for x in methods if x != "sdp" or sdp_allowed(src, result.k, pre, solver)]
    chosen = st.multiselect("Methods to compare (same k and preprocessing)", methods, format_func=METHOD_LABELS.get,
                            key=keep("compare", compare_default, None))
    remember("compare")
    # While the SDP is being solved it joins the comparison only when ready (no second, blocking solve).
    results = {x: run_grouping(src, x, result.k, c=c, refine=refine, pre=pre, solver=solver) for x in chosen
               if not (pending and x == "sdp")}
    # A large SDP not asked for comes back as spectral: list it once, under its real name.
    results = {x: r for x, r in results.items() if r.method == x}
    labelings = {METHOD_LABELS[x]: r.labels for x, r in results.items()}
    planted = src.planted_groups
    if planted is not None:
        labelings["planted (truth)"] = groups_to_labels(planted, m.names).tolist()
    if results:
        st.table(compare_table(results, METHOD_LABELS).style.hide(axis="index"))
    if len(labelings) >= 2:
        cA, cB = st.columns([1, 1])
        cA.plotly_chart(agreement_figure(agreement_matrix(labelings)), width="stretch", key="ari")
        diff = differences(m.names, labelings)
        cB.markdown(differences_words(len(diff), m.n, len(labelings)))
        if len(diff):
            cB.dataframe(diff, hide_index=True, width="stretch", height=min(420, 38 + 35 * len(diff)),
                         key="diff_table")

    if src.run is not None:  # hand the partition shown above to the Validation page
        with st.expander("Validate this grouping (train it against baselines over seeds)"):
            st.write(f"Trains the {result.k} groups above, one model on all tasks, one model per task and random "
                     "groups of the same sizes over several seeds, scored on test.")
            if st.button("Validate this grouping", key="validate_grouping", icon=":material/fact_check:"):
                st.session_state["validate.partition"] = {"run": str(src.run.path), "groups": result.groups,
                                                          "label": f"{METHOD_LABELS[result.method]}, k={result.k}"}
                st.switch_page("pages/validation.py")
    # Last, so the solves start once the page is drawn: the SDP being waited for, or the k the user is likely
    # to try next (solved while they read this one).
    if pending:
        await_background(src, int(k), pre, solver)
    elif result.method == "sdp":
        solve_in_background(src, [result.k + 1, result.k - 1], pre, solver)
