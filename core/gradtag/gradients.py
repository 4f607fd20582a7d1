"""Per-sample gradients of a model's output margin, over all parameters or a chosen subset.

Grad-TAG linearises the model around the base weights ``W0``: for a sample ``x``
with label ``y`` it differentiates a scalar output ``f(x; W)``:

- classification: the margin ``log(p_y / (1 - p_y)) = z_y - logsumexp_{c != y} z_c``
  of the correct label (for two classes, ``z_y - z_other``). Its logistic loss
  ``log(1 + exp(-f))`` equals the cross-entropy, so a logistic regression on the
  linearised margin is the linearised training objective;
- regression: the prediction itself (fitted by least squares).

Gradients are computed with ``torch.func.vmap(grad(...))`` over
``functional_call`` in batches. Some models (recent Hugging Face transformers
among them) contain data-dependent Python checks that vmap cannot trace; with
``method="auto"`` the first failing batch switches to a loop of
``torch.autograd.grad`` per sample, and ``method_used_`` says which ran.
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any, Callable, Mapping, Sequence

import torch
from torch.func import functional_call, grad, vmap
from torch.utils._pytree import tree_map

from core.errors import InvalidInputError, UnknownNameError

METHODS = ("auto", "vmap", "loop")


def classification_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log(p_y / (1 - p_y))`` per row of ``logits (b, C)`` for integer ``labels (b,)``."""
    labels = labels.long()
    z_y = logits.gather(1, labels[:, None])[:, 0]
    is_y = torch.arange(logits.shape[1], device=logits.device)[None, :] == labels[:, None]  # vmap-safe one-hot
    others = torch.where(is_y, torch.full_like(logits, float("-inf")), logits)
    return z_y - torch.logsumexp(others, dim=1)


def regression_output(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The prediction itself, shape (b,)."""
    return outputs.reshape(outputs.shape[0], -1)[:, 0]


def margin_fn(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The differentiated output for a task kind ("classification" or "regression")."""
    if kind == "classification":
        return classification_margin
    if kind == "regression":
        return regression_output
    raise InvalidInputError(f"unknown task kind {kind!r}; Grad-TAG handles classification and regression.")


def select_parameters(model: torch.nn.Module, prefixes: Sequence[str] | None) -> list[str]:
    """Names of the trainable parameters whose name starts with one of ``prefixes`` (all when None).

    A prefix matches a whole name or a dotted module path (``"trunk.2"`` matches
    ``"trunk.2.weight"`` but not ``"trunk.20.weight"``). A prefix matching nothing is
    an error that lists the valid module paths.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if not names:
        raise InvalidInputError("the model has no trainable parameters to differentiate.")
    if prefixes is None:
        return names
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    prefixes = list(prefixes)
    if not prefixes:
        raise InvalidInputError("empty list of parameter names; give at least one prefix, or None for all.")
    chosen: list[str] = []
    for prefix in prefixes:
        hits = [n for n in names if n == prefix or n.startswith(prefix.rstrip(".") + ".")]
        if not hits:
            shown = _compact_modules(names)
            raise UnknownNameError(
                f"no trainable parameter matches {prefix!r}; valid layer names are: {shown}")
        chosen += [n for n in hits if n not in chosen]
    return [n for n in names if n in chosen]  # model order, so flat vectors are reproducible


def _compact_modules(names: Sequence[str]) -> str:
    """Module paths of ``names``, numbered blocks folded: ``encoder.layer.{0-5}.output.dense``."""
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    for name in names:
        path = name.rsplit(".", 1)[0] if "." in name else name
        parts = path.split(".")
        nums = [i for i, p in enumerate(parts) if p.isdigit()]
        if nums:
            i = nums[0]
            key = ".".join(parts[:i] + ["{}"] + parts[i + 1:])
            idx = int(parts[i])
        else:
            key, idx = path, -1
        if key not in groups:
            groups[key] = []
            order.append(key)
        if idx not in groups[key]:
            groups[key].append(idx)
    out = []
    for key in order:
        idx = sorted(groups[key])
        if idx == [-1]:
            out.append(key)
        else:
            span = f"{idx[0]}" if len(idx) == 1 else (
                f"{idx[0]}-{idx[-1]}" if idx == list(range(idx[0], idx[-1] + 1)) else ",".join(map(str, idx)))
            out.append(key.replace("{}", "{" + span + "}") if len(idx) > 1 else key.replace("{}", span))
    return ", ".join(out)


def _unsqueeze(x: Any) -> Any:
    return tree_map(lambda t: t.unsqueeze(0) if isinstance(t, torch.Tensor) else t, x)


def _index(x: Any, i: int) -> Any:
    return tree_map(lambda t: t[i:i + 1] if isinstance(t, torch.Tensor) else t, x)


class GradientComputer(ABC):
    """Stage "gradients": per-sample gradients of the model's scalar output, one flat row per sample.

    A subclass chooses the parameters in :meth:`bind` (setting ``names_`` and ``n_params_``,
    the flat order the projector and the lifting rely on) and computes gradients in
    :meth:`compute`. :meth:`flat_params` and :meth:`set_flat` follow ``names_``.

    Attributes
    ----------
    names_ : list of str
        Differentiated parameter names, in order of the flat vector (set by ``bind``).
    n_params_ : int
        Length of the flat vector (set by ``bind``).
    method_used_ : str or None
        How the last gradients were computed (recorded in the stage costs).
    """

    method_used_: str | None = None

    @abstractmethod
    def bind(self, model: torch.nn.Module) -> "GradientComputer":
        """Choose the parameters of ``model`` to differentiate; sets ``names_`` and ``n_params_``."""

    @abstractmethod
    def compute(self, model: torch.nn.Module, inputs: Any, targets: torch.Tensor, kind: str,
                kwargs: Mapping[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat gradients ``(b, n_params_)`` and the differentiated outputs ``(b,)`` of one batch."""

    def flat_params(self, model: torch.nn.Module) -> torch.Tensor:
        """The selected parameters of ``model`` as one flat vector (same order as gradients)."""
        params = dict(model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names_])

    def set_flat(self, model: torch.nn.Module, flat: torch.Tensor) -> None:
        """Overwrite the selected parameters of ``model`` in place with the flat vector ``flat``."""
        params = dict(model.named_parameters())
        if flat.numel() != self.n_params_:
            raise InvalidInputError(f"flat vector has {flat.numel()} entries, expected {self.n_params_}.")
        offset = 0
        with torch.no_grad():
            for n in self.names_:
                p = params[n]
                k = p.numel()
                p.copy_(flat[offset:offset + k].reshape(p.shape).to(p.device, p.dtype))
                offset += k


