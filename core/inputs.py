"""The one validation layer for the files taskaffinity reads (configs, manifests, matrix files, uploads).

Every reader parses through these functions, so that whatever a file holds ends in one
:class:`~core.errors.InvalidInputError` (a :class:`~core.errors.TaskAffinityError`) naming the file
and the place in it, and nothing else escapes:

* :func:`loads_json` refuses nesting deeper than :data:`MAX_DEPTH` *before* parsing (Python's parser
  recurses, so 100,000 ``[`` would end in ``RecursionError``), and numbers JSON cannot hold as a
  finite double (``1e999``, ``NaN``, ``Infinity``);
* :func:`loads_yaml` is PyYAML's safe loader with the same depth bound and a bound on what aliases
  expand to (a "billion laughs" document is a few hundred bytes that expand to 10^9 nodes);
* :func:`check_tree` bounds depth and size of data already parsed (TOML, npz metadata);
* :func:`schema_error` turns a pydantic ``ValidationError`` into one line that names the field and
  the type found, never the value (a file that failed to parse as data may hold anything);
* :func:`strict_name` and :func:`strict_number` are the rules for task names and numbers in data.

Schemas themselves (pydantic v2 strict models) live beside their file's owner: the run config in
:mod:`core.estimation.runs.config`, the manifest in :mod:`core.estimation.runs.folder`.
"""
from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from typing import Any, Iterable

import numpy as np
import yaml

from core.errors import InvalidInputError

MAX_DEPTH = 64          # no file of ours nests deeper than about 6; 64 leaves room and stays far from recursion limits
MAX_NODES = 5_000_000   # nodes a YAML/TOML config may expand to (a 3000-task matrix JSON is read by loads_json)
MAX_ALIASES = 1_000     # YAML aliases in one document


# ---------------------------------------------------------------- depth before parsing
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_YAML_QUOTED = re.compile(rb'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\n]|\'\')*\'|#[^\n]*')


def bracket_depth(data: bytes | str, quoted: re.Pattern = _STRING) -> int:
    """The deepest nesting of ``[``/``{`` in ``data`` outside quoted strings (a fast scan, C speed).

    A loose upper bound for YAML (block nesting by indentation is bounded separately by the parser's
    own recursion, which :func:`loads_yaml` catches).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if b"[" not in raw and b"{" not in raw:
        return 0
    raw = quoted.sub(b"", raw)
    arr = np.frombuffer(raw, dtype=np.uint8)
    step = np.zeros(arr.shape, dtype=np.int32)
    step[(arr == ord("[")) | (arr == ord("{"))] = 1
    step[(arr == ord("]")) | (arr == ord("}"))] = -1
    return int(np.cumsum(step).max(initial=0))


def _too_deep(source: str, depth: int | str) -> InvalidInputError:
    return InvalidInputError(f"{source}: values nested {depth} levels deep; at most {MAX_DEPTH} are read "
                             "(the file is damaged or not one of ours).")


# ---------------------------------------------------------------- JSON
def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text)
    return value


class _NonFinite(ValueError):
    pass


def _no_constant(name: str) -> float:
    raise _NonFinite(name)


def loads_json(text: str | bytes, source: str) -> Any:
    """``json.loads`` with a depth bound and finite numbers only; one :class:`InvalidInputError` otherwise."""
    depth = bracket_depth(text)
    if depth > MAX_DEPTH:
        raise _too_deep(source, depth)
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant,
                          parse_int=_bounded_int)
    except json.JSONDecodeError as exc:  # its msg never quotes the input
        raise InvalidInputError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from None
    except _NonFinite:
        raise InvalidInputError(f"{source}: holds a number JSON cannot give as a finite value (NaN, Infinity or one "
                                "beyond ±1.8e308); write finite numbers (null where unknown).") from None
    except _BigInt:
        raise InvalidInputError(f"{source}: holds a whole number of more than 40 digits; no field of ours takes "
                                "one.") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{source}: not UTF-8 text (byte {exc.start}); save the file as UTF-8.") from None
    except RecursionError:
        raise _too_deep(source, f"more than {MAX_DEPTH}") from None


class _BigInt(ValueError):
    pass


def _bounded_int(text: str) -> int:
    # int() of a 100,000-digit string is slow (and refused by Python >= 3.11 with a ValueError)
    if len(text.lstrip("-")) > 40:
        raise _BigInt(text)
    return int(text)


# ---------------------------------------------------------------- YAML
class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting aliases as they are composed."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Bomb(f"more than {MAX_ALIASES} aliases")
        return super().compose_node(parent, index)


class _Bomb(Exception):
    pass


def expanded_size(obj: Any, limit: int = MAX_NODES) -> int:
    """Nodes ``obj`` holds once every shared (aliased) part is counted each time it is used.

    Computed without expanding: sizes of shared containers are memoised by identity; a recursive
    structure (a YAML alias inside its own anchor) counts as over ``limit``. Iterative, so any depth
    is safe; the result is capped at ``limit + 1``.
    """
    def children(node: Any) -> list:
        return [*node.keys(), *node.values()] if isinstance(node, dict) else list(node)

    memo: dict[int, int] = {}
    visiting: set[int] = set()  # the containers on the current path (depth-first, post-order)
    stack: list[tuple[Any, bool]] = [(obj, False)]
    while stack:
        node, finished = stack.pop()
        if not isinstance(node, (dict, list, tuple)):
            continue
        key = id(node)
        if not finished:
            if key in memo:
                continue
            if key in visiting:
                return limit + 1
            visiting.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children(node)
                         if isinstance(c, (dict, list, tuple)) and id(c) not in memo)
            continue
        total = 1 + sum(memo[id(c)] if isinstance(c, (dict, list, tuple)) else 1 for c in children(node))
        memo[key] = min(total, limit + 1)
        visiting.discard(key)
    return memo.get(id(obj), 1)


def loads_yaml(text: str, source: str) -> Any:
    """Safe-load YAML, refusing deep nesting, alias bombs and recursive aliases with one line."""
    depth = bracket_depth(text, _YAML_QUOTED)
    if depth > MAX_DEPTH:
        raise _too_deep(source, depth)
    try:
        loader = _BoundedLoader(text)  # a SafeLoader: plain data only, no Python tags
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except _Bomb as exc:
        raise InvalidInputError(f"{source}: {exc} (YAML anchors and aliases); write the values out instead.") from None
    except RecursionError:
        raise _too_deep(source, f"more than {MAX_DEPTH}") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{source} is not valid YAML{_yaml_where(exc)}: {_yaml_problem(exc)}.") from None
    check_tree(data, source)
    return data


def _yaml_where(exc: Any) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def _yaml_problem(exc: Any) -> str:
    """PyYAML's problem statement with any quoted input removed (its messages quote tags and tokens)."""
    problem = str(getattr(exc, "problem", None) or getattr(exc, "context", None) or "syntax error")
    # quoted tokens of up to 3 characters are punctuation (',', ']'); longer ones may be the file's text
    return re.sub(r"'[^']{4,}'|\"[^\"]{4,}\"", "'...'", problem).splitlines()[0][:120]


