"""Model backends and their registry.

``get_backend(name, **options)`` returns a configured :class:`Backend`. Backends live
in their own modules and are imported on first use, so the ``mlp`` path never imports
``transformers``.
"""
from __future__ import annotations

import importlib
from typing import Any

from core.errors import UnknownNameError
from core.estimation.models.backends.base import Backend, MultiTaskNet, task_seed

# name -> "module:Class"; register_backend adds more.
_REGISTRY: dict[str, Any] = {
    "mlp": "core.estimation.models.backends.mlp:MLPBackend",
    "transformer": "core.estimation.models.backends.transformer:TransformerBackend",
    "gpt2-icl": "core.estimation.models.backends.gpt2_icl:GPT2ICLBackend",
    "graph": "core.estimation.models.backends.graph:GraphBackend",
}


def register_backend(name: str, cls: type[Backend] | str) -> None:
    """Make a backend class (or ``"module:Class"``) available under ``name``."""
    _REGISTRY[name] = cls


def backend_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def backend_class(name: str) -> type[Backend]:
    try:
        entry = _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown backend {name!r}; choose one of {', '.join(_REGISTRY)}.") from None
    if isinstance(entry, str):
        module, cls = entry.split(":")
        try:
            entry = getattr(importlib.import_module(module), cls)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            raise UnknownNameError(f"backend {name!r} is not available in this build ({module} is missing).") from None
        _REGISTRY[name] = entry
    return entry


def get_backend(name: str, **options: Any) -> Backend:
    """A configured backend; unknown names and options fail with a message naming them."""
    return backend_class(name)(**options)


__all__ = ["Backend", "MultiTaskNet", "task_seed", "get_backend", "register_backend", "backend_names", "backend_class"]
