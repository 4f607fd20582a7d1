"""On-disk store of projected gradients: numpy memmaps plus a small JSON header.

Layout of a store folder::

    header.json     {"format": "taskaffinity.gradstore", "version": 1, "n_rows", "dim",
                     "batches": [[task, start_row, stop_row], ...], "completed": k, "meta": {...}}
    features.f32    (n_rows, dim) float32 projected gradients (memmap)
    outputs.f32     (n_rows,) float32 base-model margins f0 (the offset of the linearised model)
    targets.f32     (n_rows,) float32 labels / regression targets
    task.i32        (n_rows,) int32 index of each row's task in ``meta["tasks"]``

Rows are written batch by batch; after a batch's rows are flushed, the header's
``completed`` count is replaced atomically. An interrupted computation therefore
resumes at the first batch not recorded as completed, and a reader never sees a
half-written batch counted as done. ``meta`` (projector, parameter names, model
fingerprint, tasks) must match for a resume: a store made for another model or
projection is refused rather than silently mixed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.atomic import atomic_write_text
from core.errors import InvalidInputError, RunStateError

FORMAT = "taskaffinity.gradstore"
VERSION = 1
HEADER = "header.json"
FILES = {"features": ("features.f32", np.float32), "outputs": ("outputs.f32", np.float32),
         "targets": ("targets.f32", np.float32), "task": ("task.i32", np.int32)}


def _jsonable(meta: Any) -> Any:
    return json.loads(json.dumps(meta, sort_keys=True, default=str))


class GradientStore:
    """Projected gradients on disk; open with :meth:`create_or_resume` or :meth:`open`."""

    def __init__(self, path: Path, header: dict[str, Any], mode: str):
        self.path = Path(path)
        self.header = header
        n, d = header["n_rows"], header["dim"]
        self.arrays = {}
        for key, (fname, dtype) in FILES.items():
            shape = (n, d) if key == "features" else (n,)
            self.arrays[key] = np.memmap(self.path / fname, dtype=dtype, mode=mode, shape=shape)

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def create_or_resume(cls, path: str | Path, *, dim: int, batches: Sequence[tuple[str, int, int]],
                         targets: np.ndarray, task_index: np.ndarray, meta: dict[str, Any]) -> "GradientStore":
        """Open the store at ``path`` for writing; resume it if it was made with the same ``meta``.

        Raises :class:`RunStateError` when a store already there was made for a different
        model, projection, or data (choose another folder, or delete it to start over).
        """
        path = Path(path)
        meta = _jsonable(meta)
        batches = [[str(t), int(a), int(b)] for t, a, b in batches]
        n_rows = int(len(targets))
        if path.exists() and (path / HEADER).is_file():
            store = cls.open(path, mode="r+")
            h = store.header
            if h["meta"] != meta or h["dim"] != dim or h["batches"] != batches or h["n_rows"] != n_rows:
                diff = sorted(k for k in set(h["meta"]) | set(meta) if h["meta"].get(k) != meta.get(k))
                raise RunStateError(
                    f"{path}: a gradient store made for a different setup is already here (differs in "
                    f"{', '.join(diff) or 'shape'}); use another folder or delete this one to recompute.")
            return store
        if path.exists() and any(path.iterdir()):
            raise RunStateError(f"{path}: folder is not empty and holds no gradient store; choose an empty folder.")
        path.mkdir(parents=True, exist_ok=True)
        header = {"format": FORMAT, "version": VERSION, "n_rows": n_rows, "dim": int(dim), "batches": batches,
                  "completed": 0, "meta": meta}
        for key, (fname, dtype) in FILES.items():
            shape = (n_rows, dim) if key == "features" else (n_rows,)
            arr = np.memmap(path / fname, dtype=dtype, mode="w+", shape=shape)
            if key == "targets":
                arr[:] = np.asarray(targets, dtype=np.float32)
            elif key == "task":
                arr[:] = np.asarray(task_index, dtype=np.int32)
            arr.flush()
            del arr
        atomic_write_text(path / HEADER, json.dumps(header, indent=1))
        return cls(path, header, mode="r+")

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> "GradientStore":
        """Open an existing store (read-only by default)."""
        path = Path(path)
        try:
            header = json.loads((path / HEADER).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInputError(f"{path}: no gradient store here (no {HEADER}).") from None
        except json.JSONDecodeError as exc:
            raise RunStateError(f"{path / HEADER}: damaged gradient-store header ({exc}).") from None
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise RunStateError(f"{path}: not a version-{VERSION} gradient store.")
        for fname, _ in FILES.values():
            if not (path / fname).is_file():
                raise RunStateError(f"{path}: gradient store is missing {fname}; delete the folder to recompute.")
        return cls(path, header, mode)

    # -- state -----------------------------------------------------------------------------------
    @property
    def batches(self) -> list[tuple[str, int, int]]:
        return [tuple(b) for b in self.header["batches"]]

    @property
    def completed(self) -> int:
        return int(self.header["completed"])

    @property
    def complete(self) -> bool:
        return self.completed == len(self.header["batches"])

    def write_batch(self, index: int, features: np.ndarray, outputs: np.ndarray) -> None:
        """Write batch ``index`` (must be the next one) and record it as completed."""
        if index != self.completed:
            raise RunStateError(f"gradient store expects batch {self.completed} next, got {index}.")
        _, start, stop = self.header["batches"][index]
        if features.shape != (stop - start, self.header["dim"]):
            raise InvalidInputError(f"batch {index}: features of shape {features.shape}, expected "
                                    f"{(stop - start, self.header['dim'])}.")
        self.arrays["features"][start:stop] = features
        self.arrays["outputs"][start:stop] = outputs
        self.arrays["features"].flush()
        self.arrays["outputs"].flush()
        self.header["completed"] = index + 1
        atomic_write_text(self.path / HEADER, json.dumps(self.header, indent=1))

    # -- reading ---------------------------------------------------------------------------------
    def load(self) -> dict[str, np.ndarray]:
        """All rows as in-memory arrays (refuses an incomplete store)."""
        if not self.complete:
            raise RunStateError(f"{self.path}: gradient store is incomplete ({self.completed} of "
                                f"{len(self.header['batches'])} batches); resume the computation first.")
        return {k: np.array(v) for k, v in self.arrays.items()}

    @property
    def tasks(self) -> list[str]:
        return list(self.header["meta"].get("tasks", []))