def check_tree(data: Any, source: str) -> None:
    """Refuse parsed data nested deeper than :data:`MAX_DEPTH` or expanding to more than :data:`MAX_NODES` nodes."""
    if expanded_size(data) > MAX_NODES:
        raise InvalidInputError(f"{source}: expands to more than {MAX_NODES:,} values (anchors/aliases used over and "
                                "over, or a recursive alias); write the values out instead.")
    stack = [(data, 0)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(source, f"more than {MAX_DEPTH}")
        if isinstance(node, (dict, list, tuple)):
            if id(node) in seen:
                continue
            seen.add(id(node))
            items: Iterable[Any] = node.values() if isinstance(node, dict) else node
            stack.extend((c, depth + 1) for c in items if isinstance(c, (dict, list, tuple)))


def read_text(path: os.PathLike | str, source: str, max_bytes: int = 50 * 2**20) -> str:
    """A UTF-8 text file's contents, refusing other encodings and files over ``max_bytes`` with one line."""
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise InvalidInputError(f"{source}: {size / 2**20:.1f} MB is over the {max_bytes // 2**20} MB this reader takes.")
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InvalidInputError(f"{source}: cannot read it ({exc.strerror or type(exc).__name__}).") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{source}: not UTF-8 text (byte {exc.start}); save the file as UTF-8.") from None


# ---------------------------------------------------------------- pydantic errors as one line
def describe(value: Any) -> str:
    """What was found, by kind (never the text of a string: it may be anything from a file)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {value!r}" if len(repr(value)) <= 24 else "a number"
    if isinstance(value, str):
        return f"a text of {len(value)} character(s)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def schema_error(exc: Any, where: str, known: Iterable[str] | None = None, hint: str = "") -> InvalidInputError:
    """One line from a pydantic ``ValidationError``: the first error's field path, rule and what was found.

    ``known``: the keys the model takes (listed when a key is unknown); ``hint``: added to "missing KEY:".
    """
    errors = exc.errors(include_url=False, include_context=True)
    extra = [e for e in errors if e.get("type") == "extra_forbidden" and len(e.get("loc", ())) == 1]
    if extra:
        names = sorted(str(e["loc"][0])[:60] for e in extra)
        listed = f"; known: {', '.join(known)}" if known else ""
        return InvalidInputError(f"{where}: unknown key(s) {names}{listed}.")
    err = errors[0]
    loc = _loc(err.get("loc", ()))
    kind = err.get("type", "")
    found = describe(err.get("input"))
    if kind == "extra_forbidden":
        return InvalidInputError(f"{where}: unknown key {loc}; check its spelling.")
    if kind == "missing":
        return InvalidInputError(f"{where}: missing {loc}:{hint}.")
    return InvalidInputError(f"{where}: {loc} {_rule(kind, err)}; found {found}.")


def _rule(kind: str, err: dict) -> str:
    """Pydantic's error type as a rule in plain words."""
    ctx = err.get("ctx") or {}
    if kind == "too_short":
        return "must be a non-empty list" if ctx.get("min_length") == 1 else f"needs at least {ctx.get('min_length')} items"
    if kind == "too_long":
        return f"takes at most {ctx.get('max_length')} items"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        return f"must be {bounds[kind]} {next(iter(ctx.values()), '?')}"
    plain = {"int_type": "must be a whole number", "int_parsing": "must be a whole number",
             "int_from_float": "must be a whole number", "float_type": "must be a number",
             "float_parsing": "must be a number", "string_type": "must be text", "bool_type": "must be true or false",
             "bool_parsing": "must be true or false", "list_type": "must be a list", "dict_type": "must be a mapping",
             "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
             "finite_number": "must be a finite number", "tuple_type": "must be a list",
             "is_instance_of": "has the wrong type"}
    if kind in plain:
        return plain[kind]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}"
    if kind == "value_error":
        return str(err.get("msg", "")).removeprefix("Value error, ")
    msg = str(err.get("msg", "invalid"))
    msg = re.sub(r"'[^']{40,}'|\"[^\"]{40,}\"", "'...'", msg)
    return msg[0].lower() + msg[1:] if msg else "is invalid"


