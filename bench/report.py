"""Write a benchmark's table into BENCHMARKS.md and its numbers into bench/results/NAME.json.

Each benchmark owns one section of BENCHMARKS.md, delimited by HTML comments,
so benchmarks can be rerun one at a time without touching the others'.
The JSON copy is what the dashboard's Benchmarks page reads.
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
RESULTS_DIR = ROOT / "bench" / "results"

sys.path.insert(0, str(ROOT))
from core.atomic import atomic_write_text  # noqa: E402

HEADER = "# Benchmarks\n\nEvery table below was written by the command shown above it. Machines are noisy: compare within one table (same run), not across tables.\n"


def machine() -> str:
    import os

    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except Exception:
        gpu = "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, Python {platform.python_version()}"


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None, floatfmt: str = ".4g") -> str:
    """Render ``rows`` (dicts) as a Markdown table."""
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write_section(name: str, title: str, command: str, body_md: str, data: Any) -> None:
    """Save this benchmark's results to bench/results/NAME.json and rebuild BENCHMARKS.md.

    BENCHMARKS.md is assembled from every bench/results/*.json, so benchmarks can
    be rerun one at a time (and on separate branches) without touching each other.
    """
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS_DIR / f"{name}.json", json.dumps(
        {"name": name, "title": title, "command": command, "run": stamp, "machine": machine(),
         "markdown": body_md, "data": data}, indent=1, default=float))
    rebuild()
    print(f"wrote bench/results/{name}.json and rebuilt {BENCHMARKS_MD.name}")


def rebuild() -> str:
    """Assemble BENCHMARKS.md from bench/results/*.json (sorted by name)."""
    parts = [HEADER]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        rec = json.loads(path.read_text())
        parts.append(f"\n## {rec['title']}\n\nCommand: `{rec['command']}`  \n"
                     f"Run: {rec['run']} on {rec['machine']}\n\n{rec['markdown'].rstrip()}\n")
    text = "".join(parts)
    atomic_write_text(BENCHMARKS_MD, text)
    return text


if __name__ == "__main__":
    rebuild()
