"""Numbers as people read them on a page."""
from __future__ import annotations

import math

_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def flops_words(x: float | None) -> str:
    """3230000000000 -> '3.2 TFLOP'; blank when unknown."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    x = float(x)
    for scale, prefix in _PREFIXES:
        if abs(x) >= scale:
            return f"{x / scale:.2g} {prefix}FLOP" if x / scale < 10 else f"{x / scale:.0f} {prefix}FLOP"
    return f"{x:.0f} FLOP"
