"""Loaders and run configs read real files as a user would; malformed inputs fail with messages naming them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import InvalidInputError, UnknownNameError
from core.estimation.runs.config import load_run_config
from core.estimation.data.loaders import graph_tasks, read_graph, read_table
from core.estimation.models.training import TrainSpec, train_and_evaluate

torch.set_num_threads(1)
DATA = Path(__file__).parents[2].parent / "shared" / "data"
if not DATA.is_dir():  # a worktree one level deeper than the checkout
    DATA = Path(__file__).parents[2].parent.parent / "shared" / "data"
CONFIGS = Path(__file__).parents[2] / "sample_data" / "configs"
# The real public datasets lie beside the checkout (never in it); a checkout without them skips these tests.
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} not present (real datasets beside the checkout)")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_jsonl_and_saved_hf_dataset_tasks_from_a_toml_config(tmp_path):
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(0)
    rows = [(f"great film {i}" if i % 2 else f"awful plot {i}", "pos" if i % 2 else "neg") for i in range(40)]
    write(tmp_path / "reviews.csv", "review,sentiment\n" + "".join(f'"{t}, really",{l}\n' for t, l in rows))
    write(tmp_path / "pairs.jsonl", "".join(json.dumps({"a": f"q{i}", "b": f"r{i}", "y": int(rng.integers(2))}) + "\n"
                                            for i in range(30)))
    ds = datasets.DatasetDict({s: datasets.Dataset.from_dict({"sentence": [f"s{i}" for i in range(20)],
                                                              "label": [i % 3 for i in range(20)]})
                               for s in ("train", "validation")})
    ds.save_to_disk(str(tmp_path / "hf"))
    write(tmp_path / "run.toml", """
