import json

import numpy as np
import pytest

from core import AffinityMatrix, InvalidInputError, Preprocessing, read_affinity, write_affinity


@pytest.fixture
def matrix():
    rng = np.random.default_rng(0)
    return AffinityMatrix(names=["a", "b", "c", "d"], values=rng.normal(size=(4, 4)), metric="acc gain",
                          estimator="pairwise", cost={"trainings": 10, "seconds": 1.5}, seed=3,
                          uncertainty=np.full((4, 4), 0.1), counts=np.ones((4, 4)))


@pytest.mark.parametrize("suffix", ["csv", "json", "npz"])
def test_round_trip(tmp_path, matrix, suffix):
    path = write_affinity(matrix, tmp_path / f"m.{suffix}")
    back = read_affinity(path)
    assert back.names == matrix.names
    np.testing.assert_array_equal(back.values, matrix.values)  # repr() keeps every bit in CSV
    if suffix != "csv":
        assert back.estimator == "pairwise" and back.cost["trainings"] == 10 and back.seed == 3
        np.testing.assert_array_equal(back.uncertainty, matrix.uncertainty)


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("task,a,b\na,1,2\n", "square"),
    ("task,a,b,c\na,1,2,3\nb,1,2,3\n", "square"),
    ("task,a,b\na,1,nan\nb,1,2\n", "missing"),
    ("task,a,b\na,1,x\nb,1,2\n", "not a number"),
    ("task,a,a\na,1,2\na,1,2\n", "twice"),
    ("task,a,b\na,1,2\nc,1,2\n", "differ"),
    ("task,a\na,1\n", "at least 2"),
    ("task,a,b\na,1\nb,1,2\n", "fields"),
])
def test_bad_csv_names_the_problem(tmp_path, text, fragment):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(InvalidInputError) as err:
        read_affinity(p)
    assert fragment in str(err.value) and "bad.csv" in str(err.value)


def test_bad_json_and_npz(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        read_affinity(p)
    p.write_text(json.dumps({"names": ["a", "b"], "values": [[1, 2]]}))
    with pytest.raises(InvalidInputError, match="square"):
        read_affinity(p)
    p.write_text(json.dumps({"names": ["a", "b"], "values": [[1, 2], [3, 4]], "version": 99}))
    with pytest.raises(InvalidInputError, match="newer"):
        read_affinity(p)
    q = tmp_path / "x.npz"
    np.savez(q, names=np.array(["a", "b"], dtype=object), values=np.eye(2))
    with pytest.raises(InvalidInputError, match="pickle"):
        read_affinity(q)
    with pytest.raises(InvalidInputError, match="no such file"):
        read_affinity(tmp_path / "missing.csv")
    with pytest.raises(InvalidInputError, match="file type"):
        read_affinity(tmp_path / "m.xlsx")


def test_csv_columns_in_other_order_are_aligned(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("task,b,a\na,1,0\nb,3,2\n")
    m = read_affinity(p)
    np.testing.assert_array_equal(m.values, [[0, 1], [2, 3]])


def test_preprocessing_is_recorded_and_correct(matrix):
    out = Preprocessing(diagonal="gain", transform="none", symmetrize=True).apply(matrix)
    gain = matrix.values - np.diag(matrix.values)[None, :]
    np.testing.assert_allclose(out.values, (gain + gain.T) / 2)
    assert len(out.preprocessing) == 2
    z = Preprocessing(transform="zscore").apply(matrix).values
    off = ~np.eye(4, dtype=bool)
    for v in range(4):
        assert abs(z[off[:, v], v].mean()) < 1e-12
    r = Preprocessing(transform="rank").apply(matrix).values
    assert r.min() >= -1 and r.max() <= 1
    with pytest.raises(InvalidInputError, match="transform"):
        Preprocessing(transform="log")


def test_unknown_task_name(matrix):
    with pytest.raises(KeyError, match="unknown task name 'zz'"):
        matrix.index("zz")
