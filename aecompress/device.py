"""Choosing the torch device: 'auto' prefers CUDA; asking for CUDA without it is an error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import AecError, UsageError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def check_device_name(name: str) -> str:
    """The name, if it is one of DEVICE_CHOICES; a UsageError otherwise (no torch import)."""
    if name not in DEVICE_CHOICES:
        raise UsageError(f"unknown device {name!r} (choose from {', '.join(DEVICE_CHOICES)})")
    return name


def resolve_device(name: str) -> torch.device:
    import torch  # here, so that argument checks and --help never wait for torch

    check_device_name(name)
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
    raise AssertionError(name)  # check_device_name knows every choice


def describe(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
