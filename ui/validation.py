"""The dashboard side of validations: checked launches (reusing the Runs page's launch manager) and figures.

A validation launch is a :class:`ui.services.launches.Launch` whose runner is
:func:`core.evaluation.validation.orchestrator.run_validation`, so progress, stop (after the
training in flight) and the one-writer rule are the same as for estimation runs. The dashboard
writes validations only into run folders under the runs root it writes to, and reads the run's
config only from the folders it may read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from core.errors import InvalidInputError
from core.estimation.runs.folder import RunFolder
from core.evaluation.validation.orchestrator import Prepared, prepare_validation, prepared_from_folder, run_validation
from ui.grouping import run_grouping
from ui.services.launches import Launch, confined_config, launch_root, launches
from ui.services.roots import REPO_ROOT, configured_roots
from ui.state import Source

CONFIG_DIR = REPO_ROOT / "sample_data" / "configs"
KIND = "validate"


def writable(run: RunFolder) -> bool:
    """Whether the dashboard may write validations into ``run`` (it lies under the runs root it writes to)."""
    root = launch_root()
    path = Path(run.path).resolve()
    return root in path.parents


def run_config(run: RunFolder) -> Path:
    """The run's config, refused unless it lies in the folders the dashboard may read."""
    source = (run.manifest.get("config") or {}).get("source")
    if not source:
        raise InvalidInputError(f"{run.path.name}: the manifest records no config; validate it from the command line "
                                "with --config.")
    return confined_config(source, (CONFIG_DIR, REPO_ROOT, *configured_roots()))


def _runner(run_path: str, *, out: str, estimator: str, options: Mapping[str, Any] | None, resume: bool,
            progress: Any, **extra: Any) -> Any:
    """Adapter from the launch's call to :func:`run_validation` (``config`` is the run folder here)."""
    return run_validation(run_path, name=Path(out).name, resume=resume, progress=progress, **dict(options or {}),
                          **extra)


def start(prep: Prepared, *, resume: bool = False) -> Launch:
    """Start the validation ``prep`` (or resume it) in the background; refuses a run the dashboard may not write."""
    if not writable(prep.run):
        raise InvalidInputError(f"{prep.run.path.name}: the dashboard writes validations only into runs under "
                                f"{launch_root().name}/; validate this run from the command line.")
    config = run_config(prep.run)
    if resume:
        options: dict[str, Any] = {}
    else:
        plan = prep.plan
        options = {"grouping": [list(g) for g in plan.partitions["grouping"][0]], "seeds": list(plan.seeds),
                   "split": plan.split, "baselines": [b for b in plan.partitions if b != "grouping"] or "none",
                   "random_draws": len(plan.partitions.get("random", [[]])) or 1}
    launch = Launch(str(prep.run.path), str(prep.dir.path), KIND, options, resume=resume, runner=_runner,
                    extra={"config": str(config)})
    return launches().start(launch)


def prepare(source: Source, groups: Sequence[Sequence[str]] | None, method: str, k: int, seeds: int,
            baselines: Sequence[str], draws: int, name: str, label: str = "") -> Prepared:
    """The validation these controls describe; a method's grouping comes from the Grouping page's cache (an SDP
    on a large matrix not asked for there gives the spectral grouping, as on that page)."""
    describe = {"method": label} if groups is not None and label else None
    if groups is None and method not in ("all", "single"):
        res = run_grouping(source, method, int(k))
        groups, describe = res.groups, {"method": res.method}
    return prepare_validation(source.run.path, name=name or None, grouping=groups,
                              method=None if groups is not None else method, k=None, seeds=list(range(int(seeds))),
                              split="test", baselines=list(baselines) or "none", random_draws=int(draws),
                              describe=describe)


def resume_prep(run: RunFolder, name: str) -> Prepared:
    return prepared_from_folder(run.path, name)


# ------------------------------------------------------------------------------------------- figures
def strategies_figure(summary: Mapping[str, Any]) -> go.Figure:
    """Mean task-average perf per strategy with ± 1 SE error bars."""
    labels = summary.get("labels") or {}
    rows = summary.get("strategies") or []
    fig = go.Figure(go.Bar(x=[labels.get(r["strategy"], r["strategy"]) for r in rows], y=[r["mean"] for r in rows],
                           error_y=dict(type="data", array=[r["se"] or 0 for r in rows], visible=True),
                           marker_color=["#2b6cb0" if r["strategy"] == "grouping" else "#a0aec0" for r in rows],
                           hovertemplate="%{x}<br>mean %{y:.4g}<extra></extra>"))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10),
                      title="Perf per strategy (± 1 SE over seeds)", yaxis_title="perf")
    return fig


def differences_figure(summary: Mapping[str, Any]) -> go.Figure:
    """The grouping minus each baseline with its interval; the zero line marks 'no difference'."""
    labels = summary.get("labels") or {}
    rows = summary.get("differences") or []
    y = [labels.get(d["baseline"], d["baseline"]) for d in rows]
    x = [d["diff"] for d in rows]
    plus = [(d["high"] - d["diff"]) if d["high"] is not None else 0 for d in rows]
    minus = [(d["diff"] - d["low"]) if d["low"] is not None else 0 for d in rows]
    fig = go.Figure(go.Scatter(x=x, y=y, mode="markers", marker=dict(size=11, color="#2b6cb0"),
                               error_x=dict(type="data", array=plus, arrayminus=minus, visible=True),
                               hovertemplate="%{y}<br>difference %{x:.4g}<extra></extra>"))
    fig.add_vline(x=0, line_dash="dash", line_color="#718096")
    fig.update_layout(height=80 + 60 * max(1, len(rows)), margin=dict(l=10, r=10, t=40, b=10),
                      title=f"Grouping minus baseline ({summary.get('level', 0.95):.0%} interval)",
                      xaxis_title="difference in task-average perf")
    return fig


def gains_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame(summary.get("task_gains") or [])
    if df.empty:
        return df
    cols = [c for c in ("task", "perf", "reference_perf", "gain", "se", "predicted", "helps") if c in df.columns]
    return df[cols].rename(columns={"perf": "grouping perf", "reference_perf": "reference perf",
                                    "gain": "measured gain", "predicted": "predicted gain"})


def predicted_figure(summary: Mapping[str, Any]) -> go.Figure | None:
    """Predicted gain (mean affinity of the task's group-mates) against the measured gain, one point per task."""
    df = pd.DataFrame(summary.get("task_gains") or [])
    if df.empty or "predicted" not in df.columns:
        return None
    ref = (summary.get("labels") or {}).get(summary.get("task_gains_reference"), summary.get("task_gains_reference"))
    fig = go.Figure(go.Scatter(x=df["predicted"], y=df["gain"], mode="markers+text" if len(df) <= 30 else "markers",
                               text=df["task"], textposition="top center",
                               error_y=dict(type="data", array=df["se"].fillna(0), visible=True),
                               hovertemplate="%{text}<br>predicted %{x:.4g}<br>measured %{y:.4g}<extra></extra>"))
    fig.add_hline(y=0, line_dash="dot", line_color="#a0aec0")
    fig.add_vline(x=0, line_dash="dot", line_color="#a0aec0")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10), title="Predicted vs measured gain",
                      xaxis_title="predicted: mean affinity of its group-mates",
                      yaxis_title=f"measured: gain over {ref}")
    return fig
