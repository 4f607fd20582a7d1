"""The bad-input catalogue, round two (issue 17): escapes, content echoed in errors, depth, numbers JSON
cannot hold, strict types, alias bombs, sizes checked before expanding, names and numbers strictness.

Each input must end in one line that names the input and the fix (exit 2 from the CLI, a
TaskAffinityError from the API), must not echo the planted secret ``SECRET`` (a file's content),
must not hang (60 s alarm) and must leave a saved run folder byte-identical.

``python tests/hardening/test_hardening_round2.py`` prints the catalogue as the markdown table of
RELIABILITY.md.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.errors import TaskAffinityError  # noqa: E402
from core.estimation.runs.folder import RunDir  # noqa: E402
from tests.hardening.test_hardening_inputs import (  # noqa: E402,F401 - saved_run and no_hang are fixtures
    BALANCED, GOOD_MATRIX, PLANTED, TRAINING, Case, corrupt_copy, estimate_cli, group_cli, no_hang, npz_bytes,
    outcome, planted_config, saved_run, text_config, text_rows, write)

SECRET = "s3cr3t-Value-42"


def _api(fn):
    return ("api", fn)


def _upload(name: str, data: bytes):
    def go():
        from ui.state import parse_upload

        return parse_upload(name, data)
    return go


def _config_api(path: Path, **kwargs):
    def go():
        from core.estimation.runs.config import load_run_config

        return load_run_config(path, **kwargs)
    return go


def matrix_json(**extra) -> str:
    obj = {"format": "taskaffinity.affinity", "version": 1, "names": ["a", "b"], "values": [[1.0, 0.2], [0.1, 1.0]]}
    obj.update(extra)
    return json.dumps(obj)


def raw_yaml(tmp: Path, text: str | bytes, name: str = "run.yaml") -> Path:
    return write(tmp / name, text)


def planted_with(tmp: Path, **params) -> Path:
    cfg = {"name": "p", "tasks": [{"builtin": "planted", "params": {**PLANTED, **params}}], "training": TRAINING,
           "estimator": {"name": "pairwise"}}
    return write(tmp / "run.yaml", yaml.safe_dump(cfg))


def alias_bomb(key: str = "tasks", width: int = 9, levels: int = 9) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\n{key}: *a{levels - 1}\n"


def secret_file(tmp: Path, text: str | None = None) -> Path:
    return write(tmp / "private" / "secret.txt", text if text is not None else f"{SECRET}\nroot:x:0:0\n")


def with_manifest(saved: Path, tmp: Path, change) -> Path:
    def how(run: Path) -> None:
        path = RunDir(run).manifest_path
        if callable(change):
            m = json.loads(path.read_text())
            change(m)
            path.write_text(json.dumps(m))
        elif isinstance(change, bytes):
            path.write_bytes(change)
        else:
            path.write_text(change)
    return corrupt_copy(saved, tmp, how)


def with_affinity_json(saved: Path, tmp: Path, text: str) -> Path:
    def how(run: Path) -> None:
        RunDir(run).affinity_json_path.write_text(text)
    return corrupt_copy(saved, tmp, how)


def square_csv(n: int, cell: str = "0") -> bytes:
    names = [f"t{i}" for i in range(n)]
    row = "," + ",".join([cell] * n) + "\n"
    return ("task," + ",".join(names) + "\n" + "".join(x + row for x in names)).encode()


def _secret_columns_config(t: Path) -> Path:
    secret_file(t)  # a file the run is allowed to read (--allow-path), but not data: its header is the secret
    return text_config(t / "cfg", {"train": str(t / "private" / "secret.txt"), "format": "csv"})


def _secret_labels_config(t: Path) -> Path:
    rows = "".join(f"line {i},{SECRET if i == 7 else ('pos' if i % 2 else 'neg')}\n" for i in range(30))
    write(t / "private" / "secret.csv", rows)
    return text_config(t / "cfg", {"train": str(t / "private" / "secret.csv"), "header": False,
                                   "columns": ["text", "label"], "classes": ["pos", "neg"]})


def _jsonl_deep(t: Path) -> Path:
    rows = "".join(json.dumps({"text": f"example {i}", "label": "pos" if i % 2 else "neg"}) + "\n" for i in range(30))
    write(t / "data" / "train.jsonl", rows + '{"text": ' + "[" * 100_000 + "\n")
    return text_config(t, {"train": "data/train.jsonl"})


def _group_auto_big(t: Path) -> list[str]:
    return group_cli(write(t / "big.csv", square_csv(200)), "auto")


CASES = [
    # ---- escapes: a config cannot widen its sandbox; no message echoes a file's content
    Case("r2-cfg-data-root", "config", "data_root: / in the config, reading {data}/… (sandbox widened by the file)",
         lambda t, s: ("cli", estimate_cli(text_config(t, {"train": "{data}/" + str(secret_file(t)).lstrip("/")},
                                                       data_root="/"), s)),
         ("data_root", "--data-root", "not allowed")),
    Case("r2-cfg-allow-paths", "config", "allow_paths: ['/'] in the config",
         lambda t, s: ("cli", estimate_cli(text_config(t, {"train": str(secret_file(t))}, allow_paths=["/"]), s)),
         ("allow_paths", "--allow-path")),
    Case("r2-cfg-abs-outside", "config", "a data path outside every allowed folder (no flag given)",
         lambda t, s: ("cli", estimate_cli(text_config(t / "cfg", {"train": str(secret_file(t))}), s)),
         ("outside the allowed folders", "--allow-path")),
    Case("r2-cfg-secret-header", "config", "an allowed non-data file whose first line would be the 'header'",
         lambda t, s: ("cli", estimate_cli(_secret_columns_config(t), s, "--allow-path", str(t / "private"))),
         ("no column 'text'", "among its")),
    Case("r2-cfg-secret-label", "config", "a data file whose label cell is a secret outside the classes",
         lambda t, s: ("cli", estimate_cli(_secret_labels_config(t), s, "--allow-path", str(t / "private"))),
         ("first at row", "outside the classes")),
    Case("r2-cfg-model-path", "config", "training.options.model_path pointing outside the allowed folders",
         lambda t, s: ("cli", estimate_cli(write(t / "run.yaml", yaml.safe_dump(
             {"tasks": [{"builtin": "planted", "params": PLANTED}],
              "training": {"backend": "transformer", "options": {"model_path": str(t.parent)}}})), s)),
         ("model_path", "outside the allowed folders")),
    Case("r2-cfg-cache-dir", "config", "training.options.cache_dir pointing outside the allowed folders",
         lambda t, s: ("cli", estimate_cli(write(t / "run.yaml", yaml.safe_dump(
             {"tasks": [{"builtin": "planted", "params": PLANTED}],
              "training": {"backend": "mlp", "options": {"cache_dir": "/"}}})), s)),
         ("cache_dir", "outside the allowed folders")),
    Case("r2-cfg-gradtag-cache", "config", "estimator.cache_dir (Grad-TAG's gradient store) outside the allowed folders",
         lambda t, s: ("cli", estimate_cli(write(t / "run.yaml", yaml.safe_dump(
             {"tasks": [{"builtin": "planted", "params": PLANTED}], "training": TRAINING,
              "estimator": {"name": "gradtag", "cache_dir": "/etc"}})), s)),
         ("estimator", "cache_dir", "outside the allowed folders")),
    Case("r2-csv-secret-cell", "cli", "a matrix cell holding a secret word",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX.replace("0.5,1", f"{SECRET},1")))),
         ("m.csv", "line 3, column 2", "not a number")),
    Case("r2-json-secret-format", "cli", "a JSON 'format' holding a long secret",
         lambda t, s: ("cli", group_cli(write(t / "m.json", matrix_json(format=SECRET * 3)))),
         ("m.json", "format", "text of")),
    Case("r2-yaml-tag-secret", "config", "a YAML python tag carrying a secret argument",
         lambda t, s: ("cli", estimate_cli(raw_yaml(t, f"x: !!python/object/apply:os.system ['{SECRET}']\n"), s)),
         ("run.yaml", "not valid YAML", "line 1")),
    # ---- matrix files: numbers JSON cannot hold, depth, types, strict names and numbers
    Case("r2-json-seed-1e999", "cli", 'matrix metadata "seed": 1e999 (OverflowError before)',
         lambda t, s: ("cli", group_cli(write(t / "m.json", matrix_json()[:-1] + ', "seed": 1e999}'))),
         ("m.json", "finite")),
    Case("r2-json-preprocessing-5", "cli", 'matrix metadata "preprocessing": 5 (TypeError before)',
         lambda t, s: ("cli", group_cli(write(t / "m.json", matrix_json(preprocessing=5)))),
         ("m.json", "preprocessing", "must be a list")),
    Case("r2-json-deep", "cli", "a JSON matrix nested 100,000 deep (RecursionError before)",
         lambda t, s: ("cli", group_cli(write(t / "m.json", "[" * 100_000 + "]" * 100_000))),
         ("m.json", "nested", "at most 64")),
    Case("r2-json-deep-cost", "cli", "matrix metadata 'cost' nested 100,000 deep",
         lambda t, s: ("cli", group_cli(write(t / "m.json", matrix_json()[:-1] + ', "cost": ' + "[" * 100_000
                                              + "]" * 100_000 + "}"))),
         ("m.json", "nested")),
    Case("r2-json-nan-literal", "cli", "a NaN literal in a JSON matrix",
         lambda t, s: ("cli", group_cli(write(t / "m.json", matrix_json().replace("0.2", "NaN")))),
         ("m.json", "finite")),
    Case("r2-json-seed-string", "cli", 'matrix metadata "seed": "3" (a number given as a string)',
         lambda t, s: ("cli", group_cli(write(t / "m.json", matrix_json(seed="3")))),
         ("m.json", "seed", "whole number", "text")),
    Case("r2-json-values-strings", "cli", "JSON matrix values given as strings",
         lambda t, s: ("cli", group_cli(write(t / "m.json", matrix_json(values=[["1", "0"], ["0", "1"]])))),
         ("m.json", "entry [0, 0]", "must be a number")),
    Case("r2-json-values-bools", "cli", "JSON matrix values given as true/false",
         lambda t, s: ("cli", group_cli(write(t / "m.json", matrix_json(values=[[True, 0.5], [0.5, 1.0]])))),
         ("m.json", "entry [0, 0]", "boolean")),
    Case("r2-json-name-list", "cli", 'a task name given as ["a"] (became "[\'a\']" before)',
         lambda t, s: ("cli", group_cli(write(t / "m.json", matrix_json(names=[["a"], "b"])))),
         ("m.json", "position 0", "must be text", "list")),
    Case("r2-json-name-number", "cli", "a task name given as a number",
         lambda t, s: ("cli", group_cli(write(t / "m.json", matrix_json(names=[5, "b"])))),
         ("m.json", "must be text", "number 5")),
    Case("r2-json-huge-int", "cli", "a 400-digit whole number in a JSON matrix",
         lambda t, s: ("cli", group_cli(write(t / "m.json", matrix_json()[:-1] + ', "seed": ' + "9" * 400 + "}"))),
         ("m.json", "40 digits")),
    Case("r2-csv-name-nan", "cli", "a task named nan (was reported as 'empty')",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", "task,nan,b\nnan,1,0\nb,0,1\n"))),
         ("m.csv", "'nan'", "missing value", "rename")),
    Case("r2-csv-nfd", "cli", "names equal but for Unicode normalisation (NFD é vs NFC é)",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", "task,\u00e9,b\ne\u0301,1,0\nb,0,1\n"))),
         ("m.csv", "NFC")),
    Case("r2-csv-underscore", "cli", "a number written 1_000",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX.replace("0.5,1", "1_000,1")))),
         ("m.csv", "line 3, column 2", "plain decimal")),
    Case("r2-csv-fullwidth", "cli", "full-width digits (１２)",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX.replace("0.5,1", "\uff11\uff12,1")))),
         ("m.csv", "plain decimal")),
    Case("r2-csv-arabic-indic", "cli", "Arabic-Indic digits (١٢)",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX.replace("0.5,1", "\u0661\u0662,1")))),
         ("m.csv", "plain decimal")),
    Case("r2-csv-name-cr", "cli", "a task name holding a carriage return (broke the CSV round trip)",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", 'task,"a\rb",c\n"a\rb",1,0\nc,0,1\n'))),
         ("m.csv", "control character")),
    Case("r2-api-name-control", "api", "AffinityMatrix with a name holding a line break",
         lambda t, s: _api(lambda: __import__("core.matrix.affinity", fromlist=["x"]).AffinityMatrix(
             names=["a\nb", "c"], values=np.eye(2))),
         ("position 0", "control character")),
    # ---- uploads: sizes checked before anything is expanded
    Case("r2-upload-npz-bomb", "upload", "a 2 MB .npz of zeros declaring a 16000 x 16000 matrix (grew to GBs before)",
         lambda t, s: _api(_upload("z.npz", npz_bytes_compressed(names=np.array(["a", "b"]),
                                                                  values=np.zeros((16000, 16000))))),
         ("z.npz", "16000 tasks", "at most 3000")),
    Case("r2-upload-npz-extra", "upload", "an .npz with a small matrix and a 20000 x 20000 extra array",
         lambda t, s: _api(_upload("x.npz", npz_declaring(other=(20000, 20000)))),
         ("x.npz", "GiB", "memory")),
    Case("r2-upload-csv-3001", "upload", "a 3001 x 3001 CSV (18 MB; parsed in full before)",
         lambda t, s: _api(_upload("big.csv", square_csv(3001))), ("big.csv", "3001 tasks", "at most 3000")),
    Case("r2-upload-npz-int-names", "upload", "an .npz whose names are numbers",
         lambda t, s: _api(_upload("n.npz", npz_bytes(names=np.array([1, 2]), values=np.eye(2)))),
         ("n.npz", "names", "text")),
    # ---- configs: encodings, alias bombs, depth, types
    Case("r2-cfg-latin1", "config", "a YAML config with Latin-1 bytes (UnicodeDecodeError before)",
         lambda t, s: ("cli", estimate_cli(raw_yaml(t, "name: caf\xe9\ntasks: []\n".encode("latin-1")), s)),
         ("run.yaml", "not UTF-8")),
    Case("r2-cfg-alias-bomb", "config", "a billion-laughs YAML (9 levels of 9 aliases) under tasks:",
         lambda t, s: ("cli", estimate_cli(raw_yaml(t, alias_bomb("tasks")), s)), ("run.yaml", "expands to more")),
    Case("r2-cfg-alias-bomb-name", "config", "the same bomb under an unused key (output:)",
         lambda t, s: ("cli", estimate_cli(raw_yaml(t, alias_bomb("output")), s)), ("run.yaml", "expands to more")),
    Case("r2-cfg-recursive-alias", "config", "a recursive YAML alias (a: &a [*a])",
         lambda t, s: ("cli", estimate_cli(raw_yaml(t, "tasks: &a [*a]\n"), s)), ("run.yaml",)),
    Case("r2-cfg-deep-yaml", "config", "a YAML config nested 100,000 deep",
         lambda t, s: ("cli", estimate_cli(raw_yaml(t, "tasks: " + "[" * 100_000 + "]" * 100_000 + "\n"), s)),
         ("run.yaml", "nested")),
    Case("r2-cfg-deep-toml", "config", "a TOML config nested 100,000 deep",
         lambda t, s: ("cli", estimate_cli(raw_yaml(t, "tasks = " + "[" * 100_000 + "]" * 100_000 + "\n",
                                                    "run.toml"), s)),
         ("run.toml",)),
    Case("r2-cfg-seed-abc", "config", "task option seed: abc",
         lambda t, s: ("cli", estimate_cli(text_config(t, {"seed": "abc"}, BALANCED), s)),
         ("tasks[0] (t1)", "seed", "whole number")),
    Case("r2-cfg-val-fraction-half", "config", "task option val_fraction: half",
         lambda t, s: ("cli", estimate_cli(text_config(t, {"val_fraction": "half"}, BALANCED), s)),
         ("val_fraction", "must be a number")),
    Case("r2-cfg-label-list", "config", "task option label: [a, b]",
         lambda t, s: ("cli", estimate_cli(text_config(t, {"label": ["a", "b"]}, BALANCED), s)),
         ("label", "must be text", "list of 2")),
    Case("r2-cfg-classes-5", "config", "task option classes: 5",
         lambda t, s: ("cli", estimate_cli(text_config(t, {"classes": 5}, BALANCED), s)),
         ("classes", "must be a list")),
    Case("r2-cfg-max-train-neg", "config", "task option max_train: -3",
         lambda t, s: ("cli", estimate_cli(text_config(t, {"max_train": -3}, BALANCED), s)),
         ("max_train", ">= 1")),
    Case("r2-cfg-task-name-nan", "config", "a text task named nan",
         lambda t, s: ("cli", estimate_cli(text_config(t, {"name": "nan"}, BALANCED), s)), ("name", "missing value")),
    Case("r2-cfg-name-list", "config", "the run's name: given as a list",
         lambda t, s: ("cli", estimate_cli(text_config(t, {}, BALANCED, name=["a"]), s)), ("name", "must be text")),
    Case("r2-cfg-steps-string", "config", 'training steps: "300" (a number as a string)',
         lambda t, s: ("cli", estimate_cli(write(t / "run.yaml", yaml.safe_dump(
             {"tasks": [{"builtin": "planted", "params": PLANTED}], "training": {**TRAINING, "steps": "300"}})), s)),
         ("steps",)),
    Case("r2-planted-three", "config", "planted n_groups: three",
         lambda t, s: ("cli", estimate_cli(planted_with(t, n_groups="three"), s)),
         ("planted", "n_groups", "whole number")),
    Case("r2-planted-2e9", "config", "planted n_train: 2000000000 (asked for 298 GiB before)",
         lambda t, s: ("cli", estimate_cli(planted_with(t, n_train=2_000_000_000), s)),
         ("planted", "GiB", "smaller")),
    Case("r2-planted-seed-negative", "config", "planted seed: -1 (ValueError from numpy; found by the fuzz run)",
         lambda t, s: ("cli", estimate_cli(planted_with(t, seed=-1), s)), ("planted", "seed", "2**32")),
    Case("r2-training-option-name", "config", "a training option called name (TypeError; found by the fuzz run)",
         lambda t, s: ("cli", estimate_cli(write(t / "run.yaml", yaml.safe_dump(
             {"tasks": [{"builtin": "planted", "params": PLANTED}],
              "training": {**TRAINING, "options": {"name": "x", "hidden": [1]}}})), s)),
         ("backend 'mlp'", "name")),
    Case("r2-jsonl-deep", "config", "a JSONL data file with a line nested 100,000 deep",
         lambda t, s: ("cli", estimate_cli(_jsonl_deep(t), s)), ("train.jsonl, line 31", "nested")),
    Case("r2-option-bomb", "cli", "--option with a YAML alias bomb as its value",
         lambda t, s: ("cli", estimate_cli(planted_config(t), s, "--option",
                                           "x=" + "{a: &a [1,1,1,1,1,1,1,1,1], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
                                           + ", ".join(f"c{i}: &c{i} [" + ",".join([f"*{'b' if i == 0 else f'c{i - 1}'}"] * 9)
                                                       + "]" for i in range(8)) + "}")),
         ("--option x", "expands to more")),
    # ---- run folders: manifests and matrices of every shape
    Case("r2-manifest-deep", "run folder", "a manifest nested 100,000 deep",
         lambda t, s: ("folder", with_manifest(s, t, '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"), "load"),
         ("manifest", "nested", "damaged")),
    Case("r2-manifest-tasks-5", "run folder", 'a manifest with "tasks": 5 (hid the Past runs list)',
         lambda t, s: ("folder", with_manifest(s, t, lambda m: m.update(tasks=5)), "load"),
         ("manifest field", "tasks", "must be a list", "damaged")),
    Case("r2-manifest-config-string", "run folder", "--resume on a manifest whose config is a string",
         lambda t, s: ("folder", with_manifest(s, t, lambda m: m.update(config="run.yaml")), "resume"),
         ("manifest field", "config", "mapping")),
    Case("r2-manifest-cost-text", "run folder", "a manifest whose cost.seconds is text",
         lambda t, s: ("folder", with_manifest(s, t, lambda m: m["cost"].update(seconds=SECRET)), "load"),
         ("cost.seconds", "must be a number")),
    Case("r2-manifest-latin1", "run folder", "a manifest in Latin-1",
         lambda t, s: ("folder", with_manifest(s, t, '{"name": "caf\xe9"}'.encode("latin-1")),
                       "load"),
         ("manifest",)),
    Case("r2-affinity-seed-1e999", "run folder", 'a run\'s affinity.json with "seed": 1e999 (took the dashboard down)',
         lambda t, s: ("folder", with_affinity_json(s, t, matrix_json()[:-1] + ', "seed": 1e999}'), "load"),
         ("affinity.json", "finite")),
    # ---- the group command's size budget
    Case("r2-group-auto-budget", "cli", "group --k auto on a 200-task matrix (ran for minutes before)",
         lambda t, s: ("cli", _group_auto_big(t)), ("200 tasks", "at most 150", "--max-tasks")),
    Case("r2-group-max-tasks-0", "cli", "group --max-tasks 0",
         lambda t, s: ("cli", group_cli(write(t / "m.csv", GOOD_MATRIX), "2", "--max-tasks", "0")),
         ("--max-tasks",)),
]


def npz_declaring(**shapes) -> bytes:
    """A valid small matrix plus arrays whose .npy headers declare ``shapes`` (float64) with no data behind them:
    the size check must refuse from the headers, before anything is read."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in (("names", np.array(["a", "b"])), ("values", np.eye(2))):
            one = io.BytesIO()
            np.lib.format.write_array(one, arr)
            zf.writestr(f"{name}.npy", one.getvalue())
        for name, shape in shapes.items():
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": shape})
            zf.writestr(f"{name}.npy", head.getvalue() + b"\0" * 64)
    return buf.getvalue()