name = "mine"
[[tasks]]
name = "reviews"
train = "reviews.csv"
text = "review"
label = "sentiment"
[[tasks]]
name = "pairs"
train = "pairs.jsonl"
text = "a"
text_pair = "b"
label = "y"
max_train = 10
[[tasks]]
name = "hf3"
train = "hf"
train_split = "train"
val = "hf"
val_split = "validation"
text = "sentence"
label = "label"
[training]
steps = 5
""")
    cfg = load_run_config(tmp_path / "run.toml")
    assert cfg.taskset.names == ("reviews", "pairs", "hf3") and cfg.spec.steps == 5
    reviews = cfg.taskset["reviews"]
    assert reviews.label_names == ("neg", "pos") and reviews.input_kind == "text"
    assert sum(len(reviews.split(s)) for s in ("train", "val", "test")) == 40
    assert reviews.train.inputs[0].endswith(", really")  # the quoted comma stayed in the text
    pairs = cfg.taskset["pairs"]
    assert pairs.input_kind == "text_pair" and len(pairs.train) == 10 and pairs.train.inputs[0][0].startswith("q")
    hf3 = cfg.taskset["hf3"]
    assert hf3.n_classes == 3 and len(hf3.val) == 20


@pytest.mark.parametrize("body, needle", [
    ("tasks: [{name: t, train: missing.csv, text: x, label: y}]", "missing.csv"),
    ("tasks: [{name: t, train: d.csv, text: txt, label: y}]", "'txt'"),
    ("tasks: [{name: t, train: d.csv, text: x, label: y, lable: 1}]", "lable"),
    ("tasks: [{name: t, train: d.csv, text: x, label: y, classes: [a]}]", "outside the classes"),
    ("tasks: [{name: t, train: d.csv, text: x, label: y, max_train: 2}]", "at least"),
    ("tasks: [{builtin: plantd}]", "plantd"),
    ("tasks: [{name: t, train: d.csv, text: x, label: y}]\ntraining: {stepz: 3}", "stepz"),
    ("tasks: [{name: t, train: d.csv, text: x, label: y}]\ntraining: {backend: graph}", "does not take"),
    ("tasks: []", "tasks"),
    ("tasks: [{name: t, train: one.csv, text: x, label: y}]", "one class"),
    ("tasks: [{name: t, train: d.csv, text: x, label: y}, {name: t, train: d.csv, text: x, label: y}]", "twice"),
    ("tasks: [oops", "not valid YAML"),
])
def test_malformed_configs_fail_with_messages_naming_the_problem(tmp_path, body, needle):
    write(tmp_path / "d.csv", "x,y\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(30)))
    write(tmp_path / "one.csv", "x,y\n" + "".join(f"t{i},a\n" for i in range(30)))
    write(tmp_path / "run.yaml", body)
    with pytest.raises(InvalidInputError, match=needle.replace("[", r"\[")):
        load_run_config(tmp_path / "run.yaml")


@needs_data
def test_real_glue_and_lmbff_files_load_with_their_formats():
    cola = read_table(DATA / "glue_cola" / "dev.tsv", header=False, columns=["source", "label", "mark", "sentence"])
    assert len(cola) == 1043 and set(cola["label"]) == {"0", "1"}
    mrpc = read_table(DATA / "glue_mrpc" / "dev.tsv")
    assert len(mrpc) == 408 and "Quality" in mrpc.columns  # the BOM is stripped from the header
    trec = read_table(DATA / "lmbff_textcls" / "trec" / "test.jsonl")
    assert len(trec) == 500 and set(trec["label"]) == {str(i) for i in range(6)}


@needs_data
def test_text_config_reads_ten_real_tasks_from_shared_data(monkeypatch):
    monkeypatch.setenv("TASKAFFINITY_DATA", str(DATA))
    cfg = load_run_config(CONFIGS / "text.yaml")
    assert len(cfg.taskset) == 10
    assert cfg.taskset["trec"].n_classes == 6 and cfg.taskset["mrpc"].input_kind == "text_pair"
    assert all(len(t.train) <= 500 and len(t.test) <= 500 for t in cfg.taskset.values())


@needs_data
@pytest.mark.parametrize("args, n_labels", [
    (("graphs/blogcatalog/blogcatalog.mat",), 39),
    (("graphs/ppi_node2vec/ppi.edgelist", "graphs/ppi_node2vec/ppi-labels.txt"), 50),
    (("graphs/community_graphs/football.gml",), 12),
])
def test_real_graphs_give_one_task_per_label_and_train(args, n_labels):
    adj, y, names, nodes = read_graph(*(DATA / a for a in args))
    assert y.shape == (adj.shape[0], n_labels) and (adj != adj.T).nnz == 0
    ts = graph_tasks(adj, y, names, select=3, min_positive=5, max_train=200)
    assert len(ts) == 3 and all(t.input_kind == "graph_nodes" for t in ts.values())
    if n_labels != 12:
        return  # training on the 10k-node BlogCatalog is benchmark material; football trains here
    out = train_and_evaluate(ts, ts.names[:2], TrainSpec(backend="graph", steps=30, options={"dim": 16, "hidden": 16}), 0)
    assert set(out.scores) == set(ts.names[:2]) and all(0 <= s.metric <= 1 for s in out.scores.values())


@needs_data
def test_malformed_graph_inputs_fail_with_messages_naming_them(tmp_path):
    with pytest.raises(InvalidInputError, match="node-label file"):
        read_graph(write(tmp_path / "g.edgelist", "0 1\n1 2\n"))
    with pytest.raises(InvalidInputError, match="line 2"):
        read_graph(write(tmp_path / "h.edgelist", "0 1\n7\n"), write(tmp_path / "l.txt", "0 a\n1 b\n"))
    adj, y, names, _ = read_graph(DATA / "graphs" / "community_graphs" / "karate.gml")
    with pytest.raises(InvalidInputError, match="nope"):
        graph_tasks(adj, y, names, select=["nope"])


def test_builtin_configs_load_and_name_their_families():
    for name, n in (("planted", 9), ("digits", 10), ("graph", 8)):
        cfg = load_run_config(CONFIGS / f"{name}.yaml")
        assert len(cfg.taskset) == n and cfg.estimator["name"] == "pairwise"
    with pytest.raises(UnknownNameError, match="zz"):
        cfg.taskset["zz"]
