"""A real multi-node Ray cluster on one machine, for tests: one ``ray start`` (its own raylet) per node.

Each node runs ``ray start --block`` in a session of its own, so killing that session's process
group loses the node exactly as a machine would be lost (its raylet and the workers it holds);
only processes this helper started are ever killed (never ``ray stop``, which would stop other
people's clusters on a shared machine).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class LocalCluster:
    """``cpus[0]`` CPUs on the head node, then one worker node per further entry."""

    def __init__(self, tmp: Path, cpus: tuple[int, ...] = (0, 1, 1), env: dict[str, str] | None = None):
        self.tmp = Path(tmp)
        self.cpus = cpus
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1",
                    "RAY_raylet_start_wait_time_s": "120",
                    # a lost node is declared dead after ~1.5 s instead of Ray's default ~30 s of missed health checks
                    "RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500",
                    "RAY_health_check_failure_threshold": "3", **(env or {})}
        self.port = free_ports(1)[0]
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen] = []
        # Ray's sockets live under its temp dir and a socket path may not exceed 107 bytes: keep it short
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="ta-ray-"))

    def _start(self, i: int, cpus: int) -> subprocess.Popen:
        p = free_ports(7)
        cmd = [RAY, "start", "--block", "--num-cpus", str(cpus), "--node-ip-address", "127.0.0.1",
               "--disable-usage-stats", "--node-manager-port", str(p[0]), "--object-manager-port", str(p[1]),
               "--dashboard-agent-listen-port", str(p[2]), "--dashboard-agent-grpc-port", str(p[3]),
               "--runtime-env-agent-port", str(p[4]), "--metrics-export-port", str(p[5]),
               "--object-store-memory", str(80 * 2**20)]
        if i == 0:
            cmd += ["--head", "--port", str(self.port), "--ray-client-server-port", str(p[6]),
                    "--include-dashboard", "false", "--temp-dir", str(self.ray_tmp)]
        else:
            cmd += ["--address", self.address]
        log = open(self.tmp / f"node{i}.log", "w")
        return subprocess.Popen(cmd, start_new_session=True, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                cwd=self.tmp)

    def _wait_started(self, i: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        log = self.tmp / f"node{i}.log"
        while time.monotonic() < deadline:
            if "Ray runtime started" in log.read_text(errors="replace"):
                return
            if self.nodes[i].poll() is not None:
                raise RuntimeError(f"ray node {i} exited: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"ray node {i} did not start in {timeout:.0f} s")

    def start(self) -> "LocalCluster":
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.nodes.append(self._start(0, self.cpus[0]))
        self._wait_started(0)
        for i, c in enumerate(self.cpus[1:], 1):  # one at a time: parallel joins time out on a busy machine
            self.nodes.append(self._start(i, c))
            self._wait_started(i)
        return self

    def pids(self, i: int, title: str = "") -> list[int]:
        """Processes of node ``i`` (its session: the raylet gives each worker a process group of its own, in the
        node's session) whose command line starts with ``title``."""
        sid, out = self.nodes[i].pid, []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                if os.getsid(int(d.name)) != sid:
                    continue
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ProcessLookupError):
                continue
            if cmd.startswith(title):
                out.append(int(d.name))
        return out

    def kill(self, i: int) -> None:
        """Lose node ``i``: SIGKILL to every process of its session (its ``ray start``, raylet and workers)."""
        for pid in self.pids(i):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.nodes[i].wait()

    def stop(self) -> None:
        for i in reversed(range(len(self.nodes))):
            self.kill(i)
        shutil.rmtree(self.ray_tmp, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

