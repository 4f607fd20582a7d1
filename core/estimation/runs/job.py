"""The default job: one multitask training of a subset, scored on every task of it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.estimation.runs.store import Job, JobResult, Score
from core.estimation.data.tasks import TaskSet


@dataclass(frozen=True)
class JobPayload:
    """What every job of a run shares (shipped once to each worker): the prepared tasks and the training spec."""

    taskset: TaskSet
    spec: Any  # core.estimation.models.training.TrainSpec


def train_job(payload: JobPayload, job: Job) -> JobResult:
    """Train one model on ``job.subset`` with ``job.seed`` and score each of its tasks on ``job.split``."""
    from core.estimation.models.training import perf, train_and_evaluate

    out = train_and_evaluate(payload.taskset, job.subset, payload.spec, job.seed, split=job.split)
    scores = {t: Score(metric=float(s.metric), loss=float(s.loss), perf=float(perf(payload.taskset[t], s)), n=int(s.n))
              for t, s in out.scores.items()}
    return JobResult(job=job, scores=scores, seconds=float(out.seconds), flops=float(out.flops), steps=int(out.steps))
