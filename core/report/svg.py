"""A standalone SVG heatmap of an affinity matrix, drawn without a browser.

Plotly's static export (kaleido) needs Chrome; this fallback needs nothing, so
the dashboard can always offer an image of the heatmap.
"""
from __future__ import annotations

from html import escape
from typing import Sequence

import numpy as np

# Diverging red-white-blue (negative = red: harm; positive = blue: help).
_NEG = np.array([178, 24, 43])
_MID = np.array([247, 247, 247])
_POS = np.array([33, 102, 172])


def diverging_color(x: float, vmax: float) -> str:
    """Hex colour of ``x`` on a red-white-blue scale centred on 0 with limits ``±vmax``."""
    t = 0.0 if vmax <= 0 else float(np.clip(x / vmax, -1.0, 1.0))
    rgb = _MID + (_POS - _MID) * t if t >= 0 else _MID + (_NEG - _MID) * (-t)
    return "#%02x%02x%02x" % tuple(int(round(c)) for c in rgb)


def heatmap_svg(values: np.ndarray, names: Sequence[str], *, boundaries: Sequence[int] = (), title: str = "",
                cell: float | None = None) -> str:
    """SVG text of ``values`` (already ordered) with row/column labels and group boundary lines."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    cell = cell or max(2.0, min(24.0, 720.0 / n))
    show_labels = cell >= 6
    font = min(12.0, cell * 0.8)
    margin = (max(len(str(x)) for x in names) * font * 0.6 + 8) if show_labels else 10
    top = margin + (24 if title else 4)
    size = n * cell
    width, height = margin + size + 70, top + size + 10
    vmax = float(np.max(np.abs(values))) or 1.0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.1f} {height:.1f}" font-family="sans-serif">',
           '<rect width="100%" height="100%" fill="white"/>']
    if title:
        out.append(f'<text x="{margin:.1f}" y="16" font-size="14">{escape(title)}</text>')
    tooltips = n <= 100  # a hover title per cell would make a 200-task SVG several megabytes
    for i in range(n):
        for j in range(n):
            tip = (f'<title>{escape(str(names[i]))} → {escape(str(names[j]))}: {values[i, j]:.4g}</title>'
                   if tooltips else "")
            out.append(f'<rect x="{margin + j * cell:.2f}" y="{top + i * cell:.2f}" width="{cell:.2f}" '
                       f'height="{cell:.2f}" fill="{diverging_color(values[i, j], vmax)}">{tip}</rect>')
    if show_labels:
        for i, name in enumerate(names):
            y = top + (i + 0.5) * cell + font * 0.35
            out.append(f'<text x="{margin - 4:.1f}" y="{y:.1f}" font-size="{font:.1f}" text-anchor="end">'
                       f'{escape(str(name))}</text>')
            x = margin + (i + 0.5) * cell
            out.append(f'<text transform="translate({x + font * 0.35:.1f},{top - 4:.1f}) rotate(-90)" '
                       f'font-size="{font:.1f}">{escape(str(name))}</text>')
    for b in boundaries:
        p = b * cell
        out.append(f'<line x1="{margin + p:.2f}" y1="{top:.2f}" x2="{margin + p:.2f}" y2="{top + size:.2f}" '
                   'stroke="black" stroke-width="1.5"/>')
        out.append(f'<line x1="{margin:.2f}" y1="{top + p:.2f}" x2="{margin + size:.2f}" y2="{top + p:.2f}" '
                   'stroke="black" stroke-width="1.5"/>')
    # Colour bar.
    bx = margin + size + 20
    for s in range(50):
        v = vmax * (1 - 2 * s / 49)
        out.append(f'<rect x="{bx:.1f}" y="{top + s * size / 50:.2f}" width="12" height="{size / 50 + 0.5:.2f}" '
                   f'fill="{diverging_color(v, vmax)}"/>')
    out.append(f'<text x="{bx + 15:.1f}" y="{top + 10:.1f}" font-size="10">{vmax:.3g}</text>')
    out.append(f'<text x="{bx + 15:.1f}" y="{top + size / 2 + 3:.1f}" font-size="10">0</text>')
    out.append(f'<text x="{bx + 15:.1f}" y="{top + size:.1f}" font-size="10">{-vmax:.3g}</text>')
    out.append("</svg>")
    return "\n".join(out)
