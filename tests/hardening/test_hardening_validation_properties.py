"""Property tests (hypothesis) of the validation layer every file goes through (core.inputs and its users:
the matrix reader, the run-config reader, the manifest reader).

The contract: whatever the bytes, a reader returns the data or raises a TaskAffinityError with a
one-line message; nesting, types and encodings are refused by rule, not by accident; and valid data
within the bounds reads back unchanged. ``derandomize=True`` keeps the suite reproducible.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.errors import InvalidInputError, RunStateError, TaskAffinityError  # noqa: E402
from core.estimation.runs.folder import RunDir  # noqa: E402
from core.matrix.io import parse_affinity, to_csv_text, to_json_dict  # noqa: E402
from core.inputs import (MAX_DEPTH, MAX_NODES, bracket_depth, expanded_size, loads_json,  # noqa: E402
                           loads_yaml, name_problem)

PROPS = settings(max_examples=60, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                           max_leaves=30)


def depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def one_line(exc: BaseException) -> None:
    msg = str(exc)
    assert msg.strip() and "\n" not in msg and "Traceback" not in msg


# ---------------------------------------------------------------- nesting
@PROPS
@given(value=JSON_VALUES)
def test_json_within_bounds_reads_back_unchanged(value):
    assert loads_json(json.dumps(value), "prop") == value


@PROPS
@given(d=st.integers(0, 5000), opener=st.sampled_from(["[", '{"a":']), closed=st.booleans())
def test_json_nesting_is_refused_exactly_above_the_bound(d, opener, closed):
    closer = "]" if opener == "[" else "}"
    text = opener * d + ("1" if opener != "[" else "") + (closer * d if closed else "")
    if d > MAX_DEPTH:
        with pytest.raises(InvalidInputError, match="nested") as info:
            loads_json(text, "prop")
        one_line(info.value)
    else:
        try:
            loads_json(text, "prop")
        except InvalidInputError as exc:  # unclosed: a syntax error, still one line
            assert not closed
            one_line(exc)


@PROPS
@given(d=st.integers(0, 400), flow=st.booleans())
def test_yaml_nesting_is_refused_above_the_bound(d, flow):
    text = ("a: " + "[" * d + "]" * d) if flow else "".join("  " * i + f"k{i}:\n" for i in range(d)) + "  " * d + "v"
    try:
        data = loads_yaml(text, "prop")
    except InvalidInputError as exc:
        one_line(exc)
        assert d >= MAX_DEPTH - 1
        return
    assert depth(data) <= MAX_DEPTH + 1


@PROPS
@given(width=st.integers(1, 12), levels=st.integers(1, 10))
def test_alias_expansion_is_bounded(width, levels):
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    text = "\n".join(lines) + "\n"
    total = sum(width ** i for i in range(1, levels + 1))  # leaves over all levels, a lower bound
    try:
        data = loads_yaml(text, "prop")
    except InvalidInputError as exc:
        one_line(exc)
        assert total > 1000 or "aliases" in str(exc)
        return
    assert expanded_size(data) <= MAX_NODES


@PROPS
@given(data=st.binary(max_size=200))
def test_bracket_depth_never_fails(data):
    assert bracket_depth(data) >= 0


# ---------------------------------------------------------------- types
@PROPS
@given(key=st.sampled_from(["seed", "preprocessing", "metric", "cost", "names", "values", "version", "format",
                            "uncertainty", "notes"]), value=JSON_VALUES)
def test_matrix_metadata_of_any_type_loads_or_is_refused(key, value):
    obj = {"format": "taskaffinity.affinity", "version": 1, "names": ["a", "b"], "values": [[1.0, 0.0], [0.0, 1.0]]}
    obj[key] = value
    try:
        m = parse_affinity(json.dumps(obj).encode(), "json", source="prop")
    except InvalidInputError as exc:
        one_line(exc)
        return
    assert m.n == 2 and np.isfinite(m.values).all()
    if key == "seed" and value is not None:
        assert isinstance(value, int) and not isinstance(value, bool) and m.seed == value


@PROPS
@given(key=st.sampled_from(["tasks", "config", "cost", "progress", "status", "name", "seeds", "events", "estimator",
                            "version", "created"]), value=JSON_VALUES)
def test_manifest_fields_of_any_type_read_or_are_refused(tmp_path_factory, key, value):
    run = tmp_path_factory.mktemp("run")
    manifest = {"format": "taskaffinity.run", "version": 1, "status": "complete", "tasks": ["a"]}
    manifest[key] = value
    RunDir(run).manifest_path.write_text(json.dumps(manifest))
    try:
        RunDir(run).read_manifest()
        RunDir(run).overview()
    except RunStateError as exc:
        one_line(exc)


TASK_KEYS = ["name", "seed", "val_fraction", "label", "classes", "max_train", "text", "train", "metric", "header",
             "group", "test_fraction"]


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(TASK_KEYS + ["params.n_groups", "params.dim", "params.n_train", "training.steps",
                                        "training.options", "name_top", "defaults", "seeds"]),
       value=JSON_VALUES)
def test_config_fields_of_any_type_load_or_are_refused(tmp_path_factory, key, value):
    from core.estimation.runs.config import load_run_config

    tmp = tmp_path_factory.mktemp("cfg")
    (tmp / "train.csv").write_text("text,label\n" + "".join(f"x {i},{'p' if i % 2 else 'n'}\n" for i in range(30)))
    text_task = {"name": "t1", "train": "train.csv", "text": "text", "label": "label"}
    planted = {"builtin": "planted", "params": {"n_groups": 2, "tasks_per_group": 1, "dim": 4, "n_train": 8,
                                                 "n_val": 4, "n_test": 4}}
    cfg = {"name": "p", "tasks": [text_task, planted], "training": {"backend": "mlp", "steps": 2}}
    if key in TASK_KEYS:
        text_task[key] = value
    elif key.startswith("params."):
        planted["params"][key.split(".")[1]] = value
    elif key.startswith("training."):
        cfg["training"][key.split(".")[1]] = value
    else:
        cfg[key.removesuffix("_top")] = value
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    try:
        load_run_config(path)
    except TaskAffinityError as exc:
        one_line(exc)


# ---------------------------------------------------------------- encodings and names
NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)


@PROPS
@given(names=st.lists(NAMES, min_size=2, max_size=4, unique=True),
       codec=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "utf-32"]),
       kind=st.sampled_from(["csv", "json"]))
def test_matrix_text_in_any_encoding_loads_or_is_refused(names, codec, kind):
    from core.matrix.affinity import AffinityMatrix

    usable = all(name_problem(x.strip()) is None for x in names) and len({x.strip() for x in names}) == len(names)
    if not usable:  # the names themselves are refused when built: the writer can never write them
        with pytest.raises(InvalidInputError):
            AffinityMatrix(names=names, values=np.eye(len(names)))
        return
    m = AffinityMatrix(names=names, values=np.eye(len(names)))
    text = to_csv_text(m) if kind == "csv" else json.dumps(to_json_dict(m), ensure_ascii=False)
    try:
        data = text.encode(codec)
    except UnicodeEncodeError:
        return
    try:
        back = parse_affinity(data, kind, source="prop")
    except InvalidInputError as exc:
        one_line(exc)
        assert codec not in ("utf-8", "utf-8-sig"), f"UTF-8 text refused: {exc}"
        return
    if codec in ("utf-8", "utf-8-sig"):
        assert list(back.names) == [x.strip() for x in names]


@PROPS
@given(cell=st.text(max_size=6))
def test_csv_cells_are_plain_decimal_numbers_or_refused(cell):
    data = f"task,a,b\na,{json.dumps(cell) if ',' in cell or chr(34) in cell else cell},0\nb,0,1\n".encode(
        "utf-8", "surrogatepass")
    try:
        m = parse_affinity(data, "csv", source="prop")
    except InvalidInputError as exc:
        one_line(exc)
        return
    s = cell.strip()
    assert s.isascii() and "_" not in s
    assert math.isfinite(float(s)) and m.values[0, 0] == float(s)
