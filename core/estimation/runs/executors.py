"""Executors: where the jobs of a run execute.

The interface is one method, so other back ends (Dask, SLURM, ...) fit without touching
estimators or the orchestrator::

    class Executor:
        name: str
        def map(self, fn, items, shared=None) -> Iterator[tuple[item, result]]
            # calls fn(shared, item) for every item; yields (item, result) as each finishes
            # (any order); raises JobFailed naming the item if one call raises
        def close(self) -> None

and, optionally, ``connect()`` (reach the workers before a run folder is made, so a run that cannot
start leaves nothing behind) and ``placement(item)`` (where the item's call ran, for the manifest).

``fn`` must be a picklable top-level function and ``shared`` a picklable object that every
call needs (the prepared tasks and the training spec); remote executors ship it once.
Closing the iterator early (an interrupt) cancels what is still queued.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
import sys
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path
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

    def connect(self) -> None:
        """Reach the workers (or fail with one line) before any preparation work; idempotent."""

    def placement(self, item: Any) -> dict[str, Any] | None:
        """Where the call for ``item`` ran (node id, IP, host), once it finished; None when not tracked."""
        return None

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


# Ray retries a call whose worker or node was lost (the call is deterministic and its result is only
# recorded once it returns), on whatever nodes remain; an exception raised by the call itself is not
# retried: it would only repeat.
RAY_RETRIES = 3
# How often a waiting run checks that the cluster still has a node able to run its trainings.
RAY_WATCH_S = 2.0
# How long reaching a cluster's address may take before the run gives up (a closed port fails at once).
RAY_CONNECT_TIMEOUT_S = 5.0
CORE_DIR = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=None)
def code_fingerprint(package_dir: str | None = None) -> str:
    """A hash of the ``core`` package's Python sources: equal on two nodes exactly when they run the same code."""
    root = Path(package_dir) if package_dir else CORE_DIR
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        if "__pycache__" in f.parts:
            continue
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


class CodeMismatchError(RunStateError):
    """A worker node imports other taskaffinity code than the driver."""


def _node() -> dict[str, Any]:
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
            "host": socket.gethostname()}


def _ray_call(fn: Callable[[Any, Any], Any], shared: Any, item: Any, expect_code: str | None = None) -> Any:
    # A node importing other code than the driver's would train differently without saying so.
    if expect_code is not None and code_fingerprint() != expect_code:
        node = _node()
        raise CodeMismatchError(
            f"Ray node {node['ip']} ({node['host']}) runs other taskaffinity code than the driver (code "
            f"{code_fingerprint()} at {CORE_DIR}, driver {expect_code}); let the run ship the driver's code "
            "(the default) or install the same taskaffinity on every node.")
    # Each Ray worker is given one CPU; torch's default thread pool would oversubscribe it.
    try:
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1") or 1)))
    except ImportError:
        pass
    return fn(shared, item), _node()


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a cluster address (``host:port`` or ``ray://host:port``), None for ``auto``."""
    text = address.strip()
    if text == "auto":
        return None
    if text.startswith("ray://"):
        text = text[len("ray://"):]
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInputError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:PORT "
                                "or auto.")
    return host.strip("[]"), int(port)


