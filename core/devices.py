"""One way to turn a device option (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a torch device.

Training, sentence embeddings, Grad-TAG and the torch SDP solver all resolve their device here,
so asking for CUDA where there is none fails the same way everywhere: one line saying what to
change, never a silent fall-back to the CPU (a run that quietly trains on the CPU for hours
is worse than one that stops at once).

torch is imported inside the functions: the command line validates ``--device`` with
:func:`check_device` before anything heavy is loaded.
"""
from __future__ import annotations

import re
from typing import Any

from core.errors import InvalidInputError

DEVICE_HELP = "auto (a CUDA GPU when present, else the CPU), cpu, cuda or cuda:N"
_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(device: Any, where: str = "device") -> str:
    """``device`` if it is one of ``auto``, ``cpu``, ``cuda``, ``cuda:N``; else :class:`InvalidInputError`.

    Only the spelling is checked (no torch import); :func:`resolve_device` checks availability.
    """
    if not isinstance(device, str) or not _PATTERN.match(device):
        raise InvalidInputError(f"{where} {device!r} is not valid; use {DEVICE_HELP}.")
    return device


def resolve_device(device: Any = "auto", where: str = "device"):
    """The torch device for ``device`` (a string as :func:`check_device` accepts, a torch.device, or None = auto).

    Raises
    ------
    InvalidInputError
        For a malformed name, or CUDA asked for (``cuda``, ``cuda:N``) when torch sees no such GPU.
    """
    import torch

    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = "auto" if device is None else check_device(device, where)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise InvalidInputError(f"{where} {name!r} was asked for but torch sees no CUDA GPU (torch "
                                    f"{torch.__version__}, {build}); ask for cpu or auto instead.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidInputError(f"{where} {name!r} was asked for but there are only {torch.cuda.device_count()} "
                                    f"CUDA GPU(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1}).")
    elif dev.type != "cpu":
        raise InvalidInputError(f"{where} {name!r} is not valid; use {DEVICE_HELP}.")
    return dev


def describe_device(device: Any) -> str:
    """``cpu`` or ``cuda:0 (GPU name)``: what a manifest or a benchmark records as the device used."""
    import torch

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if dev.type != "cuda":
        return str(dev)
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
