"""Which codecs a benchmark can run and at which settings: the names (aec and the peers), the
defaults, checking the swept values each codec accepts, which codecs can run on this machine,
and what each one is (`CodecInfo`) for the record."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError
from ..quality import QUALITY_MAX, QUALITY_MIN
from . import peers
from .results import CodecInfo, Skipped

if TYPE_CHECKING:
    from ..codec import Codec

AEC = "aec"
DEFAULT_REFERENCE = "jpeg"
DEFAULT_AEC_QUALITIES: tuple[float, ...] = (1, 15, 29, 43, 57, 72, 86, 100)
"""Evenly spaced over 1..100: the quality knob moves bpp in roughly even ratios."""
DEFAULT_CODECS: tuple[str, ...] = (AEC, "jpeg", "webp", "avif", "jp2", "heic", "jxl")
"""What runs without --codecs; heic and jxl only when their plugins are installed."""
KNOWN_CODECS: tuple[str, ...] = (AEC, *peers.PEERS)

# Every codec is measured through the same pair: (H×W×3 uint8 RGB, swept value) → the bytes of
# a complete file, and those bytes → H×W×3 uint8 RGB.
Encoder = Callable[[np.ndarray, float], bytes]
Decoder = Callable[[bytes], np.ndarray]


class UnknownCodecError(UsageError):
    """A codec name that is neither aec nor a peer (a usage error)."""


class SweepError(UsageError):
    """Swept values that are not numbers, or out of the codec's range (a usage error)."""


def parse_codecs(text: str | None) -> list[str]:
    """'aec, jpeg,webp' → ['aec', 'jpeg', 'webp']; None → the defaults. Unknown names raise."""
    if text is None:
        return list(DEFAULT_CODECS)
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise UnknownCodecError("--codecs names no codec")
    unknown = [n for n in names if n not in KNOWN_CODECS]
    if unknown:
        raise UnknownCodecError(
            f"unknown codec {', '.join(repr(n) for n in unknown)} "
            f"(choose from {', '.join(KNOWN_CODECS)})"
        )
    return list(dict.fromkeys(names))


def available_codecs(names: Sequence[str]) -> tuple[list[str], list[Skipped]]:
    """Split codec names into those that can run here and those skipped, with the reason."""
    runnable, skipped = [], []
    for name in names:
        reason = None if name == AEC else peers.unavailable_reason(name)
        if reason is None:
            runnable.append(name)
        else:
            skipped.append(Skipped(name, reason))
    return runnable, skipped


def parse_reference(text: str) -> str:
    """The codec the BD-rates are measured against, by name; unknown names raise."""
    name = text.strip().lower()
    if name not in KNOWN_CODECS:
        raise UnknownCodecError(
            f"--reference: unknown codec {text!r} (choose from {', '.join(KNOWN_CODECS)})"
        )
    return name


def parse_values(text: str, what: str) -> list[float]:
    """'1,5.5,10' → [1.0, 5.5, 10.0]; SweepError naming `what` for anything else."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SweepError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values or any(not math.isfinite(v) for v in values):
        raise SweepError(f"{what}: expected comma-separated numbers, got {text!r}")
    return values


def parse_sweeps(qualities: str, sweeps: Sequence[str] = ()) -> dict[str, list[float]]:
    """aec's qualities ('10,50,90') and peers' sweeps ('jpeg=10,50,90' each) → codec → values,
    each checked with `check_sweep`. SweepError or UnknownCodecError when malformed."""
    plan = {AEC: parse_values(qualities, "--qualities")}
    for item in sweeps:
        name, sep, values = item.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            raise SweepError(f"--sweep: expected CODEC=V1,V2,..., got {item!r}")
        if name not in KNOWN_CODECS:
            raise UnknownCodecError(
                f"--sweep: unknown codec {name!r} (choose from {', '.join(KNOWN_CODECS)})"
            )
        plan[name] = parse_values(values, f"--sweep {name}")
    for name, values in plan.items():
        check_sweep(name, values)
    return plan


def default_sweep(codec: str) -> list[float]:
    """The values swept when none are given."""
    if codec == AEC:
        return list(DEFAULT_AEC_QUALITIES)
    return [float(v) for v in peers.get_peer(codec).sweep]


def sweep_plan(
    codecs: Sequence[str], sweeps: Mapping[str, Sequence[float]] | None = None
) -> dict[str, list[float]]:
    """The values each codec runs: those in `sweeps`, else its defaults, in order and each
    once. SweepError for a value the codec does not accept."""
    plan = {}
    for codec in codecs:
        values = (sweeps or {}).get(codec) or default_sweep(codec)
        plan[codec] = list(dict.fromkeys(float(v) for v in values))
        check_sweep(codec, plan[codec])
    return plan


def check_sweep(codec: str, values: Sequence[float]) -> None:
    """SweepError unless every value is one `codec` accepts."""
    if codec == AEC:
        bad = [v for v in values if not QUALITY_MIN <= v <= QUALITY_MAX]
        what = f"aec qualities must be from {QUALITY_MIN:g} to {QUALITY_MAX:g}"
    elif peers.get_peer(codec).sweep_unit == "ratio":
        bad = [v for v in values if v <= 1]
        what = f"{codec} ratios must be above 1"
    else:
        bad = [v for v in values if not 0 <= v <= 100 or v != int(v)]
        what = f"{codec} qualities must be whole numbers from 0 to 100"
    if bad:
        raise SweepError(f"{what}, got {', '.join(f'{v:g}' for v in bad)}")


def codec_info(name: str, sweep: Sequence[float], aec: Codec | None = None) -> CodecInfo:
    """What `name` is, at which settings, by which library (aec: with `aec`'s model)."""
    if name == AEC:
        model = f"model {aec.checkpoint.model_id}" if aec is not None else "model ?"
        return CodecInfo(AEC, f"aecompress .aec ({model})", "quality", list(sweep), _aec_lib())
    peer = peers.get_peer(name)
    try:
        library = peer.library()
    except Exception:  # a version query must never stop a benchmark
        library = "?"
    return CodecInfo(name, peer.description, peer.sweep_unit, list(sweep), library)


def _aec_lib() -> str:
    from .. import __version__

    return f"aecompress {__version__}"
