"""Property-based tests (hypothesis) of the matrix readers and the grouping entry points.

The contract under test: any input either loads (and then groups into exactly k non-empty
groups that cover every task once), or fails with a :class:`~core.errors.TaskAffinityError`
subclass (the documented error type) -- never another exception, never a wrong grouping.
Example counts are small, ``derandomize=True`` keeps the suite reproducible, and
``deadline=None`` (the SDP solve is ~0.1 s): the module runs in about half a minute.
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.matrix.affinity import AffinityMatrix  # noqa: E402
from core.errors import InvalidInputError, TaskAffinityError  # noqa: E402
from core.grouping.api import GROUPING_METHODS, group  # noqa: E402
from core.matrix.io import parse_affinity, read_affinity, write_affinity  # noqa: E402
from core.inputs import name_problem  # noqa: E402

FAST = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# Task names: printable text that csv can carry (no NUL), may be blank or duplicated on purpose.
NAME = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
# Everyday finite values (ties included) and, for some matrices, any float64 up to its extremes.
MODERATE = st.one_of(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
                     st.integers(-3, 3).map(float))
FINITE = st.one_of(MODERATE, st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1e100, 1e308, -1e308]),
                   st.floats(allow_nan=False, allow_infinity=False))


def parse_outcome(data: bytes, kind: str) -> AffinityMatrix | None:
    """Parse and return the matrix, or None if it was refused with the documented error."""
    try:
        m = parse_affinity(data, kind, source="prop")
    except InvalidInputError as exc:
        assert str(exc).strip(), "an error must carry a message"
        return None
    assert isinstance(m, AffinityMatrix)
    assert m.values.shape == (m.n, m.n) and m.n >= 2
    assert np.isfinite(m.values).all()
    assert len(set(m.names)) == m.n and all(m.names)
    return m


def assert_grouping(result, names, k) -> None:
    assert result.k == k
    assert len(result.groups) == k and all(result.groups), result.groups
    flat = [t for g in result.groups for t in g]
    assert sorted(flat) == sorted(names) and len(flat) == len(set(flat))
    assert len(result.labels) == len(names) and len(set(result.labels)) == k
    for name, label in zip(result.names, result.labels):
        assert name in result.groups[label]


# ---------------------------------------------------------------- matrix readers

@FAST
@given(data=st.binary(max_size=300), kind=st.sampled_from(["csv", "json", "npz"]))
def test_arbitrary_bytes_load_or_refuse(data, kind):
    parse_outcome(data, kind)


@FAST
@given(data=st.binary(max_size=200))
def test_npz_zip_prefixed_bytes_are_refused_cleanly(data):
    # Bytes that pass the "PK" magic check but are not a real archive.
    assert parse_outcome(b"PK\x03\x04" + data, "npz") is None


@st.composite
def csv_tables(draw):
    n = draw(st.integers(1, 5))
    names = draw(st.lists(NAME, min_size=n, max_size=n))
    header = draw(st.one_of(st.just(names), st.permutations(names), st.lists(NAME, min_size=0, max_size=6)))
    cell = st.one_of(ANY_FLOAT.map(repr), st.sampled_from(["", " ", "nan", "inf", "-inf", "1e999", "x", "1,5", "0x1"]))
    rows = [[name] + [draw(cell) for _ in header] for name in names]
    if draw(st.booleans()):  # a ragged row
        rows[draw(st.integers(0, n - 1))].append(draw(cell))
    buf = io.StringIO()
    csv.writer(buf).writerows([["task", *header], *rows])
    return buf.getvalue(), names, header, rows


@FAST
@given(table=csv_tables(), bom=st.booleans())
def test_csv_tables_load_exactly_or_refuse(table, bom):
    text, names, header, rows = table
    m = parse_outcome((("\ufeff" if bom else "") + text).encode("utf-8"), "csv")
    if m is None:
        return
    # Loaded: the names are the row names, and each value is the cell under its column.
    assert list(m.names) == [r[0].strip() for r in rows]
    col = {h.strip(): j for j, h in enumerate(header)}
    for i, row in enumerate(rows):
        for j, name in enumerate(m.names):
            assert m.values[i, j] == float(row[1 + col[name]])


JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), ANY_FLOAT, st.text(max_size=4))
JSON_ANY = st.recursive(JSON_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                        max_leaves=20)


@st.composite
def json_docs(draw):
    n = draw(st.integers(0, 4))
    doc = {"names": draw(st.one_of(st.lists(NAME, min_size=n, max_size=n), JSON_ANY)),
           "values": draw(st.one_of(st.lists(st.lists(st.one_of(ANY_FLOAT, st.none(), JSON_SCALAR), min_size=n,
                                                      max_size=n), min_size=n, max_size=n), JSON_ANY))}
    for key in ("format", "version", "metric", "estimator", "cost", "seed", "notes", "preprocessing",
                "uncertainty", "counts"):
        if draw(st.integers(0, 4)) == 0:
            doc[key] = draw(JSON_ANY)
    return doc


@FAST
@given(doc=st.one_of(json_docs(), JSON_ANY))
def test_json_documents_load_or_refuse(doc):
    parse_outcome(json.dumps(doc, allow_nan=True).encode(), "json")


NP_ARRAYS = st.one_of(
    st.lists(ANY_FLOAT, max_size=9).map(lambda v: np.array(v).reshape(-1)),
    st.integers(0, 3).flatmap(lambda n: st.lists(ANY_FLOAT, min_size=n * n, max_size=n * n)
                              .map(lambda v, n=n: np.array(v, dtype=np.float64).reshape(n, n))),
    st.lists(NAME, max_size=4).map(lambda v: np.array(v, dtype=np.str_)),
    st.lists(st.integers(-5, 5), max_size=9).map(lambda v: np.array(v, dtype=np.int8)),
    st.just(np.zeros((2, 2, 2))), st.just(np.array(True)), st.just(np.array([b"a", b"b"])),
    st.just(np.array([1 + 2j, 3j])), st.just(np.array("{]")), st.just(np.array('{"seed": "x"}')),
)


@FAST
@given(arrays=st.dictionaries(st.sampled_from(["names", "values", "metadata", "uncertainty", "counts", "other"]),
                              NP_ARRAYS, max_size=5))
def test_npz_archives_load_or_refuse(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    parse_outcome(buf.getvalue(), "npz")


@st.composite
def valid_matrices(draw, min_n=2, max_n=6, values=None):
    n = draw(st.integers(min_n, max_n))
    if values is None:  # one matrix in four may hold extreme values
        values = FINITE if draw(st.integers(0, 3)) == 0 else MODERATE
    # names the rules accept (core.inputs.name_problem: no control characters, NFC, not 'nan'):
    # every other name is refused when the matrix is built, so it can never be written
    names = draw(st.lists(NAME.map(str.strip).filter(lambda x: name_problem(x) is None), min_size=n, max_size=n,
                          unique=True))
    vals = np.array(draw(st.lists(values, min_size=n * n, max_size=n * n)), dtype=np.float64).reshape(n, n)
    return AffinityMatrix(names=names, values=vals, seed=draw(st.integers(0, 2**31)))


@SLOW
@given(m=valid_matrices(), suffix=st.sampled_from([".csv", ".json", ".npz"]))
def test_written_matrices_read_back_identically(tmp_path_factory, m, suffix):
    path = tmp_path_factory.mktemp("rt") / f"m{suffix}"
    write_affinity(m, path)
    back = read_affinity(path)
    assert list(back.names) == list(m.names)
    np.testing.assert_array_equal(back.values, m.values)


# ---------------------------------------------------------------- grouping entry points

# k="auto" runs choose_k (one SDP solve per candidate k): only in test_auto_k_groups_or_refuse.
BAD_K = st.one_of(st.integers(-1, 8), st.sampled_from([0, 2.0, 1.5, "2", "many", None, True, np.int64(2)]))


@st.composite
def matrix_and_k(draw, max_n=6, valid_k_only=False):
    """A matrix and a k that is in range three times in four (else anything, valid or not)."""
    m = draw(valid_matrices(max_n=max_n))
    if valid_k_only or draw(st.integers(0, 3)):
        return m, draw(st.integers(1, m.n))
    return m, draw(BAD_K)


def group_or_refuse(matrix, k, method, **opts):
    try:
        result = group(matrix, k, method, **opts)
    except TaskAffinityError as exc:
        assert str(exc).strip()
        event(f"refused: {type(exc).__name__}: {str(exc)[:50]}")
        return None
    event("grouped")
    names = list(matrix.names) if isinstance(matrix, AffinityMatrix) else result.names
    k_expected = result.k if isinstance(k, str) else int(k)
    assert_grouping(result, names, k_expected)
    assert math.isfinite(result.objective) or not np.isfinite(np.asarray(result.objective))
    return result


@FAST
@given(mk=matrix_and_k(max_n=7), method=st.sampled_from(["spectral", "lloyd"]))
def test_baselines_group_into_k_or_refuse(mk, method):
    group_or_refuse(*mk, method)


@SLOW
@given(mk=matrix_and_k(max_n=6))
def test_exhaustive_groups_into_k_or_refuse(mk):
    group_or_refuse(*mk, "exhaustive")


@settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(m=valid_matrices(max_n=4, values=MODERATE), method=st.sampled_from(["spectral", "lloyd", "sdp"]))
def test_auto_k_groups_or_refuse(m, method):
    group_or_refuse(m, "auto", method)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mk=matrix_and_k(max_n=6))
def test_sdp_groups_into_k_or_refuse(mk):
    m, k = mk
    result = group_or_refuse(m, k, "sdp")
    if result is not None and result.sdp_value is not None and np.isfinite(result.sdp_value):
        # The certified bound holds up to solver tolerance relative to the scale of the matrix.
        scale = max(1.0, float(np.abs(m.values).max()))
        assert result.sdp_value >= result.objective - 1e-3 * scale


@FAST
@given(values=st.one_of(
    st.lists(st.lists(ANY_FLOAT, max_size=4), max_size=4),
    st.lists(ANY_FLOAT, max_size=4),
    st.just([]), st.just([[1.0]]), st.just("abc"), st.just(None), st.just({"a": 1}),
), method=st.sampled_from(sorted(GROUPING_METHODS)))
def test_raw_inputs_group_or_refuse(values, method):
    arr = values
    if isinstance(values, list):
        try:
            arr = np.array(values, dtype=np.float64)
        except ValueError:  # ragged lists: pass the list itself
            arr = values
    group_or_refuse(arr, 2, method)


def test_extreme_scale_matrix_groups_with_every_method():
    # Magnitudes where S - max(S) or a squared norm overflows float64.
    vals = np.array([[1e308, -1e308, 0.0], [-1e308, 1e308, 5e-324], [0.0, 1e300, -1e308]])
    m = AffinityMatrix(names=["a", "b", "c"], values=vals)
    for method in sorted(GROUPING_METHODS):
        with pytest.raises(InvalidInputError, match="rescale the matrix"):
            group(m, 2, method)
    with pytest.raises(InvalidInputError, match="rescale the matrix"):
        group(m, "auto", "spectral")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
