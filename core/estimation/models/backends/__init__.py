"""Model backends and their registry.

``get_backend(name, **options)`` returns a configured :class:`Backend`. Backends live
in their own modules and are imported on first use, so the ``mlp`` path never imports
``transformers``.
"""
from __future__ import annotations

from typing import Any

from core.errors import InvalidInputError, TaskAffinityError
from core.estimation.models.backends.base import Backend, MultiTaskNet, task_seed
from core.registry import Registry

BACKENDS: Registry[type[Backend]] = Registry("backend", {
    "mlp": "core.estimation.models.backends.mlp:MLPBackend",
    "transformer": "core.estimation.models.backends.transformer:TransformerBackend",
    "gpt2-icl": "core.estimation.models.backends.gpt2_icl:GPT2ICLBackend",
    "graph": "core.estimation.models.backends.graph:GraphBackend",
}, check=lambda obj: isinstance(obj, type) and issubclass(obj, Backend))


def get_backend(name: str, /, **options: Any) -> Backend:
    """A configured backend; unknown names and options fail with a message naming them.

    ``name`` is positional-only, so an option called ``name`` reaches the backend (which refuses it).
    An option of the wrong type (``hidden: [a]``, ``max_length: {}``) that a backend's ``int()`` /
    ``float()`` rejects is reported as one line naming the backend, never as a TypeError.
    """
    cls = BACKENDS.get(name)
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TaskAffinityError):
            raise
        raise InvalidInputError(
            f"backend {name!r}: an option has the wrong type ({type(exc).__name__}); check training.options "
            f"({', '.join(sorted(map(str, options))) or 'none given'}) against the backend's documentation.") from None


__all__ = ["BACKENDS", "Backend", "MultiTaskNet", "task_seed", "get_backend"]
