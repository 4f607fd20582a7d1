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
import math
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.matrix.affinity import AffinityMatrix
from core.atomic import atomic_write_bytes, atomic_write_text
from core.errors import InvalidInputError
from core.inputs import check_memory, describe, loads_json, schema_error, strict_name

FORMAT = "taskaffinity.affinity"
VERSION = 1
SUFFIXES = (".csv", ".json", ".npz")


def _kind(path: Path, fmt: str | None) -> str:
    kind = (fmt or path.suffix.lstrip(".")).lower()
    if kind not in ("csv", "json", "npz"):
        raise InvalidInputError(
            f"{path}: unknown affinity file type {path.suffix or '(none)'!r}; use .csv, .json or .npz.")
    return kind


def read_affinity(path: str | os.PathLike, fmt: str | None = None, *, max_tasks: int | None = None,
                  limit_hint: str = "") -> AffinityMatrix:
    """Read and validate an affinity matrix from ``path``.

    Parameters
    ----------
    path : path-like
    fmt : {"csv", "json", "npz"}, optional
        Default: from the suffix.
    max_tasks : int, optional
        Refuse a matrix of more tasks, before its values are parsed.
    limit_hint : str
        What to do about a refused size (e.g. "raise --max-tasks"), added to the message.

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
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__}).") from None
    return parse_affinity(data, kind, source=str(path), max_tasks=max_tasks, limit_hint=limit_hint)


def parse_affinity(data: bytes, kind: str, *, source: str = "uploaded file", max_tasks: int | None = None,
                   limit_hint: str = "", max_memory: int | None = None, missing: str = "refuse") -> AffinityMatrix:
    """Parse affinity-matrix bytes of type ``kind`` ('csv', 'json' or 'npz').

    The matrix's size is checked before its values are expanded in memory: CSV by its header row,
    JSON by its number of separators, NPZ by the array shapes in the archive's headers. A matrix
    of more than ``max_tasks`` tasks, or one whose parse would need more memory than
    :func:`core.inputs.memory_budget` (or ``max_memory`` bytes), is refused first; ``limit_hint``
    says what to do about it.

    A CSV may be separated by commas, semicolons (then a decimal comma is read too), tabs or bars
    (:func:`sniff_separator`), and may leave out the header row or the name column. ``missing`` says what
    to do with empty/NA cells (:data:`MISSING_POLICIES`); what was filled is written into ``notes``.
    """
    if missing not in MISSING_POLICIES:
        raise InvalidInputError(f"missing-entries policy {missing!r}; choose one of {', '.join(MISSING_POLICIES)}.")
    if not data or data.isspace():  # (not data.strip(): a copy of a file that may be large)
        raise InvalidInputError(f"{source}: file is empty; expected an n x n affinity matrix.")
    limits = _Limits(max_tasks, limit_hint, max_memory)
    if kind == "csv":
        return _parse_csv(data, source, limits, missing)
    if kind == "json":
        return _parse_json(data, source, limits)
    if kind == "npz":
        return _parse_npz(data, source, limits)
    raise InvalidInputError(f"{source}: unknown affinity file type {kind!r}; use csv, json or npz.")


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{source}: not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV/JSON.") from None


@dataclass(frozen=True)
class _Limits:
    """What one read may take: tasks, and bytes of memory (None: half the machine's)."""

    max_tasks: int | None = None
    hint: str = ""
    max_memory: int | None = None

    def tasks(self, n: int, source: str, about: str = "") -> None:
        if self.max_tasks is not None and n > self.max_tasks:
            raise InvalidInputError(f"{source}: {about}{n} tasks; at most {self.max_tasks} are taken here"
                                    + (f" ({self.hint})" if self.hint else "") + ".")

    def memory(self, nbytes: float, what: str) -> None:
        check_memory(nbytes, what, "give a smaller matrix, or set TASKAFFINITY_MAX_MEMORY_MB if the machine has the room",
                     budget=self.max_memory)


def _check_size(n: int, source: str, limits: "_Limits", per_entry: int) -> None:
    """Refuse ``n`` tasks over the limit, or an n x n parse needing ``per_entry`` bytes an entry over the budget."""
    limits.tasks(n, source)
    limits.memory(float(n) * n * per_entry, f"{source}: reading {n} x {n} values")


class MatrixMeta(BaseModel):
    """The metadata of a JSON (or NPZ) matrix file: strict types, unknown keys kept as they are."""

    model_config = ConfigDict(strict=True, extra="allow")

    format: str = FORMAT
    version: int = VERSION
    direction: Optional[str] = None
    metric: Optional[str] = Field(None, max_length=200)
    estimator: Optional[str] = Field(None, max_length=200)
    notes: Optional[str] = Field(None, max_length=100_000)
    cost: Optional[dict[str, Any]] = None
    seed: Optional[int] = Field(None, ge=-2**63, lt=2**64)
    preprocessing: Optional[list[Annotated[str, Field(max_length=1000)]]] = Field(None, max_length=1000)


def _build(source: str, names: Any, values: Any, meta: dict[str, Any] | None = None) -> AffinityMatrix:
    raw = {k: v for k, v in dict(meta or {}).items() if k not in ("names", "values", "uncertainty", "counts")}
    try:
        parsed = MatrixMeta.model_validate(raw)
    except ValidationError as exc:
        raise schema_error(exc, source) from None
    kwargs: dict[str, Any] = {}
    for key in ("metric", "estimator", "notes", "cost", "seed"):
        if getattr(parsed, key) is not None:
            kwargs[key] = getattr(parsed, key)
    if parsed.preprocessing:
        kwargs["preprocessing"] = tuple(parsed.preprocessing)
    for key in ("uncertainty", "counts"):
        if (meta or {}).get(key) is not None:
            kwargs[key] = _as_matrix(meta[key], source, key)
    if not isinstance(names, (list, tuple)):
        raise InvalidInputError(f"{source}: 'names' must be a list of task names, found {describe(names)}.")
    names = [strict_name(x, f"{source}: task name at position {i}") for i, x in enumerate(names)]
    try:
        return AffinityMatrix(names=names, values=values, **kwargs)
    except InvalidInputError as exc:
        # Re-raise naming the file rather than the generic "affinity matrix".
        raise InvalidInputError(str(exc).replace("affinity matrix", source, 1)) from None


def _as_matrix(obj: Any, source: str, key: str, maybe_bool: bool = True) -> np.ndarray:
    """A JSON array of rows as float64: numbers only (null where unknown), never text, booleans or lists."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "fiu":
            raise InvalidInputError(f"{source}: {key!r} must hold numbers, found an array of {obj.dtype.name}.")
        return obj.astype(np.float64)
    if not isinstance(obj, list) or not all(isinstance(r, list) for r in obj):
        raise InvalidInputError(f"{source}: {key!r} must be a list of rows (n x n list of lists), found {describe(obj)}.")
    width = {len(r) for r in obj}
    if len(width) > 1:
        raise InvalidInputError(f"{source}: the rows of {key!r} differ in length ({min(width)} to {max(width)}); "
                                "give an n x n table.")
    try:
        arr = np.array(obj)
    except (TypeError, ValueError):
        arr = np.array(obj, dtype=object)
    if arr.dtype.kind in "fiu" and arr.ndim == 2 and not (maybe_bool and _has_bool(obj)):
        return arr.astype(np.float64)
    if arr.ndim != 2:
        raise InvalidInputError(f"{source}: expected a 2-D matrix for {key!r}, got {arr.ndim}-D; give an n x n "
                                "table of numbers.")
    for i, row in enumerate(obj):
        for j, v in enumerate(row):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise InvalidInputError(f"{source}: {key!r} entry [{i}, {j}] must be a number (null where unknown), "
                                        f"found {describe(v)}.")
    # JSON has no NaN literal in strict mode; null marks an unknown entry.
    return np.array([[np.nan if v is None else float(v) for v in row] for row in obj], dtype=np.float64)


def _has_bool(rows: list) -> bool:
    # numpy turns [True, 0.5] into [1.0, 0.5]; JSON true is not a number
    return any(v is True or v is False for r in rows for v in r)


_CELL = r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*|\s*[+-]?(?:nan|inf|infinity)\s*"
_ROW_OF_NUMBERS = re.compile(f"(?:{_CELL})(?:\x1f(?:{_CELL}))*", re.I | re.A)


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one at a time (io.StringIO would hold a 4-byte-per-character copy of it all)."""
    start, end = 0, len(text)
    while start < end:
        stop = text.find("\n", start)
        if stop < 0:
            yield text[start:]
            return
        yield text[start:stop + 1]
        start = stop + 1


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
    lines = [ln.rstrip("\r\n") for _, ln in zip(range(20), (x for x in _lines(text) if x.strip()))]
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
    if not _ROW_OF_NUMBERS.fullmatch(c):  # plain ASCII decimals only: float() would take '1_000' or other scripts' digits
        raise ValueError(cell)
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


def _parse_csv(data: bytes, source: str, limits: _Limits, missing: str = "refuse") -> AffinityMatrix:
    text = _decode(data, source)
    if "\n" not in text and "\r" in text:  # old Mac line ends
        text = text.replace("\r", "\n")
    sep = sniff_separator(text)
    try:
        # the shape is known from the first row: refuse before a single value is parsed
        first_line = next((ln for ln in _lines(text) if ln.strip()), "")
        fields = next(csv.reader([first_line], delimiter=sep), [])
        corner = fields[0].strip() if fields else ""
        named = corner == "" or not _is_number(corner, sep != ",")  # a corner cell or a name column: not a task
        _check_size(len(fields) - (1 if named and len(fields) > 1 else 0), source, limits, per_entry=64)
        rows = [r for r in csv.reader(_lines(text), delimiter=sep) if any(c.strip() for c in r)]
    except csv.Error as exc:  # its messages describe the structure ("field larger than field limit"), not the data
        raise InvalidInputError(f"{source}: not valid CSV ({str(exc)[:80]}).") from None
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
        header = [strict_name(c.strip(), f"{source}: header column {j + 1}") if c.strip() or j else c.strip()
                  for j, c in enumerate(rows[0])]
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
                task = f" (task {header[col - 1]!r})" if has_header and col - 1 < len(header) else ""
                raise InvalidInputError(
                    f"{source}: line {lineno}, column {col + (1 if has_index else 0)}{task}: not a number written in "
                    "plain decimal digits (0-9, '.', 'e'; no '_', no other scripts' digits); leave a cell empty (or "
                    "NA) for a pair that was not measured.") from None
            parsed.append(np.nan if v is None else v)
        values.append(parsed)
        names.append(strict_name(row[0].strip(), f"{source}: line {lineno}, first column") if has_index else None)
    if not has_index:
        names = header if has_header else [f"task{i + 1}" for i in range(width)]
    elif has_header and names != header:
        if sorted(names) == sorted(header) and len(set(names)) == len(names):
            # Same tasks, other order: reorder the columns to match the rows.
            index = {x: j for j, x in enumerate(header)}
            order = [index[x] for x in names]
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


def _parse_json(data: bytes, source: str, limits: _Limits) -> AffinityMatrix:
    # a JSON matrix of n tasks has about n*n separators: the size is known before the parse
    commas = data.count(b",")
    if limits.max_tasks is not None and math.isqrt(commas) > limits.max_tasks + 1:
        limits.tasks(math.isqrt(commas), source, about="about ")
    limits.memory(commas * 48.0, f"{source}: parsing {len(data) / 2**20:.0f} MB of JSON")
    obj = loads_json(_decode(data, source), source)
    if not isinstance(obj, dict) or "names" not in obj or "values" not in obj:
        raise InvalidInputError(
            f"{source}: expected a JSON object with 'names' (list of task names) and 'values' (n x n list of lists).")
    if obj.get("format", FORMAT) != FORMAT:
        shown = repr(obj["format"]) if isinstance(obj["format"], str) and len(obj["format"]) < 40 else describe(obj["format"])
        raise InvalidInputError(f"{source}: format {shown} is not {FORMAT!r}.")
    version = obj.get("version", VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version > VERSION:
        shown = version if isinstance(version, int) and not isinstance(version, bool) else describe(version)
        raise InvalidInputError(
            f"{source}: written by a newer taskaffinity (format version {shown}, this one reads {VERSION}); upgrade taskaffinity."
            if isinstance(version, int) and not isinstance(version, bool)
            else f"{source}: 'version' must be a whole number, found {shown}.")
    if not isinstance(obj["names"], list):
        raise InvalidInputError(f"{source}: 'names' must be a list of task names, found {describe(obj['names'])}.")
    limits.tasks(len(obj["names"]), source)
    values = obj["values"]
    if not isinstance(values, list) or not all(isinstance(r, list) for r in values):
        raise InvalidInputError(f"{source}: 'values' must be a list of rows (n x n list of lists).")
    # the booleans check walks every entry; a file without the words true/false holds none
    values = _as_matrix(values, source, "values", maybe_bool=b"true" in data or b"false" in data)
    return _build(source, obj["names"], values, obj)


def _parse_npz(data: bytes, source: str, limits: _Limits) -> AffinityMatrix:
    if not data.startswith(b"PK"):  # np.load would take any other bytes for a pickle
        raise InvalidInputError(f"{source}: not a valid .npz file (not a zip archive of arrays); save it with numpy.savez.")
    try:
        _check_npz_sizes(data, source, limits)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            files = set(npz.files)
            if not {"names", "values"} <= files:
                shown = ", ".join(sorted(f for f in files if len(f) < 40 and f.isprintable())[:10])
                raise InvalidInputError(
                    f"{source}: .npz must hold arrays 'names' and 'values' (found: {shown or 'none'}).")
            names_arr = npz["names"]
            if names_arr.dtype.kind != "U" or names_arr.ndim != 1:
                raise InvalidInputError(f"{source}: 'names' in the .npz must be a 1-D array of text, found a "
                                        f"{names_arr.ndim}-D array of {names_arr.dtype.name}.")
            names = [str(x) for x in names_arr.tolist()]
            values = npz["values"]
            if values.dtype.kind not in "fiu":
                raise InvalidInputError(f"{source}: 'values' in the .npz must hold numbers, found {values.dtype.name}.")
            meta = _npz_metadata(npz["metadata"], source) if "metadata" in files else {}
            for key in ("uncertainty", "counts"):
                if key in files:
                    meta[key] = npz[key]
    except InvalidInputError:
        raise
    except ValueError:
        raise InvalidInputError(f"{source}: cannot read .npz without pickle (it holds object arrays, which are never "
                                "unpickled); save plain numeric and string arrays.") from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, zlib.error, ...
        raise InvalidInputError(f"{source}: not a valid .npz file ({type(exc).__name__}).") from None
    return _build(source, names, values, meta)


def _check_npz_sizes(data: bytes, source: str, limits: _Limits) -> None:
    """Refuse an archive whose arrays would expand past the task limit or the memory budget.

    Read from the zip directory (declared sizes) and each array's .npy header (shape, dtype), before
    any array is decompressed: a 1 MB archive of zeros can declare gigabytes.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > 64:
            raise InvalidInputError(f"{source}: .npz holds {len(infos)} arrays; a matrix file holds at most 6.")
        total = 0
        for info in infos:
            with zf.open(info) as fh:
                try:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _order, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=10_000)
                    else:
                        shape, _order, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=10_000)
                except (ValueError, OSError, EOFError):
                    raise InvalidInputError(f"{source}: not a valid .npz file (an entry is not a NumPy array).") from None
            if dtype.hasobject:
                raise InvalidInputError(f"{source}: cannot read .npz without pickle (it holds object arrays, which "
                                        "are never unpickled); save plain numeric and string arrays.")
            nbytes = int(np.prod(shape, dtype=object)) * max(dtype.itemsize, 1)
            total += max(nbytes, info.file_size)
            name = info.filename.removesuffix(".npy")
            if name in ("values", "uncertainty", "counts", "names") and shape:
                limits.tasks(int(shape[0]), source)
        limits.memory(total * 2.0, f"{source}: expanding the .npz ({total / 2**20:.0f} MB of arrays)")


def _npz_metadata(arr: np.ndarray, source: str) -> dict[str, Any]:
    """The ``metadata`` array of an .npz: one JSON object (a 0-d string array)."""
    if arr.dtype.kind != "U" or arr.ndim != 0:
        meta = None
    else:
        try:
            meta = loads_json(str(arr.item()), f"{source} (metadata)")
        except InvalidInputError:
            meta = None
    if not isinstance(meta, dict):
        raise InvalidInputError(f"{source}: 'metadata' in the .npz must be one JSON object as a string "
                                "(as write_affinity saves it); remove it or fix it.")
    return meta


def to_json_dict(matrix: AffinityMatrix) -> dict[str, Any]:
    """The self-describing JSON object of ``matrix``."""
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "names": list(matrix.names),
                           "values": matrix.values.tolist()}
    # a non-finite cost (FLOPs unknown for trainings run elsewhere) is written as null: strict JSON has no NaN
    out.update({k: ({c: (None if isinstance(v, float) and not np.isfinite(v) else v) for c, v in v.items()}
                    if k == "cost" and isinstance(v, dict) else v) for k, v in matrix.metadata().items()})
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
