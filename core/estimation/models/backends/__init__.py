"""Model backends and their registry.

``get_backend(name, **options)`` returns a configured :class:`Backend`. Backends live
in their own modules and are imported on first use, so the ``mlp`` path never imports
``transformers``.
"""
from __future__ import annotations

from typing import Any

from core.estimation.models.backends.base import Backend, MultiTaskNet, task_seed
from core.registry import Registry

BACKENDS: Registry[type[Backend]] = Registry("backend", {
    "mlp": "core.estimation.models.backends.mlp:MLPBackend",
    "transformer": "core.estimation.models.backends.transformer:TransformerBackend",
    "gpt2-icl": "core.estimation.models.backends.gpt2_icl:GPT2ICLBackend",
    "graph": "core.estimation.models.backends.graph:GraphBackend",
}, check=lambda obj: isinstance(obj, type) and issubclass(obj, Backend))


def get_backend(name: str, **options: Any) -> Backend:
    """A configured backend; unknown names and options fail with a message naming them."""
    return BACKENDS.get(name)(**options)


__all__ = ["BACKENDS", "Backend", "MultiTaskNet", "task_seed", "get_backend"]
