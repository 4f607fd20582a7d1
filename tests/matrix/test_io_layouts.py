"""CSV layouts people send: other separators, no header row, no name column, unmeasured pairs."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInputError
from core.matrix.io import fill_missing, parse_affinity, sniff_separator


@pytest.mark.parametrize("text,sep", [("t,a,b\na,1,2\n", ","), ("t;a;b\na;1,5;2\n", ";"), ("t\ta\tb\na\t1\t2\n", "\t"),
                                      (";a;b\na;1;2\nb;3;4\n", ";")])
def test_sniff_separator(text, sep):
    assert sniff_separator(text) == sep


@pytest.mark.parametrize("data,names", [
    (b"task,a,b\na,1,2\nb,3,4\n", ("a", "b")),      # header with corner cell and a name column
    (b"a,b\na,1,2\nb,3,4\n", ("a", "b")),           # header without the corner cell
    (b"a,b\n1,2\n3,4\n", ("a", "b")),               # header, no name column
    (b"a,1,2\nb,3,4\n", ("a", "b")),                # name column, no header
    (b"1,2\n3,4\n", ("task1", "task2")),            # numbers only
    (b"a;1,0;2,0\nb;3,0;4,0\n", ("a", "b")),        # semicolons with decimal commas
])
def test_layouts(data, names):
    m = parse_affinity(data, "csv")
    assert m.names == names and m.values.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_missing_entries_policy():
    data = b"t,a,b,c\na,1,,3\nb,NA,2,4\nc,0,6,5\n"
    with pytest.raises(InvalidInputError, match="2 of 9 entries are missing"):
        parse_affinity(data, "csv")
    zero = parse_affinity(data, "csv", missing="zero")
    assert zero.values[0, 1] == 0 and zero.values[1, 0] == 0 and "2 of 9 entries" in zero.notes
    mean = parse_affinity(data, "csv", missing="target-mean")
    assert mean.values[0, 1] == pytest.approx(4.0) and mean.values[1, 0] == pytest.approx(0.5)
    with pytest.raises(InvalidInputError, match="policy"):
        parse_affinity(data, "csv", missing="guess")
    filled, count = fill_missing(np.array([[np.nan, 1.0], [2.0, 3.0]]), "zero")
    assert count == 1 and filled[0, 0] == 0


def test_messages_say_what_is_wrong_without_echoing_cells():
    with pytest.raises(InvalidInputError, match="2 rows of values but 3 values per row") as exc:
        parse_affinity(b"x;y;z\n1;2;3\n4;5;6\n", "csv")
    assert "semicolon" in str(exc.value)
    with pytest.raises(InvalidInputError, match=r"line 2, column 2 \(task .a.\): not a number") as exc:
        parse_affinity(b"t,a,b\na,SECRET,2\nb,3,4\n", "csv")
    assert "SECRET" not in str(exc.value)
