"""The fast k screen: planted groups of unequal sizes are counted right, in milliseconds, and bad input is a message."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInputError
from core.grouping.k_screen import centred_spectrum, screen_k
from core.grouping.planted import planted_affinity
from core.matrix.preprocess import Preprocessing


@pytest.mark.parametrize("sizes,noise", [((4, 4, 4), 0.3), ((20, 15, 15, 10), 0.5),
                                         ((40, 35, 30, 30, 25, 20, 20), 0.5),
                                         ((60, 50, 40, 30, 20, 20, 15, 15), 0.5)])
def test_screen_counts_planted_groups(sizes, noise):
    case = planted_affinity(sizes, noise=noise, seed=3)
    result = screen_k(case.matrix)
    assert result.k == len(sizes), result.table
    assert f"**{len(sizes)} groups**" in result.reason
    assert [row["k"] for row in result.table][0] == 2


def test_screen_at_500_tasks():
    # Its speed (one partial eigen-decomposition) is measured in bench/bench_dashboard.py, not here.
    case = planted_affinity((80, 70, 60, 60, 50, 50, 40, 40, 30, 20), noise=0.4, seed=0)
    assert screen_k(case.matrix).k == 10


def test_negative_between_level_and_preprocessing():
    # A constant offset changes nothing: the level is removed before the spectrum is read.
    case = planted_affinity((6, 6, 6), noise=0.2, seed=1)
    shifted = case.matrix.values - 5.0
    assert screen_k(shifted).k == 3
    assert screen_k(case.matrix, preprocessing=Preprocessing(transform="zscore")).k == 3
    nu = centred_spectrum((case.matrix.values + case.matrix.values.T) / 2)
    assert np.all(np.diff(nu) <= 1e-9) and np.allclose(nu[:4], centred_spectrum(
        (case.matrix.values + case.matrix.values.T) / 2, top=4))


def test_sdp_check_near_the_suggestion():
    case = planted_affinity((5, 5, 4), noise=0.2, seed=2)
    result = screen_k(case.matrix, sdp_check=True, solver="cvxpy")
    assert result.k == 3 and result.checked_with_sdp
    assert any(row.get("lam_width") is not None for row in result.table)


def test_tiny_and_bad_input():
    assert screen_k(np.eye(2)).k == 1
    with pytest.raises(InvalidInputError):
        screen_k(np.eye(6), k_range=[1])
    with pytest.raises(InvalidInputError):
        screen_k(np.eye(6), preprocessing="zscore")
