"""The Validation page through Streamlit's AppTest: a bundled run is read-only (the page says how to validate it
from the command line), a run under the runs root shows the budget before starting."""
from __future__ import annotations

import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


def _app(monkeypatch, roots: str | None = None) -> AppTest:
    if roots is not None:
        monkeypatch.setenv("TASKAFFINITY_RUNS_ROOT", roots)
    return AppTest.from_file(APP, default_timeout=120).run()


def _select_run(at: AppTest, name: str) -> AppTest:
    box = at.sidebar.selectbox(key="w.src.run")
    box.set_value(next(o for o in box.options if o.endswith(name)))
    return at.run()


def test_bundled_run_is_validated_from_the_command_line(monkeypatch):
    at = _app(monkeypatch)
    at = _select_run(at.switch_page("pages/validation.py").run(), "est-planted-pairwise")
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert any("python -m core validate" in i.value for i in at.info)
    assert any("None yet" in c.value for c in at.caption)


def test_budget_is_shown_before_starting(monkeypatch, tmp_path):
    shutil.copytree(ROOT / "sample_data" / "est-planted-pairwise", tmp_path / "planted",
                    ignore=shutil.ignore_patterns("validations", "run.lock"))
    at = _app(monkeypatch, str(tmp_path))
    at = at.switch_page("pages/validation.py").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    # SDP k=3 on 9 tasks: 3 groups + all + 9 singles + 3 random draws of 3 groups, 3 seeds (shared groups once)
    assert 3 * 13 <= int(metrics["Trainings"]) <= 3 * 22
    assert metrics["Estimated time"].endswith(("s", "min"))
    at.number_input(key="val.seeds").set_value(2).run()
    at.multiselect(key="val.baselines").set_value(["all"]).run()
    assert {m.label: m.value for m in at.metric}["Trainings"] == "8"
    assert not at.exception
