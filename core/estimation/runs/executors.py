"""Executors: where the jobs of a run execute.

The interface is one method, so other back ends (Dask, SLURM, ...) fit without touching
estimators or the orchestrator::

    class Executor:
        name: str
        def map(self, fn, items, shared=None) -> Iterator[tuple[item, result]]
            # calls fn(shared, item) for every item; yields (item, result) as each finishes
            # (any order); raises JobFailed naming the item if one call raises
        def close(self) -> None

``fn`` must be a picklable top-level function and ``shared`` a picklable object that every
call needs (the prepared tasks and the training spec); remote executors ship it once.
Closing the iterator early (an interrupt) cancels what is still queued.
"""
from __future__ import annotations

import os
from pathlib import Path
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Iterable, Iterator

from core.errors import InvalidInputError, RunStateError, UnknownNameError


class JobFailed(RunStateError):
    """A job raised; finished results stay saved."""

    def __init__(self, item: Any, cause: BaseException):
        what = item.describe() if hasattr(item, "describe") else repr(item)
        super().__init__(f"job {what} failed: {type(cause).__name__}: {cause}. Results finished so far are "
                         "saved; fix the cause and rerun with --resume.")
        self.item = item
        self.cause = cause


class Executor(ABC):
    """Base class; see the module docstring."""

    name: ClassVar[str] = "executor"

    @abstractmethod
    def map(self, fn: Callable[[Any, Any], Any], items: Iterable[Any], shared: Any = None) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, fn(shared, item))`` for every item, as they finish."""

    def close(self) -> None:
        """Release what the executor started."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalExecutor(Executor):
    """Runs every job in this process, one after another (the default)."""

    name = "local"

    def map(self, fn, items, shared=None):
        for item in items:
            try:
                result = fn(shared, item)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                raise JobFailed(item, exc) from exc
            yield item, result


def _ray_call(fn: Callable[[Any, Any], Any], shared: Any, item: Any) -> Any:
    # Each Ray worker is given one CPU; torch's default thread pool would oversubscribe it.
    try:
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1") or 1)))
    except ImportError:
        pass
    return fn(shared, item)


def import_ray():
    """Import ray, or say how to install it."""
    try:
        import ray
    except ImportError:
        raise InvalidInputError("the ray executor needs Ray, which is not installed; install it with "
                                "`pip install taskaffinity[ray]` (or `pip install 'ray[default]'`), or use "
                                "--executor local.") from None
    return ray


class RayExecutor(Executor):
    """Fans jobs across the CPUs, GPUs and machines of a Ray cluster.

    Parameters
    ----------
    address : str, optional
        A running cluster's address (``ray://host:10001``, ``host:6379`` or ``"auto"``). Without
        one, a private local Ray instance is started, bound to loopback, with ``num_cpus`` CPUs
        and no dashboard, and shut down by :meth:`close`.
    num_cpus : int
        CPUs of the local instance (ignored with ``address``).
    cpus_per_job : float
        CPUs each training reserves.
    gpu_share : float
        GPUs each training reserves when the cluster has GPUs (e.g. 0.25 packs four small
        trainings per GPU); ignored on a CPU-only cluster.
    max_in_flight : int, optional
        Jobs submitted at once (default: twice the cluster's job slots), so an interrupt loses little.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int = 2, cpus_per_job: float = 1.0,
                 gpu_share: float = 1.0, max_in_flight: int | None = None, node_ip_address: str = "127.0.0.1"):
        for opt, val in (("num_cpus", num_cpus), ("cpus_per_job", cpus_per_job), ("gpu_share", gpu_share)):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0:
                raise InvalidInputError(f"ray executor: {opt} must be a number > 0, got {val!r}.")
        if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight < 1):
            raise InvalidInputError(f"ray executor: max_in_flight must be an integer >= 1, got {max_in_flight!r}.")
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_job = cpus_per_job
        self.gpu_share = gpu_share
        self.max_in_flight = max_in_flight
        self.node_ip_address = node_ip_address
        self._owns = False
        self._ray = None

    def _start(self):
        if self._ray is not None:
            return self._ray
        ray = import_ray()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home from a user's run
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs.update(num_cpus=self.num_cpus, _node_ip_address=self.node_ip_address)
                # Workers must import this checkout's `core`, wherever the driver was started from.
                root = str(Path(__file__).resolve().parents[3])
                pp = os.environ.get("PYTHONPATH", "")
                if root not in pp.split(os.pathsep):
                    os.environ["PYTHONPATH"] = root + (os.pathsep + pp if pp else "")
            try:
                ray.init(**kwargs)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = f"the Ray cluster at {self.address!r}" if self.address else "a local Ray instance"
                raise RunStateError(f"cannot start or reach {where}: {exc}") from None
            self._owns = True
        self._ray = ray
        return ray

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "address": self.address, "cpus_per_job": self.cpus_per_job,
                               "gpu_share": self.gpu_share}
        if self._ray is not None:
            out["cluster"] = {k: v for k, v in self._ray.cluster_resources().items() if k in ("CPU", "GPU")}
            out["nodes"] = sorted({n.get("NodeManagerAddress") for n in self._ray.nodes() if n.get("Alive")})
            out["driver_ip"] = self._ray.util.get_node_ip_address()
        return out

    def map(self, fn, items, shared=None):
        ray = self._start()
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0))
        remote = ray.remote(_ray_call).options(num_cpus=self.cpus_per_job,
                                               num_gpus=self.gpu_share if gpus > 0 else 0, max_retries=0)
        slots = max(1, int(gpus / self.gpu_share) if gpus > 0 else
                    int(resources.get("CPU", 1) / max(self.cpus_per_job, 1e-9)))
        limit = self.max_in_flight or 2 * slots
        shared_ref = ray.put(shared)
        pending: dict[Any, Any] = {}
        queue = iter(items)

        def submit() -> bool:
            try:
                item = next(queue)
            except StopIteration:
                return False
            pending[remote.remote(fn, shared_ref, item)] = item
            return True

        try:
            while len(pending) < limit and submit():
                pass
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                ref = ready[0]
                item = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None) or exc
                    raise JobFailed(item, cause) from exc
                yield item, result
                while len(pending) < limit and submit():
                    pass
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._ray is not None and self._owns:
            self._ray.shutdown()
        self._ray = None
        self._owns = False


EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "ray": RayExecutor}


def get_executor(name: str | Executor = "local", **options: Any) -> Executor:
    """An executor by name (``local`` or ``ray``) or an :class:`Executor` instance as is."""
    if isinstance(name, Executor):
        return name
    if name not in EXECUTORS:
        raise UnknownNameError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}.")
    if name == "local" and options.get("address"):
        raise InvalidInputError("--address is for the ray executor; add --executor ray or drop --address.")
    options = {k: v for k, v in options.items() if v is not None}
    if name == "local":
        return LocalExecutor()
    try:
        return RayExecutor(**options)
    except TypeError as exc:
        raise InvalidInputError(f"ray executor: {exc}") from None
