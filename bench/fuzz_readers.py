"""Fuzz the file readers: only a TaskAffinityError may escape, and nothing may hang.

Feeds random and mutated inputs to the matrix reader (CSV, JSON, NPZ), the run-config reader
(YAML, TOML) and the manifest reader, in this process, and every ``--cli-every`` inputs one of
them through ``python -m core group`` / ``python -m core estimate`` in a real subprocess (which
must print one line, exit 2 or 0, and never a traceback). Inputs are mutations of valid files
(byte flips, cut-offs, splices) and inserts of the known hard cases (deep nesting, 1e999,
aliases, control characters, other scripts' digits, names that are lists, strings as numbers).

    PYTHONPATH=$PWD python bench/fuzz_readers.py --minutes 10 --seed 17

Prints the count per reader and outcome; any other exception, or an input taking longer than
``--hang-seconds``, is a failure: its input is saved under ``--save`` and the exit status is 1.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from core.errors import TaskAffinityError  # noqa: E402
from core.estimation.runs.folder import RunDir  # noqa: E402
from core.matrix.io import parse_affinity  # noqa: E402

PLANTED = {"n_groups": 2, "tasks_per_group": 2, "dim": 8, "n_train": 20, "n_val": 8, "n_test": 8, "seed": 0}
VALID_CONFIG = {"name": "fz", "tasks": [{"builtin": "planted", "params": PLANTED}],
                "training": {"backend": "mlp", "steps": 5, "options": {"hidden": [4]}},
                "estimator": {"name": "pairwise"}, "seeds": [0]}
VALID_TEXT_TASK = {"name": "t1", "train": "train.csv", "text": "text", "label": "label", "max_train": 20,
                   "val_fraction": 0.25, "seed": 1}
TRAIN_CSV = "text,label\n" + "".join(f"example {i},{'pos' if i % 2 else 'neg'}\n" for i in range(24))
VALID_MANIFEST = {"format": "taskaffinity.run", "version": 1, "name": "r", "created": "2026-01-01T00:00:00",
                  "status": "complete", "estimator": "pairwise",
                  "config": {"source": "run.yaml", "raw": {}, "resolved": {"tasks": ["a", "b"]}}, "seeds": [0],
                  "packages": {"numpy": "2"}, "data_hashes": {"a": "x"}, "tasks": ["a", "b"],
                  "cost": {"trainings": 3, "seconds": 1.5, "flops": None, "wall_seconds": 2.0},
                  "progress": {"done": 3, "total": 3}, "events": [{"time": "t", "event": "started"}]}

HARD_TOKENS = [
    "1e999", "-1e999", "NaN", "Infinity", "1_000", "\uff11\uff12", "\u0661\u0662", "nan", "None", "null", "true",
    '"1.5"', '["a"]', "[" * 3000, "{" * 500, "\r", "\x00", "\u2028", "e\u0301", "\x1f", "'", '"', ",", "\n",
    "9" * 400, "-0", "0x10", "1e-400", "[]", "{}", "&a", "*a", "!!python/object/apply:os.system ['true']",
    "<<: *a", "? ", "- ", ": ", "\t", "\ufeff", "\udcff", "\\u0000", "\\ud800",
]


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def seeds_matrix(rng: random.Random) -> list[tuple[str, bytes]]:
    n = rng.randint(2, 5)
    names = [f"t{i}" for i in range(n)]
    vals = [[round(rng.uniform(-2, 2), 3) for _ in range(n)] for _ in range(n)]
    csv_text = "task," + ",".join(names) + "\n" + "".join(
        f"{a}," + ",".join(map(str, row)) + "\n" for a, row in zip(names, vals))
    js = {"format": "taskaffinity.affinity", "version": 1, "names": names, "values": vals, "seed": 3,
          "metric": "acc", "estimator": "pairwise", "cost": {"trainings": 2}, "preprocessing": ["zscore"],
          "uncertainty": [[0.1] * n for _ in range(n)]}
    meta = json.dumps({"seed": 1, "metric": "m"})
    npz = npz_bytes(names=np.array(names), values=np.array(vals), metadata=np.array(meta))
    return [("csv", csv_text.encode()), ("json", json.dumps(js).encode()), ("npz", npz)]


def random_json(rng: random.Random, depth: int = 0):
    """A random JSON value: random types, random nesting (sometimes deep), hard numbers and strings."""
    r = rng.random()
    if depth > 6 or r < 0.35:
        return rng.choice([None, True, False, 0, -1, 2**63, 1.5, -0.0, 1e308, "nan", "1", "", "\u0661", "a\rb",
                           "e\u0301", [], {}, "x" * rng.randint(0, 50)])
    if r < 0.65:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["names", "values", "seed", "cost", "metric", "preprocessing", "format", "version", "tasks", "config",
            "status", "progress", "events", "name", "uncertainty", "counts", "source", "raw", "resolved"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A few random edits: byte flips, cut-offs, inserts of hard tokens, splices, duplications."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randint(0, max(len(b) - 1, 0))
        if op < 0.25 and b:
            b[pos] = rng.randrange(256)
        elif op < 0.35:
            b = b[:pos]
        elif op < 0.75:
            tok = rng.choice(HARD_TOKENS)
            b[pos:pos] = tok.encode("utf-8", "surrogatepass")
        elif op < 0.85 and b:
            end = min(len(b), pos + rng.randint(1, 40))
            b[pos:pos] = b[pos:end] * rng.randint(2, 50)
        elif op < 0.92:
            b[pos:pos] = (b"[" * rng.randint(50, 200000)) if rng.random() < 0.5 else b"\n" + b" " * 200 + b"a:"
        else:
            b = bytearray(rng.choice([b"\xff\xfe", b"\xef\xbb\xbf", b"PK\x03\x04", b"\x00" * 10])) + b
    return bytes(b)


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def alias_bomb(rng: random.Random, key: str) -> str:
    width, levels = rng.randint(5, 12), rng.randint(5, 10)
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    lines.append(f"{key}: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def config_input(rng: random.Random) -> tuple[str, bytes]:
    cfg = json.loads(json.dumps(VALID_CONFIG))
    if rng.random() < 0.4:
        cfg["tasks"].append(dict(VALID_TEXT_TASK))
    r = rng.random()
    if r < 0.3:  # one field replaced by a random value
        target = rng.choice([cfg, cfg["training"], cfg["tasks"][0], cfg["tasks"][0].get("params", cfg),
                             cfg["tasks"][-1], cfg["estimator"]])
        key = rng.choice(list(target) + ["data_root", "allow_paths", "n_groups", "seed", "label", "classes",
                                         "max_train", "val_fraction", "n_train", "train", "options"])
        target[key] = random_json(rng)
        return "yaml", yaml.safe_dump(cfg, allow_unicode=True).encode("utf-8", "surrogatepass")
    if r < 0.4:
        return "yaml", alias_bomb(rng, rng.choice(["tasks", "name", "estimator", "defaults"])).encode()
    text = yaml.safe_dump(cfg)
    if r < 0.5:
        toml = ('name = "fz"\nseeds = [0]\n[[tasks]]\nbuiltin = "planted"\n[tasks.params]\nn_groups = 2\n'
                'tasks_per_group = 2\ndim = 8\nn_train = 20\nn_val = 8\nn_test = 8\n[training]\nsteps = 5\n')
        return "toml", mutate(toml.encode(), rng)
    return "yaml", mutate(text.encode(), rng)


def manifest_input(rng: random.Random) -> bytes:
    m = json.loads(json.dumps(VALID_MANIFEST))
    r = rng.random()
    if r < 0.4:
        key = rng.choice(list(m))
        m[key] = random_json(rng)
        return json.dumps(m).encode()
    if r < 0.5:
        return json.dumps(random_json(rng)).encode()
    return mutate(json.dumps(m).encode(), rng)


def matrix_input(rng: random.Random) -> tuple[str, bytes]:
    kind, data = rng.choice(seeds_matrix(rng))
    r = rng.random()
    if kind == "json" and r < 0.3:
        obj = json.loads(data)
        obj[rng.choice(list(obj) + ["extra"])] = random_json(rng)
        return kind, json.dumps(obj).encode()
    if kind == "npz" and r < 0.3:
        arrays = {"names": np.array(["a", "b"]), "values": np.eye(2)}
        choice = rng.random()
        if choice < 0.3:
            arrays["values"] = np.zeros((rng.randint(0, 3000), rng.randint(0, 3)))
        elif choice < 0.6:
            arrays["metadata"] = np.array(json.dumps(random_json(rng)))
        else:
            arrays[rng.choice(["names", "values", "uncertainty", "counts"])] = np.array(
                rng.choice([[1.0, 2.0], ["x", "y"], [[1, 2], [3, 4]], [True, False], 5]))
        return kind, npz_bytes(**arrays)
    return kind, mutate(data, rng)


def run_one(reader: str, kind: str, data: bytes, work: Path) -> str:
    """Feed one input; return the outcome ('ok' or 'refused'); raise anything else."""
    try:
        if reader == "matrix":
            parse_affinity(data, kind, source="fuzz", max_tasks=3000)
        elif reader == "config":
            from core.estimation.runs.config import load_run_config

            (work / "train.csv").write_text(TRAIN_CSV)
            path = work / f"run.{kind}"
            path.write_bytes(data)
            load_run_config(path)
        else:
            run = work / "run"
            run.mkdir(exist_ok=True)
            (run / "manifest.json").write_bytes(data)
            d = RunDir(run)
            d.read_manifest()
            d.overview()
        return "ok"
    except TaskAffinityError as exc:
        msg = str(exc)
        assert msg.strip() and "Traceback" not in msg, "an error must be a message"
        return "refused"


def run_cli(reader: str, kind: str, data: bytes, work: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TASKAFFINITY_LOG_DIR": str(work / "logs")}
    if reader == "config":
        (work / "train.csv").write_text(TRAIN_CSV)
        path = work / f"run.{kind}"
        path.write_bytes(data)
        cmd = [sys.executable, "-m", "core", "estimate", "--config", str(path), "--out", str(work / "out"),
               "--no-progress"]
    else:
        path = work / f"m.{kind}"
        path.write_bytes(data)
        cmd = [sys.executable, "-m", "core", "group", "--affinity", str(path), "--k", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=work)
    err = proc.stderr.strip()
    if proc.returncode not in (0, 2) or "Traceback" in err or (proc.returncode == 2 and len(err.splitlines()) != 1):
        raise AssertionError(f"CLI exit {proc.returncode}: {err[-500:]}")
    return "ok" if proc.returncode == 0 else "refused"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--hang-seconds", type=int, default=20)
    ap.add_argument("--cli-every", type=int, default=200, help="every N inputs, one through a real CLI process")
    ap.add_argument("--save", default=str(Path(tempfile.gettempdir()) / "fuzz_failures"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    counts: Counter = Counter()
    failures: list[str] = []
    signal.signal(signal.SIGALRM, _alarm)
    deadline = time.monotonic() + args.minutes * 60
    start = time.monotonic()
    i = 0
    with tempfile.TemporaryDirectory() as tmp:
        while time.monotonic() < deadline:
            i += 1
            reader = rng.choice(["matrix", "matrix", "config", "manifest"])
            if reader == "matrix":
                kind, data = matrix_input(rng)
            elif reader == "config":
                kind, data = config_input(rng)
            else:
                kind, data = "json", manifest_input(rng)
            work = Path(tmp) / f"w{i % 4}"
            work.mkdir(exist_ok=True)
            via_cli = args.cli_every > 0 and i % args.cli_every == 0 and reader != "manifest"
            signal.alarm(args.hang_seconds if not via_cli else 0)
            try:
                outcome = (run_cli if via_cli else run_one)(reader, kind, data, work)
                counts[(reader + (" (cli)" if via_cli else ""), outcome)] += 1
            except BaseException as exc:  # noqa: BLE001 - anything but the documented error is a finding
                if isinstance(exc, KeyboardInterrupt):
                    raise
                what = "hang" if isinstance(exc, Hang) else type(exc).__name__
                counts[(reader, f"FAIL {what}")] += 1
                save = Path(args.save)
                save.mkdir(parents=True, exist_ok=True)
                (save / f"{i}-{reader}.{kind}").write_bytes(data)
                failures.append(f"input {i} ({reader}, {kind}): {what}: "
                                + "".join(traceback.format_exception_only(type(exc), exc)).strip()[:300])
            finally:
                signal.alarm(0)
    elapsed = time.monotonic() - start
    print(f"fuzz_readers: seed {args.seed}, {i} inputs in {elapsed / 60:.1f} min, {len(failures)} failure(s)")
    print("| reader | outcome | inputs |")
    print("|---|---|---|")
    for (reader, outcome), n in sorted(counts.items()):
        print(f"| {reader} | {outcome} | {n} |")
    for f in failures[:30]:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
