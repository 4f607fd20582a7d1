"""A run trained elsewhere equals a native run of the same trainings (to 1e-12), with real processes.

For pairwise and higher-order on the small planted config: ``python -m core estimate`` (native) and
``python -m core plan`` -> an external loop that trains the planned rows with the project's MLP backend
and writes a CSV -> ``python -m core ingest`` -> ``python -m core group``; the matrices (values,
uncertainty, counts) and the groupings must agree.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.estimation.runs.folder import load_run

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "sample_data" / "configs" / "planted-small.yaml"
pytestmark = pytest.mark.slow

# The external trainer: a separate process that knows nothing of the run folder but its plan.csv.
LOOP = """
import sys
import pandas as pd
from core.estimation.models.backends import get_backend
from core.estimation.models.training import prepare_taskset, train_and_evaluate
from core.estimation.runs.config import load_run_config

config, plan, out = sys.argv[1:]
cfg = load_run_config(config)
tasks = prepare_taskset(get_backend(cfg.spec.backend, **cfg.spec.options), cfg.taskset)
rows = []
for t in pd.read_csv(plan).itertuples():
    res = train_and_evaluate(tasks, tuple(t.tasks.split("|")), cfg.spec, t.seed, split=t.split)
    rows += [{"subset": t.tasks, "seed": t.seed, "task": k, "metric": s.metric, "loss": s.loss, "n": s.n,
              "seconds": res.seconds, "flops": res.flops} for k, s in res.scores.items()]
pd.DataFrame(rows).sample(frac=1.0, random_state=0).to_csv(out, index=False)  # any row order will do
"""


def core(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("estimator,extra", [
    ("pairwise", []),
    ("higher-order", ["--subsets", "3", "--subset-size", "3", "--seeds", "0", "1"]),
])
def test_external_run_equals_native_run(tmp_path, estimator, extra):
    native, ext = tmp_path / "native", tmp_path / "ext"
    core("estimate", "--config", str(CONFIG), "--estimator", estimator, *extra, "--out", str(native),
         "--no-progress", cwd=tmp_path)
    core("plan", "--config", str(CONFIG), "--estimator", estimator, *extra, "--out", str(ext), cwd=tmp_path)
    (tmp_path / "loop.py").write_text(LOOP)
    subprocess.run([sys.executable, str(tmp_path / "loop.py"), str(CONFIG), str(ext / "plan.csv"),
                    str(tmp_path / "results.csv")], cwd=tmp_path, check=True, timeout=600,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    out = core("ingest", "--run", str(ext), "--results", str(tmp_path / "results.csv"), cwd=tmp_path)
    assert "complete" in out
    a, b = load_run(native), load_run(ext)
    assert a.status == b.status == "complete"
    assert set(a.matrices) == set(b.matrices)
    for name in a.matrices:
        ma, mb = a.matrices[name], b.matrices[name]
        assert ma.names == mb.names and ma.estimator == mb.estimator and ma.metric == mb.metric
        np.testing.assert_allclose(mb.values, ma.values, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(mb.uncertainty, ma.uncertainty, rtol=0, atol=1e-12, equal_nan=True, err_msg=name)
        np.testing.assert_array_equal(mb.counts, ma.counts, err_msg=name)
    assert a.manifest["config"]["resolved"] == b.manifest["config"]["resolved"]  # same identity as the native run
    assert a.manifest["cost"]["trainings"] == b.manifest["cost"]["trainings"]
    groups = [json.loads(core("group", "--affinity", str(r / "affinity.csv"), "--k", "2", "--json", cwd=tmp_path))
              for r in (native, ext)]
    assert groups[0]["groups"] == groups[1]["groups"]
