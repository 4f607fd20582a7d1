"""Loaders for the user's own data: text tables (CSV / TSV / JSONL / saved Hugging Face
datasets) and graphs with node-label files.

Every problem a user can cause (missing file, unknown column, label outside the declared
classes, too few examples) raises :class:`~core.errors.InvalidInputError` naming the file,
column or task.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from core.errors import InvalidInputError
from core.estimation.data.tasks import SPLITS, Split, Task, TaskSet
from core.inputs import loads_json

TABLE_FORMATS = ("csv", "tsv", "jsonl", "hf_disk")
MIN_EXAMPLES = 4


def infer_format(path: Path) -> str:
    if path.is_dir():
        return "hf_disk"
    suffix = path.suffix.lower()
    if suffix in (".csv",):
        return "csv"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    raise InvalidInputError(f"cannot tell the format of {path} from its name; give format: csv, tsv, jsonl or hf_disk.")


def read_table(path: str | Path, fmt: str | None = None, *, header: bool = True, columns: Sequence[str] | None = None,
               split: str | None = None) -> pd.DataFrame:
    """Rows of a CSV / TSV / JSONL file or a saved Hugging Face dataset, as a data frame.

    Parameters
    ----------
    path : path
        File, or folder written by ``datasets.Dataset(Dict).save_to_disk``.
    fmt : {"csv", "tsv", "jsonl", "hf_disk"}, optional
        Inferred from the name when omitted.
    header : bool
        CSV / TSV: whether the first row names the columns.
    columns : sequence of str, optional
        Column names for a CSV / TSV without header.
    split : str, optional
        Split of a saved ``DatasetDict`` (required when it has several).
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"data file {path} does not exist.")
    fmt = fmt or infer_format(path)
    if fmt not in TABLE_FORMATS:
        raise InvalidInputError(f"{path}: format {fmt!r} is not one of {', '.join(TABLE_FORMATS)}.")
    try:
        if fmt in ("csv", "tsv"):
            frame = pd.read_csv(path, sep="," if fmt == "csv" else "\t", header=0 if header else None,
                                names=list(columns) if columns else None, encoding="utf-8-sig", dtype=str,
                                keep_default_na=False, quoting=csv.QUOTE_MINIMAL if fmt == "csv" else csv.QUOTE_NONE,
                                on_bad_lines="error")
        elif fmt == "jsonl":
            rows = []
            with open(path, encoding="utf-8-sig") as fh:
                for i, line in enumerate(fh, 1):
                    if line.strip():
                        # bounded depth, finite numbers; errors name the line, never its text
                        rows.append(loads_json(line, f"{path}, line {i}"))
            if rows and not all(isinstance(r, dict) for r in rows):
                raise InvalidInputError(f"{path}: every JSONL line must be an object with named fields.")
            frame = pd.DataFrame(rows)
        else:
            frame = read_hf_disk(path, split)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, pd.errors.EmptyDataError) as exc:
        if isinstance(exc, InvalidInputError):
            raise
        raise InvalidInputError(f"{path}: cannot read it as {fmt}: {_parser_problem(exc)}") from None
    if len(frame) == 0:
        raise InvalidInputError(f"{path}: no rows.")
    return frame


def _parser_problem(exc: BaseException) -> str:
    """What a parser's exception says about the structure, without quoting the file's text."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start}); save the file as UTF-8"
    first = (str(exc).splitlines() or [""])[0]
    # pandas' tokenizer messages give line and field counts only; anything else may quote the input
    if isinstance(exc, (pd.errors.ParserError, pd.errors.EmptyDataError)) and "'" not in first and '"' not in first:
        return first[:160]
    return type(exc).__name__


def read_hf_disk(path: Path, split: str | None) -> pd.DataFrame:
    """A split of a dataset saved with ``save_to_disk`` (``datasets.load_from_disk``)."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is optional; read the Arrow files directly
        return _read_arrow_folder(path, split)
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError / ValueError with long messages
        raise InvalidInputError(f"{path}: not a dataset saved with save_to_disk ({type(exc).__name__}).") from None
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            if len(ds) != 1:
                raise InvalidInputError(f"{path} holds splits {list(ds)}; say which one with split:.")
            split = next(iter(ds))
        if split not in ds:
            raise InvalidInputError(f"{path} has no split {split!r}; its splits are {list(ds)}.")
        ds = ds[split]
    elif split is not None:
        raise InvalidInputError(f"{path} is a single dataset, not a DatasetDict; drop split: {split!r}.")
    return ds.to_pandas()


