"""Read and write affinity matrices as CSV, self-describing JSON, or NumPy ``.npz``.

CSV: a header row of task names and an index column of the same names in the
same order (rows = source, columns = target). JSON: ``{"format": "taskaffinity.affinity",
"version": 1, "names": [...], "values": [[...]], ...metadata}``. NPZ: arrays
``names`` (unicode) and ``values``, plus ``metadata`` as a JSON string; loaded with
``allow_pickle=False``.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.matrix.affinity import AffinityMatrix
from core.atomic import atomic_write_bytes, atomic_write_text
from core.errors import InvalidInputError

FORMAT = "taskaffinity.affinity"
VERSION = 1
SUFFIXES = (".csv", ".json", ".npz")


def _kind(path: Path, fmt: str | None) -> str:
    kind = (fmt or path.suffix.lstrip(".")).lower()
    if kind not in ("csv", "json", "npz"):
        raise InvalidInputError(
            f"{path}: unknown affinity file type {path.suffix or '(none)'!r}; use .csv, .json or .npz.")
    return kind


def read_affinity(path: str | os.PathLike, fmt: str | None = None) -> AffinityMatrix:
    """Read and validate an affinity matrix from ``path``.

    Raises
    ------
    InvalidInputError
        Naming the file and what to fix, for a missing, empty, malformed, non-square
        or non-finite matrix, or duplicate or empty task names.
    """
    path = Path(path)
    kind = _kind(path, fmt)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file; check the path to the affinity matrix.")
    data = path.read_bytes()
    return parse_affinity(data, kind, source=str(path))


def parse_affinity(data: bytes, kind: str, *, source: str = "uploaded file", missing: str = "refuse") -> AffinityMatrix:
    """Parse affinity-matrix bytes of type ``kind`` ('csv', 'json' or 'npz').

    A CSV may be separated by commas, semicolons (then a decimal comma is read too), tabs or bars
    (:func:`sniff_separator`), and may leave out the header row or the name column. ``missing`` says what
    to do with empty/NA cells (:data:`MISSING_POLICIES`); what was filled is written into ``notes``.
    """
    if missing not in MISSING_POLICIES:
        raise InvalidInputError(f"missing-entries policy {missing!r}; choose one of {', '.join(MISSING_POLICIES)}.")
    if not data.strip():
        raise InvalidInputError(f"{source}: file is empty; expected an n x n affinity matrix.")
    if kind == "csv":
        return _parse_csv(data, source, missing)
    if kind == "json":
        return _parse_json(data, source)
    if kind == "npz":
        return _parse_npz(data, source)
    raise InvalidInputError(f"{source}: unknown affinity file type {kind!r}; use csv, json or npz.")


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{source}: not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV/JSON.") from None


def _build(source: str, names: Any, values: Any, meta: dict[str, Any] | None = None) -> AffinityMatrix:
    meta = dict(meta or {})
    kwargs: dict[str, Any] = {}
    for key in ("metric", "estimator", "notes"):
        if key in meta and meta[key] is not None:
            kwargs[key] = str(meta[key])
    if meta.get("cost") is not None:
        if not isinstance(meta["cost"], dict):
            raise InvalidInputError(f"{source}: 'cost' must be an object like {{\"trainings\": 10}}.")
        kwargs["cost"] = meta["cost"]
    if meta.get("seed") is not None:
        try:
            kwargs["seed"] = int(meta["seed"])
        except (TypeError, ValueError):
            raise InvalidInputError(f"{source}: 'seed' must be an integer, got {meta['seed']!r}.") from None
    if meta.get("preprocessing"):
        kwargs["preprocessing"] = tuple(str(x) for x in meta["preprocessing"])
    for key in ("uncertainty", "counts"):
        if meta.get(key) is not None:
            kwargs[key] = _as_matrix(meta[key], source, key)
    try:
        return AffinityMatrix(names=names, values=values, **kwargs)
    except InvalidInputError as exc:
        # Re-raise naming the file rather than the generic "affinity matrix".
        raise InvalidInputError(str(exc).replace("affinity matrix", source, 1)) from None


def _as_matrix(obj: Any, source: str, key: str) -> np.ndarray:
    try:
        # JSON has no NaN literal in strict mode; null marks an unknown entry.
        return np.array([[np.nan if v is None else v for v in row] for row in obj], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{source}: {key!r} must be an n x n array of numbers (null where unknown).") from None


#: Separators tried when reading a CSV, in order of preference on a tie.
SEPARATORS = (",", ";", "\t", "|")
SEPARATOR_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
#: Cells read as "not measured".
MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "null", "none", "-", "?"})
#: What to do with unmeasured pairs: refuse the file, set them to 0 (no effect), or to the target's mean effect.
MISSING_POLICIES = ("refuse", "zero", "target-mean")
MISSING_NOTE = "Missing entries:"


def sniff_separator(text: str) -> str:
    """The separator that splits the first lines into the same number (>= 2) of fields.

    The most fields wins; on a tie (``a;1,5;2,0`` splits in three both ways) the one whose cells read as
    numbers more often (a semicolon file may use decimal commas).
    """
    lines = [ln for ln in text.splitlines() if ln.strip()][:20]
    best, best_score = ",", (0, 0)
    for sep in SEPARATORS:
        try:
            rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep))
        except csv.Error:
            continue
        counts = {len(r) for r in rows}
        # A header may lack the corner cell: allow two adjacent field counts.
        if not counts or min(counts) < 2 or max(counts) - min(counts) > 1:
            continue
        numeric = sum(_is_number(c, sep != ",") for r in rows for c in r)
        if (max(counts), numeric) > best_score:
            best, best_score = sep, (max(counts), numeric)
    return best


def _number(cell: str, decimal_comma: bool) -> float | None:
    """A cell as a float, None when it marks a missing entry; ValueError when it is neither."""
    c = cell.strip()
    if c.lower() in MISSING_TOKENS:
        return None
    if decimal_comma:
        c = c.replace(",", ".")
    return float(c)


def _is_number(cell: str, decimal_comma: bool) -> bool:
    try:
        _number(cell, decimal_comma)
        return True
    except ValueError:
        return False


def fill_missing(values: np.ndarray, policy: str) -> tuple[np.ndarray, int]:
    """Fill NaN entries by ``policy`` ('zero' or 'target-mean': the mean of the column's known entries)."""
    values = np.array(values, dtype=np.float64)
    mask = np.isnan(values)
    count = int(mask.sum())
    if count == 0:
        return values, 0
    if policy == "zero":
        values[mask] = 0.0
    elif policy == "target-mean":
        with np.errstate(invalid="ignore"):
            means = np.nanmean(np.where(mask, np.nan, values), axis=0)
        means = np.where(np.isfinite(means), means, 0.0)
        values[mask] = np.broadcast_to(means, values.shape)[mask]
    else:
        raise InvalidInputError(f"missing-entries policy {policy!r}; choose one of {', '.join(MISSING_POLICIES)}.")
    return values, count


def _parse_csv(data: bytes, source: str, missing: str = "refuse") -> AffinityMatrix:
    text = _decode(data, source)
    sep = sniff_separator(text)
    try:
        rows = [r for r in csv.reader(io.StringIO(text), delimiter=sep) if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise InvalidInputError(f"{source}: not valid CSV ({exc}).") from None
    if not rows:
        raise InvalidInputError(f"{source}: no rows; expected an n x n affinity matrix.")
    decimal_comma = sep != ","
    # Layout: a header row of task names or none; an index column of task names or none.
    first = [c.strip() for c in rows[0]]
    # A header row: names that are not numbers, an empty corner cell, or (names that are numbers, like 0, 1, 2)
    # the same names as the first column below it.
    has_header = (len(first) < 2 or not all(_is_number(c, decimal_comma) for c in first[1:])
                  or (len(rows) > 1 and first[0] == "")
                  or (len(rows) > 1 and first[1:] == [r[0].strip() for r in rows[1:] if r]
                      and not _is_number(first[0], decimal_comma)))
    body = rows[1:] if has_header else rows
    if not body:
        raise InvalidInputError(f"{source}: a header row but no rows of values; add one row per task.")
    has_index = not all(_is_number(r[0], decimal_comma) for r in body if r) or (
        has_header and first[1:] == [r[0].strip() for r in body if r])
    width = max(len(r) for r in body) - (1 if has_index else 0)
    sep_name = SEPARATOR_NAMES[sep]
    if len(body) != width:
        raise InvalidInputError(
            f"{source}: read with {sep_name} as the separator, it has {len(body)} rows of values but {width} "
            "values per row; the matrix must be square: one row and one column per task.")
    if has_header:
        header = [c.strip() for c in rows[0]]
        if len(header) == width + 1:
            header = header[1:]  # the corner cell above the index column
        elif len(header) != width:
            raise InvalidInputError(
                f"{source}: the header row has {len(header)} names for {width} columns of values; give one name "
                "per column (and optionally one for the corner).")
    names, values = [], []
    for lineno, row in enumerate(body, start=2 if has_header else 1):
        cells = row[1:] if has_index else row
        if len(cells) != width:
            raise InvalidInputError(
                f"{source}: line {lineno} has {len(row)} fields, the others {width + has_index}; every row needs "
                f"{'its task name then ' if has_index else ''}one value per column ({sep_name}-separated).")
        parsed = []
        for col, cell in enumerate(cells, start=1):
            try:
                v = _number(cell, decimal_comma)
            except ValueError:
                raise InvalidInputError(
                    f"{source}: line {lineno}, value {col} is not a number; use numbers, or leave a cell empty "
                    "(or NA) for a pair that was not measured.") from None
            parsed.append(np.nan if v is None else v)
        values.append(parsed)
        names.append(row[0].strip() if has_index else None)
    if not has_index:
        names = header if has_header else [f"task{i + 1}" for i in range(width)]
    elif has_header and names != header:
        if sorted(names) == sorted(header) and len(set(names)) == len(names):
            # Same tasks, other order: reorder the columns to match the rows.
            order = [header.index(x) for x in names]
            values = [[row[j] for j in order] for row in values]
        else:
            diff = next((i for i, (a, b) in enumerate(zip(names, header)) if a != b), None)
            where = f" (first at row and column {diff + 1})" if diff is not None else ""
            raise InvalidInputError(
                f"{source}: row names and column names differ{where}: the names down the first column must be "
                "those of the header row; list the same tasks in both, or leave out the header or the name column.")
    arr = np.array(values, dtype=np.float64)
    notes = ""
    if np.isnan(arr).any():
        count = int(np.isnan(arr).sum())
        if missing == "refuse":
            i, j = (int(x) for x in np.argwhere(np.isnan(arr))[0])
            raise InvalidInputError(
                f"{source}: {count} of {arr.size} entries are missing, not finite numbers (first at row {i + 1}, "
                f"column {j + 1}); fill or drop the missing pairs, or choose how to treat missing entries.")
        arr, count = fill_missing(arr, missing)
        how = "set to 0 (no effect)" if missing == "zero" else "set to the mean effect on their target"
        notes = f"{MISSING_NOTE} {count} of {arr.size} entries were not measured and were {how}."
    return _build(source, names, arr, {"notes": notes} if notes else None)


def _parse_json(data: bytes, source: str) -> AffinityMatrix:
    text = _decode(data, source)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from None
    if not isinstance(obj, dict) or "names" not in obj or "values" not in obj:
        raise InvalidInputError(
            f"{source}: expected a JSON object with 'names' (list of task names) and 'values' (n x n list of lists).")
    if obj.get("format", FORMAT) != FORMAT:
        raise InvalidInputError(f"{source}: format {obj.get('format')!r} is not {FORMAT!r}.")
    version = obj.get("version", VERSION)
    if not isinstance(version, int) or version > VERSION:
        raise InvalidInputError(
            f"{source}: written by a newer taskaffinity (format version {version!r}, this one reads {VERSION}); upgrade taskaffinity.")
    if not isinstance(obj["names"], list):
        raise InvalidInputError(f"{source}: 'names' must be a list of task names.")
    values = obj["values"]
    if not isinstance(values, list) or not all(isinstance(r, list) for r in values):
        raise InvalidInputError(f"{source}: 'values' must be a list of rows (n x n list of lists).")
    values = _as_matrix(values, source, "values")
    return _build(source, obj["names"], values, obj)


def _parse_npz(data: bytes, source: str) -> AffinityMatrix:
    if not data.startswith(b"PK"):  # np.load would take any other bytes for a pickle
        raise InvalidInputError(f"{source}: not a valid .npz file (not a zip archive of arrays); save it with numpy.savez.")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            files = set(npz.files)
            if not {"names", "values"} <= files:
                raise InvalidInputError(
                    f"{source}: .npz must hold arrays 'names' and 'values' (found: {', '.join(sorted(files)) or 'none'}).")
            names = [str(x) for x in npz["names"].tolist()]
            values = npz["values"]
            meta = _npz_metadata(npz["metadata"], source) if "metadata" in files else {}
            for key in ("uncertainty", "counts"):
                if key in files:
                    meta[key] = npz[key].tolist()
    except InvalidInputError:
        raise
    except ValueError as exc:
        raise InvalidInputError(f"{source}: cannot read .npz without pickle (it holds object arrays, which are never "
                                "unpickled); save plain numeric and string arrays.") from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, ...
        raise InvalidInputError(f"{source}: not a valid .npz file ({type(exc).__name__}).") from None
    return _build(source, names, values, meta)


def _npz_metadata(arr: np.ndarray, source: str) -> dict[str, Any]:
    """The ``metadata`` array of an .npz: one JSON object (a 0-d string array)."""
    try:
        meta = json.loads(str(arr.item() if arr.ndim == 0 else arr))
    except (json.JSONDecodeError, ValueError):
        meta = None
    if not isinstance(meta, dict):
        raise InvalidInputError(f"{source}: 'metadata' in the .npz must be one JSON object as a string "
                                "(as write_affinity saves it); remove it or fix it.")
    return meta


def to_json_dict(matrix: AffinityMatrix) -> dict[str, Any]:
    """The self-describing JSON object of ``matrix``."""
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "names": list(matrix.names),
                           "values": matrix.values.tolist()}
    out.update(matrix.metadata())
    for key in ("uncertainty", "counts"):
        arr = getattr(matrix, key)
        if arr is not None:
            out[key] = [[None if not np.isfinite(v) else float(v) for v in row] for row in arr]
    return out


def to_csv_text(matrix: AffinityMatrix) -> str:
    """The CSV text of ``matrix``: header of names, index column of names."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task", *matrix.names])
    for name, row in zip(matrix.names, matrix.values):
        w.writerow([name, *(repr(float(v)) for v in row)])
    return buf.getvalue()


def write_affinity(matrix: AffinityMatrix, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write ``matrix`` to ``path`` atomically, as CSV, JSON or NPZ by suffix (or ``fmt``)."""
    path = Path(path)
    kind = _kind(path, fmt)
    if kind == "csv":
        return atomic_write_text(path, to_csv_text(matrix))
    if kind == "json":
        return atomic_write_text(path, json.dumps(to_json_dict(matrix), indent=1))
    buf = io.BytesIO()
    arrays = {"names": np.array(matrix.names, dtype=np.str_), "values": np.array(matrix.values),
              "metadata": np.array(json.dumps(matrix.metadata()))}
    for key in ("uncertainty", "counts"):
        if getattr(matrix, key) is not None:
            arrays[key] = np.array(getattr(matrix, key))
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())
