"""Choosing the torch device: 'auto' prefers CUDA; asking for CUDA without it is an error."""

from __future__ import annotations

import torch

from .errors import AecError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise AecError(
                "--device cuda: no CUDA device is available "
                f"(torch {torch.__version__}); use --device cpu or auto"
            )
        return torch.device("cuda")
    raise AecError(f"unknown device {name!r} (choose from {', '.join(DEVICE_CHOICES)})")


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
