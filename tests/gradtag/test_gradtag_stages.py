"""Grad-TAG stages on small torch modules: projector, per-sample gradients, resumable store, subset scorer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from core.errors import InvalidInputError, RunStateError, UnknownNameError
from core.estimation.data.tasks import Split, Task, TaskSet
from core.gradtag.collect import collect_gradients
from core.gradtag.gradients import PerSampleGradients, classification_margin, select_parameters
from core.gradtag.projector import PROJECTORS, inner_product_distortion, jl_epsilon, make_projector
from core.gradtag.scorer import LogisticLinearScorer
from core.gradtag.store import MemmapGradientStore

torch.set_num_threads(1)


class TinyMultiTask(torch.nn.Module):
    """Shared trunk + one head per task, forward(inputs, task) like MultiTaskNet."""

    def __init__(self, tasks, d_in=5, hidden=6, n_classes=3):
        super().__init__()
        self.tasks = tuple(tasks)
        self.trunk = torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.Tanh())
        self.heads = torch.nn.ModuleDict({t: torch.nn.Linear(hidden, n_classes) for t in tasks})

    def forward(self, inputs, task):
        return self.heads[task](self.trunk(inputs))


def _taskset(n=23, d_in=5, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    tasks = []
    for name in ("a", "b"):
        def split(m):
            y = rng.integers(0, n_classes, m)
            y[:n_classes] = np.arange(n_classes)
            return Split(rng.normal(size=(m, d_in)).astype(np.float32), y)
        tasks.append(Task(name, split(n), split(8), split(8), n_classes=n_classes))
    return TaskSet(tasks)


def _make_batch(task, split):
    return torch.as_tensor(split.inputs), torch.as_tensor(split.targets)


# -- projector ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(PROJECTORS))
def test_projection_preserves_inner_products_within_jl_bound(kind):
    torch.manual_seed(0)
    vectors = torch.randn(20, 3000)
    dim = 800
    proj = make_projector(kind, 3000, dim, seed=7, block_size=1000)
    dist = inner_product_distortion(proj, vectors)
    assert dist["max"] <= jl_epsilon(20, dim)
    assert dist["mean"] < 0.1


@pytest.mark.parametrize("kind", sorted(PROJECTORS))
def test_lift_is_the_adjoint_of_project_and_blockwise_generation_is_seeded(kind):
    a = make_projector(kind, 1000, 30, seed=3, block_size=128, cache_bytes=0)
    b = make_projector(kind, 1000, 30, seed=3, block_size=128)
    g, theta = torch.randn(4, 1000), torch.randn(30)
    assert torch.allclose(a.project(g), b.project(g), atol=1e-5)
    assert torch.allclose(g @ a.lift(theta), a.project(g) @ theta, atol=1e-3)
    other = make_projector(kind, 1000, 30, seed=4, block_size=128)
    assert not torch.allclose(a.project(g), other.project(g))


@pytest.mark.parametrize("dim", [0, -3, 2.5, None, True])
def test_bad_projection_dimension_is_a_clear_error(dim):
    with pytest.raises(InvalidInputError, match="projection dimension"):
        make_projector("gaussian", 100, dim)
    with pytest.raises(UnknownNameError, match="rademacher"):
        make_projector("sparse-ish", 100, 10)


# -- gradients ---------------------------------------------------------------------------------------
def test_margin_is_log_odds_of_the_correct_label():
    logits = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 3.0]])
    y = torch.tensor([1, 0])
    p = logits.softmax(1)[torch.arange(2), y]
    assert torch.allclose(classification_margin(logits, y), torch.log(p / (1 - p)), atol=1e-5)


def test_vmap_and_loop_gradients_agree_with_autograd_and_respect_the_selection():
    torch.manual_seed(0)
    model = TinyMultiTask(["a", "b"])
    x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))
    gv, mv = PerSampleGradients(method="vmap").compute(model, x, y, "classification", {"task": "a"})
    gl, ml = PerSampleGradients(method="loop").compute(model, x, y, "classification", {"task": "a"})
    assert gv.shape == (7, sum(p.numel() for p in model.parameters()))
    assert torch.allclose(gv, gl, atol=1e-5) and torch.allclose(mv, ml, atol=1e-6)
    # head "b" does not touch task "a": its gradient block is zero
    comp = PerSampleGradients(params=["heads.b", "trunk.0"]).bind(model)
    assert comp.names_ == ["trunk.0.weight", "trunk.0.bias", "heads.b.weight", "heads.b.bias"]
    g, _ = comp.compute(model, x, y, "classification", {"task": "a"})
    assert g[:, 36:].abs().max() == 0 and g[:, :36].abs().max() > 0


def test_unknown_layer_name_lists_valid_ones():
    model = TinyMultiTask(["a", "b"])
    with pytest.raises(UnknownNameError, match=r"valid layer names are: trunk\.0, heads\.a, heads\.b"):
        select_parameters(model, ["encoder.layer.5"])
    with pytest.raises(UnknownNameError):
        select_parameters(model, ["trunk.00"])  # a prefix must end at a module boundary
    with pytest.raises(UnknownNameError, match="gradient method"):
        PerSampleGradients(method="jvp")


# -- store (resumable) -------------------------------------------------------------------------------
class Interrupt(Exception):
    pass


def test_interrupted_gradient_computation_resumes_from_last_completed_batch(tmp_path):
    torch.manual_seed(0)
    ts = _taskset()
    model = TinyMultiTask(ts.names)
    comp = PerSampleGradients()
    comp.bind(model)
    proj = make_projector("rademacher", comp.n_params_, 16, seed=1)
    full, _ = collect_gradients(model, ts, ts.names, _make_batch, PerSampleGradients(), proj, MemmapGradientStore(tmp_path / "full"),
                                batch_size=5)
    expected = full.load()
    assert full.complete and len(full.batches) == 10  # 23 rows per task -> 5 batches each

    def boom(index):
        if index == 3:
            raise Interrupt
    with pytest.raises(Interrupt):
        collect_gradients(model, ts, ts.names, _make_batch, PerSampleGradients(), proj, MemmapGradientStore(tmp_path / "s"), batch_size=5,
                          on_batch=boom)
    partial = MemmapGradientStore.open(tmp_path / "s" / "gradients")
    assert partial.completed == 4 and not partial.complete
    with pytest.raises(RunStateError, match="incomplete"):
        partial.load()
    seen = []
    store, info = collect_gradients(model, ts, ts.names, _make_batch, PerSampleGradients(), proj, MemmapGradientStore(tmp_path / "s"),
                                    batch_size=5, on_batch=seen.append)
    assert seen == list(range(4, 10)) and info["batches_computed"] == 6
    got = store.load()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-6)
    # a store for other weights is refused, not mixed
    with torch.no_grad():
        model.trunk[0].weight.add_(1.0)
    with pytest.raises(RunStateError, match="model"):
        collect_gradients(model, ts, ts.names, _make_batch, PerSampleGradients(), proj, MemmapGradientStore(tmp_path / "s"), batch_size=5)


# -- scorer ------------------------------------------------------------------------------------------
def test_batched_newton_matches_a_reference_optimiser_and_zero_theta_is_the_base():
    rng = np.random.default_rng(0)
    n, d = 300, 8
    phi, f0 = rng.normal(size=(n, d)), rng.normal(size=n)
    masks = np.zeros((3, n), bool)
    masks[0, :100], masks[1, 100:], masks[2] = True, True, True
    reg = 1e-2
    theta = LogisticLinearScorer(reg=reg).fit(phi, f0, np.zeros(n), masks).numpy()
    for b in range(3):
        idx = masks[b]

        def fun(t):
            return np.mean(np.logaddexp(0, -(f0[idx] + phi[idx] @ t))) + reg * t @ t
        ref = minimize(fun, np.zeros(d), method="BFGS", options={"gtol": 1e-10}).x
        np.testing.assert_allclose(theta[b], ref, atol=1e-4)
    # data already fitted (huge margins) -> theta stays ~0
    theta0 = LogisticLinearScorer(reg=reg).fit(phi, np.full(n, 40.0), np.zeros(n), masks[:1]).numpy()
    assert np.abs(theta0).max() < 1e-8


def test_least_squares_scorer_is_ridge():
    rng = np.random.default_rng(1)
    phi, f0, y = rng.normal(size=(50, 4)), rng.normal(size=50), rng.normal(size=50)
    mask = np.ones((1, 50), bool)
    theta = LogisticLinearScorer(reg=0.1).fit(phi, f0, y, mask, regression=np.ones(50, bool)).numpy()[0]
    ref = np.linalg.solve(phi.T @ phi / 50 + 0.1 * np.eye(4), phi.T @ (y - f0) / 50)
    np.testing.assert_allclose(theta, ref, atol=1e-5)
    # per-task sufficient statistics give the same fits as Newton on the rows
    groups = np.repeat(np.arange(5), 10)
    masks = np.stack([np.isin(groups, [0, 2]), np.isin(groups, [1, 3, 4]), np.ones(50, bool)])
    sq = np.ones(50, bool)
    fast = LogisticLinearScorer(reg=0.1)
    a = fast.fit(phi, f0, y, masks, regression=sq, groups=groups).numpy()
    slow = LogisticLinearScorer(reg=0.1)
    b = slow.fit(phi, f0, y, masks, regression=sq).numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert fast.flops_ < slow.flops_


def test_scorer_bad_settings():
    with pytest.raises(InvalidInputError, match="reg"):
        LogisticLinearScorer(reg=-1)
    with pytest.raises(InvalidInputError, match="max_iter"):
        LogisticLinearScorer(max_iter=0)
    with pytest.raises(InvalidInputError, match="no training rows"):
        LogisticLinearScorer().fit(np.ones((4, 2)), np.zeros(4), np.zeros(4), np.zeros((1, 4), bool))