class PerSampleGradients(GradientComputer):
    """Per-sample gradients of the margin (vmap, or a per-sample autograd loop), flattened over the selected parameters.

    Parameters
    ----------
    params : sequence of str, optional
        Parameter-name prefixes to differentiate (e.g. ``["trunk.2", "heads"]``); None means all.
    method : {"auto", "vmap", "loop"}
        ``auto`` tries vmap and falls back to a per-sample autograd loop if vmap fails.
    chunk_size : int, optional
        Passed to vmap to bound memory.

    Attributes
    ----------
    names_ : list of str
        Differentiated parameter names, in order of the flat vector.
    n_params_ : int
    method_used_ : str
        "vmap" or "loop" (set on the first batch).
    fallback_reason_ : str or None
        The error that made ``auto`` fall back to the loop.
    """

    def __init__(self, params: Sequence[str] | None = None, method: str = "auto", chunk_size: int | None = None):
        if method not in METHODS:
            raise UnknownNameError(f"unknown gradient method {method!r}; choose one of {', '.join(METHODS)}.")
        self.params = params
        self.method = method
        self.chunk_size = chunk_size
        self.method_used_: str | None = None
        self.fallback_reason_: str | None = None

    def bind(self, model: torch.nn.Module) -> "PerSampleGradients":
        """Choose the parameters of ``model`` to differentiate (validates the names)."""
        self.names_ = select_parameters(model, self.params)
        params = dict(model.named_parameters())
        self.shapes_ = [tuple(params[n].shape) for n in self.names_]
        self.n_params_ = int(sum(params[n].numel() for n in self.names_))
        return self

    def compute(self, model: torch.nn.Module, inputs: Any, targets: torch.Tensor, kind: str,
                kwargs: Mapping[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat gradients ``(b, n_params_)`` and margins ``(b,)`` for one batch.

        ``model(inputs, **kwargs)`` must return per-row outputs; the model is put in eval mode.
        """
        if not hasattr(self, "names_"):
            self.bind(model)
        model.eval()
        fn = margin_fn(kind)
        kwargs = dict(kwargs or {})
        if self.method_used_ == "loop" or self.method == "loop":
            self.method_used_ = "loop"
            return self._loop(model, inputs, targets, fn, kwargs)
        try:
            out = self._vmap(model, inputs, targets, fn, kwargs)
            self.method_used_ = "vmap"
            return out
        except Exception as exc:  # vmap cannot trace some models; the loop can
            if self.method == "vmap":
                raise
            self.fallback_reason_ = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            warnings.warn(f"vmap per-sample gradients failed ({self.fallback_reason_}); "
                          "falling back to a per-sample autograd loop.", RuntimeWarning, stacklevel=2)
            self.method_used_ = "loop"
            return self._loop(model, inputs, targets, fn, kwargs)

    def _vmap(self, model, inputs, targets, fn, kwargs):
        all_params = dict(model.named_parameters())
        chosen = {n: all_params[n].detach() for n in self.names_}
        fixed = {n: p.detach() for n, p in all_params.items() if n not in chosen}
        fixed.update(dict(model.named_buffers()))

        def one(params, x, y):
            out = functional_call(model, {**fixed, **params}, (_unsqueeze(x),), kwargs)
            m = fn(out, y.unsqueeze(0))[0]
            return m, m

        grads, margins = vmap(grad(one, has_aux=True), in_dims=(None, 0, 0), chunk_size=self.chunk_size)(
            chosen, inputs, targets)
        flat = torch.cat([grads[n].reshape(len(targets), -1) for n in self.names_], dim=1)
        return flat.detach(), margins.detach()

    def _loop(self, model, inputs, targets, fn, kwargs):
        params = dict(model.named_parameters())
        chosen = [params[n] for n in self.names_]
        rows, margins = [], []
        for i in range(len(targets)):
            out = model(_index(inputs, i), **kwargs)
            m = fn(out, targets[i:i + 1])[0]
            g = torch.autograd.grad(m, chosen, allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if gi is None else gi).reshape(-1)
                                   for gi, p in zip(g, chosen)]))
            margins.append(m.detach())
        return torch.stack(rows), torch.stack(margins)

