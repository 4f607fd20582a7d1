"""Grad-TAG end to end on MultiTaskNet: base reproduction, convex exactness, resumability, errors, registry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import InvalidInputError, UnknownNameError
from core.estimation.data.builtin.planted import planted_tasks
from core.estimation.models.training import TrainSpec, evaluate
from core.gradtag.pipeline import GradTAG

torch.set_num_threads(1)

# a linear/logistic model per task (no trunk): the linearised margin is exact
CONVEX = TrainSpec(backend="mlp", steps=600, batch_size=80, lr=0.05, eval_every=0, patience=0, device="cpu",
                   options={"hidden": 0})
# the same model stopped early: W0 is far from each subset's optimum, so fine-tuning moves it
UNDERTRAINED = TrainSpec(backend="mlp", steps=10, batch_size=80, lr=0.05, eval_every=0, patience=0, device="cpu",
                         options={"hidden": 0})
DEEP = TrainSpec(backend="mlp", steps=120, batch_size=32, lr=1e-2, eval_every=40, patience=2, device="cpu",
                 options={"hidden": [8]})


@pytest.fixture(scope="module")
def tasks():
    return planted_tasks(n_groups=2, tasks_per_group=2, dim=6, n_train=80, n_val=40, n_test=200,
                         kind="classification", seed=1)


@pytest.fixture(scope="module")
def convex(tasks):
    n_params = len(tasks) * (6 + 1) * 2
    return GradTAG(spec=CONVEX, dim=6 * n_params, projection="gaussian", reg=1e-3, split="test").prepare(tasks)


@pytest.fixture(scope="module")
def undertrained(tasks):
    n_params = len(tasks) * (6 + 1) * 2
    return GradTAG(spec=UNDERTRAINED, dim=6 * n_params, projection="gaussian", reg=1e-3, split="test").prepare(tasks)


def test_zero_theta_and_full_set_fit_reproduce_the_base_model(tasks, convex):
    names = tasks.names
    base = {t: evaluate(convex.base_, t, "test") for t in names}
    convex.fit_subsets([names])
    from core.gradtag.lift import LiftedEvaluator

    at_zero = LiftedEvaluator(convex.base_, convex.computer_, convex.projector_).scores(
        torch.zeros(convex.dim_), names, "test")
    for t in names:
        assert at_zero[t].loss == pytest.approx(base[t].loss, abs=1e-6)
    # the base minimises the full-set training loss, so the full-set fit barely moves it
    est = convex.estimate([names]).set_index("task")
    for t in names:
        assert est.loc[t, "loss"] == pytest.approx(base[t].loss, rel=0.01)


def _fine_tune(model, computer, subset, reg):
    """Real fine-tuning of the network on ``subset``'s training data from W0 (full-batch L-BFGS on the
    same objective: mean cross-entropy over the subset's rows + reg ||delta||^2)."""
    net, ts = model.net, model.taskset
    w0 = computer.flat_params(net).clone()
    delta = torch.zeros_like(w0, requires_grad=True)
    data = {t: model.backend.batch(ts[t], ts[t].train, model.device) for t in subset}
    n = sum(len(y) for _, y in data.values())
    opt = torch.optim.LBFGS([delta], lr=1, max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")
    params = dict(net.named_parameters())
    offsets = np.cumsum([0] + [params[k].numel() for k in computer.names_])

    def closure():
        opt.zero_grad()
        weights = {k: w0[a:b].reshape(params[k].shape) + delta[a:b].reshape(params[k].shape)
                   for k, a, b in zip(computer.names_, offsets[:-1], offsets[1:])}
        loss = sum(torch.nn.functional.cross_entropy(torch.func.functional_call(net, weights, (x, t)), y,
                                                     reduction="sum") for t, (x, y) in data.items()) / n
        loss = loss + reg * (delta * delta).sum()
        loss.backward()
        return loss
    opt.step(closure)
    computer.set_flat(net, w0 + delta.detach())
    try:
        return {t: evaluate(model, t, "test").loss for t in subset}
    finally:
        computer.set_flat(net, w0)


def test_convex_model_estimate_matches_real_fine_tuning(tasks, undertrained):
    g = undertrained
    subsets = [("g0_t0",), ("g0_t0", "g1_t1"), ("g0_t1", "g1_t0", "g1_t1")]
    est = g.estimate(subsets)
    moved = []
    for s in subsets:
        real = _fine_tune(g.base_, g.computer_, s, reg=1e-3)
        got = est[est["subset"] == s].set_index("task")["loss"]
        for t in s:
            base = evaluate(g.base_, t, "test").loss
            moved.append(abs(real[t] - base) / base)
            assert got[t] == pytest.approx(real[t], rel=0.02), (s, t)
    assert min(moved) > 0.05  # the fine-tuned losses differ from the base: the match is not trivial


def test_fit_builds_affinity_through_higher_order_aggregation(tasks, tmp_path):
    g = GradTAG(spec=DEEP, dim=32, subset_size=2, split="val", store_dir=tmp_path / "st").fit(tasks)
    assert g.affinity_.names == tasks.names and g.affinity_.estimator == "gradtag"
    assert np.isfinite(g.affinity_.values).all()
    assert set(g.outcomes_["subset"].map(len)) == {1, 2}  # singletons (baseline) + pairs
    assert {"base", "gradients", "scoring", "lifting"} <= set(g.stage_costs_)
    assert g.cost_["flops"] > 0 and 0 < g.cost_["flops_without_base"] < g.cost_["flops"]
    # a rerun on the same store loads the base weights and the gradients instead of recomputing
    again = GradTAG(spec=DEEP, dim=32, subset_size=2, split="val", store_dir=tmp_path / "st").fit(tasks)
    assert "loaded" in again.stage_costs_["base"] and again.stage_costs_["gradients"]["resumed_batches"] > 0
    np.testing.assert_allclose(again.affinity_.values, g.affinity_.values, atol=1e-6)


def test_bad_settings_are_clear_errors(tasks, convex):
    with pytest.raises(InvalidInputError, match="projection dimension"):
        GradTAG(spec=DEEP, dim=0).fit(tasks)
    with pytest.raises(UnknownNameError, match="valid layer names"):
        GradTAG(spec=DEEP, params=["encoder.layer.11"]).prepare(tasks)
    with pytest.raises(InvalidInputError, match="empty subset"):
        convex.estimate([()])
    with pytest.raises(InvalidInputError, match="no subsets"):
        convex.estimate([])
    with pytest.raises(UnknownNameError, match="unknown task"):
        convex.estimate([("nope",)])


def test_registry_plugin_writes_the_run_folder_like_other_estimators(tasks, tmp_path):
    from types import SimpleNamespace

    import core.estimation.estimators.gradtag  # noqa: F401  (registers "gradtag")
    from core.estimation.runs.orchestrator import run_estimation
    from core.estimation.runs.folder import load_run

    cfg = SimpleNamespace(taskset=tasks, spec=DEEP, estimator={}, raw={}, name="gt", path=None)
    opts = {"dim": 32, "subset_size": 2, "cache_dir": str(tmp_path / "cache")}
    run = run_estimation(cfg, out=tmp_path / "run", estimator="gradtag", options=opts)
    assert run.status == "complete" and run.manifest["estimator"] == "gradtag"
    assert "gradtag" in run.matrices and run.main.estimator == "gradtag"
    res = run.results()
    assert set(res["kind"]) == {"gradtag"} and set(res["subset"].map(lambda s: s.count("|") + 1)) == {1, 2}
    assert run.main.cost["trainings"] == 1 and run.main.cost["flops"] > 0
    # the same estimates as the orchestrator used directly
    direct = GradTAG(spec=DEEP, dim=32, subset_size=2, split="val").fit(tasks)
    np.testing.assert_allclose(run.main.values, direct.affinity_.values, atol=1e-5)
    again = run_estimation(cfg, out=tmp_path / "run", estimator="gradtag", options=opts, resume=True)
    np.testing.assert_allclose(load_run(tmp_path / "run").main.values, again.main.values)
