"""Unsafe files: nothing user-supplied is unpickled or executed.

An audit of the source (AST, so ``net.eval()`` is not ``eval(``) of core/, pages/, ui/ and
app.py for unsafe loaders, plus behavioural tests: pickled object arrays, YAML with Python
tags, and run folders planted with executable files, each carrying a payload that would
create a sentinel file if anything ran it.
"""
from __future__ import annotations

import ast
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.estimation.runs.folder import RunDir  # noqa: E402
from core.errors import InvalidInputError, TaskAffinityError  # noqa: E402
from core.matrix.io import parse_affinity, read_affinity  # noqa: E402

AUDITED = [ROOT / "app.py", *sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "pages").rglob("*.py")),
           *sorted((ROOT / "ui").rglob("*.py"))]


def _kwarg(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<expr>"
    return None


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    parts.append(node.id if isinstance(node, ast.Name) else "<expr>")  # f().eval() is not eval()
    return ".".join(reversed(parts))


def unsafe_calls(source: str) -> list[tuple[int, str]]:
    """(line, reason) for each unsafe load or dynamic execution in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _dotted(node) in ("yaml.Loader", "yaml.UnsafeLoader",
                                                                  "yaml.FullLoader"):
            found.append((node.lineno, f"{_dotted(node)} (use yaml.safe_load)"))
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in ("eval", "exec", "compile", "__import__"):
            found.append((node.lineno, f"{name}()"))
        elif name in ("np.load", "numpy.load") and _kwarg(node, "allow_pickle") is not False:
            found.append((node.lineno, f"{name} without allow_pickle=False"))
        elif name == "torch.load" and _kwarg(node, "weights_only") is not True:
            found.append((node.lineno, "torch.load without weights_only=True"))
        elif name in ("yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load",
                      "yaml.full_load_all"):
            found.append((node.lineno, f"{name} (use yaml.safe_load)"))
        elif name.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "marshal", "shelve", "cloudpickle") \
                and name.split(".")[-1] in ("load", "loads", "open", "Unpickler"):
            found.append((node.lineno, f"{name} (unpickles)"))
        elif name.endswith("read_pickle"):
            found.append((node.lineno, f"{name} (unpickles)"))
        elif name.endswith("from_pretrained") and (_kwarg(node, "trust_remote_code") not in (None, False)
                                                    or _kwarg(node, "local_files_only") is not True):
            found.append((node.lineno, f"{name} without local_files_only=True or with trust_remote_code"))
    return found


def test_audit_finds_unsafe_patterns():
    # The audit itself must catch what it is for (a test that cannot fail proves nothing).
    bad = ("import numpy as np, torch, yaml, pickle\nnp.load(f)\nnp.load(f, allow_pickle=True)\ntorch.load(f)\n"
           "yaml.load(s, Loader=yaml.Loader)\nyaml.unsafe_load(s)\npickle.loads(b)\neval('1')\nexec('x=1')\n"
           "AutoModel.from_pretrained(p, trust_remote_code=True)\n")
    lines = [line for line, _ in unsafe_calls(bad)]
    assert {2, 3, 4, 5, 6, 7, 8, 9, 10} <= set(lines), unsafe_calls(bad)
    ok = ("np.load(f, allow_pickle=False)\ntorch.load(f, weights_only=True)\nyaml.safe_load(s)\nnet.eval()\n"
          "AutoModel.from_pretrained(p, local_files_only=True).eval()\n")
    assert unsafe_calls(ok) == []


def test_source_has_no_unsafe_loads():
    assert len(AUDITED) > 20
    problems = [f"{path.relative_to(ROOT)}:{line}: {why}" for path in AUDITED
                for line, why in unsafe_calls(path.read_text(encoding="utf-8"))]
    assert not problems, "unsafe loads:\n" + "\n".join(problems)


# ---------------------------------------------------------------- behaviour with booby-trapped files

class Trap:
    """Unpickling this creates the sentinel file: proof that something unpickled user data."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def trapped_array(sentinel: Path) -> np.ndarray:
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = Trap(sentinel), "b"
    return arr


def test_pickled_object_arrays_in_npz_are_refused(tmp_path):
    sentinel = tmp_path / "PWNED"
    buf = io.BytesIO()
    np.savez(buf, names=trapped_array(sentinel), values=np.eye(2))
    with pytest.raises(InvalidInputError, match="never unpickled") as info:
        parse_affinity(buf.getvalue(), "npz", source="upload.npz")
    assert "upload.npz" in str(info.value) and not sentinel.exists()
    path = tmp_path / "m.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(InvalidInputError, match="never unpickled"):
        read_affinity(path)
    assert not sentinel.exists()


def test_pickled_npy_given_as_npz_is_refused(tmp_path):
    # A bare .npy (or a raw pickle) is not a zip archive: refused before numpy sees it.
    sentinel = tmp_path / "PWNED"
    buf = io.BytesIO()
    np.save(buf, trapped_array(sentinel), allow_pickle=True)
    import pickle

    for data in (buf.getvalue(), pickle.dumps(Trap(sentinel))):
        with pytest.raises(InvalidInputError, match="not a valid .npz"):
            parse_affinity(data, "npz", source="upload.npz")
    assert not sentinel.exists()


def test_pickled_npy_in_embedding_cache_is_not_unpickled(tmp_path):
    # The only other np.load: a cache file planted with a pickle is ignored (recomputed), never unpickled.
    sentinel = tmp_path / "PWNED"
    path = tmp_path / "cache.npy"
    np.save(path, trapped_array(sentinel), allow_pickle=True)
    with pytest.raises(ValueError):
        np.load(path, allow_pickle=False)  # exactly the call core/estimation/data/embeddings.py makes
    assert not sentinel.exists()


def test_yaml_config_with_python_tags_is_refused(tmp_path):
    from core.estimation.runs.config import load_run_config

    sentinel = tmp_path / "PWNED"
    payloads = [f"name: !!python/object/apply:builtins.open ['{sentinel}', 'w']\n",
                f"!!python/object/new:builtins.open ['{sentinel}', 'w']\n",
                "name: !!python/name:os.system\n",
                f"tasks:\n  - !!python/object/apply:os.system ['touch {sentinel}']\n"]
    for i, text in enumerate(payloads):
        cfg = tmp_path / f"evil{i}.yaml"
        cfg.write_text(text)
        with pytest.raises(InvalidInputError, match="not valid YAML") as info:
            load_run_config(cfg)
        assert cfg.name in str(info.value)
    assert not sentinel.exists()


def test_yaml_option_on_the_cli_is_refused(tmp_path, capsys):
    from core.cli import main

    sentinel = tmp_path / "PWNED"
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("name: x\n")
    with pytest.raises(SystemExit) as info:  # argparse rejects the option value: usage error, exit 2
        main(["estimate", "--config", str(cfg), "--out", str(tmp_path / "run"), "--option",
              f"subsets=!!python/object/apply:builtins.open ['{sentinel}', 'w']"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and not sentinel.exists()
    assert "not valid YAML" in err and "Traceback" not in err, err


def planted_run_folder(path: Path, sentinel: Path) -> Path:
    """A run folder whose every file tries to run code when read carelessly."""
    path.mkdir(parents=True)
    matrix = {"format": "taskaffinity.affinity", "version": 1, "names": ["a", "b"], "values": [[1, 0.5], [0.5, 1]],
              "notes": f"!!python/object/apply:builtins.open ['{sentinel}', 'w']"}
    (path / "affinity.json").write_text(json.dumps(matrix))
    RunDir(path).affinity_csv_path.write_text("task,a,b\na,1,0.5\nb,0.5,1\n")
    RunDir(path).manifest_path.write_text(json.dumps({
        "format": "taskaffinity.run", "version": 1, "name": "__import__('os').system('touch PWNED')",
        "status": "interrupted", "estimator": "evil_mod_x:Est",
        "config": {"source": str(path / "config.yaml"), "resolved": {"estimator": "evil_mod_x:Est"}}}))
    (path / "config.yaml").write_text(f"name: !!python/object/apply:builtins.open ['{sentinel}', 'w']\n")
    (path / "evil_mod_x.py").write_text(f"open({str(sentinel)!r}, 'w')\nclass Est: pass\n")
    (path / "__init__.py").write_text((path / "evil_mod_x.py").read_text())
    (path / "conftest.py").write_text((path / "evil_mod_x.py").read_text())
    (path / "sitecustomize.py").write_text((path / "evil_mod_x.py").read_text())
    import pickle

    (path / "results.pkl").write_bytes(pickle.dumps(Trap(sentinel)))
    (path / "model.pt").write_bytes(pickle.dumps(Trap(sentinel)))
    buf = io.BytesIO()
    np.savez(buf, names=trapped_array(sentinel), values=np.eye(2))
    (path / "matrices").mkdir()
    (path / "matrices" / "extra.npz").write_bytes(buf.getvalue())
    (path / "matrices" / "pairwise.json").write_text(json.dumps(matrix))
    return path


def test_reading_a_planted_run_folder_executes_nothing(tmp_path, monkeypatch):
    from ui.services.launches import plan_resume
    from core.estimation.runs.folder import load_run
    from ui.state import read_run

    sentinel = tmp_path / "PWNED"
    root = tmp_path / "runs"
    run = planted_run_folder(root / "evil", sentinel)
    monkeypatch.syspath_prepend(str(run))  # even with the folder importable, its modules are never imported
    loaded = load_run(run)
    assert set(loaded.matrices) == {"main", "pairwise"}  # .npz in matrices/ is not read at all
    assert loaded.main.notes.startswith("!!python")  # kept as plain text
    read_run(run)
    with pytest.raises(TaskAffinityError, match="registered estimators"):
        plan_resume(run, root=root)
    assert "evil_mod_x" not in sys.modules
    assert not sentinel.exists()
