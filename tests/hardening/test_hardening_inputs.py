"""The bad-input catalogue: malformed inputs across the CLI, the Python API, run configs, uploaded
files and run folders. Each one must end in one clear message that names the input and the fix,
never a traceback or a hang, and must leave a saved run folder byte-identical.

``python tests/hardening/test_hardening_inputs.py`` prints the catalogue as the markdown table of
RELIABILITY.md (with the message each input actually gets).
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import sqlite3
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.cli import main as cli_main  # noqa: E402
from core.estimation.runs.folder import RunDir  # noqa: E402
from core.errors import TaskAffinityError  # noqa: E402

PLANTED = dict(n_groups=2, tasks_per_group=[2, 1], dim=20, n_train=40, between=0.0, within=0.1, seed=0)
TRAINING = dict(backend="mlp", steps=20, batch_size=32, lr=0.02, eval_every=20, patience=0, device="cpu",
                options=dict(hidden=[1], activation="linear"))
GOOD_MATRIX = "task,a,b,c\na,1,0.5,0\nb,0.5,1,0\nc,0,0,1\n"


# ---------------------------------------------------------------- builders of malformed inputs

def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def planted_config(tmp: Path, name: str = "run.yaml", **top) -> Path:
    cfg = {"name": "planted-3", "tasks": [{"builtin": "planted", "params": PLANTED}], "training": TRAINING,
           "estimator": {"name": "pairwise", "seeds": [0]}}
    cfg.update(top)
    return write(tmp / name, yaml.safe_dump(cfg))


def text_rows(labels: list[str]) -> str:
    return "text,label\n" + "".join(f"example number {i},{lab}\n" for i, lab in enumerate(labels))


def text_config(tmp: Path, task: dict, data: str | bytes | None = None, **top) -> Path:
    if data is not None:
        write(tmp / "data" / "train.csv", data)
    entry = {"name": "t1", "train": "data/train.csv", "text": "text", "label": "label", **task}
    cfg = {"name": "text", "tasks": [entry], "training": {"backend": "mlp", "steps": 5},
           "estimator": {"name": "pairwise"}, **top}
    return write(tmp / "text.yaml", yaml.safe_dump(cfg))


BALANCED = text_rows(["pos", "neg"] * 15)


def group_cli(path: Path, k: str = "2", *extra: str) -> list[str]:
    return ["group", "--affinity", str(path), "--k", k, *extra]


def estimate_cli(config: Path, out: Path, *extra: str) -> list[str]:
    return ["estimate", "--config", str(config), "--out", str(out), "--no-progress", *extra]


def corrupt_copy(saved: Path, tmp: Path, how: Callable[[Path], None]) -> Path:
    run = tmp / "damaged"
    shutil.copytree(saved, run)
    how(run)
    return run


def truncate_store(run: Path) -> None:
    db = RunDir(run).store_path
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])


def garbage_store(run: Path) -> None:
    RunDir(run).store_path.write_bytes(b"this is not a database" * 300)


def newer_store(run: Path) -> None:
    con = sqlite3.connect(RunDir(run).store_path)
    con.execute("UPDATE meta SET value='99' WHERE key='schema'")
    con.commit()
    con.close()


def newer_manifest(run: Path) -> None:
    text = RunDir(run).manifest_path.read_text()
    RunDir(run).manifest_path.write_text(text.replace('"version": 1', '"version": 7', 1))


def broken_manifest(run: Path) -> None:
    RunDir(run).manifest_path.write_text('{"format": "taskaffinity.run", "version": 1, "status": ')


def link_out(run: Path) -> None:
    outside = write(run.parent / "secret.csv", "task,x,y\nx,top,secret\ny,1,1\n")
    (run / "affinity.json").unlink()
    RunDir(run).affinity_csv_path.unlink()
    RunDir(run).affinity_csv_path.symlink_to(outside)


# ---------------------------------------------------------------- the catalogue

@dataclass(frozen=True)
class Case:
    id: str
    surface: str  # cli / api / config / upload / run folder
    what: str  # the malformed input, in words
    make: Callable[[Path, Path], tuple]  # (tmp, saved run) -> ("cli", argv) | ("api", fn) | ("folder", run, argv)
    expect: tuple[str, ...]  # fragments the message must contain (input named, fix said)


def _api(fn: Callable[[], object]):
    return ("api", fn)


def _group_api(values, k=2, method="sdp", names=None):
    from core.matrix.affinity import AffinityMatrix
    from core.grouping.api import group

    def go():
        n = len(values)
        m = AffinityMatrix(names=names or [f"t{i}" for i in range(n)], values=np.array(values, dtype=float))
        return group(m, k, method)
    return go


def _upload(name: str, data: bytes):
    def go():
        from ui.state import parse_upload

        return parse_upload(name, data)
    return go


def _run_api(tmp: Path, saved: Path, **kwargs):
    from core.estimation.runs.orchestrator import run_estimation

    def go():
        return run_estimation(planted_config(tmp), out=saved, **kwargs)
    return go


def _config_api(path: Path):
    def go():
        from core.estimation.runs.config import load_run_config

        return load_run_config(path)
    return go


CASES = [
    # ---- affinity-matrix files through `python -m core group`
    Case("csv-empty", "cli", "empty .csv file", lambda t, s: ("cli", group_cli(write(t / "m.csv", ""))),
         ("m.csv", "file is empty", "expected an n x n")),
    Case("csv-blank-lines", "cli", ".csv of blank lines and spaces",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", "\n  \n\n"))), ("m.csv", "file is empty")),
    Case("csv-not-square", "cli", "3 rows, 2 columns",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", "task,a,b\na,1,0\nb,0,1\nc,0,0\n"))),
         ("m.csv", "must be square")),
    Case("csv-ragged", "cli", "a row with a missing field",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", "task,a,b\na,1\nb,0,1\n"))), ("m.csv", "line 2", "fields")),
    Case("csv-nan", "cli", "a NaN entry",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX.replace("0.5,1", "nan,1")))),
         ("m.csv", "finite", "fill or drop")),
    Case("csv-inf", "cli", "an inf entry",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX.replace("1,0\nc", "inf,0\nc")))),
         ("m.csv", "inf", "finite number")),
    Case("csv-text-cell", "cli", "a word where a number belongs",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX.replace("0.5,1", "high,1")))),
         ("m.csv", "line 3, column 2", "not a number")),
    Case("csv-utf16", "cli", "UTF-16 encoded .csv",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX.encode("utf-16")))), ("m.csv", "not UTF-8", "save")),
    Case("csv-latin1", "cli", "Latin-1 task names",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX.replace("a", "\u00e9").encode("latin-1")))),
         ("m.csv", "not UTF-8")),
    Case("csv-duplicate-names", "cli", "a task name twice",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", "task,a,a,c\na,1,0,0\na,0,1,0\nc,0,0,1\n"))),
         ("m.csv", "'a'")),
    Case("csv-empty-name", "cli", "an empty task name",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", "task,a,,c\na,1,0,0\n,0,1,0\nc,0,0,1\n"))),
         ("m.csv", "empty", "name")),
    Case("csv-names-differ", "cli", "row names differ from column names",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", "task,a,b\na,1,0\nz,0,1\n"))),
         ("m.csv", "row names and column names differ", "same tasks")),
    Case("csv-one-task", "cli", "a 1 x 1 matrix", lambda t, s: ("cli", group_cli(write(t / "m.csv", "task,a\na,1\n"))),
         ("m.csv", "at least 2 tasks")),
    Case("json-malformed", "cli", "truncated JSON",
         lambda t, s: ("cli", group_cli(write(t / "m.json", '{"names": ["a", "b"], "values": [[1, 0], [0'))),
         ("m.json", "not valid JSON", "line 1")),
    Case("json-wrong-keys", "cli", "JSON with 'tasks'/'matrix' instead of 'names'/'values'",
         lambda t, s: ("cli", group_cli(write(t / "m.json", '{"tasks": ["a", "b"], "matrix": [[1, 0], [0, 1]]}'))),
         ("m.json", "'names'", "'values'")),
    Case("json-newer-version", "cli", "matrix file from a newer format version",
         lambda t, s: ("cli", group_cli(write(t / "m.json", '{"format": "taskaffinity.affinity", "version": 9, '
                                                              '"names": ["a", "b"], "values": [[1, 0], [0, 1]]}'))),
         ("m.json", "newer taskaffinity", "upgrade")),
    Case("json-name-count", "cli", "3 names for a 2 x 2 matrix",
         lambda t, s: ("cli", group_cli(write(t / "m.json", '{"names": ["a", "b", "c"], "values": [[1, 0], [0, 1]]}'))),
         ("m.json", "3 task names", "one name per row")),
    Case("json-3d", "cli", "a 3-D values array",
         lambda t, s: ("cli", group_cli(write(t / "m.json", '{"names": ["a", "b"], "values": [[[1], [0]], [[0], [1]]]}'))),
         ("m.json", "2-D", "n x n")),
    Case("npz-pickle", "cli", ".npz holding a pickled object array",
         lambda t, s: ("cli", group_cli(write(t / "m.npz", npz_bytes(names=np.array(["a", "b"], dtype=object),
                                                                     values=np.eye(2))))),
         ("m.npz", "never unpickled", "plain numeric")),
    Case("npz-garbage", "cli", "random bytes named .npz",
         lambda t, s: ("cli", group_cli(write(t / "m.npz", os.urandom(300)))), ("m.npz", "not a valid .npz")),
    Case("npz-missing-array", "cli", ".npz without a 'names' array",
         lambda t, s: ("cli", group_cli(write(t / "m.npz", npz_bytes(values=np.eye(3))))), ("m.npz", "'names'", "'values'")),
    Case("unknown-suffix", "cli", "a .xlsx file",
         lambda t, s: ("cli", group_cli(write(t / "m.xlsx", "x"))), ("m.xlsx", ".csv, .json or .npz")),
    Case("missing-file", "cli", "a path that does not exist",
         lambda t, s: ("cli", group_cli(t / "nowhere.csv")), ("nowhere.csv", "no such file")),
    Case("k-too-large", "cli", "k larger than the number of tasks",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX), "5")), ("k", "5", "3")),
    Case("k-zero", "cli", "k = 0", lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX), "0")),
         ("--k must be at least 1",)),
    Case("k-word", "cli", "k = 'two'", lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX), "two")),
         ("--k must be a whole number or 'auto'",)),
    Case("method-unknown", "cli", "unknown grouping method",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX), "2", "--method", "kmeans")),
         ("--method", "'kmeans'", "choose from")),
    Case("c-negative", "cli", "negative rounding threshold --c",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX), "2", "--c", "-1")), ("--c", "positive number")),
    # ---- the Python API
    Case("api-nan", "api", "group() on a matrix with NaN", lambda t, s: _api(_group_api([[1, np.nan], [0, 1]])),
         ("finite",)),
    Case("api-k-range", "api", "group(matrix, k=0)", lambda t, s: _api(_group_api(np.eye(3).tolist(), k=0)), ("k")),
    Case("api-method", "api", "group(..., method='kmeans')",
         lambda t, s: _api(_group_api(np.eye(3).tolist(), method="kmeans")), ("'kmeans'", "sdp")),
    Case("api-dup-names", "api", "AffinityMatrix with a repeated name",
         lambda t, s: _api(_group_api(np.eye(2).tolist(), names=["x", "x"])), ("'x'")),
    Case("api-estimator", "api", "run_estimation(estimator='magic')",
         lambda t, s: _api(_run_api(t, s, estimator="magic")), ("unknown estimator 'magic'", "pairwise")),
    Case("api-executor", "api", "run_estimation(executor='dask')",
         lambda t, s: _api(_run_api(t, s, executor="dask")), ("unknown executor 'dask'", "local")),
    Case("api-negative-budget", "api", "run_estimation(higher-order, subsets=-5)",
         lambda t, s: _api(_run_api(t, s, estimator="higher-order", options={"subsets": -5})), ("subsets", ">= 1")),
    # ---- the estimate CLI and run configs
    Case("cli-negative-budget", "cli", "estimate --subsets -3",
         lambda t, s: ("cli", estimate_cli(planted_config(t), s, "--estimator", "higher-order", "--subsets", "-3")),
         ("subsets", ">= 1")),
    Case("cli-estimator", "cli", "estimate --estimator magic",
         lambda t, s: ("cli", estimate_cli(planted_config(t), s, "--estimator", "magic")),
         ("unknown estimator 'magic'",)),
    Case("cli-executor", "cli", "estimate --executor dask",
         lambda t, s: ("cli", estimate_cli(planted_config(t), s, "--executor", "dask")), ("--executor", "'dask'")),
    Case("cli-existing-run", "cli", "estimate into a folder holding a finished run, without --resume",
         lambda t, s: ("cli", estimate_cli(planted_config(t), s)), ("already holds a run", "--resume")),
    Case("cfg-yaml-syntax", "config", "YAML with a syntax error",
         lambda t, s: ("cli", estimate_cli(write(t / "bad.yaml", "name: x\ntasks: [\n  - {builtin: planted\n"), s)),
         ("bad.yaml", "not valid YAML")),
    Case("cfg-python-tag", "config", "YAML with a !!python/object/apply tag (code execution attempt)",
         lambda t, s: ("cli", estimate_cli(write(t / "evil.yaml", "name: !!python/object/apply:os.system ['touch "
                                                 f"{t}/pwned']\ntasks: []\n"), s)),
         ("evil.yaml", "not valid YAML")),
    Case("cfg-toml-syntax", "config", "TOML with a syntax error",
         lambda t, s: ("cli", estimate_cli(write(t / "bad.toml", "name = \n"), s)), ("bad.toml", "not valid TOML")),
    Case("cfg-suffix", "config", "a config named .json",
         lambda t, s: ("cli", estimate_cli(write(t / "run.json", "{}"), s)), ("run.json", ".yaml, .yml or .toml")),
    Case("cfg-list", "config", "a config whose top level is a list",
         lambda t, s: ("cli", estimate_cli(write(t / "list.yaml", "- a\n- b\n"), s)), ("list.yaml", "mapping")),
    Case("cfg-unknown-key", "config", "a misspelt top-level key (taks:)",
         lambda t, s: ("cli", estimate_cli(write(t / "typo.yaml", "taks: []\n"), s)), ("typo.yaml", "'taks'", "known:")),
    Case("cfg-no-tasks", "config", "tasks: []",
         lambda t, s: ("cli", estimate_cli(planted_config(t, tasks=[]), s)), ("run.yaml", "non-empty list")),
    Case("cfg-negative-steps", "config", "training: {steps: -10}",
         lambda t, s: ("cli", estimate_cli(planted_config(t, training={**TRAINING, "steps": -10}), s)),
         ("steps", ">= 1")),
    Case("cfg-backend", "config", "an unknown training backend",
         lambda t, s: ("cli", estimate_cli(planted_config(t, training={**TRAINING, "backend": "xgboost"}), s)),
         ("'xgboost'", "mlp")),
    Case("cfg-estimator-unknown", "config", "estimator: {name: magic}",
         lambda t, s: ("cli", estimate_cli(planted_config(t, estimator={"name": "magic"}), s)),
         ("unknown estimator 'magic'",)),
    Case("cfg-negative-budget", "config", "estimator: {name: higher-order, subsets: -1}",
         lambda t, s: ("cli", estimate_cli(planted_config(t, estimator={"name": "higher-order", "subsets": -1}), s)),
         ("subsets", ">= 1")),
    Case("cfg-duplicate-task", "config", "two tasks with the same name",
         lambda t, s: ("cli", estimate_cli(_duplicate_task_config(t), s)),
         ("'t1'", "appears twice", "unique")),
    Case("cfg-missing-name", "config", "a text task without name:",
         lambda t, s: ("cli", estimate_cli(text_config(t, {"name": None}, BALANCED), s)), ("tasks[0]", "name")),
    Case("cfg-wrong-column", "config", "label: column that the file lacks",
         lambda t, s: ("cli", estimate_cli(text_config(t, {"label": "sentiment"}, BALANCED), s)),
         ("train.csv", "no column 'sentiment'", "among its 2 columns")),
    Case("cfg-label-outside", "config", "a label outside the declared classes",
         lambda t, s: ("cli", estimate_cli(text_config(t, {"classes": ["pos", "neg"]},
                                                       text_rows(["pos", "neg", "meh"] * 10)), s)),
         ("train.csv", "row 3", "outside the classes")),
    Case("cfg-one-class", "config", "a task whose labels are all one class",
         lambda t, s: ("cli", estimate_cli(text_config(t, {}, text_rows(["pos"] * 30)), s)),
         ("'t1'", "only one class", "two or more")),
    Case("cfg-one-example", "config", "a task with one example",
         lambda t, s: ("cli", estimate_cli(text_config(t, {}, text_rows(["pos"])), s)), ("'t1'", "examples")),
    Case("cfg-data-empty", "config", "an empty data file",
         lambda t, s: ("cli", estimate_cli(text_config(t, {}, ""), s)), ("train.csv")),
    Case("cfg-data-latin1", "config", "a data file that is not UTF-8",
         lambda t, s: ("cli", estimate_cli(text_config(t, {}, BALANCED.replace("example", "caf\u00e9").encode("utf-16")), s)),
         ("train.csv",)),
    Case("cfg-path-escape", "config", "a data path climbing out with ../..",
         lambda t, s: ("cli", estimate_cli(_escaping_config(t), s)),
         ("train", "outside the allowed folders", "--allow-path")),
    Case("cfg-symlink-escape", "config", "a data file that is a symlink to a file elsewhere",
         lambda t, s: ("cli", estimate_cli(_linked_data_config(t), s)), ("train", "outside the allowed folders")),
    Case("cfg-allow-paths-type", "config", "allow_paths: in the config (a config may not widen its own sandbox)",
         lambda t, s: ("cli", estimate_cli(planted_config(t, allow_paths="/"), s)), ("allow_paths", "--allow-path")),
    Case("api-config-missing", "api", "load_run_config on a missing file",
         lambda t, s: _api(_config_api(t / "absent.yaml")), ("absent.yaml", "does not exist")),
    # ---- uploads to the dashboard
    Case("upload-type", "upload", "an uploaded .pkl file", lambda t, s: _api(_upload("m.pkl", b"\x80\x04K\x01.")),
         ("m.pkl", "upload .csv, .json or .npz")),
    Case("upload-size", "upload", "an upload over the size limit",
         lambda t, s: _api(_upload("big.csv", b"0" * (26 * 2**20))), ("big.csv", "MB limit")),
    Case("upload-pickle", "upload", "an uploaded .npz with a pickled object",
         lambda t, s: _api(_upload("m.npz", npz_bytes(names=np.array([{"a": 1}, 2], dtype=object), values=np.eye(2)))),
         ("m.npz", "without pickle")),
    Case("upload-nan", "upload", "an uploaded .csv with NaN",
         lambda t, s: _api(_upload("m.csv", GOOD_MATRIX.replace("0.5,1", "nan,1").encode())), ("m.csv", "finite")),
    # ---- damaged run folders (resume, open)
    Case("store-truncated", "run folder", "results.sqlite truncated to a third",
         lambda t, s: ("folder", corrupt_copy(s, t, truncate_store), "resume"),
         ("results.sqlite", "damaged")),
    Case("store-garbage", "run folder", "results.sqlite overwritten with text",
         lambda t, s: ("folder", corrupt_copy(s, t, garbage_store), "resume"), ("results.sqlite", "not a usable result store")),
    Case("store-newer", "run folder", "results.sqlite from a newer schema version",
         lambda t, s: ("folder", corrupt_copy(s, t, newer_store), "resume"), ("results.sqlite", "newer")),
    Case("manifest-newer", "run folder", "run folder from a newer format version (resume)",
         lambda t, s: ("folder", corrupt_copy(s, t, newer_manifest), "resume"), ("manifest.json", "newer", "upgrade")),
    Case("manifest-newer-open", "run folder", "run folder from a newer format version (open)",
         lambda t, s: ("folder", corrupt_copy(s, t, newer_manifest), "open"), ("manifest.json", "newer", "upgrade")),
    Case("manifest-broken", "run folder", "truncated manifest.json (open)",
         lambda t, s: ("folder", corrupt_copy(s, t, broken_manifest), "open"), ("manifest.json", "damaged")),
    Case("folder-link-out", "run folder", "affinity.csv is a symlink to a file outside the run",
         lambda t, s: ("folder", corrupt_copy(s, t, link_out), "open"), ("affinity.csv", "outside the run folder")),
    Case("folder-resume-other-config", "run folder", "--resume with a config that differs from the run's",
         lambda t, s: ("cli", estimate_cli(planted_config(t, training={**TRAINING, "steps": 21}), s, "--resume")),
         ("cannot resume", "steps")),
]


def _duplicate_task_config(t: Path) -> Path:
    write(t / "data" / "train.csv", BALANCED)
    entry = {"name": "t1", "train": "data/train.csv", "text": "text", "label": "label"}
    return write(t / "dup.yaml", yaml.safe_dump({"tasks": [entry, entry], "training": {"backend": "mlp"}}))


def _escaping_config(t: Path) -> Path:
    write(t.parent / "outside" / "train.csv", BALANCED)
    return text_config(t / "cfg", {"train": "../../outside/train.csv"})


def _linked_data_config(t: Path) -> Path:
    outside = write(t.parent / "elsewhere" / "data.csv", BALANCED)
    cfg = text_config(t / "cfg", {})
    (t / "cfg" / "data").mkdir(parents=True, exist_ok=True)
    (t / "cfg" / "data" / "train.csv").symlink_to(outside)
    return cfg


# ---------------------------------------------------------------- running a case

def folder_digest(path: Path) -> dict[str, str]:
    """Every file under ``path`` (name -> sha256), links included as their target text."""
    out = {}
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path).as_posix()
        if f.is_symlink():
            out[rel] = "link:" + os.readlink(f)
        elif f.is_file():
            out[rel] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def outcome(case: Case, tmp: Path, saved: Path, capsys=None) -> tuple[str, dict, dict, Path]:
    """Run ``case``; return (message, digest before, digest after, the folder watched)."""
    spec = case.make(tmp, saved)
    watched = spec[1] if spec[0] == "folder" else saved
    before = folder_digest(watched)
    if spec[0] == "cli":
        err = io.StringIO()
        old, sys.stderr = sys.stderr, err
        try:
            try:
                code = cli_main(spec[1])
            except SystemExit as exc:  # argparse rejects a choice itself (one line, exit 2)
                code = exc.code
        finally:
            sys.stderr = old
        message = err.getvalue().strip()
        assert code == 2, f"{case.id}: exit {code}, stderr {message!r}"
        assert "\n" not in message and "Traceback" not in message, message
    elif spec[0] == "api":
        with pytest.raises(TaskAffinityError) as info:
            spec[1]()
        message = str(info.value)
    else:
        run, action = spec[1], spec[2]
        if action == "resume":
            from core.estimation.runs.orchestrator import run_estimation

            with pytest.raises(TaskAffinityError) as info:
                run_estimation(planted_config(tmp), out=run, resume=True)
        else:
            from core.estimation.runs.folder import load_run

            with pytest.raises(TaskAffinityError) as info:
                load_run(run)
        message = str(info.value)
    return message, before, folder_digest(watched), watched


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    """A small finished run (3 planted tasks, pairwise, 6 trainings) that no bad input may change."""
    import torch

    from core.estimation.runs.orchestrator import run_estimation

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("saved")
    run = run_estimation(planted_config(tmp), out=tmp / "run")
    assert run.status == "complete"
    return run.path


@pytest.fixture(autouse=True)
def no_hang():
    """A case that hangs fails after 60 s instead of blocking the suite."""
    def fail(signum, frame):
        raise TimeoutError("bad input made the call hang for 60 s")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_catalogue_is_large_and_ids_unique():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    assert {c.surface for c in CASES} == {"cli", "api", "config", "upload", "run folder"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_clear_message_and_changes_no_saved_run(case, tmp_path, saved_run):
    work = tmp_path / "w"
    work.mkdir()
    message, before, after, watched = outcome(case, work, saved_run)
    for fragment in case.expect:
        assert fragment in message, f"{case.id}: {fragment!r} not in {message!r}"
    assert before == after, f"{case.id}: the run folder {watched} changed"
    assert not (work / "pwned").exists()  # the YAML tag was never executed


def test_good_inputs_pass_the_same_paths(tmp_path):
    """Controls: the well-formed versions of the inputs above load, so the cases fail for their stated reason."""
    from core.estimation.runs.config import load_run_config
    from core.matrix.io import read_affinity

    assert read_affinity(write(tmp_path / "m.csv", GOOD_MATRIX)).n == 3
    assert len(load_run_config(text_config(tmp_path, {}, BALANCED)).taskset.names) == 1
    assert len(load_run_config(planted_config(tmp_path)).taskset.names) == 3
    allowed = write(tmp_path.parent / "shared_elsewhere" / "train.csv", BALANCED)
    cfg = text_config(tmp_path / "c2", {"train": str(allowed)})
    # a folder outside, allowed by whoever starts the run (--allow-path), is fine
    assert list(load_run_config(cfg, allow_paths=[allowed.parent]).taskset.names) == ["t1"]


if __name__ == "__main__":  # print the catalogue table of RELIABILITY.md
    import tempfile

    import torch

    from core.estimation.runs.orchestrator import run_estimation

    torch.set_num_threads(1)
    base = Path(tempfile.mkdtemp())
    saved = run_estimation(planted_config(base), out=base / "saved").path

    print("| # | surface | malformed input | message (abridged) | run folder unchanged |")
    print("|---|---|---|---|---|")
    for i, case in enumerate(CASES, 1):
        work = base / case.id
        work.mkdir()
        msg, before, after, _ = outcome(case, work, saved)
        short = msg.replace(str(base), "…").replace("|", "\\|")
        short = short if len(short) < 160 else short[:157] + "…"
        print(f"| {i} | {case.surface} | {case.what} | {short} | {'yes' if before == after else 'NO'} |")
