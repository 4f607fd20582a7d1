"""One damaged run folder never takes the dashboard down: every page loads, the good run opens, and the Runs
page lists each damaged run as "unreadable: <reason>" (Streamlit AppTest over every page; the same folders
in a real Chromium are in test_bad_run_browser.py). Messages name no absolute path outside the run roots."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.browser import APP, PAGE_FILES as PAGES  # noqa: E402
from tests.hardening.bad_runs import GOOD, make_bad_runs  # noqa: E402
from ui.services.roots import OUTSIDE, redact, run_row  # noqa: E402



@pytest.fixture()
def bad_root(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    bad = make_bad_runs(root)
    monkeypatch.setenv("TASKAFFINITY_RUNS_ROOT", str(root))
    return root, bad


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_every_page_loads_with_damaged_runs_first_and_a_readable_run_is_chosen(bad_root):
    root, bad = bad_root
    at = AppTest.from_file(APP, default_timeout=120).run()
    # the Runs page lists every damaged run with its reason, and the good one as complete
    at.switch_page("pages/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "status" in d.value.columns)
    status = dict(zip(table["run"], table["status"]))
    assert len(status) == len(bad) + 1 and status[f"runs/{GOOD}"] == "complete"
    unreadable = {n for n in status if status[n].startswith("unreadable: ")}
    assert unreadable == {f"runs/{n}" for n in ("a1-deep-manifest", "a3-tasks-int", "a4-cost-text",
                                                 "a5-progress-list", "a6-seconds-text", "a7-binary-garbage",
                                                 "a8-symlink-loop")}
    assert "levels deep" in status["runs/a1-deep-manifest"]
    assert "not UTF-8" in status["runs/a7-binary-garbage"]
    assert "leads nowhere" in status["runs/a8-symlink-loop"]
    # a cost of the wrong type fails the manifest's schema: listed with the field, not taking the table down
    assert "cost" in status["runs/a6-seconds-text"]
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not _errors(at), (page, _errors(at))
        chosen = at.sidebar.selectbox(key="w.src.run").value
        # the first run that opens: never one listed unreadable, never the one whose matrix overflows
        assert chosen not in unreadable and chosen != "runs/a2-seed-overflow", (page, chosen)


@pytest.mark.parametrize("name", ["a1-deep-manifest", "a2-seed-overflow", "a3-tasks-int", "a7-binary-garbage",
                                  "a8-symlink-loop"])
def test_choosing_a_damaged_run_says_why_and_the_others_still_open(bad_root, name):
    root, bad = bad_root
    at = AppTest.from_file(APP, default_timeout=120).run()
    box = at.sidebar.selectbox(key="w.src.run")
    box.set_value(next(v for v in (f"runs/{n}" for n in [*bad, GOOD]) if v.endswith(name))).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = _errors(at)
    if name in ("a3-tasks-int",):  # its matrices are fine: it opens (its manifest's task count is not used)
        assert not errors or "unreadable" in errors[0], errors
    else:
        assert len(errors) == 1 and "is unreadable" in errors[0] and "Choose another run" in errors[0], errors
        assert str(root.parent) not in errors[0].replace(str(root), "")
    at.sidebar.selectbox(key="w.src.run").set_value(f"runs/{GOOD}").run()
    assert not at.exception and not _errors(at)


def test_run_rows_never_raise_and_have_one_type_per_column(bad_root):
    root, bad = bad_root
    roots = (root.resolve(),)
    for name in [GOOD, *bad]:
        row, _ = run_row(root.resolve() / name, roots)
        assert isinstance(row["status"], str)
        for col in ("trainings", "seconds", "flops"):
            assert row.get(col) is None or isinstance(row[col], (int, float)), (name, col, row)


def test_messages_name_no_absolute_path_outside_the_roots(tmp_path):
    roots = (tmp_path / "runs",)
    msg = (f"config {tmp_path}/runs/a/run.yaml: data root /srv/data/secret.csv: no such file; see "
           "https://docs.ray.io/x; 3/12 done; /etc/shadow.")
    out = redact(msg, roots)
    assert f"{tmp_path}/runs/a/run.yaml" in out and "/srv/data" not in out and "/etc/shadow" not in out
    assert out.count(OUTSIDE) == 2 and "https://docs.ray.io/x" in out and "3/12 done" in out