def npz_bytes_compressed(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_catalogue_has_40_new_inputs_across_the_surfaces():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    assert {c.surface for c in CASES} == {"cli", "api", "config", "upload", "run folder"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_round2_input_gets_one_line_no_content_and_changes_no_saved_run(case, tmp_path, saved_run):
    work = tmp_path / "w"
    work.mkdir()
    start = time.monotonic()
    message, before, after, watched = outcome(case, work, saved_run)
    for fragment in case.expect:
        assert fragment in message, f"{case.id}: {fragment!r} not in {message!r}"
    assert SECRET not in message and "root:x" not in message, f"{case.id}: the message echoes file content"
    assert "\n" not in message.strip()
    assert before == after, f"{case.id}: the run folder {watched} changed"
    assert time.monotonic() - start < 30, f"{case.id}: took {time.monotonic() - start:.0f} s"


def test_good_inputs_still_load(tmp_path):
    """Controls: the well-formed neighbours of the inputs above load."""
    from core.estimation.runs.config import load_run_config
    from core.matrix.io import read_affinity

    assert read_affinity(write(tmp_path / "m.json", matrix_json(seed=3, preprocessing=["zscore"]))).seed == 3
    assert read_affinity(write(tmp_path / "m.csv", "task,\u00e9,b\n\u00e9,1,0\nb,0,1e-3\n")).names == ("\u00e9", "b")
    assert read_affinity(write(tmp_path / "n.csv", "task,a,b\na, 1 ,-.5\nb,+2,1E+2\n")).values[1, 1] == 100.0
    cfg = load_run_config(text_config(tmp_path / "c", {"seed": 3, "val_fraction": 0.25, "max_train": 20,
                                                         "classes": ["pos", "neg"]}, BALANCED))
    assert list(cfg.taskset.names) == ["t1"]
    data = secret_file(tmp_path, "text,label\n" + "".join(f"x{i},{'a' if i % 2 else 'b'}\n" for i in range(30)))
    cfg = load_run_config(text_config(tmp_path / "c2", {"train": str(data), "format": "csv"}),
                          allow_paths=[data.parent])
    assert list(cfg.taskset.names) == ["t1"]  # the flag (whoever starts the run) may widen the sandbox


def _cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_alias_bomb_is_refused_within_seconds_in_a_real_process(tmp_path):
    cfg = raw_yaml(tmp_path, alias_bomb("tasks", width=10, levels=10))
    start = time.monotonic()
    proc = _cli(estimate_cli(cfg, tmp_path / "out"), tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "expands to more" in proc.stderr and time.monotonic() - start < 60
    assert not (tmp_path / "out").exists()


def test_unexpected_error_is_one_line_and_a_log_file(tmp_path):
    """A bug (here: a user-supplied estimator class that raises) ends in one line naming the log file,
    without the exception's text; the log holds the traceback."""
    write(tmp_path / "boom_estimator.py",
          "class Boom:\n    def __init__(self, **kw):\n"
          f"        raise RuntimeError('{SECRET} inside a crashing estimator')\n")
    logs = tmp_path / "logs"
    proc = _cli(estimate_cli(planted_config(tmp_path), tmp_path / "out", "--estimator", "boom_estimator:Boom"),
                tmp_path, env={"TASKAFFINITY_LOG_DIR": str(logs), "PYTHONPATH": f"{ROOT}:{tmp_path}"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode in (1, 2) and len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    if proc.returncode == 1:  # unexpected: the pointer to the log, never the exception's text
        assert "unexpected RuntimeError" in lines[0] and SECRET not in lines[0]
        log = Path(lines[0].split("details in ")[1].split(". Please")[0])
        assert log.parent == logs and "Traceback" in log.read_text() and SECRET in log.read_text()
        assert (log.stat().st_mode & 0o777) == 0o600


def test_group_progress_reports_long_steps(capsys):
    from core.grouping.cli import progress

    with progress("a slow step", every=0.2):
        time.sleep(0.5)
    with progress("a quick step", every=5):
        pass
    err = capsys.readouterr().err
    assert "a slow step: 0 s so far" in err and "a slow step: done" in err and "quick" not in err


def test_big_csv_is_refused_by_its_header_before_the_values_are_parsed():
    """3001 tasks of zeros: the refusal comes from the header row alone (fast and without the n*n floats)."""
    from core.matrix.io import parse_affinity

    data = square_csv(3001)
    start = time.monotonic()
    with pytest.raises(TaskAffinityError, match="3001 tasks"):
        parse_affinity(data, "csv", source="big.csv", max_tasks=3000)
    assert time.monotonic() - start < 2.0


if __name__ == "__main__":  # print the catalogue table of RELIABILITY.md
    import tempfile

    import torch

    from core.estimation.runs.orchestrator import run_estimation

    torch.set_num_threads(1)
    base = Path(tempfile.mkdtemp())
    saved = run_estimation(planted_config(base), out=base / "saved").path
    print("| # | surface | malformed input | message (abridged) | run folder unchanged |")
    print("|---|---|---|---|---|")
    ok = 0
    for i, case in enumerate(CASES, 75):
        work = base / case.id
        work.mkdir()
        message, before, after, _ = outcome(case, work, saved)
        good = all(f in message for f in case.expect) and SECRET not in message
        ok += good and before == after
        short = message.replace(str(work), "…").replace(str(base), "…").replace("|", "\\|")
        short = short if len(short) < 160 else short[:157] + "…"
        print(f"| {i} | {case.surface} | {case.what} | {short} | {'yes' if before == after else 'NO'} |")
    print(f"\n{ok} of {len(CASES)} handled")
