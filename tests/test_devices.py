"""One device helper for training, embeddings, Grad-TAG and the torch SDP solver: CUDA asked for and absent
fails with one line (never a CPU fall-back), the device is recorded, bf16 mixed precision really autocasts.

Everything that moves tensors between devices runs here on the CPU through the same code as on a GPU;
the tests marked ``cuda`` rerun the device-specific parts on a GPU and skip, with a reason, without one.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli import main as cli_main
from core.devices import check_device, describe_device, resolve_device
from core.errors import InvalidInputError
from core.estimation.data.builtin import builtin_taskset
from core.estimation.models.training import TrainSpec, train_multitask
from core.estimation.runs.config import RunConfig
from core.estimation.runs.orchestrator import run_estimation
from core.grouping.planted import planted_affinity
from core.grouping.sdp.relaxation import solve_sdp
from core.matrix.io import write_affinity

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: nothing to refuse")
TINY = dict(steps=5, batch_size=16, lr=1e-2, eval_every=0, options={"hidden": [4]})


@pytest.fixture(scope="module")
def planted():
    return builtin_taskset("planted", n_groups=2, tasks_per_group=2, seed=0)


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_names_are_checked_without_torch(name):
    assert check_device(name) == name


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "mps", "", None, 0])
def test_bad_device_names_fail_with_one_line_naming_the_choices(name):
    with pytest.raises(InvalidInputError, match=r"not valid; use auto .*cpu, cuda or cuda:N") as err:
        resolve_device(name) if name is not None else check_device(name)
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidInputError, match="training option device"):
        TrainSpec(device=name)


def test_cpu_and_auto_resolve():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    assert describe_device("cpu") == "cpu"


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_refused_in_one_line(name, planted):
    with pytest.raises(InvalidInputError, match="no CUDA GPU") as err:
        resolve_device(name, "--device")
    assert "\n" not in str(err.value) and str(err.value).startswith(f"--device '{name}'")
    with pytest.raises(InvalidInputError, match="training option device 'cuda' was asked for"):
        train_multitask(planted, planted.names, TrainSpec(device="cuda", **TINY), seed=0)
    with pytest.raises(InvalidInputError, match="solver device"):
        solve_sdp(planted_affinity([10, 10, 10], seed=0).matrix.values, 3, solver="torch", device=name)


@no_cuda
def test_cli_refuses_cuda_before_any_work(tmp_path, capsys):
    mat = tmp_path / "a.csv"
    write_affinity(planted_affinity([4, 4, 4], seed=0).matrix, mat)
    assert cli_main(["group", "--affinity", str(mat), "--k", "3", "--solver", "torch", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: solver device 'cuda' was asked for") and "\n" not in err
    out = tmp_path / "run"
    assert cli_main(["estimate", "--config", str(ROOT / "sample_data" / "configs" / "planted.yaml"),
                     "--estimator", "single", "--out", str(out), "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: device 'cuda' was asked for") and "\n" not in err
    assert not out.exists()  # nothing written: no half-made run folder to trip a later --resume
    assert cli_main(["group", "--affinity", str(mat), "--k", "3", "--solver", "cvxpy", "--device", "cpu"]) == 2
    assert "--device applies to the torch solver" in capsys.readouterr().err


def test_group_cli_records_the_solver_device(tmp_path, capsys):
    mat = tmp_path / "a.csv"
    write_affinity(planted_affinity([4, 4, 4], seed=0).matrix, mat)
    assert cli_main(["group", "--affinity", str(mat), "--k", "3", "--solver", "torch", "--device", "cpu",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["details"]["device"] == "cpu"


def test_estimation_records_the_device_asked_for_and_used(tmp_path, planted):
    cfg = RunConfig(name="dev", taskset=planted, spec=TrainSpec(device="auto", **TINY))
    run = run_estimation(cfg, out=tmp_path / "run", estimator="single", device="cpu")
    assert run.manifest["device"] == {"requested": "cpu", "used": "cpu"}
    assert run.manifest["config"]["resolved"]["spec"]["device"] == "cpu"
    with pytest.raises(InvalidInputError, match="is not valid"):
        run_estimation(cfg, out=tmp_path / "run2", estimator="single", device="gpu")


def test_bf16_mixed_precision_autocasts_the_training_forward_on_cpu(planted):
    seen: list[torch.dtype] = []

    class Hooks:  # on_step runs before each update: hook the trunk to see the dtype inside the update
        def on_step(self, step, net, optimizer, batches):
            if step == 0:
                net.trunk.register_forward_hook(lambda m, i, o: seen.append(o.dtype))

    spec = TrainSpec(precision="bf16", **TINY)
    mixed = train_multitask(planted, planted.names, spec, seed=0, hooks=Hooks())
    assert seen and all(d == torch.bfloat16 for d in seen)
    plain = train_multitask(planted, planted.names, TrainSpec(**TINY), seed=0)
    a = torch.cat([p.detach().flatten() for p in mixed.net.parameters()])
    b = torch.cat([p.detach().flatten() for p in plain.net.parameters()])
    assert a.dtype == torch.float32  # weights (and the optimizer) stay float32
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=0.05)  # bf16 rounding, same training
    with pytest.raises(InvalidInputError, match="precision"):
        TrainSpec(precision="fp16")


def test_gpu_check_refuses_missing_cuda_in_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the check would run")
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--stages", "sdp"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("error: --device 'cuda' was asked for but torch sees no CUDA GPU")
    assert len(proc.stderr.strip().splitlines()) == 1 and not proc.stdout.strip()


def test_gpu_check_fails_a_stage_that_ran_on_another_device():
    from bench.gpu_check import CheckFailed, _on

    assert _on("cpu", torch.device("cpu"), "x") == "cpu"
    with pytest.raises(CheckFailed, match="ran on cpu, but cuda:0 was asked for"):
        _on("cpu", torch.device("cuda:0"), "training")


@pytest.mark.slow
def test_gpu_check_dry_run_exercises_every_stage_on_cpu(tmp_path):
    """The whole script at dry-run sizes (Ray included): every stage ok, on the CPU, and CUDA refused."""
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--dry-run", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads(out.read_text())
    assert rec["dry_run"] and rec["device"] == "cpu"
    assert {k: v["status"] for k, v in rec["stages"].items()} == dict.fromkeys(("sdp", "training", "gradtag", "ray"),
                                                                               "ok")
    assert {r["stage"] for r in rec["rows"]} == {"sdp", "training", "gradtag", "ray"}
    assert all(r["device"].startswith("cpu") for r in rec["rows"])
    training = [r for r in rec["rows"] if r["stage"] == "training"]
    assert len(training) == 3 and all(np.isfinite(r["trainings_per_hour"]) for r in training)
    if not torch.cuda.is_available():
        assert "no CUDA GPU" in rec["refuses_missing_cuda"]
    assert not (ROOT / "bench" / "results" / "gpu_check.json").exists() or "dry_run\": false" in (
        ROOT / "bench" / "results" / "gpu_check.json").read_text()  # a dry run never writes the results
