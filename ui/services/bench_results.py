"""Read the benchmark results that bench/report.py writes (bench/results/NAME.json)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ui.services.roots import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "bench" / "results"

# The benchmarks the project defines, in the order the dashboard shows them; each script's result lands in
# bench/results/NAME.json (the exact command is stored in the result once it has run).
KNOWN = {
    "recovery": ("Recovery of planted groups per method", "its script in bench/ (e.g. bench/bench_recovery.py)"),
    "sdp_scaling": ("SDP solver scaling", "its script in bench/ (writes bench/results/sdp_scaling.json)"),
    "estimation": ("Estimator accuracy against true affinities", "its script in bench/ (writes bench/results/estimation.json)"),
    "gradtag": ("Grad-TAG estimator", "its script in bench/ (writes bench/results/gradtag.json)"),
    "estimators": ("Estimators compared", "its script in bench/ (writes bench/results/estimators.json)"),
    "training": ("Training backends", "its script in bench/ (writes bench/results/training.json)"),
    "dashboard": ("Dashboard latency in the browser", "PYTHONPATH=$PWD python -m bench.bench_dashboard"),
}


@dataclass(frozen=True)
class BenchResult:
    """One benchmark's saved result; ``error`` is set (and the rest empty) when the file is unreadable."""

    name: str
    title: str
    command: str
    run: str
    machine: str
    markdown: str
    data: Any
    path: Path
    error: str = ""


def load_results(folder: Path = RESULTS_DIR) -> list[BenchResult]:
    """Every ``*.json`` in ``folder``, sorted with the known benchmarks first; unreadable files come back with ``error``."""
    out = []
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            out.append(BenchResult(name=str(rec.get("name", path.stem)), title=str(rec.get("title", path.stem)),
                                   command=str(rec.get("command", "")), run=str(rec.get("run", "")),
                                   machine=str(rec.get("machine", "")), markdown=str(rec.get("markdown", "")),
                                   data=rec.get("data"), path=path))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            out.append(BenchResult(name=path.stem, title=path.stem, command="", run="", machine="", markdown="",
                                   data=None, path=path, error=f"{path.name}: cannot read ({exc})."))
    order = list(KNOWN)
    out.sort(key=lambda r: (order.index(r.name) if r.name in order else len(order), r.name))
    return out


def missing(results: list[BenchResult]) -> list[tuple[str, str, str]]:
    """Known benchmarks without a result yet, as (name, title, command)."""
    have = {r.name for r in results}
    return [(name, title, cmd) for name, (title, cmd) in KNOWN.items() if name not in have]
