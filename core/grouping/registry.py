"""The grouping methods by name: ``GROUPING_METHODS`` and :func:`make_grouping`."""
from __future__ import annotations

from typing import Any

from core.errors import InvalidInputError
from core.grouping.base import BaseGrouping
from core.grouping.baselines import LloydGrouping, SpectralGrouping
from core.grouping.exhaustive import ExhaustiveGrouping
from core.grouping.sdp.grouping import SDPGrouping
from core.registry import Registry

GROUPING_METHODS: Registry[type[BaseGrouping]] = Registry("grouping method", {
    "sdp": SDPGrouping,
    "spectral": SpectralGrouping,
    "lloyd": LloydGrouping,
    "exhaustive": ExhaustiveGrouping,
}, check=lambda obj: isinstance(obj, type) and issubclass(obj, BaseGrouping))


def make_grouping(method: str, k: int, **opts: Any) -> BaseGrouping:
    """An unfitted estimator for ``method`` with options ``opts`` (unknown options are an error)."""
    cls = GROUPING_METHODS.get(method)
    try:
        return cls(k, **opts)
    except TypeError as exc:
        raise InvalidInputError(f"grouping method {method!r}: {exc}") from None
