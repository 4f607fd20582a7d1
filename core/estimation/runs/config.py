"""Run configs (YAML or TOML): the tasks of a run, how to train them, and the estimator.

```yaml
name: my-run
data_root: ../data            # optional; see below
defaults: {max_train: 500, max_val: 200, max_test: 500}   # merged into every file task
tasks:
  - builtin: planted          # a built-in family ...
    params: {n_groups: 3}
  - name: sst2                # ... a text task from files ...
    train: "{data}/glue_sst2/train.tsv"
    test: "{data}/glue_sst2/test.tsv"
    text: sentence
    label: label
  - graph: "{data}/graphs/blogcatalog.mat"   # ... or one task per node label of a graph
    select: 8
training: {backend: mlp, steps: 300, options: {hidden: 64}}
estimator: {kind: pairwise}   # passed through to the estimator side
```

Paths are relative to the config file's folder. A path starting with ``{data}/`` is
relative to the data root: the config's ``data_root`` (itself relative to the config
file), else the environment variable ``TASKAFFINITY_DATA``, else the first
``shared/data`` folder found beside the repository checkout or one level up (so
``/work/main`` and worktrees under ``/work/wt`` both find ``/work/shared/data``).
Every data path must resolve (``..`` and symlinks followed) inside the config's folder, the
data root, a folder of ``allow_paths: [...]`` or of ``$TASKAFFINITY_ALLOW_PATHS``
(:mod:`core.paths`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from core.errors import InvalidInputError, TaskAffinityError
from core.estimation.data import loaders
from core.estimation.data.builtin import builtin_taskset
from core.estimation.data.tasks import Task, TaskSet
from core.estimation.models.training import TrainSpec
from core.paths import config_roots, confine

REPO_ROOT = Path(__file__).resolve().parents[3]
TEXT_KEYS = {"name", "format", "train", "val", "test", "text", "text_pair", "label", "classes", "metric", "header",
             "columns", "split", "train_split", "val_split", "test_split", "max_train", "max_val", "max_test",
             "val_fraction", "test_fraction", "seed", "group"}
GRAPH_KEYS = {"graph", "labels", "format", "prefix", "select", "min_positive", "balance", "train_fraction",
              "val_fraction", "max_train", "max_val", "max_test", "metric", "seed", "adjacency_key", "labels_key",
              "label_attribute", "max_test"}
BUILTIN_KEYS = {"builtin", "params", "prefix"}
TOP_KEYS = {"name", "data_root", "defaults", "tasks", "training", "estimator", "grouping", "seeds", "output",
            "allow_paths"}


def default_data_root() -> Path:
    """``$TASKAFFINITY_DATA``, else ``shared/data`` beside the repository checkout (or one level up)."""
    env = os.environ.get("TASKAFFINITY_DATA")
    if env:
        return Path(env).expanduser()
    for base in (REPO_ROOT.parent, REPO_ROOT.parent.parent):
        if (base / "shared" / "data").is_dir():
            return base / "shared" / "data"
    return REPO_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class RunConfig:
    """A parsed run config.

    ``taskset`` is loaded (files read, validated) but not prepared: text embeddings and
    graph propagation happen on first training, or ahead of time with :meth:`prepare`.
    """

    name: str
    taskset: TaskSet
    spec: TrainSpec
    estimator: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    path: Path | None = None

    def prepare(self) -> TaskSet:
        """The task set as the backend sees it (embeddings computed / loaded from the cache)."""
        from core.estimation.models.backends import get_backend
        from core.estimation.models.training import prepare_taskset

        return prepare_taskset(get_backend(self.spec.backend, **self.spec.options), self.taskset)


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"config file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise InvalidInputError(f"config file {path}: use a .yaml, .yml or .toml file.")
    except InvalidInputError:
        raise
    except Exception as exc:  # yaml.YAMLError / tomllib.TOMLDecodeError
        raise InvalidInputError(f"config file {path} is not valid {suffix[1:].upper()}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"config file {path}: the top level must be a mapping (name:, tasks:, training:, ...).")
    return data


def load_run_config(path: str | Path) -> RunConfig:
    """Read a YAML / TOML run config; every malformed entry fails with a message naming it."""
    path = Path(path).resolve()
    raw = read_config_file(path)
    where = f"config {path.name}"
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise InvalidInputError(f"{where}: unknown key(s) {unknown}; known: {', '.join(sorted(TOP_KEYS))}.")
    base = path.parent
    data_root = (base / str(raw["data_root"])).resolve() if raw.get("data_root") else default_data_root()
    roots = config_roots(base, data_root, raw.get("allow_paths"), where)  # data paths must stay inside these
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise InvalidInputError(f"{where}: defaults must be a mapping of task options.")
    entries = raw.get("tasks")
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError(f"{where}: tasks must be a non-empty list of task entries.")
    tasks: list[Task] = []
    context: dict[str, Any] = {}
    for i, entry in enumerate(entries):
        label = f"{where}, tasks[{i}]"
        if not isinstance(entry, Mapping):
            raise InvalidInputError(f"{label}: each task entry must be a mapping, got {entry!r}.")
        if isinstance(entry.get("name"), str):
            label += f" ({entry['name']})"
        try:
            part = _load_entry(dict(entry), dict(defaults), base, data_root, label, roots)
        except TaskAffinityError as exc:
            msg = str(exc)
            raise InvalidInputError(msg if msg.startswith(label) else f"{label}: {msg}") from None
        if part.context.get("graph") is not None:
            if "graph" in context:
                raise InvalidInputError(f"{label}: a run may use one graph; this is the second graph entry.")
            context["graph"] = part.context["graph"]
        tasks.extend(part.values())
    taskset = TaskSet(tasks, context=context, name=str(raw.get("name") or path.stem))
    spec = TrainSpec.from_dict(raw.get("training") or {}, where=f"{where}, training")
    from core.estimation.models.backends import get_backend

    get_backend(spec.backend, **spec.options).check_inputs(taskset)  # bad options / input kinds fail now
    estimator = raw.get("estimator") or {}
    if not isinstance(estimator, Mapping):
        raise InvalidInputError(f"{where}: estimator must be a mapping.")
    return RunConfig(name=taskset.name, taskset=taskset, spec=spec, estimator=dict(estimator), raw=raw, path=path)


def _resolve(value: Any, base: Path, data_root: Path, label: str, key: str, roots: tuple = ()) -> Path:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{label}: {key} must be a path string, got {value!r}.")
    if value.startswith("{data}"):
        p = data_root / value[len("{data}"):].lstrip("/\\")
    else:
        p = Path(value).expanduser()
        p = p if p.is_absolute() else base / p
    if not p.exists():
        hint = " ({data} is the data root; set TASKAFFINITY_DATA or data_root)" if value.startswith("{data}") else ""
        raise InvalidInputError(f"{label}: {key} file {p} does not exist{hint}.")
    if roots:
        confine(p, roots, f"{label}: {key}")
    return p


def _check_keys(entry: Mapping, allowed: set, label: str, what: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise InvalidInputError(f"{label}: unknown key(s) {unknown} for a {what} entry; known: {', '.join(sorted(allowed))}.")


def _load_entry(entry: dict, defaults: dict, base: Path, data_root: Path, label: str, roots: tuple = ()) -> TaskSet:
    if "builtin" in entry:
        _check_keys(entry, BUILTIN_KEYS, label, "builtin")
        params = entry.get("params") or {}
        if not isinstance(params, Mapping):
            raise InvalidInputError(f"{label}: params must be a mapping.")
        ts = builtin_taskset(str(entry["builtin"]), **params)
        prefix = entry.get("prefix")
        if prefix:
            from dataclasses import replace

            ts = TaskSet([replace(t, name=f"{prefix}{t.name}") for t in ts.values()], ts.context, ts.name)
        return ts
    if "graph" in entry:
        opts = {k: v for k, v in defaults.items() if k in GRAPH_KEYS} | entry
        _check_keys(opts, GRAPH_KEYS, label, "graph")
        gpath = _resolve(opts.pop("graph"), base, data_root, label, "graph", roots)
        lpath = _resolve(opts.pop("labels"), base, data_root, label, "labels", roots) if opts.get("labels") else None
        read_opts = {k: opts.pop(k) for k in ("format", "adjacency_key", "labels_key", "label_attribute") if k in opts}
        fmt = read_opts.pop("format", None)
        adj, y, names, _nodes = loaders.read_graph(gpath, lpath, fmt, **read_opts)
        return loaders.graph_tasks(adj, y, names, source=str(gpath), name=gpath.stem, **opts)
    _check_keys(entry, TEXT_KEYS, label, "text task")
    opts = {k: v for k, v in defaults.items() if k in TEXT_KEYS} | entry
    for key in ("name", "train", "text", "label"):
        if opts.get(key) is None:
            raise InvalidInputError(f"{label}: missing {key}: (a text task needs name, train, text and label).")
    fmt = opts.pop("format", None)
    header = opts.pop("header", True)
    columns = opts.pop("columns", None)
    split_default = opts.pop("split", None)
    frames, sources = {}, {}
    for split in ("train", "val", "test"):
        value = opts.pop(split, None)
        hf_split = opts.pop(f"{split}_split", None) or (split_default if split == "train" else None)
        if value is None:
            continue
        p = _resolve(value, base, data_root, label, split, roots)
        frames[split] = loaders.read_table(p, fmt, header=bool(header), columns=columns, split=hf_split)
        sources[split] = str(p) + (f" [{hf_split}]" if hf_split else "")
    name = str(opts.pop("name"))
    return TaskSet([loaders.text_task(name, frames, sources=sources, **opts)], name=name)
