"""Run by test_estimation_run.py inside a loopback-only network namespace: a small pairwise run on a
private local Ray instance; prints one JSON line with the matrix and the addresses Ray used."""
import json
import socket
import sys
import time

import torch

torch.set_num_threads(1)
sys.path.insert(0, sys.argv[2])

from core.estimation.runs.executors import RayExecutor  # noqa: E402
from core.estimation.runs.orchestrator import run_estimation  # noqa: E402
from test_estimation_run import small_config  # noqa: E402

start = time.time()
run = run_estimation(small_config(steps=int(sys.argv[3])), out=sys.argv[1], estimator="pairwise", seeds=[0], executor=RayExecutor(num_cpus=2))
print(json.dumps({"values": run.main.values.tolist(), "executor": run.manifest["executor"],
                  "interfaces": [name for _, name in socket.if_nameindex()],
                  "trainings": run.manifest["cost"]["trainings"], "seconds": time.time() - start}))
