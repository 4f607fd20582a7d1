"""Run folders after kills and on shared machines: a run killed during start-up (folder and lock, no manifest
yet) resumes by starting; temporary files of writes a kill interrupted are removed by the next writer; every
file of a run gets the mode the user's umask says (not mkstemp's 0600); ``--out ''`` is refused."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli import main as cli_main
from core.estimation.runs.folder import RunDir
from core.estimation.runs.orchestrator import run_estimation
from tests.estimation.test_estimation_run import small_config, write_config

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# Holds the run's lock, leaves the temporary files a kill during the final writes leaves, then waits to be killed.
HOLDER = r"""
import sys, tempfile, time
from pathlib import Path
from core.estimation.runs.folder import RunDir
from core.estimation.runs.lock import RunLock
run = RunDir(sys.argv[1])
run.path.mkdir(parents=True, exist_ok=True)
lock = RunLock(run.lock_path).acquire()
run.matrices_dir.mkdir()
for folder, name in ((run.path, "affinity.csv"), (run.path, "manifest.json"), (run.matrices_dir, "pairwise.json")):
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    import os; os.write(fd, b"half a fi")
print("ready", flush=True)
time.sleep(600)
"""


def _killed_during_start_up(out: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_run_killed_during_start_up_resumes_by_starting_and_leaves_no_temporaries(tmp_path):
    out = tmp_path / "run"
    _killed_during_start_up(out)
    run = RunDir(out)
    assert run.lock_path.is_file() and not run.has_manifest() and run.writer() is None
    assert len(list(out.glob(".*.tmp")) + list(run.matrices_dir.glob(".*.tmp"))) == 3
    old = os.umask(0o027)
    try:
        resumed = run_estimation(small_config(steps=20), out=out, estimator="pairwise", seeds=[0], resume=True)
    finally:
        os.umask(old)
    assert resumed.status == "complete"
    assert [e["event"] for e in resumed.manifest["events"]][:1] == ["started"]
    assert not list(out.glob(".*.tmp")) and not list(run.matrices_dir.glob(".*.tmp"))
    # every file of the run as the umask says (0666 & ~0027 = 0640), the store included
    files = [f for f in out.rglob("*") if f.is_file()]
    assert {run.manifest_path, run.affinity_csv_path, run.affinity_json_path, run.results_csv_path} <= set(files)
    modes = {f.relative_to(out).as_posix(): stat.S_IMODE(f.stat().st_mode) for f in files}
    assert set(modes.values()) == {0o640}, modes


def test_a_store_without_manifest_is_still_refused(tmp_path):
    from core.errors import RunStateError

    out = tmp_path / "run"
    out.mkdir()
    RunDir(out).store_path.write_bytes(b"")  # not ours to guess about: something else wrote here
    with pytest.raises(RunStateError, match="nothing to resume"):
        run_estimation(small_config(steps=20), out=out, estimator="pairwise", seeds=[0], resume=True)


@pytest.mark.parametrize("out", ["", "  "])
def test_an_empty_out_is_refused_and_nothing_is_written_in_the_current_folder(tmp_path, monkeypatch, capsys, out):
    cfg = write_config(tmp_path / "run.yaml")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code = cli_main(["estimate", "--config", str(cfg), "--out", out, "--no-progress"])
    assert code == 2 and "--out is empty" in capsys.readouterr().err
    assert not any(work.iterdir())
