"""Which codecs a benchmark can run and at which settings: the values each codec sweeps, which
codecs can run on this machine, and what each one is (`CodecInfo`) for the record. The names,
defaults and checks of the command's options are in `options` (no numpy or Pillow there)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import peers
from .options import (
    AEC,
    DEFAULT_AEC_QUALITIES,
    SweepError,
    aec_effort,
    check_sweep,
    is_aec,
    parse_values,
)
from .results import CodecInfo, Skipped

if TYPE_CHECKING:
    from ..codec import Codec

__all__ = [
    "AEC",
    "DEFAULT_AEC_QUALITIES",
    "Decoder",
    "Encoder",
    "SweepError",
    "available_codecs",
    "check_sweep",
    "codec_info",
    "default_sweep",
    "parse_values",
    "sweep_plan",
]

# Every codec is measured through the same pair: (H×W×3 uint8 RGB, swept value) → the bytes of
# a complete file, and those bytes → H×W×3 uint8 RGB.
Encoder = Callable[[np.ndarray, float], bytes]
Decoder = Callable[[bytes], np.ndarray]


def available_codecs(names: Sequence[str]) -> tuple[list[str], list[Skipped]]:
    """Split codec names into those that can run here and those skipped, with the reason."""
    runnable, skipped = [], []
    for name in names:
        reason = None if is_aec(name) else peers.unavailable_reason(name)
        if reason is None:
            runnable.append(name)
        else:
            skipped.append(Skipped(name, reason))
    return runnable, skipped


def default_sweep(codec: str) -> list[float]:
    """The values swept when none are given."""
    if is_aec(codec):
        return list(DEFAULT_AEC_QUALITIES)
    return [float(v) for v in peers.get_peer(codec).sweep]


def sweep_plan(
    codecs: Sequence[str], sweeps: Mapping[str, Sequence[float]] | None = None
) -> dict[str, list[float]]:
    """The values each codec runs: those in `sweeps`, else its defaults, in order and each
    once. SweepError for a value the codec does not accept."""
    plan = {}
    for codec in codecs:
        given = sweeps or {}
        # aec's qualities (--qualities) hold for aec at every effort
        values = given.get(codec) or (given.get(AEC) if is_aec(codec) else None)
        values = values or default_sweep(codec)
        plan[codec] = list(dict.fromkeys(float(v) for v in values))
        check_sweep(codec, plan[codec])
    return plan


def codec_info(name: str, sweep: Sequence[float], aec: Codec | None = None) -> CodecInfo:
    """What `name` is, at which settings, by which library (aec: with `aec`'s model)."""
    effort = aec_effort(name)
    if effort is not None:
        model = f"model {aec.checkpoint.model_id}" if aec is not None else "model ?"
        what = f"aecompress .aec ({model})" if effort == 0 else (
            f"aecompress .aec ({model}, effort {effort})"
        )  # fmt: skip
        return CodecInfo(name, what, "quality", list(sweep), _aec_lib())
    peer = peers.get_peer(name)
    try:
        library = peer.library()
    except Exception:  # a version query must never stop a benchmark
        library = "?"
    return CodecInfo(name, peer.description, peer.sweep_unit, list(sweep), library)


def _aec_lib() -> str:
    from .. import __version__

    return f"aecompress {__version__}"
