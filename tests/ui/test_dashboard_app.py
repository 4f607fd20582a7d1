"""The dashboard pages through Streamlit's AppTest: every page renders, controls change results, bad input is a message."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.browser import APP, PAGE_FILES as PAGES


def _app(monkeypatch, roots: str | None = None) -> AppTest:
    if roots is not None:
        monkeypatch.setenv("TASKAFFINITY_RUNS_ROOT", roots)
    at = AppTest.from_file(APP, default_timeout=120)
    return at.run()


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _select_run(at: AppTest, name: str) -> AppTest:
    box = at.sidebar.selectbox(key="w.src.run")
    box.set_value(next(o for o in box.options if o.endswith(name)))
    return at.run()


def _groups_frame(at: AppTest):
    frames = [t.value for t in at.table if "tasks" in t.value.columns and "group" in t.value.columns]
    assert frames, "no groups table on the page"
    return frames[0]


def test_every_page_renders_on_sample_data(monkeypatch):
    at = _app(monkeypatch)
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert at.sidebar.selectbox(key="w.src.run").value.endswith("planted-60")
    for page in PAGES:
        at.switch_page(page).run()
        _no_exception(at)
        assert not at.error, (page, [e.value for e in at.error])
        assert at.header, page


def test_affinity_page_controls(monkeypatch):
    at = _app(monkeypatch)
    assert at.selectbox(key="w.diag").options == ["keep", "zero", "gain"]
    at.selectbox(key="w.transform").set_value("zscore").run()
    at.radio(key="w.view").set_value("symmetrized").run()
    _no_exception(at)
    assert any("per-target zscore" in c.value for c in at.caption)
    assert any("symmetrize" in c.value for c in at.caption)


def test_grouping_k_and_method_change_groups(monkeypatch):
    at = _app(monkeypatch)
    _select_run(at, "planted-12")
    at.switch_page("pages/grouping.py").run()
    _no_exception(at)
    assert "Exhaustive (exact)" in at.selectbox(key="w.method").options  # n = 12: the exact search is offered
    at.number_input(key="w.k").set_value(3).run()
    g3 = _groups_frame(at)
    assert len(g3) == 3
    at.number_input(key="w.k").set_value(5).run()
    g5 = _groups_frame(at)
    assert len(g5) == 5 and list(g5["tasks"]) != list(g3["tasks"])
    at.selectbox(key="w.method").set_value("spectral").run()
    _no_exception(at)
    assert any("Spectral" in s.value for s in at.subheader)
    # The comparison shows an agreement chart and a planted-truth column (the sample run records its groups).
    assert any("planted (truth)" in d.value.columns for d in at.dataframe if "task" in d.value.columns) or \
        any("every one of the 12 tasks" in m.value for m in at.markdown)


def test_grouping_rounding_threshold_reuses_solution(monkeypatch):
    at = _app(monkeypatch)
    at.switch_page("pages/grouping.py").run()
    at.slider(key="w.c").set_value(2.5).run()
    _no_exception(at)
    assert not at.error
    assert any("solver" in c.value for c in at.caption)


def test_k_larger_than_n_is_a_message(monkeypatch):
    at = _app(monkeypatch)
    _select_run(at, "planted-12")
    at.switch_page("pages/grouping.py").run()
    at.number_input(key="w.k").set_value(40).run()
    _no_exception(at)
    assert any("k" in e.value and "12" in e.value for e in at.error), [e.value for e in at.error]


@pytest.mark.parametrize("name,data,needle", [
    ("ragged.csv", b"task,a,b\na,1,2\nb,3\n", "line 3"),
    ("nonsquare.csv", b"task,a,b,c\na,1,2,3\nb,3,4,5\n", "square"),
    ("broken.json", b"{not json", "not valid JSON"),
])
def test_bad_uploads_show_their_message(monkeypatch, name, data, needle):
    at = _app(monkeypatch)
    at.sidebar.radio(key="w.src.mode").set_value("Upload a matrix").run()
    at.sidebar.file_uploader(key="w.src.upload").set_value((name, data, "text/plain")).run()
    _no_exception(at)
    assert any(needle in e.value for e in at.error), [e.value for e in at.error]


def test_uploads_in_the_users_terms(monkeypatch):
    at = _app(monkeypatch)
    at.sidebar.radio(key="w.src.mode").set_value("Upload a matrix").run()
    # Semicolons and a decimal comma, no header row, one unmeasured pair: read, and the fill is said.
    at.sidebar.file_uploader(key="w.src.upload").set_value(
        ("eu.csv", b"a;1,5;NA;0\nb;0,5;2;-1\nc;0;-1;3\n", "text/csv")).run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert any("1 of 9 entries were not measured" in w.value for w in at.sidebar.warning)
    assert any("3 tasks" in c.value for c in at.caption)
    at.sidebar.radio(key="w.src.missing").set_value("refuse").run()
    assert any("1 of 9 entries are missing" in e.value for e in at.error)


def test_good_upload_is_shown_and_large_matrix_is_aggregated(monkeypatch):
    rng = np.random.default_rng(0)
    n = 400
    names = [f"u{i}" for i in range(n)]
    payload = json.dumps({"names": names, "values": rng.normal(size=(n, n)).round(3).tolist()}).encode()
    at = _app(monkeypatch)
    at.sidebar.radio(key="w.src.mode").set_value("Upload a matrix").run()
    at.sidebar.file_uploader(key="w.src.upload").set_value(("big.json", payload, "application/json")).run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    # 400 tasks: every entry is drawn (block means only above ui.figures.MAX_CELLS_SIDE = 600 tasks).
    assert not any("block means" in i.value for i in at.info)
    assert any("showing" not in c.value and "grouping" in c.value for c in at.caption)
    # 400 tasks: the page opens on spectral; an SDP asked for is solved only after the button, spectral meanwhile.
    at.switch_page("pages/grouping.py").run()
    _no_exception(at)
    assert at.selectbox(key="w.method").value == "spectral" and at.checkbox(key="w.auto_k").disabled
    at.selectbox(key="w.method").set_value("sdp").run()
    _no_exception(at)
    assert any("runs only when you ask" in i.value for i in at.info)
    assert any(b.key == "solve_sdp" for b in at.button) and any("(Spectral)" in s.value for s in at.subheader)
    assert "sdp" not in at.multiselect(key="w.compare").value


def test_unknown_run_folder_is_a_message(monkeypatch, tmp_path):
    at = _app(monkeypatch, roots=str(tmp_path))
    assert any("No run folders" in i.value for i in at.info)
    at.sidebar.text_input(key="w.src.folder").set_value("/etc").run()
    _no_exception(at)
    assert any("outside the runs root" in e.value for e in at.error)
    at.sidebar.text_input(key="w.src.folder").set_value("missing-run").run()
    assert any("no such folder" in e.value for e in at.error)


def test_export_page_offers_downloads(monkeypatch):
    at = _app(monkeypatch)
    at.switch_page("pages/export.py").run()
    _no_exception(at)
    labels = [b.label for b in at.get("download_button")] if hasattr(at, "get") else []
    text = " ".join(str(getattr(b, "proto", b)) for b in at.get("download_button"))
    for needle in ("Groups (CSV", "Raw matrix (JSON)", "SVG", "Report (Markdown)", "Report (HTML"):
        assert needle in text, needle
    assert labels is not None


def test_runs_page_lists_sample_runs(monkeypatch):
    at = _app(monkeypatch)
    at.switch_page("pages/runs.py").run()
    _no_exception(at)
    past = [d.value for d in at.dataframe if "run" in d.value.columns]
    assert past and any(str(r).endswith("planted-200") for r in past[0]["run"])


def test_runs_page_launches_a_real_run_and_lists_its_cost(monkeypatch, tmp_path):
    from ui.services.launches import launches
    from tests.ui.test_dashboard_runs import tiny_config, wait

    root = tmp_path / "runs"
    root.mkdir()
    (tmp_path / "configs").mkdir()
    cfg = tiny_config(tmp_path / "configs")
    # The dashboard reads configs only from its roots: the second root holds the config, runs go to the first.
    at = _app(monkeypatch, roots=f"{root}{os.pathsep}{tmp_path / 'configs'}")
    at.switch_page("pages/runs.py").run()
    _no_exception(at)
    at.selectbox(key="launch.config").set_value("other config file…")
    at.text_input(key="launch.other").set_value(str(cfg))
    at.text_input(key="launch.name").set_value("tiny")
    next(b for b in at.button if b.label == "Start").click().run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    job = next(j for j in launches().launches.values() if Path(j.out) == root / "tiny")
    assert wait(job).status == "complete"
    at.run()
    past = next(d.value for d in at.dataframe if "run" in d.value.columns)
    row = past[past["run"] == "runs/tiny"].iloc[0]
    assert row["status"] == "complete" and row["trainings"] == 10 and row["seconds"] > 0
    # The same name again is refused with a message, and nothing else is written.
    next(b for b in at.button if b.label == "Start").click().run()
    assert any("already holds a run" in e.value for e in at.error)
    assert sorted(p.name for p in root.iterdir()) == ["tiny"]


def test_benchmarks_page_charts_the_saved_results(monkeypatch):
    at = _app(monkeypatch)
    at.switch_page("pages/benchmarks.py").run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    titles = {k: v["layout"]["title"]["text"] for k, v in charts.items()}
    assert "Exact recovery" in titles["bench.chart.recovery.0"]
    assert "solve time" in titles["bench.chart.sdp_scaling.0"]
    assert charts["bench.chart.sdp_scaling.0"]["layout"]["yaxis"]["type"] == "log"
    assert "Agreement with the pairwise" in titles["bench.chart.estimation.0"]


def test_each_matrix_opens_on_its_suggested_k_and_explains_c(monkeypatch):
    at = _app(monkeypatch)
    at.switch_page("pages/grouping.py").run()
    _no_exception(at)
    assert at.number_input(key="w.k").value == 4  # planted-60: 4 planted groups
    assert any("k = 4 is suggested" in i.value for i in at.info)
    assert any("re-rounds the same SDP solution" in md.value for md in at.markdown)
    _select_run(at, "planted-12")
    assert at.number_input(key="w.k").value == 3 and len(_groups_frame(at)) == 3
    at.number_input(key="w.k").set_value(5).run()
    assert any("suggestion for this matrix is **k = 3**" in i.value for i in at.info)
    next(b for b in at.button if b.key == "use_suggested_k").click().run()
    assert at.number_input(key="w.k").value == 3


def test_negative_transfer_defaults_to_clear_harm_and_sorts_the_bars(monkeypatch):
    at = _app(monkeypatch)
    at.switch_page("pages/negative_transfer.py").run()
    _no_exception(at)
    assert at.radio(key="w.neg_mode").value.startswith("clearly harmful")
    head = next(md.value for md in at.markdown if "off-diagonal pairs are below 0" in md.value)
    shown, total = int(head.split("**")[1]), int(head.split("·")[1].split()[0])
    assert 0 < shown < total  # planted-60: cross-group pairs really hurt, so many are clearly negative
    target = at.selectbox(key="w.neg_target").options[5]
    at.selectbox(key="w.neg_target").set_value(target).run()
    _no_exception(at)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["layout"]["xaxis"]["title"]["text"].startswith("harm") and fig["layout"]["yaxis"]["title"]["text"] == "source task"
    _select_run(at, "est-icl-pairwise")  # no standard errors: the strongest few are the default
    assert at.radio(key="w.neg_mode").value == "the strongest 40"
    # Back to planted-60 from another page: it reopens on its own suggestion, there and on the other pages.
    at.switch_page("pages/export.py").run()
    _select_run(at, "planted-60")
    at.switch_page("pages/affinity.py").run()
    assert any("k=4" in c.value for c in at.caption)
    at.switch_page("pages/grouping.py").run()
    assert at.number_input(key="w.k").value == 4