def probe_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds, with one line naming ``address``, when nothing listens there.

    Ray itself keeps retrying an unreachable cluster for many minutes before it gives up.
    """
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, (socket.timeout, TimeoutError)) else (exc.strerror or type(exc).__name__)
        raise RunStateError(f"--address {address}: no Ray cluster answers there ({why}); start it with `ray start "
                            "--head` on that machine, or check the host and port.") from None


def _auth_refused(exc: BaseException) -> bool:
    """Whether Ray's connection error (or anything it wraps) says the cluster refused the driver's token."""
    seen = 0
    while exc is not None and seen < 10:
        text = f"{type(exc).__name__} {exc}"
        if any(k in text for k in ("Unauthenticated", "InvalidAuthToken", "AuthenticationError",
                                   "authentication token")):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send this process's file descriptor 2 (where Ray's C++ core writes its warnings) to ``path``.

    Only from the main thread: in a threaded server (the dashboard's launches) fd 2 belongs to everyone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. under a test runner): nothing to redirect
        yield
        return
    try:
        with open(path, "ab") as fh:
            os.dup2(fh.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def import_ray():
    """Import ray, or say how to install it."""
    # Ray's progress bars replace builtins.print in the driver, for every later print of this process; ours
    # print plain lines and must keep the print the user's terminal (or a test's capture) gave them.
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
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
    ship_code : bool
        With ``address``: ship the driver's ``core`` package to every node (Ray's runtime
        environment, ``py_modules``), so each node runs exactly the driver's code (default True).
        False expects the same taskaffinity installed on every node. Either way a node whose code
        differs from the driver's refuses the job, naming the node.
    retries : int
        How often a training whose worker process or node was lost is retried on the nodes that
        remain (Ray's task retries; an exception raised by the training itself is not retried).

    Attributes
    ----------
    placements : dict
        For each finished item, where it ran: ``{"node_id", "ip", "host"}``.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int = 2, cpus_per_job: float = 1.0,
                 gpu_share: float = 1.0, max_in_flight: int | None = None, node_ip_address: str = "127.0.0.1",
                 ship_code: bool = True, retries: int = RAY_RETRIES):
        for opt, val in (("num_cpus", num_cpus), ("cpus_per_job", cpus_per_job), ("gpu_share", gpu_share)):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0:
                raise InvalidInputError(f"ray executor: {opt} must be a number > 0, got {val!r}.")
        if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight < 1):
            raise InvalidInputError(f"ray executor: max_in_flight must be an integer >= 1, got {max_in_flight!r}.")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInputError(f"ray executor: retries must be an integer >= 0, got {retries!r}.")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise InvalidInputError(f"--address {address!r}: give the cluster's HOST:PORT, or drop --address for a "
                                    "private local instance.")
        if address is not None:
            _host_port(address)  # malformed addresses fail here, before anything starts
        self.address = address
        self.ship_code = bool(ship_code)
        self.retries = retries
        self.placements: dict[Any, dict[str, Any]] = {}
        self.num_cpus = num_cpus
        self.cpus_per_job = cpus_per_job
        self.gpu_share = gpu_share
        self.max_in_flight = max_in_flight
        self.node_ip_address = node_ip_address
        self._owns = False
        self._ray = None

    def connect(self) -> None:
        self._start()

    def _start(self):
        if self._ray is not None:
            return self._ray
        ray = import_ray()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home from a user's run
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if self.address:
                probe_address(self.address)  # seconds, not Ray's many minutes of retries
                kwargs["address"] = self.address
                if self.ship_code:
                    # every node imports the driver's own `core`, whatever is installed there
                    kwargs["runtime_env"] = {"py_modules": [str(CORE_DIR)], "excludes": ["__pycache__", "*.pyc"]}
            else:
                kwargs.update(num_cpus=self.num_cpus, _node_ip_address=self.node_ip_address)
                # Workers must import this checkout's `core`, wherever the driver was started from.
                root = str(Path(__file__).resolve().parents[3])
                pp = os.environ.get("PYTHONPATH", "")
                if root not in pp.split(os.pathsep):
                    os.environ["PYTHONPATH"] = root + (os.pathsep + pp if pp else "")
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            # Ray's core prints its retry warnings straight to stderr, dozens of lines: keep them in a log
            log = Path(tempfile.gettempdir()) / f"taskaffinity-ray-connect-{os.getpid()}.log"
            try:
                with _stderr_to(log):
                    ray.init(**kwargs)
            except Exception as exc:
                if self.address and _auth_refused(exc):
                    raise RunStateError(
                        f"--address {self.address}: the cluster refused this driver's authentication token (it uses "
                        "Ray token authentication and this process sent none, or another one); set RAY_AUTH_MODE=token "
                        "and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token, which `ray "
                        "get-auth-token` prints on the head node.") from None
                raise RunStateError(f"cannot start or reach {where}: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''} (Ray's messages: {log}).") from None
            log.unlink(missing_ok=True)
            self._owns = True
        self._ray = ray
        return ray

    def placement(self, item: Any) -> dict[str, Any] | None:
        return self.placements.get(item)

    def _nodes_left(self, ray: Any) -> int:
        """Alive nodes with the CPUs (and GPUs) one training reserves."""
        need_gpu = self.gpu_share if float(ray.cluster_resources().get("GPU", 0)) > 0 else 0
        n = 0
        for node in ray.nodes():
            res = node.get("Resources") or {}
            if node.get("Alive") and res.get("CPU", 0) >= self.cpus_per_job and res.get("GPU", 0) >= need_gpu:
                n += 1
        return n

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "address": self.address, "cpus_per_job": self.cpus_per_job,
                               "gpu_share": self.gpu_share}
        if self._ray is not None:
            try:
                out["cluster"] = {k: v for k, v in self._ray.cluster_resources().items() if k in ("CPU", "GPU")}
                out["nodes"] = sorted({n.get("NodeManagerAddress") for n in self._ray.nodes() if n.get("Alive")})
                out["driver_ip"] = self._ray.util.get_node_ip_address()
            except Exception as exc:  # a cluster that is gone must not hide why the run stopped
                out["cluster"] = f"unreachable ({type(exc).__name__})"
        return out

    def map(self, fn, items, shared=None):
        ray = self._start()
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0))
        remote = ray.remote(_ray_call).options(num_cpus=self.cpus_per_job,
                                               num_gpus=self.gpu_share if gpus > 0 else 0,
                                               max_retries=self.retries, retry_exceptions=False)
        slots = max(1, int(gpus / self.gpu_share) if gpus > 0 else
                    int(resources.get("CPU", 1) / max(self.cpus_per_job, 1e-9)))
        limit = self.max_in_flight or 2 * slots
        shared_ref = ray.put(shared)
        expect = code_fingerprint()
        where = f"the Ray cluster at {self.address}" if self.address else "the local Ray instance"
        pending: dict[Any, Any] = {}
        queue = iter(items)

        def submit() -> bool:
            try:
                item = next(queue)
            except StopIteration:
                return False
            pending[remote.remote(fn, shared_ref, item, expect)] = item
            return True

        try:
            while len(pending) < limit and submit():
                pass
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=RAY_WATCH_S)
                if not ready:
                    # trainings of a lost node wait for one that can take them; none left means forever
                    if self._nodes_left(ray) == 0:
                        raise RunStateError(
                            f"no node of {where} is left to train on (every node with {self.cpus_per_job:g} free "
                            f"CPU(s) was lost); {len(pending)} training(s) were waiting. Trainings finished so far are "
                            "saved: restart the nodes, then continue with --resume.")
                    continue
                ref = ready[0]
                item = pending.pop(ref)
                try:
                    result, node = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None) or exc
                    if isinstance(cause, CodeMismatchError):
                        raise CodeMismatchError(str(cause)) from None
                    raise JobFailed(item, cause) from None
                except ray.exceptions.RayError as exc:  # the worker or node was lost more often than retried
                    first = (str(exc).strip().splitlines() or [""])[0][:200]
                    what = item.describe() if hasattr(item, "describe") else repr(item)
                    raise RunStateError(
                        f"training {what} was lost on {where} {self.retries + 1} time(s) ({type(exc).__name__}: "
                        f"{first}); trainings finished so far are saved: check the cluster's nodes, then continue "
                        "with --resume.") from None
                self.placements[item] = node
                yield item, result
                while len(pending) < limit and submit():
                    pass
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):  # a lost cluster cannot cancel; nothing is left to stop
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
