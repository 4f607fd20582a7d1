"""PVI and TAG through the estimation engine: ``python -m core estimate --estimator pvi|tag`` writes the run
folder, stores each job's values as artifacts, and resumes (real training on small planted tasks)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from core.cli import main as cli_main
from core.estimation.estimators.base import ESTIMATORS, estimator_class
from core.estimation.runs.folder import RunDir, load_run

torch.set_num_threads(1)

PLANTED = dict(n_groups=2, tasks_per_group=2, dim=20, n_train=40, between=0.0, within=0.1, seed=0)
TRAINING = dict(backend="mlp", steps=80, batch_size=32, lr=0.02, eval_every=40, patience=0, device="cpu",
                options=dict(hidden=[1], activation="linear"))


def write_config(path: Path, estimator: str, seeds=(0,)) -> Path:
    cfg = {"name": "planted-4", "tasks": [{"builtin": "planted", "params": PLANTED}], "training": TRAINING,
           "estimator": {"name": estimator, "seeds": list(seeds)}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def estimate(*args: str) -> int:
    return cli_main(["estimate", "--no-progress", *args])


def test_new_estimators_are_registered():
    for name in ("adaptive", "pvi", "tag", "gradtag"):
        assert name in ESTIMATORS.names()
        assert estimator_class(name).name == name


def test_tag_cli_run_folder_artifacts_and_resume(tmp_path, capsys):
    cfg = write_config(tmp_path / "run.yaml", "tag")
    out = tmp_path / "run"
    assert estimate("--config", str(cfg), "--out", str(out)) == 0
    assert "tag affinity of 4 tasks" in capsys.readouterr().out
    run = load_run(out)
    assert run.status == "complete" and run.manifest["cost"]["trainings"] == 1
    assert RunDir(out).matrix_path("tag").is_file() and RunDir(out).affinity_csv_path.is_file()
    T = run.main.values
    names = run.main.names
    group = np.array([n.split("_")[0] for n in names])
    same = (group[:, None] == group[None, :]) & ~np.eye(4, dtype=bool)
    # a lookahead step on a same-group task lowers the target's loss more than one on the other group
    assert T[same].mean() > T[~same & ~np.eye(4, dtype=bool)].mean()
    art = json.loads(sqlite3.connect(RunDir(out).store_path).execute("SELECT artifacts FROM jobs").fetchone()[0])
    assert art["tasks"] == list(names) and np.allclose(art["affinity"], T)
    assert art["lookahead_steps"] == 16  # 80 steps, every 5
    # resuming a finished run trains nothing and writes the same matrix
    before = RunDir(out).affinity_csv_path.read_text()
    assert estimate("--config", str(cfg), "--out", str(out), "--resume") == 0
    assert load_run(out).manifest["cost"]["trainings"] == 1
    assert RunDir(out).affinity_csv_path.read_text() == before


def test_pvi_cli_killed_job_is_rerun_on_resume_to_the_same_matrix(tmp_path):
    cfg = write_config(tmp_path / "run.yaml", "pvi", seeds=(0, 1))
    out = tmp_path / "run"
    assert estimate("--config", str(cfg), "--out", str(out)) == 0
    run = load_run(out)
    S = run.main.values
    assert run.main.estimator == "pvi" and np.allclose(np.diag(S), 1) and np.allclose(S, S.T)
    assert run.manifest["cost"]["trainings"] == 16 and run.manifest["cost"]["jobs"] == 8  # real + empty inputs
    db = sqlite3.connect(RunDir(out).store_path)
    arts = [json.loads(a) for (a,) in db.execute("SELECT artifacts FROM jobs WHERE kind = 'pvi'")]
    assert len(arts) == 8 and all(len(a["pvi"]) == 100 for a in arts)  # one value per validation example
    # the inputs determine the targets, so every profile carries information (mean PVI > 0 bits)
    assert all(np.mean(a["pvi"]) > 0 for a in arts)
    # as if the run had been killed before its last job was stored
    with db:
        db.execute("DELETE FROM scores WHERE kind = 'pvi' AND subset = 'g1_t1' AND seed = 1")
        db.execute("DELETE FROM jobs WHERE kind = 'pvi' AND subset = 'g1_t1' AND seed = 1")
    db.close()
    assert estimate("--config", str(cfg), "--out", str(out), "--resume") == 0
    again = load_run(out)
    assert again.status == "complete" and again.manifest["cost"]["jobs"] == 8
    np.testing.assert_allclose(again.main.values, S, rtol=0, atol=1e-12)  # CPU training is deterministic


@pytest.mark.parametrize("option, fragment", [("rule=cosine", "rule 'cosine'"), ("every=0", "every=0")])
def test_bad_options_are_named(tmp_path, capsys, option, fragment):
    est = "pvi" if option.startswith("rule") else "tag"
    cfg = write_config(tmp_path / "run.yaml", est)
    assert estimate("--config", str(cfg), "--out", str(tmp_path / "run"), "--option", option) == 2
    assert fragment in capsys.readouterr().err
    assert not RunDir(tmp_path / "run").store_path.exists()
