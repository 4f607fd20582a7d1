"""The dashboard on a shared machine: local by default, confined to its runs root, uploads
size-limited and parsed without executing anything, no page showing paths outside the root,
and runs launched from it held to the same checks and locks as the command line.

Pages are driven with Streamlit's AppTest (as in tests/ui/test_dashboard_app.py); the binding test
starts the real server.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.errors import InvalidInputError, RunStateError  # noqa: E402
from core.estimation.runs.folder import RunDir
from core.estimation.runs.lock import RunLock  # noqa: E402
from tests.browser import APP, PAGE_FILES as PAGES  # noqa: E402
from ui.services.launches import confined_config, launches, plan_launch, plan_resume  # noqa: E402
from ui.state import MAX_UPLOAD_MB  # noqa: E402

SECRET = "top-secret-outside-root"


def page_text(at: AppTest) -> str:
    """Every element the page sent (labels, help texts, messages, tables, charts) as text."""
    out: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


@pytest.fixture()
def shared(tmp_path, monkeypatch):
    """A runs root holding one sample run, and beside it (outside the root) a run and a config
    that no page may open or name."""
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(ROOT / "sample_data" / "planted-12", root / "planted-12")
    outside = tmp_path / SECRET
    shutil.copytree(ROOT / "sample_data" / "planted-12", outside / "stolen-run")
    (outside / "private.yaml").write_text("password: hunter2\n")
    (root / "link-out").symlink_to(outside / "stolen-run")
    monkeypatch.setenv("TASKAFFINITY_RUNS_ROOT", str(root))
    return root, outside


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120).run()


def no_leak(at: AppTest, outside: Path, typed: str = "") -> None:
    """No page text names the install path or anything outside the root, beyond what the user typed."""
    text = page_text(at).replace(typed, "<typed>") if typed else page_text(at)
    assert not at.exception, [e.value for e in at.exception]
    assert str(ROOT) not in text, "a page shows the install path"
    assert SECRET not in text and "hunter2" not in text, "a page shows something outside the runs root"
    assert str(outside) not in text


# ---------------------------------------------------------------- serving

def test_config_binds_localhost_and_limits_uploads():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["maxUploadSize"] == MAX_UPLOAD_MB
    assert cfg["client"]["showErrorDetails"] == "none"
    run_target = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "--server.address 127.0.0.1" in run_target


def _listening(port: int) -> list[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":  # 0A = LISTEN
                found.append(addr)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_server_listens_on_localhost_only(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, TASKAFFINITY_RUNS_ROOT=str(tmp_path))
    # The repo's own .streamlit/config.toml, no address flag: the default must be local.
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        addrs: list[str] = []
        deadline = time.monotonic() + 60
        while not addrs and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            addrs = _listening(port)
        assert addrs, "the dashboard did not start listening"
        # 0100007F is 127.0.0.1 (little-endian hex); 0.0.0.0 or :: would serve every interface.
        assert set(addrs) == {"0100007F"}, addrs
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# ---------------------------------------------------------------- the runs root

def test_pages_open_only_runs_under_the_root(shared):
    root, outside = shared
    at = app()
    options = at.sidebar.selectbox(key="w.src.run").options
    assert options == ["runs/planted-12"], options  # the link out of the root is not listed
    for page in PAGES:
        at.switch_page(page).run()
        no_leak(at, outside)
    for typed in (str(outside / "stolen-run"), "../" + SECRET + "/stolen-run", "link-out", "/etc", "~"):
        at.sidebar.text_input(key="w.src.folder").set_value(typed)
        at.switch_page("pages/affinity.py").run()
        assert any("outside the runs root" in e.value for e in at.error), (typed, [e.value for e in at.error])
        no_leak(at, outside, typed)
        # The error repeats what was typed and names the root, nothing else.
        for e in at.error:
            assert e.value.startswith(typed) and "password" not in e.value


def test_uploads_are_size_limited_and_never_unpickled(shared, tmp_path):
    root, outside = shared
    at = app()
    at.sidebar.radio(key="w.src.mode").set_value("Upload a matrix").run()
    big = b"task,a,b\n" + b"a,1,0\nb,0,1\n" + b"#" * (MAX_UPLOAD_MB * 2**20 + 1)
    at.file_uploader[0].set_value(("big.csv", big, "text/csv")).run()
    assert any(f"over the {MAX_UPLOAD_MB} MB limit" in e.value for e in at.error), [e.value for e in at.error]

    sentinel = tmp_path / "PWNED"
    from tests.hardening.test_hardening_unsafe import trapped_array

    buf = io.BytesIO()
    np.savez(buf, names=trapped_array(sentinel), values=np.eye(2))
    at.file_uploader[0].set_value(("evil.npz", buf.getvalue(), "application/octet-stream")).run()
    assert any("never unpickled" in e.value for e in at.error), [e.value for e in at.error]
    assert not sentinel.exists()
    no_leak(at, outside)

    good = b"task,a,b,c\na,1,0.5,0\nb,0.5,1,0\nc,0,0,1\n"
    at.file_uploader[0].set_value(("good.csv", good, "text/csv")).run()
    assert not at.error, [e.value for e in at.error]


# ---------------------------------------------------------------- launching runs

def _launch(at: AppTest, *, other: str, name: str, estimator: str = "pairwise", budget: int = 0) -> AppTest:
    at.selectbox(key="launch.config").set_value("other config file…")
    at.text_input(key="launch.other").set_value(other)
    at.selectbox(key="launch.estimator").set_value(estimator)
    at.number_input(key="launch.budget").set_value(budget)
    at.text_input(key="launch.name").set_value(name)
    next(b for b in at.button if b.label == "Start").click()
    return at.run()


def test_ui_launch_is_confined_and_respects_locks_and_budgets(shared):
    from tests.ui.test_dashboard_runs import TINY

    root, outside = shared
    (root / "tiny.yaml").write_text(TINY)
    at = app()
    at.switch_page("pages/runs.py").run()
    no_leak(at, outside)

    # A config outside the root (or linked out of it) is refused before anything is read.
    for cfg in (str(outside / "private.yaml"), f"../{SECRET}/private.yaml"):
        _launch(at, other=cfg, name="nope")
        assert any("outside the folders the dashboard may read" in e.value for e in at.error), \
            [e.value for e in at.error]
        no_leak(at, outside, cfg)
    assert not (root / "nope").exists()

    # Another process writes the run: refused with the CLI's lock message, nothing started.
    (root / "busy").mkdir()
    before = len(launches().snapshots())
    with RunLock(RunDir(root / "busy").lock_path):
        _launch(at, other="tiny.yaml", name="busy")
    assert any("is writing this run" in e.value for e in at.error), [e.value for e in at.error]
    assert len(launches().snapshots()) == before

    # A budget the CLI refuses is refused the same way for a run started here (same validation path).
    _launch(at, other="tiny.yaml", name="too-many", estimator="higher-order", budget=99_999)
    # Started; the page may already show the run's own failure (it fails at planning, within milliseconds).
    assert all("exceeds" in e.value for e in at.error), [e.value for e in at.error]
    job = next(s for s in launches().snapshots() if Path(s.out).name == "too-many")
    deadline = time.monotonic() + 60
    while job.finished is None and time.monotonic() < deadline:
        time.sleep(0.2)
        job = next(s for s in launches().snapshots() if s.id == job.id)
    assert job.status == "failed" and "subsets" in job.error, (job.status, job.error)
    assert all(str(ROOT) not in line and str(root.parent) not in line for line in job.log), job.log

    proc = subprocess.run([sys.executable, "-m", "core", "estimate", "--config", str(root / "tiny.yaml"), "--out",
                           str(root / "cli-too-many"), "--estimator", "higher-order", "--subsets", "99999"],
                          cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2 and job.error in proc.stderr, (job.error, proc.stderr)


def test_resume_from_ui_refuses_configs_and_estimators_outside_what_it_may_read(shared):
    root, outside = shared
    run = root / "planted-12"
    manifest = json.loads(RunDir(run).manifest_path.read_text())
    manifest.update(status="interrupted",
                    config={"source": str(outside / "private.yaml"), "resolved": {"estimator": "pairwise"}})
    RunDir(run).manifest_path.write_text(json.dumps(manifest))
    allowed = (ROOT / "sample_data" / "configs", root)
    with pytest.raises(RunStateError, match="outside the folders the dashboard may read") as info:
        plan_resume(run, root=root, config_roots=allowed)
    assert SECRET not in str(info.value)
    # Without confinement (the command line's rules) the same manifest is accepted.
    assert plan_resume(run, root=root).config == str(outside / "private.yaml")


def test_confined_config_resolves_links_and_dots(shared):
    root, outside = shared
    (root / "cfg-link.yaml").symlink_to(outside / "private.yaml")
    for bad in ("cfg-link.yaml", "../" + SECRET + "/private.yaml", str(outside / "private.yaml"), "/etc/passwd"):
        with pytest.raises(InvalidInputError, match="outside the folders"):
            confined_config(bad, [root])
    (root / "sub").mkdir()
    (root / "sub" / "ok.yaml").write_text("name: x\n")
    assert confined_config("sub/ok.yaml", [root]) == (root / "sub" / "ok.yaml").resolve()
    assert confined_config(str(root / "sub" / ".." / "sub" / "ok.yaml"), [root]) == (root / "sub" / "ok.yaml").resolve()
    with pytest.raises(InvalidInputError, match="no file given"):
        confined_config("  ", [root])
    with pytest.raises(InvalidInputError, match="outside the folders"):
        plan_launch(outside / "private.yaml", "x", "pairwise", root=root, config_roots=[root])
