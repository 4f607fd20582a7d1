"""In-context function classes (Garg et al.) and the small GPT-2 that learns them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import InvalidInputError
from core.estimation.models.backends import get_backend
from core.estimation.data.builtin import builtin_taskset
from core.estimation.runs.config import load_run_config
from core.estimation.models.training import TrainSpec, per_sample_loss, perf, train_and_evaluate, train_multitask

torch.set_num_threads(1)
pytest.importorskip("transformers")
CONFIGS = Path(__file__).parents[2] / "sample_data" / "configs"


@pytest.fixture(scope="module")
def icl():
    return builtin_taskset("icl", dim=4, n_points=10, n_train=256, n_val=64, n_test=64, seed=0)


def test_function_classes_are_what_they_claim(icl):
    assert icl.names == ("linear", "sparse_linear", "tree", "relu_nn")
    for name in icl.names:
        x, y = icl[name].train.inputs, icl[name].train.targets
        assert x.shape == (256, 10, 4) and y.shape == (256, 10)
        assert 0.8 < y.var() < 1.2, (name, y.var())  # unit scale: predicting 0 gives mse ~ 1
    x, y = icl["linear"].train.inputs.astype(float), icl["linear"].train.targets.astype(float)
    w = np.linalg.lstsq(x[0], y[0], rcond=None)[0]
    assert np.allclose(x[0] @ w, y[0], atol=1e-4)  # each prompt is one linear function ...
    assert not np.allclose(x[1] @ w, y[1], atol=1e-1)  # ... drawn afresh for every prompt
    x, y = icl["sparse_linear"].train.inputs[0].astype(float), icl["sparse_linear"].train.targets[0].astype(float)
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    assert np.allclose(x @ w, y, atol=1e-4) and (np.abs(w) > 1e-4).sum() == 2  # sparsity dim // 2
    assert all(len(np.unique(p)) <= 8 for p in icl["tree"].train.targets)  # depth 3: at most 8 leaf values


def test_gpt2_learns_in_context_and_is_deterministic(icl):
    spec = TrainSpec(backend="gpt2-icl", steps=60, batch_size=32, lr=3e-3, eval_every=0, device="cpu")
    untrained = TrainSpec(backend="gpt2-icl", steps=1, batch_size=32, lr=1e-9, eval_every=0, device="cpu")
    before = per_sample_loss(train_multitask(icl, ["relu_nn"], untrained, seed=0), "relu_nn", "train").mean()
    model = train_multitask(icl, ["relu_nn"], spec, seed=0)
    after = per_sample_loss(model, "relu_nn", "train").mean()
    assert after < before - 0.2, (before, after)
    # one trunk (read-in + GPT-2) shared, one read-out per task; predictions at every x position
    pair = get_backend("gpt2-icl").build(icl, ["linear", "tree"], seed=0)
    (x, y), _ = get_backend("gpt2-icl").batch(icl["tree"], icl["tree"].test, torch.device("cpu"))
    assert pair((x, y), "tree").shape == (64, 10)
    assert [p.shape for p in pair.head("linear").parameters()] == [(1, 64), (1,)]
    # causal: changing the last y changes no prediction, changing the last x changes only the last one
    with torch.no_grad():
        out = pair((x, y), "tree")
        y2, x2 = y.clone(), x.clone()
        y2[:, -1] += 1.0
        x2[:, -1] += 1.0
        assert torch.equal(pair((x, y2), "tree"), out)
        changed = (pair((x2, y), "tree") - out).abs().amax(dim=0) > 0
        assert changed.tolist() == [False] * 9 + [True]
    a = train_and_evaluate(icl, ["linear", "tree"], TrainSpec(backend="gpt2-icl", steps=5, eval_every=5), seed=2)
    b = train_and_evaluate(icl, ["tree", "linear"], TrainSpec(backend="gpt2-icl", steps=5, eval_every=5), seed=2)
    c = train_and_evaluate(icl, ["linear", "tree"], TrainSpec(backend="gpt2-icl", steps=5, eval_every=5), seed=3)
    assert a.scores == b.scores and a.flops == b.flops and a.scores != c.scores
    assert perf(icl["tree"], a.scores["tree"]) == -a.scores["tree"].metric < 0


def test_bad_icl_parameters_and_sample_config():
    with pytest.raises(InvalidInputError, match="kind 'quadratic'"):
        builtin_taskset("icl", classes=["linear", "quadratic"])
    with pytest.raises(InvalidInputError, match="sparsity=9 exceeds dim=5"):
        builtin_taskset("icl", classes=[{"kind": "sparse_linear", "sparsity": 9}])
    with pytest.raises(InvalidInputError, match="n_embd=64 must be divisible by n_head=3"):
        get_backend("gpt2-icl", n_head=3)
    ts = builtin_taskset("icl", classes=["linear", {"kind": "linear", "name": "noisy", "noise": 0.5}], n_train=8, n_val=4,
                         n_test=4)
    assert ts.names == ("linear", "noisy") and ts["noisy"].info["noise"] == 0.5
    cfg = load_run_config(CONFIGS / "icl.yaml")
    assert cfg.spec.backend == "gpt2-icl" and len(cfg.taskset) >= 3
    assert all(t.input_kind == "icl" and t.metric == "mse" for t in cfg.taskset.values())
