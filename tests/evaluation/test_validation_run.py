"""`python -m core validate` end to end on the bundled planted run: real trainings, a real SIGKILL and resume,
plan-only + ingest of results trained elsewhere (checked strictly), split and input refusals."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core.cli import main as cli_main
from core.errors import InvalidInputError, RunStateError
from core.estimation.runs.store import ResultStore
from core.evaluation.validation.folder import ValidationDir, list_validations
from core.evaluation.validation.ingest import ingest_results
from core.evaluation.validation.orchestrator import prepare_validation, run_validation

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "sample_data" / "est-planted-pairwise"
ARGS = ["--method", "sdp", "--k", "3", "--seeds", "2", "--baselines", "all,single", "--no-progress"]


@pytest.fixture(scope="module")
def run_copy(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("val") / "planted"
    shutil.copytree(BUNDLED, dst, ignore=shutil.ignore_patterns("validations", "run.lock"))
    return dst


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "core", "validate", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def killed_and_resumed(run_copy):
    """Start a validation in a real process, SIGKILL it after two trainings, resume it in this process."""
    proc = _cli("--run", str(run_copy), "--name", "kill", *ARGS)
    vdir = ValidationDir.of(run_copy, "kill")
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if vdir.manifest_path.is_file():
            try:
                done = json.loads(vdir.manifest_path.read_text())["progress"]["done"]
            except (ValueError, KeyError):
                done = 0
            if done >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before the kill: {proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with ResultStore.open(vdir.store_path) as store:
        before = store.outcomes()
    man = vdir.read_manifest()
    assert man["status"] == "running" and vdir.writer() is None  # killed: nobody holds the lock
    v = run_validation(run_copy, name="kill", resume=True)
    return before, v


@pytest.mark.slow  # ~25 s: 26 real trainings, a kill and a resume
def test_resume_after_sigkill_completes_and_keeps_saved_trainings(killed_and_resumed):
    before, v = killed_and_resumed
    assert len(before.groupby(["subset", "seed"])) >= 2
    assert v.status == "complete"
    assert v.manifest["progress"] == {"done": 26, "total": 26}  # 3 groups + all + 9 singles, 2 seeds
    assert v.manifest["cost"]["trainings"] == 26 and v.manifest["cost"]["seconds"] > 0
    assert any(e["event"] == "resumed" for e in v.manifest["events"])
    with ResultStore.open(v.dir.store_path) as store:
        after = store.outcomes()
    key = ["subset", "seed", "task"]
    merged = before.merge(after, on=key, suffixes=("_0", "_1"))
    assert len(merged) == len(before) and (merged["metric_0"] == merged["metric_1"]).all()


@pytest.mark.slow
def test_summary_tables_and_verdicts(killed_and_resumed, run_copy):
    _, v = killed_and_resumed
    s = v.summary
    assert [r["strategy"] for r in s["strategies"]] == ["grouping", "all", "single"]
    assert all(r["seeds"] == 2 for r in s["strategies"])
    assert {d["baseline"] for d in s["differences"]} == {"all", "single"}
    # planted groups with a rank-one trunk: the SDP grouping recovers them and beats one model on all tasks
    d_all = next(d for d in s["differences"] if d["baseline"] == "all")
    assert d_all["diff"] > 0 and d_all["verdict"] in s["verdicts"]
    assert s["task_gains_reference"] == "single" and len(s["task_gains"]) == 9
    assert all("predicted" in r for r in s["task_gains"]) and s["agreement"]["tasks"] == 9
    rows = v.rows
    assert set(rows["strategy"]) == {"grouping", "all", "single"} and len(rows) == 3 * 9 * 2
    plan = pd.read_csv(v.dir.plan_csv_path)
    assert list(plan.columns) == ["training_id", "strategy", "draw", "group", "seed", "tasks"]
    assert [x.name for x in list_validations(run_copy)] == ["kill"]


@pytest.mark.slow
def test_cli_prints_summary_and_refuses_a_second_validation_of_the_same_name(run_copy, killed_and_resumed, capsys):
    assert cli_main(["validate", "--run", str(run_copy), "--name", "kill", "--resume", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "the grouping beats one model on all tasks" in out or "the grouping" in out
    assert cli_main(["validate", "--run", str(run_copy), "--name", "kill", *ARGS]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--resume" in err and len(err.strip().splitlines()) == 1


def test_validation_split_must_differ_from_estimation_split(run_copy, capsys):
    with pytest.raises(InvalidInputError, match="estimated on val"):
        prepare_validation(run_copy, method="sdp", k=3, seeds=[0, 1], split="val")
    assert cli_main(["validate", "--run", str(run_copy), "--split", "val", *ARGS]) == 2
    assert "estimated on val" in capsys.readouterr().err
    prep = prepare_validation(run_copy, method="sdp", k=3, seeds=[0, 1], split="val", allow_estimation_split=True)
    assert prep.plan.split == "val"


def test_budget_from_the_runs_own_seconds_per_training(run_copy):
    prep = prepare_validation(run_copy, method="sdp", k=3, seeds=[0, 1, 2], baselines="all,single,random",
                              random_draws=2)
    man = json.loads((run_copy / "manifest.json").read_text())
    per = man["cost"]["seconds"] / man["cost"]["trainings"]
    assert prep.estimated_seconds == pytest.approx(per * prep.trainings)
    assert prep.trainings == len(prep.plan.trainings()) <= (3 + 1 + 9 + 6) * 3


@pytest.fixture()
def planned(run_copy):
    name = f"ext{time.monotonic_ns()}"
    assert cli_main(["validate", "--run", str(run_copy), "--name", name, "--plan-only", "--method", "sdp", "--k", "3",
                     "--seeds", "2", "--baselines", "all"]) == 0
    return name, ValidationDir.of(run_copy, name)


def _results(vdir: ValidationDir) -> pd.DataFrame:
    plan = pd.read_csv(vdir.plan_csv_path).drop_duplicates("training_id")
    rows = [{"training_id": r.training_id, "task": t, "metric": 0.1 * (i + 1) + 0.01 * j}
            for i, r in enumerate(plan.itertuples()) for j, t in enumerate(r.tasks.split("|"))]
    return pd.DataFrame(rows)


def _jobs(vdir: ValidationDir) -> int:
    if not vdir.store_path.is_file():
        return 0
    with ResultStore.open(vdir.store_path) as s:
        return s.n_jobs()


def test_plan_only_then_ingest_gives_the_same_statistics_path(run_copy, planned, tmp_path):
    name, vdir = planned
    assert vdir.read_manifest()["status"] == "planned" and vdir.plan_json_path.is_file()
    df = _results(vdir)
    assert df["training_id"].nunique() == 8  # 3 groups + all, 2 seeds
    f = tmp_path / "res.csv"
    df.iloc[: len(df) // 2].to_csv(f, index=False)
    first = df.iloc[: len(df) // 2]
    # half the rows: only trainings given with all their tasks are accepted -> the cut training is refused
    whole = first.groupby("training_id").size()
    plan = pd.read_csv(vdir.plan_csv_path).drop_duplicates("training_id").set_index("training_id")
    complete = [t for t, n in whole.items() if n == len(plan.loc[t, "tasks"].split("|"))]
    df[df["training_id"].isin(complete)].to_csv(f, index=False)
    v, n = ingest_results(run_copy, name, f)
    assert n == len(complete) and v.manifest["status"] == "planned"
    df.to_csv(f, index=False)  # everything (the stored ones again, with equal values: skipped)
    v, n = ingest_results(run_copy, name, f)
    assert n == 8 - len(complete) and v.status == "complete"
    # planted tasks are regression (lower MSE is better): perf = -metric
    r = v.rows.merge(df, on=["training_id", "task"])
    assert (r["perf"] == -r["metric_y"]).all()
    assert {d["baseline"] for d in v.summary["differences"]} == {"all"}


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.assign(training_id=["tnotinplan000"] + list(d["training_id"][1:])), "not in the plan"),
    (lambda d: d.assign(task=["g0_t0"] + list(d["task"][1:])) if d["task"][0] != "g0_t0"
     else d.assign(task=["g2_t2"] + list(d["task"][1:])), "not in its group|different values|lacks"),
    (lambda d: pd.concat([d, d.iloc[[0]].assign(metric=d["metric"][0] + 1)]), "different values"),
    (lambda d: d.assign(metric=[float("nan")] + list(d["metric"][1:])), "NaN|not a number"),
    (lambda d: d.assign(metric=["abc"] + list(d["metric"][1:])), "not a number"),
    (lambda d: d.drop(columns=["metric"]), "missing column"),
    (lambda d: d.iloc[1:], "lacks task"),
])
def test_bad_ingest_files_fail_with_one_line_and_leave_the_store_unchanged(run_copy, planned, tmp_path, capsys,
                                                                            damage, message):
    name, vdir = planned
    good = _results(vdir)
    f = tmp_path / "bad.csv"
    damage(good).to_csv(f, index=False)
    before = _jobs(vdir)
    with pytest.raises(InvalidInputError, match=message):
        ingest_results(run_copy, name, f)
    assert _jobs(vdir) == before == 0
    assert cli_main(["validate", "--run", str(run_copy), "--name", name, "--ingest", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "abc" not in err


def test_ingest_refuses_a_training_stored_with_other_values(run_copy, planned, tmp_path):
    name, vdir = planned
    df = _results(vdir)
    f = tmp_path / "r.csv"
    df.to_csv(f, index=False)
    ingest_results(run_copy, name, f)
    with ResultStore.open(vdir.store_path) as s:
        table = s.results_table()
    df.assign(metric=df["metric"] + 1).to_csv(f, index=False)
    with pytest.raises(InvalidInputError, match="already stored"):
        ingest_results(run_copy, name, f)
    with ResultStore.open(vdir.store_path) as s:
        assert s.results_table().equals(table)


def test_bad_grouping_sources(run_copy, tmp_path):
    g = tmp_path / "g.csv"
    g.write_text("task,group\ng0_t0,1\n")
    with pytest.raises(InvalidInputError, match="leaves task"):
        prepare_validation(run_copy, grouping=str(g), seeds=[0, 1])
    g.write_text("name;cluster\nsecret-content,1\n")
    with pytest.raises(InvalidInputError, match="header") as exc:
        prepare_validation(run_copy, grouping=str(g), seeds=[0, 1])
    assert "secret-content" not in str(exc.value)
    names = json.loads((run_copy / "manifest.json").read_text())["tasks"]
    j = tmp_path / "g.json"
    j.write_text(json.dumps({"groups": [names[:4], names[4:]]}))
    prep = prepare_validation(run_copy, grouping=str(j), seeds=[0, 1], baselines="none")
    assert prep.trainings == 4 and prep.dir.name == "file-g-test"
    with pytest.raises(RunStateError, match="nothing to resume"):
        run_validation(run_copy, name="nope", grouping=str(j), seeds=[0], resume=True, baselines="none")


@pytest.mark.slow
def test_html_report_holds_the_verdicts_and_no_script(killed_and_resumed):
    from core.evaluation.validation.report import validation_html

    _, v = killed_and_resumed
    page = validation_html(v)
    assert all(x.replace("+", "") in page.replace("+", "") for x in v.summary["verdicts"])
    assert "<script" not in page and "http" not in page and "Predicted vs measured" in page


def test_grouping_csv_export_is_read_back(run_copy, tmp_path):
    from core.grouping.api import group
    from core.grouping.export import groups_csv, read_grouping
    from core.estimation.runs.folder import load_run

    res = group(load_run(run_copy).main, 3, method="spectral")
    f = tmp_path / "groups.csv"
    f.write_text(groups_csv(res))
    assert read_grouping(str(f)) == [list(g) for g in res.groups]
    prep = prepare_validation(run_copy, grouping=str(f), seeds=[0, 1], baselines="all,spectral")
    assert prep.plan.partitions["grouping"][0] == prep.plan.partitions["spectral"][0]
    assert prep.trainings == (3 + 1) * 2  # the spectral baseline's groups are the same trainings


def test_a_manifest_cannot_point_the_validation_at_a_config_elsewhere(run_copy, tmp_path, monkeypatch):
    from core.estimation.runs.folder import load_run
    from core.evaluation.validation.orchestrator import load_config_for

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(REPO / "sample_data" / "configs" / "planted.yaml", elsewhere / "planted.yaml")
    run = load_run(run_copy)
    run.manifest["config"]["source"] = str(elsewhere / "planted.yaml")
    monkeypatch.chdir(REPO)
    with pytest.raises(InvalidInputError, match="--config"):
        load_config_for(run)
    assert list(load_config_for(run, elsewhere / "planted.yaml").taskset.names) == run.manifest["tasks"]
    run.manifest["config"]["source"] = "sample_data/configs/planted.yaml"  # the bundled run's: inside the checkout
    assert list(load_config_for(run).taskset.names) == run.manifest["tasks"]