def _loc(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif str(p) in ("builtin", "text", "graph") and out.endswith("]") and "tasks" in out:
            continue  # the union tag pydantic adds to a task entry's path
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"


# ---------------------------------------------------------------- names and numbers in data
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.I)


# Spellings pandas (and most spreadsheets) read as a missing value: a task so named would vanish
# from the results table of its own run.
NA_NAMES = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                      "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def name_problem(name: str) -> str | None:
    """Why the (stripped) task name ``name`` cannot be used, or None when it can."""
    if not name:
        return "is empty; give every task a name"
    if name in NA_NAMES:
        return (f"is {name!r}, which pandas and spreadsheets read as a missing value; rename the task "
                "(e.g. 'task_nan')")
    if _CONTROL.search(name):
        return "holds a control character (line break, tab, ...); use printable names"
    if unicodedata.normalize("NFC", name) != name:
        return ("is not in Unicode NFC form (accents written as separate marks); save the names in NFC (most "
                "editors do) so that names that look equal are equal")
    return None


def strict_name(value: Any, where: str) -> str:
    """A task name from a file, stripped; refused unless it is text that :func:`name_problem` accepts.

    A list, a number or ``null`` is not a name (``["a"]`` would otherwise become the name ``"['a']"``).
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{where}: a task name must be text, found {describe(value)}.")
    name = value.strip()
    problem = name_problem(name)
    if problem:
        raise InvalidInputError(f"{where}: task name {problem}.")
    return name


def strict_number(text: str) -> float:
    """A number written in plain ASCII decimal notation (``1``, ``-0.5``, ``1e-3``, ``nan``, ``inf``).

    Python's ``float`` also takes ``1_000``, full-width and Arabic-Indic digits; a matrix file
    holding those was not written by a program that meant them as numbers, so they are refused.
    """
    s = text.strip()
    if not _PLAIN_NUMBER.fullmatch(s):
        raise ValueError(s)
    return float(s)


def memory_budget() -> int:
    """Bytes one request may use: half the machine's physical memory (or $TASKAFFINITY_MAX_MEMORY_MB)."""
    env = os.environ.get("TASKAFFINITY_MAX_MEMORY_MB")
    if env and env.strip().isdigit():
        return int(env) * 2**20
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 * 2**30


def check_memory(nbytes: float, what: str, fix: str, budget: int | None = None) -> None:
    """Refuse up front work that would need more than ``budget`` bytes (default :func:`memory_budget`)."""
    budget = memory_budget() if budget is None else budget
    if nbytes > budget:
        raise InvalidInputError(f"{what} would need about {nbytes / 2**30:.1f} GiB of memory, over the "
                                f"{budget / 2**30:.1f} GiB budget of this machine; {fix}.")
