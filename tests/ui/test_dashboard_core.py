"""The non-UI modules behind the dashboard: ordering, aggregation, roots, re-rounding, comparison, exports."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ui.services.bench_results import load_results, missing
from core.grouping.compare import agreement_matrix, differences
from core.errors import InvalidInputError
from core.grouping.planted import planted_affinity
from core.grouping.sdp.grouping import SDPGrouping
from core.grouping.export import grouping_json, groups_csv
from core.report.ordering import aggregate, order_by_groups, transfer_in_out
from core.report.svg import heatmap_svg
from ui.grouping_views import ROUNDING_NAMES, rounding_words
from core.matrix.preprocess import Preprocessing
from core.report.page import ReportInput, to_html, to_markdown
from ui.services.launches import LaunchManager, Launch
from ui.services.roots import discover_runs, resolve_within
from core.estimation.runs.folder import RunDir, load_run
from scripts.sample_data import PLANTED, generate


@pytest.fixture(scope="module")
def case():
    return planted_affinity((5, 4, 3), noise=0.3, seed=4)


def test_order_makes_groups_contiguous(case):
    order = order_by_groups(case.matrix.values, case.labels)
    drawn = case.labels[order.order]
    assert sorted(order.order) == list(range(case.matrix.n))
    assert len(order.boundaries) == 2
    for a, b in zip((0, *order.boundaries), (*order.boundaries, len(drawn))):
        assert len(set(drawn[a:b])) == 1
    with pytest.raises(InvalidInputError):
        order_by_groups(case.matrix.values, [0, 1])


def test_aggregate_block_means_and_ranges():
    v = np.arange(100, dtype=float).reshape(10, 10)
    agg = aggregate(v, 5)
    assert agg.values.shape == (5, 5) and agg.edges.tolist() == [0, 2, 4, 6, 8, 10]
    assert agg.values[0, 0] == v[:2, :2].mean() and agg.low[1, 2] == v[2:4, 4:6].min()
    assert agg.high[4, 4] == 99
    inn, out = transfer_in_out(np.array([[5.0, 1.0], [-1.0, 5.0]]))
    assert inn.tolist() == [-1.0, 1.0] and out.tolist() == [1.0, -1.0]


def test_resolve_within_refuses_outside(tmp_path):
    (tmp_path / "a").mkdir()
    assert resolve_within("a", [tmp_path]) == (tmp_path / "a").resolve()
    with pytest.raises(InvalidInputError, match="outside the runs root"):
        resolve_within("../", [tmp_path])
    with pytest.raises(InvalidInputError, match="no such folder"):
        resolve_within("b", [tmp_path])


def test_sample_data_command_writes_readable_runs(tmp_path):
    written = generate(tmp_path, ["planted-12"], log=lambda s: None)
    run = load_run(written[0])
    assert run.status == "complete" and set(run.matrices) == {"main", "true"}
    m = run.main
    assert m.n == 12 and m.uncertainty is not None and np.all(m.counts == PLANTED[0].seeds)
    groups = run.manifest["planted_groups"]
    assert sorted(x for g in groups for x in g) == sorted(m.names)
    assert discover_runs([tmp_path]) == [written[0]]
    with pytest.raises(InvalidInputError):
        generate(tmp_path, ["nothing-like-this"], log=lambda s: None)


@pytest.mark.parametrize("c", [0.5, 1.0, 3.0])
def test_rerounding_matches_a_fresh_sdp_fit(case, c):
    pre = Preprocessing(transform="center")
    fresh = SDPGrouping(3, c=c, solver="cvxpy", preprocessing=pre).fit(case.matrix)
    base = SDPGrouping(3, c=1.0, solver="cvxpy", preprocessing=pre).fit(case.matrix)
    again = SDPGrouping(3, c=c, solver="cvxpy", preprocessing=pre).fit(case.matrix, solution=base.solution_)
    assert again.details_["reused_solution"] and not fresh.details_["reused_solution"]
    assert again.labels_.tolist() == fresh.labels_.tolist()
    assert again.result().gap == pytest.approx(fresh.result().gap, abs=1e-4)
    assert again.details_["solver"] == fresh.details_["solver"]


def test_a_solution_for_another_problem_is_refused(case):
    base = SDPGrouping(3, solver="cvxpy").fit(case.matrix)
    with pytest.raises(InvalidInputError, match="k = 3.*k = 4"):
        SDPGrouping(4).fit(case.matrix, solution=base.solution_)
    with pytest.raises(InvalidInputError, match="SDPSolution"):
        SDPGrouping(3).fit(case.matrix, solution=base.X_)


def test_compare_and_export(case):
    res = SDPGrouping(3, solver="cvxpy").fit(case.matrix).result()
    other = list(res.labels)
    other[0] = (other[0] + 1) % 3
    ari = agreement_matrix({"a": res.labels, "b": other, "truth": case.labels.tolist()})
    assert ari.loc["a", "a"] == 1 and ari.loc["a", "b"] < 1
    diff = differences(case.matrix.names, {"a": res.labels, "b": other})
    assert diff["task"].tolist() == [case.matrix.names[0]]
    csv = groups_csv(res)
    assert csv.splitlines()[0] == "task,group" and len(csv.splitlines()) == case.matrix.n + 1
    rec = json.loads(grouping_json(res, case.matrix, source="x"))
    assert rec["format"] == "taskaffinity.grouping" and rec["k"] == 3 and rec["groups"] == res.groups


def test_report_and_svg(case):
    order = order_by_groups(case.matrix.values, case.labels)
    svg = heatmap_svg(case.matrix.values[np.ix_(order.order, order.order)], case.matrix.names,
                      boundaries=order.boundaries, title="t <&>")
    assert svg.startswith("<svg") and svg.count("<line") == 4 and "t &lt;&amp;&gt;" in svg
    inp = ReportInput(matrix=case.matrix, source="planted", groups=[["t00", "t01"], list(case.matrix.names[2:])],
                      grouping={"method": "sdp", "k": 2, "objective": 1.5})
    md = to_markdown(inp)
    assert "## Grouping" in md and "Worst negative transfers" in md and "| 1 | 2 |" in md
    assert "<svg" in to_html(inp, heatmap_svg=svg)


def test_bench_results_reader(tmp_path):
    (tmp_path / "recovery.json").write_text(json.dumps({"name": "recovery", "title": "R", "command": "c", "run": "r",
                                                        "machine": "m", "markdown": "| a |", "data": []}))
    (tmp_path / "broken.json").write_text("{")
    res = load_results(tmp_path)
    assert [r.name for r in res] == ["recovery", "broken"] and res[1].error
    assert "recovery" not in [m[0] for m in missing(res)]


def test_run_job_reports_a_bad_config_as_failed(tmp_path):
    job = LaunchManager().start(Launch(tmp_path / "missing.yaml", tmp_path / "run", "pairwise"))
    job._thread.join(60)
    snap = job.snapshot()
    assert snap.status == "failed" and snap.error and snap.finished is not None
    assert not RunDir(tmp_path / "run").manifest_path.exists()


def test_bench_charts_from_the_saved_results():
    from ui.bench_figures import charts_for

    results = {r.name: r for r in load_results()}
    scaling = charts_for("sdp_scaling", results["sdp_scaling"].data)[0][1]
    solvers = {t.name.split(",")[0] for t in scaling.data}
    assert solvers == {"torch (first-order)", "cvxpy + SCS"} and scaling.layout.xaxis.type == "log"
    n_points = sum(len(t.x) for t in scaling.data)
    rows = results["sdp_scaling"].data
    assert n_points == sum(isinstance(r.get(c), (int, float)) for r in rows for c in ("torch_s", "scs_s"))
    recovery = charts_for("recovery", results["recovery"].data)[0][1]
    sdp = next(t for t in recovery.data if t.name == "sdp")
    table = {(r["family"], r["method"]): r["exact"] for r in results["recovery"].data["table"]}
    a, b = table[("balanced", "sdp")].split("/")
    assert sdp.y[list(sdp.x).index("balanced")] == pytest.approx(int(a) / int(b))
    assert charts_for("estimation", results["estimation"].data)
    # A benchmark without its own builder gets the generic chart from its rows.
    generic = charts_for("newbench", {"rows": [{"method": "m", "budget": b, "error": 1.0 / b} for b in (1, 2, 4)]})
    assert list(generic[0][1].data[0].y) == [1.0, 0.5, 0.25]
    assert charts_for("newbench", {"notes": "no rows"}) == [] and charts_for("gradtag", {"notes": "no rows"}) == []


def test_heatmap_is_square_sized_to_the_matrix_with_bands_or_labels():
    from ui.figures import LABEL_CELL_PX, MAX_SIDE_PX, heatmap

    for sizes in ((4, 4, 4), (20, 15, 15, 10), (40, 35, 30, 30, 25, 20, 20), (200, 200, 250)):
        case = planted_affinity(sizes, noise=0.3, seed=1)
        n = case.matrix.n
        order = order_by_groups(case.matrix.values, case.labels)
        fig = heatmap(case.matrix, order, title="t")
        lay = fig.layout
        side_w = lay.width - lay.margin.l - lay.margin.r
        side_h = lay.height - lay.margin.t - lay.margin.b
        assert abs(side_w - side_h) <= 1 and side_w <= MAX_SIDE_PX + 1  # square drawing area, cells square
        assert lay.yaxis.scaleanchor == "x"
        labelled = lay.xaxis.showticklabels is not False
        assert labelled == (n * LABEL_CELL_PX <= MAX_SIDE_PX)
        bands = [sh for sh in lay.shapes if sh.type == "rect"]
        assert len(bands) == 2 * len(sizes)  # one band per group along each axis
        assert lay.xaxis.title.text.startswith("target") and lay.yaxis.title.text.startswith("source")
        z = np.asarray(fig.data[0].z)
        assert z.shape == ((n, n) if n <= 600 else (600, 600))
    sym = heatmap(case.matrix, order, symmetric=True)
    assert sym.layout.xaxis.title.text.startswith("task") and sym.layout.yaxis.title.text == "task"


def test_heatmap_zooms_into_a_group_with_readable_labels():
    from ui.figures import heatmap

    case = planted_affinity((60, 50, 40), noise=0.3, seed=2)
    order = order_by_groups(case.matrix.values, case.labels)
    pos = np.flatnonzero(order.group_of == 1)
    fig = heatmap(case.matrix, order, subset=pos)
    assert list(fig.data[0].x) == [case.matrix.names[i] for i in order.order[pos]]
    assert fig.layout.xaxis.showticklabels is not False


def test_heatmap_draws_the_within_group_tree_as_one_trace_beside_the_rows():
    from ui.figures import heatmap

    case = planted_affinity((20, 15, 15, 1), noise=0.3, seed=5)
    n = case.matrix.n
    order = order_by_groups(case.matrix.values, case.labels)
    plain, tree = heatmap(case.matrix, order, title="t"), heatmap(case.matrix, order, title="t", dendrogram=True)
    assert heatmap(case.matrix, order, title="t", dendrogram=False).to_json() == plain.to_json()
    assert len(plain.data) == 1 and "xaxis2" not in plain.layout.to_plotly_json()
    assert len(tree.data) == 2 and tree.data[0].to_json() == plain.data[0].to_json()
    lines = tree.data[1]
    assert lines.type == "scatter" and lines.mode == "lines" and lines.hoverinfo == "skip"
    assert (lines.xaxis, lines.yaxis) == ("x2", "y2")
    ys = np.asarray(lines.y, dtype=float)
    assert np.nanmin(ys) >= 0 and np.nanmax(ys) <= n - 1 and np.isnan(ys).any()  # NaN-separated, on the rows
    lay, was = tree.layout, plain.layout
    # The tree's row axis spans exactly the heatmap's rows (no autorange padding on either).
    assert tuple(lay.yaxis2.range) == tuple(lay.yaxis.range) == (n - 0.5, -0.5) and lay.yaxis.autorange is False
    assert tuple(lay.yaxis2.domain) == (0.0, 1.0)
    assert lay.height == was.height and lay.width > was.width  # wider to hold the tree, same rows
    plot_w = lay.width - lay.margin.l - lay.margin.r
    heat_w = plot_w * (lay.xaxis.domain[1] - lay.xaxis.domain[0])
    assert abs(heat_w - (was.width - was.margin.l - was.margin.r)) < 1  # the heatmap keeps its square cells
    assert lay.xaxis2.domain[0] > lay.xaxis.domain[1] and lay.xaxis2.domain[1] == 1.0
    # Zoomed into one whole group: the tree of that group on the shown rows; a cut-up subset gets none.
    pos = np.flatnonzero(order.group_of == 1)
    one = heatmap(case.matrix, order, subset=pos, dendrogram=True)
    assert len(one.data) == 2 and np.nanmax(np.asarray(one.data[1].y, dtype=float)) == len(pos) - 1
    assert len(heatmap(case.matrix, order, subset=pos[:-1], dendrogram=True).data) == 1
    assert len(heatmap(case.matrix, order, subset=np.flatnonzero(order.group_of == 3), dendrogram=True).data) == 1
    strength = order_by_groups(case.matrix.values, case.labels, within="strength")
    assert len(heatmap(case.matrix, strength, dendrogram=True).data) == 1
    assert len(heatmap(case.matrix, order, max_side=20, dendrogram=True).data) == 1  # block means: no tree


def test_linkage_order_puts_subgroups_together():
    # One labelled group made of two planted sub-groups: the within-group order keeps each sub-group contiguous.
    case = planted_affinity((6, 6), noise=0.05, seed=3)
    order = order_by_groups(case.matrix.values, np.zeros(12, dtype=int))
    sub = case.labels[order.order]
    assert int(np.sum(sub[1:] != sub[:-1])) == 1
    with pytest.raises(InvalidInputError):
        order_by_groups(case.matrix.values, case.labels, within="alphabet")


def test_benchmark_sections_get_a_chart_for_their_question_and_a_headline():
    from ui.bench_figures import BUILDERS, charts_for, headline_for

    for rec in load_results():
        if rec.error or rec.name not in BUILDERS:
            continue
        charts = charts_for(rec.name, rec.data)
        assert charts, rec.name
        for caption, fig in charts:
            assert "full table is above" not in caption
            assert fig.layout.yaxis.type != "log" or rec.name == "sdp_scaling", rec.name
        if rec.name.startswith("pays_") or rec.name in ("gradtag", "training", "recovery"):
            assert headline_for(rec.name, rec.data), rec.name


def test_background_sdp_solves_fill_the_cache_the_pages_read():
    import time

    from ui.grouping import sdp_ready, sdp_solution, solve_in_background
    from ui.state import Source, matrix_key

    case = planted_affinity((8, 7, 6), noise=0.3, seed=9)
    src = Source(label="t", kind="upload", matrix=case.matrix, matrix_name="t", key=matrix_key(case.matrix))
    pre = Preprocessing()
    solve_in_background(src, [2, 4], pre, "cvxpy")
    solve_in_background(src, [3], pre, "cvxpy", urgent=True)  # a page waits for k = 3: it goes first
    deadline = time.monotonic() + 120
    while not all(sdp_ready(src, k, pre, "cvxpy") for k in (2, 3, 4)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(sdp_ready(src, k, pre, "cvxpy") for k in (2, 3, 4))
    X = sdp_solution(src, 3, pre, "cvxpy").X  # from the cache the worker filled
    assert X.shape == (21, 21) and np.allclose(np.trace(X), 3, atol=1e-3)


@pytest.mark.parametrize("k,c,refine", [(6, 1.0, True), (6, 1.0, False), (4, 3.0, True)])
def test_rounding_words_say_what_each_rounding_did(k, c, refine):
    # The "what c did" panel reads the SDP grouping's per-family summary: every number it names must be there.
    m = planted_affinity([10, 8, 12, 9, 11, 10], noise=0.8, seed=4).matrix
    result = SDPGrouping(k, c=c, refine=refine).fit(m).result()
    json.dumps(result.to_dict())
    words, table = rounding_words(result)
    thr = next(e for e in result.details["candidates"] if e["rounding"] == "threshold")
    assert f"The links form {thr['threshold_groups']} groups" in words and "None" not in words
    assert ("Refinement then made" in words) == refine and ("Refinement is off" in words) != refine
    assert (table["chosen"] == "yes").sum() == 1
    chosen = result.details["chosen_rounding"].split("#")[0]
    assert table.loc[table["chosen"] == "yes", "rounding"].item() == ROUNDING_NAMES[chosen]
    assert table["distinct starts"].sum() == result.details["starts"]
    assert (table["moves, swaps by refinement"] == "off").all() != refine