def _read_arrow_folder(path: Path, split: str | None) -> pd.DataFrame:  # pragma: no cover
    import pyarrow as pa

    if (path / "dataset_dict.json").exists():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in splits:
            raise InvalidInputError(f"{path} holds splits {splits}; say which one with split:.")
        path = path / split
    files = sorted(path.glob("data-*.arrow"))
    if not files:
        raise InvalidInputError(f"{path}: no data-*.arrow files; not a dataset saved with save_to_disk.")
    tables = [pa.ipc.open_stream(pa.memory_map(str(f))).read_all() for f in files]
    return pa.concat_tables(tables).to_pandas()


def _column(frame: pd.DataFrame, column: str, source: str, role: str) -> list:
    if column not in frame.columns:
        raise InvalidInputError(
            # the header row is the file's text (a config may point at any file it may read): counted, not shown
            f"{source}: no column {column!r} (the {role} column) among its {len(frame.columns)} columns; check the "
            "name against the file's header row (or give header: false and columns:).")
    return frame[column].tolist()


def _label_key(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _order_classes(keys: Sequence[str]) -> list[str]:
    keys = sorted(set(keys))
    try:
        return sorted(keys, key=float)
    except ValueError:
        return keys


def text_task(name: str, frames: Mapping[str, pd.DataFrame], *, text: str, label: str, text_pair: str | None = None,
              classes: Sequence[Any] | None = None, metric: str = "accuracy", max_train: int | None = None,
              max_val: int | None = None, max_test: int | None = None, val_fraction: float = 0.2,
              test_fraction: float = 0.2, seed: int = 0, sources: Mapping[str, str] | None = None,
              group: str | None = None) -> Task:
    """A text (or text-pair) classification task from per-split tables.

    ``frames`` maps split names to data frames; a missing ``val`` (or ``test``) split is
    carved out of ``train`` (``val_fraction`` / ``test_fraction``, seeded). Labels are
    matched as strings against ``classes`` (default: the sorted labels seen in train).
    """
    sources = dict(sources or {})
    unknown = sorted(set(frames) - set(SPLITS))
    if unknown or "train" not in frames:
        raise InvalidInputError(f"task {name!r}: needs a train file (and optional val, test); got splits {sorted(frames)}.")
    data: dict[str, tuple[list, list]] = {}
    for split, frame in frames.items():
        src = sources.get(split, f"task {name!r} {split}")
        texts = _column(frame, text, src, "text")
        if text_pair is not None:
            texts = list(zip(map(str, texts), map(str, _column(frame, text_pair, src, "text_pair"))))
        else:
            texts = [str(t) for t in texts]
        labels = [_label_key(v) for v in _column(frame, label, src, "label")]
        if any(v in ("", "nan", "None") for v in labels):
            bad = next(i for i, v in enumerate(labels) if v in ("", "nan", "None"))
            raise InvalidInputError(f"{src}: row {bad + 1} has an empty label in column {label!r}.")
        data[split] = (texts, labels)
    rng = np.random.default_rng(seed)
    for split, fraction in (("val", val_fraction), ("test", test_fraction)):
        if split not in data:
            texts, labels = data["train"]
            if not 0 < fraction < 1:
                raise InvalidInputError(f"task {name!r}: {split}_fraction={fraction} must be in (0, 1).")
            perm = rng.permutation(len(labels))
            cut = int(round(fraction * len(labels)))
            take, keep = perm[:cut], np.sort(perm[cut:])
            data[split] = ([texts[i] for i in np.sort(take)], [labels[i] for i in np.sort(take)])
            data["train"] = ([texts[i] for i in keep], [labels[i] for i in keep])
    declared = [_label_key(c) for c in classes] if classes is not None else _order_classes(data["train"][1])
    if classes is not None and len(set(declared)) != len(declared):
        raise InvalidInputError(f"task {name!r}: declared classes {list(classes)} repeat a class.")
    index = {c: i for i, c in enumerate(declared)}
    splits = {}
    for split in SPLITS:
        texts, labels = data[split]
        src = sources.get(split, f"task {name!r} {split}")
        outside = sorted(set(labels) - set(index))
        if outside:
            # rows and counts, not the values: they are the file's content
            row = next(i for i, v in enumerate(labels) if v not in index) + 1
            known = f"the classes {declared}" if classes is not None else f"the {len(declared)} classes seen in train"
            raise InvalidInputError(
                f"{src}: {len(outside)} label value(s) in column {label!r} are outside {known} of task {name!r} (first "
                f"at row {row})" + ("" if classes is not None else "; declare classes: to list them all") + ".")
        cap = {"train": max_train, "val": max_val, "test": max_test}[split]
        idx = np.arange(len(labels))
        if cap is not None and len(idx) > int(cap):
            idx = np.sort(np.random.default_rng([seed, SPLITS.index(split)]).choice(len(idx), int(cap), replace=False))
        if len(idx) < MIN_EXAMPLES:
            raise InvalidInputError(f"task {name!r}: the {split} split has {len(idx)} examples; it needs at least {MIN_EXAMPLES}.")
        y = np.array([index[labels[i]] for i in idx], dtype=np.int64)
        splits[split] = Split([texts[i] for i in idx], y)
    if len(declared) < 2:
        shown = f" ({declared})" if classes is not None else ""
        raise InvalidInputError(f"task {name!r}: only one class{shown} in column {label!r}; a classification task "
                                "needs two or more.")
    return Task(name=name, **splits, kind="classification", metric=metric,
                input_kind="text_pair" if text_pair else "text", n_classes=len(declared), label_names=tuple(declared),
                group=group, info={"source": sources, "text": text, "text_pair": text_pair, "label": label})


# -- graphs ------------------------------------------------------------------------------------

def read_graph(path: str | Path, labels: str | Path | None = None, fmt: str | None = None, *,
               adjacency_key: str = "network", labels_key: str = "group", label_attribute: str = "gt"):
    """A graph and its node labels: ``(adjacency csr (n, n), Y (n, L) 0/1, label_names, node_names)``.

    Formats: ``mat`` (MATLAB file with a sparse adjacency and a sparse node x label matrix,
    as BlogCatalog), ``edgelist`` (``u v [weight]`` lines) with a ``labels`` file of
    ``node label1 label2 ...`` lines (as node2vec's PPI), ``gml`` with a node attribute
    ``label_attribute`` holding each node's community.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"graph file {path} does not exist.")
    fmt = fmt or {".mat": "mat", ".gml": "gml"}.get(path.suffix.lower(), "edgelist")
    if fmt == "mat":
        adj, y, label_names, names = _read_mat_graph(path, adjacency_key, labels_key)
    elif fmt == "gml":
        adj, y, label_names, names = _read_gml_graph(path, label_attribute)
    elif fmt == "edgelist":
        adj, y, label_names, names = _read_edgelist_graph(path, labels)
    else:
        raise InvalidInputError(f"{path}: graph format {fmt!r} is not one of mat, edgelist, gml.")
    adj = ((adj + adj.T) > 0).astype(np.float32).tocsr()  # undirected, unweighted
    adj.setdiag(0)
    adj.eliminate_zeros()
    return adj, np.asarray(y, dtype=np.int64), list(label_names), names


def _read_mat_graph(path: Path, adjacency_key: str, labels_key: str):
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:
        raise InvalidInputError(f"{path}: cannot read it as a MATLAB file ({type(exc).__name__}).") from None
    for key in (adjacency_key, labels_key):
        if key not in mat:
            raise InvalidInputError(f"{path}: no variable {key!r}; it holds {[k for k in mat if not k.startswith('__')]}.")
    adj = sp.csr_matrix(mat[adjacency_key], dtype=np.float32)
    y = sp.csr_matrix(mat[labels_key]).toarray()
    return adj, y, [f"label{j}" for j in range(y.shape[1])], [str(i) for i in range(adj.shape[0])]


def _read_gml_graph(path: Path, label_attribute: str):
    import networkx as nx  # only GML files need it

    try:
        g = nx.read_gml(str(path), label="id")
    except Exception as exc:
        raise InvalidInputError(f"{path}: cannot read it as GML ({type(exc).__name__}).") from None
    nodes = list(g.nodes)
    comms = [_label_key(g.nodes[n][label_attribute]) if label_attribute in g.nodes[n] else None for n in nodes]
    if all(c is None for c in comms):
        raise InvalidInputError(f"{path}: no node has the attribute {label_attribute!r} (the community); set label_attribute.")
    classes = _order_classes([c for c in comms if c is not None])  # nodes without it carry no label
    y = np.array([[c == l for l in classes] for c in comms], dtype=np.int64)
    adj = nx.to_scipy_sparse_array(g, nodelist=nodes, format="csr", dtype=np.float32)
    return adj, y, [f"c{l}" for l in classes], [str(n) for n in nodes]


def _read_edgelist_graph(path: Path, labels: str | Path | None):
    if labels is None:
        raise InvalidInputError(f"{path}: an edge list needs a node-label file (labels:).")
    labels = Path(labels)
    if not labels.exists():
        raise InvalidInputError(f"node-label file {labels} does not exist.")
    index: dict[str, int] = {}
    rows, cols = [], []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 2:
            raise InvalidInputError(f"{path}, line {i}: an edge needs two node ids, the line has one field.")
        u, v = (index.setdefault(p, len(index)) for p in parts[:2])
        rows.append(u)
        cols.append(v)
    node_labels: dict[int, list[str]] = {}
    for line in labels.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] not in index:
            index[parts[0]] = len(index)
        node_labels[index[parts[0]]] = parts[1:]
    n = len(index)
    adj = sp.coo_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n)).tocsr()
    classes = _order_classes([l for ls in node_labels.values() for l in ls])
    if not classes:
        raise InvalidInputError(f"{labels}: no labels found; lines must read 'node label1 label2 ...'.")
    col = {l: j for j, l in enumerate(classes)}
    y = np.zeros((n, len(classes)), dtype=np.int64)
    for node, ls in node_labels.items():
        for l in ls:
            y[node, col[l]] = 1
    return adj, y, [f"label{l}" for l in classes], list(index)


def graph_tasks(adjacency, labels: np.ndarray, label_names: Sequence[str], *, features: np.ndarray | None = None,
                select: Sequence[str] | int | None = None, min_positive: int = 20, balance: bool = True,
                train_fraction: float = 0.5, val_fraction: float = 0.2, max_train: int | None = None,
                max_val: int | None = None, max_test: int | None = None, metric: str = "accuracy",
                prefix: str = "", seed: int = 0, name: str = "graph", source: str = "") -> TaskSet:
    """One binary node-classification task per label (multi-label node classification).

    Each task gets its own node sample: with ``balance`` every node carrying the label plus
    as many random nodes without it (so accuracy is meaningful), otherwise all labelled
    nodes; samples are split into train / val / test. ``select`` picks labels by name, or
    the ``select`` most frequent ones. Inputs are node ids; the graph travels in
    ``taskset.context["graph"]`` for the ``graph`` backend.
    """
    labels = np.asarray(labels)
    n, n_labels = labels.shape
    if adjacency.shape != (n, n):
        raise InvalidInputError(f"{source or name}: adjacency is {adjacency.shape} but labels cover {n} nodes.")
    counts = labels.sum(axis=0)
    if select is None:
        chosen = list(range(n_labels))
    elif isinstance(select, (int, np.integer)):
        chosen = sorted(np.argsort(-counts, kind="stable")[: int(select)].tolist())
    else:
        lookup = {l: j for j, l in enumerate(label_names)}
        missing = [s for s in select if s not in lookup]
        if missing:
            raise InvalidInputError(f"{source or name}: unknown label(s) {missing}; labels are {list(label_names)[:12]}...")
        chosen = [lookup[s] for s in select]
    tasks = []
    for j in chosen:
        task_name = f"{prefix}{label_names[j]}"
        pos = np.flatnonzero(labels[:, j] > 0)
        if len(pos) < min_positive:
            if select is None:
                continue  # rare labels are skipped unless asked for by name
            raise InvalidInputError(f"{source or name}: label {label_names[j]!r} has {len(pos)} nodes; tasks need {min_positive}.")
        rng = np.random.default_rng([seed, j])
        neg_all = np.flatnonzero(labels[:, j] == 0)
        if len(neg_all) == 0:
            raise InvalidInputError(f"{source or name}: label {label_names[j]!r} is on every node; a task needs two classes.")
        nodes = np.concatenate([pos, rng.choice(neg_all, min(len(pos), len(neg_all)), replace=False)]) if balance \
            else np.arange(n)
        nodes = rng.permutation(nodes)
        a = int(train_fraction * len(nodes))
        b = a + int(val_fraction * len(nodes))
        parts = {"train": nodes[:a], "val": nodes[a:b], "test": nodes[b:]}
        for split, cap in (("train", max_train), ("val", max_val), ("test", max_test)):
            if cap is not None:
                parts[split] = parts[split][: int(cap)]
        splits = {s: Split(np.sort(v).astype(np.int64), labels[np.sort(v), j].astype(np.int64)) for s, v in parts.items()}
        tasks.append(Task(name=task_name, **splits, kind="classification", metric=metric, input_kind="graph_nodes",
                          n_classes=2, label_names=("no", "yes"), info={"source": source, "label": label_names[j],
                                                                         "positives": int(len(pos))}))
    if not tasks:
        raise InvalidInputError(f"{source or name}: no label has {min_positive} or more nodes; lower min_positive.")
    context = {"graph": {"adjacency": adjacency, "features": features, "source": source}}
    return TaskSet(tasks, context=context, name=name)
