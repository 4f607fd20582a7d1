"""Grouped training: one model per group, scored on test; planted groups beat mixing across groups."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from core.errors import InvalidInputError
from core.estimation.data.builtin import builtin_taskset
from core.evaluation.group_training import (PartitionTrainer, check_partition, paired_gain, random_partition,
                                            summarize)
from core.estimation.models.training import TrainSpec

torch.set_num_threads(1)

NARROW = dict(hidden=[1], activation="linear")  # rank-one shared trunk: tasks of different groups conflict


@pytest.fixture(scope="module")
def planted():
    return builtin_taskset("planted", n_groups=3, tasks_per_group=3, seed=0)


def test_planted_partition_beats_one_model_and_random_groups_on_test(planted):
    spec = TrainSpec(steps=200, lr=1e-2, eval_every=25, patience=4, options=NARROW)
    trainer = PartitionTrainer(planted, spec, seeds=[0, 1])
    names = list(planted.names)
    true_groups = [[x for x in names if x.startswith(f"g{g}_")] for g in range(3)]
    rows = [trainer.score("planted", true_groups), trainer.score("all", [names])]
    rows += [trainer.score("random", random_partition(names, [3, 3, 3], seed=r), draw=r) for r in range(2)]
    import pandas as pd

    rows = pd.concat(rows, ignore_index=True)
    assert set(rows["task"]) == set(names) and len(rows) == 4 * 9 * 2
    assert (rows["perf"] <= 0).all()  # planted tasks are regression: perf = -MSE
    table = summarize(rows, reference="all").set_index("partition")
    assert table.loc["random", "draws"] == 4 and table.loc["planted", "draws"] == 2
    gain = paired_gain(rows, "planted", "all")
    assert gain["seeds"] == 2 and gain["gain"] > 0
    assert table.loc["planted", "mean"] > table.loc["random", "mean"]
    assert table.loc["planted", "mean"] > table.loc["all", "mean"]
    assert table.loc["planted", "vs_ref"] == pytest.approx(gain["gain"])


def test_trainings_are_memoised_and_deterministic(planted):
    spec = TrainSpec(steps=20, lr=1e-2, eval_every=0, options=NARROW)
    trainer = PartitionTrainer(planted, spec, seeds=[0])
    singles = [[x] for x in planted.names]
    a = trainer.score("single", singles)
    n = trainer.trainings_
    b = trainer.score("single again", list(reversed(singles)))
    assert n == 9 and trainer.trainings_ == 9
    assert np.allclose(a.sort_values("task")["perf"].to_numpy(), b.sort_values("task")["perf"].to_numpy())
    fresh = PartitionTrainer(planted, spec, seeds=[0]).score("single", singles)
    assert np.allclose(a["perf"].to_numpy(), fresh["perf"].to_numpy())


def test_seconds_count_each_training_once(planted):
    spec = TrainSpec(steps=60, lr=1e-2, eval_every=0, options=NARROW)
    trainer = PartitionTrainer(planted, spec, seeds=[0])
    start = time.perf_counter()
    trainer.score("single", [[x] for x in planted.names])
    wall = time.perf_counter() - start
    assert 0 < trainer.seconds_ <= wall


def test_bad_partitions_and_sizes_are_refused(planted):
    names = list(planted.names)
    with pytest.raises(InvalidInputError, match="leaves task"):
        check_partition([names[:4]], names)
    with pytest.raises(InvalidInputError, match="more than one group"):
        check_partition([names, names[:1]], names)
    with pytest.raises(InvalidInputError, match="unknown task"):
        check_partition([names + ["nope"]], names)
    with pytest.raises(InvalidInputError, match="empty group"):
        check_partition([names, []], names)
    with pytest.raises(InvalidInputError, match="add up"):
        random_partition(names, [4, 4], seed=0)
    with pytest.raises(InvalidInputError, match="distinct"):
        PartitionTrainer(planted, TrainSpec(), seeds=[1, 1])
    groups = random_partition(names, [2, 3, 4], seed=5)
    assert sorted(map(len, groups)) == [2, 3, 4] and sorted(sum(groups, [])) == sorted(names)
    assert groups == random_partition(names, [2, 3, 4], seed=5) != random_partition(names, [2, 3, 4], seed=6)


def test_val_and_test_scores_come_from_one_training(planted):
    spec = TrainSpec(steps=20, lr=1e-2, eval_every=0, options=NARROW)
    trainer = PartitionTrainer(planted, spec, seeds=[0])
    groups = [list(planted.names[:4]), list(planted.names[4:])]
    test = trainer.score("two", groups)
    val = trainer.score("two", groups, split="val")
    assert trainer.trainings_ == 2
    assert not np.allclose(test["perf"].to_numpy(), val["perf"].to_numpy())
    from core.estimation.models.training import train_and_evaluate

    direct = train_and_evaluate(planted, groups[0], spec, 0, split="val")
    got = val.set_index("task")["perf"]
    assert all(got[t] == pytest.approx(-direct.scores[t].metric) for t in groups[0])
