"""``python -m core group`` end to end, in a subprocess, on real files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.grouping.objective import groups_to_labels, same_partition
from core.grouping.planted import planted_affinity
from core.matrix.io import write_affinity

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "core", "group", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    c = planted_affinity([3, 3, 2], noise=0.2, seed=4)
    folder = tmp_path_factory.mktemp("aff")
    paths = {s: write_affinity(c.matrix, folder / f"m.{s}") for s in ("csv", "json")}
    return c, paths


def test_json_output_has_the_agreed_keys(case):
    c, paths = case
    proc = run_cli("--affinity", str(paths["json"]), "--k", "3", "--method", "sdp", "--solver", "cvxpy", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # exactly one JSON object
    assert {"method", "k", "groups", "objective", "sdp_value", "gap", "seconds"} <= set(out)
    assert out["method"] == "sdp" and out["k"] == 3 and len(out["groups"]) == 3
    assert same_partition(groups_to_labels(out["groups"], list(c.matrix.names)), c.labels)
    assert out["sdp_value"] >= out["objective"] - 1e-6 and out["gap"] >= -1e-6


def test_text_output_and_other_methods(case):
    c, paths = case
    proc = run_cli("--affinity", str(paths["csv"]), "--k", "3", "--c", "2", "--no-refine")
    assert proc.returncode == 0, proc.stderr
    assert "group 1:" in proc.stdout and "objective" in proc.stdout and "SDP value" in proc.stdout
    assert "seconds" in proc.stdout
    for method in ("exhaustive", "lloyd"):
        proc = run_cli("--affinity", str(paths["csv"]), "--k", "2", "--method", method, "--json")
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["method"] == method and len(out["groups"]) == 2 and out["sdp_value"] is None


def test_auto_k(case):
    _, paths = case
    proc = run_cli("--affinity", str(paths["csv"]), "--k", "auto", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["k"] == 3 and out["details"]["choose_k"]["suggestions"]["penalty"] == 3


BAD_ARGS = [
    (["--k", "0"], "--k"),
    (["--k", "three"], "--k"),
    (["--k", "9"], "out of range"),
    (["--k", "2", "--method", "magic"], "invalid choice"),
    (["--k", "2", "--solver", "mosek"], "invalid choice"),
    (["--k", "2", "--c", "-1"], "positive number"),
    (["--k", "2", "--method", "lloyd", "--no-refine"], "method sdp only"),
]


@pytest.mark.parametrize("args, fragment", [BAD_ARGS[1], BAD_ARGS[2]])
def test_bad_arguments_exit_nonzero_with_one_line(case, args, fragment):
    _, paths = case
    proc = run_cli("--affinity", str(paths["csv"]), *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


@pytest.mark.parametrize("args, fragment", BAD_ARGS)
def test_bad_arguments_in_process(case, capsys, args, fragment):
    from core.cli import main

    _, paths = case
    try:
        code = main(["group", "--affinity", str(paths["csv"]), *args])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]


def test_bad_files_exit_nonzero(tmp_path, capsys):
    from core.cli import main

    proc = run_cli("--affinity", str(tmp_path / "missing.csv"), "--k", "2")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    bad = tmp_path / "nan.csv"
    bad.write_text("task,a,b,c\na,1,2,3\nb,4,,6\nc,7,8,9\n")
    assert main(["group", "--affinity", str(bad), "--k", "2"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    big = tmp_path / "big.csv"
    write_affinity(planted_affinity([7, 6], seed=0).matrix, big)
    assert main(["group", "--affinity", str(big), "--k", "2", "--method", "exhaustive"]) == 2
    assert "at most 12 tasks" in capsys.readouterr().err


def test_refine_flag_gives_a_baseline_the_sdps_refinement(case):
    _, paths = case
    proc = run_cli("--affinity", str(paths["csv"]), "--k", "3", "--method", "lloyd", "--refine", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["details"]["refine"] is True and "refinement" in out["details"]
