"""Stage "store": where projected gradients, and the base weights they were taken at, persist.

:class:`GradientStore` is the interface the orchestrator uses (base checkpoint, create or
resume, write a batch, load, release); :class:`MemmapGradientStore` keeps them on disk.
Its root folder holds ``base.pt`` (the base weights with the key of the data, spec and
seed they were trained for) and ``gradients/``; without a root, the gradients go to a
temporary folder removed once loaded, and the base model is not kept.

Layout of a gradients folder::

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

import io
import json
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from core.atomic import atomic_write_bytes, atomic_write_text
from core.errors import InvalidInputError, RunStateError

FORMAT = "taskaffinity.gradstore"
VERSION = 1
HEADER = "header.json"
FILES = {"features": ("features.f32", np.float32), "outputs": ("outputs.f32", np.float32),
         "targets": ("targets.f32", np.float32), "task": ("task.i32", np.int32)}


def _jsonable(meta: Any) -> Any:
    return json.loads(json.dumps(meta, sort_keys=True, default=str))


class GradientStore(ABC):
    """Stage "store": persistence of one Grad-TAG run (base weights and projected gradients)."""

    @abstractmethod
    def load_base(self, key: str) -> dict[str, Any] | None:
        """The saved base model ``{"key", "state", "steps", "flops"}`` when saved under ``key``, else None."""

    @abstractmethod
    def save_base(self, key: str, state: dict[str, Any], steps: int, flops: float) -> None:
        """Keep the base weights ``state`` (trained ``steps`` for ``flops``) under ``key``."""

    @abstractmethod
    def create_or_resume(self, *, dim: int, batches: Sequence[tuple[str, int, int]], targets: np.ndarray,
                         task_index: np.ndarray, meta: dict[str, Any]) -> "GradientStore":
        """Prepare to receive the rows of ``batches``, keeping the completed ones of the same ``meta``."""

    @property
    @abstractmethod
    def batches(self) -> list[tuple[str, int, int]]:
        """``(task, start_row, stop_row)`` of every batch."""

    @property
    @abstractmethod
    def completed(self) -> int:
        """Number of leading batches already written."""

    @abstractmethod
    def write_batch(self, index: int, features: np.ndarray, outputs: np.ndarray) -> None:
        """Write batch ``index`` (the next one) and record it as completed."""

    @abstractmethod
    def load(self) -> dict[str, np.ndarray]:
        """All rows: ``features``, ``outputs``, ``targets``, ``task``."""

    def release(self) -> None:
        """Drop what only this run needed (e.g. a temporary folder), once the rows are loaded."""


class MemmapGradientStore(GradientStore):
    """Projected gradients as numpy memmaps under ``root/gradients``, base weights in ``root/base.pt``.

    Parameters
    ----------
    root : path, optional
        Kept and reused on a rerun (an interrupted gradient computation resumes); None = a
        temporary gradients folder, removed by :meth:`release`, and no base checkpoint.

    Open an existing gradients folder for reading with :meth:`open`.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = None if root is None else Path(root)
        self.path: Path | None = None
        self._temporary = False

    def _attach(self, path: Path, header: dict[str, Any], mode: str) -> "MemmapGradientStore":
        self.path = Path(path)
        self.header = header
        n, d = header["n_rows"], header["dim"]
        self.arrays = {}
        for key, (fname, dtype) in FILES.items():
            shape = (n, d) if key == "features" else (n,)
            self.arrays[key] = np.memmap(self.path / fname, dtype=dtype, mode=mode, shape=shape)
        return self

    # -- base weights ----------------------------------------------------------------------------
    @property
    def base_path(self) -> Path | None:
        return None if self.root is None else self.root / "base.pt"

    def load_base(self, key: str) -> dict[str, Any] | None:
        ckpt = self.base_path
        saved = torch.load(ckpt, map_location="cpu", weights_only=True) if ckpt and ckpt.is_file() else None
        return saved if saved is not None and saved.get("key") == key else None

    def save_base(self, key: str, state: dict[str, Any], steps: int, flops: float) -> None:
        ckpt = self.base_path
        if ckpt is None:
            return
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({"key": key, "state": state, "steps": steps, "flops": flops}, buf)
        atomic_write_bytes(ckpt, buf.getvalue())

    # -- opening ---------------------------------------------------------------------------------
    def create_or_resume(self, *, dim: int, batches: Sequence[tuple[str, int, int]], targets: np.ndarray,
                         task_index: np.ndarray, meta: dict[str, Any]) -> "MemmapGradientStore":
        """Open ``root/gradients`` (or a new temporary folder) for writing; resume it if made with the same ``meta``.

        Raises :class:`RunStateError` when a store already there was made for a different
        model, projection, or data (choose another folder, or delete it to start over).
        """
        if self.root is not None:
            path = self.root / "gradients"
        else:
            path, self._temporary = Path(tempfile.mkdtemp(prefix="gradtag-")), True
        meta = _jsonable(meta)
        batches = [[str(t), int(a), int(b)] for t, a, b in batches]
        n_rows = int(len(targets))
        if path.exists() and (path / HEADER).is_file():
            store = self._attach(path, self.open(path).header, mode="r+")
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
        return self._attach(path, header, mode="r+")

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> "MemmapGradientStore":
        """Open the existing gradients folder ``path`` (read-only by default)."""
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
        return cls()._attach(path, header, mode)

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

    def release(self) -> None:
        """Remove the temporary gradients folder (a kept ``root`` stays)."""
        if self._temporary and self.path is not None:
            del self.arrays
            shutil.rmtree(self.path, ignore_errors=True)
            self._temporary = False
