"""Lift a subset's coefficients back to weights ``W0 + P theta`` and score the real network.

This is where Grad-TAG's estimate becomes a loss and a metric: the differentiated
parameters of the base network are set to ``W0 + P theta_S`` (``P`` regenerated
block-wise from the projector's seed), each task of ``S`` is evaluated with a real
forward pass through the backend's own evaluation code, and the base weights are
restored exactly (copied back, not subtracted, so no rounding drift accumulates).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from core.estimation.models.training import _evaluate
from core.gradtag.gradients import GradientComputer
from core.gradtag.projector import Projector


class LiftedEvaluator:
    """Evaluate ``W0 + P theta`` on tasks of a trained model.

    Parameters
    ----------
    model : core.estimation.models.training.TrainedModel
        The base model (its ``net`` is modified in place during :meth:`scores` and restored).
    computer : GradientComputer
        Bound to ``model.net``: says which parameters ``P theta`` applies to.
    projector : Projector
    """

    def __init__(self, model: Any, computer: GradientComputer, projector: Projector):
        self.model = model
        self.computer = computer
        self.projector = projector
        self.w0 = computer.flat_params(model.net).clone()
        self.flops_ = 0.0

    def delta(self, theta: torch.Tensor) -> torch.Tensor:
        """The weight change ``P theta`` (flat)."""
        self.flops_ += self.projector.flops_per_vector()
        return self.projector.lift(theta.to(self.w0.device))

    def scores(self, theta: torch.Tensor, tasks: Sequence[str], split: str) -> dict[str, Any]:
        """``{task: TaskScore}`` of the real network with weights ``W0 + P theta``."""
        net = self.model.net
        self.computer.set_flat(net, self.w0 + self.delta(theta))
        try:
            out = {}
            for name in tasks:
                out[name], flops = _evaluate(self.model, name, split)
                self.flops_ += flops  # the backend's forward rule (per token for transformers)
            return out
        finally:
            self.computer.set_flat(net, self.w0)
