"""What `aecompress bench` checks before it measures anything: the codec names, the defaults,
and the --codecs / --qualities / --sweep / --reference values.

Nothing here imports numpy, Pillow or torch, so that `aecompress bench --help` and every usage
error answer at once (tests/test_startup.py). The peers themselves (`peers`) need Pillow; the
few facts about them needed here are kept in `PEER_NAMES` and `RATIO_SWEPT`, and a test checks
that they agree with `peers.PEERS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..effort_levels import MAX_EFFORT
from ..errors import UsageError
from ..quality import QUALITY_MAX, QUALITY_MIN

AEC = "aec"
AEC_EFFORT_PREFIX = "aec-e"
"""aec at an encoding effort above 0 is measured as its own codec, 'aec-e4' (`--effort 4`)."""
PEER_NAMES: tuple[str, ...] = ("jpeg", "jpeg444", "webp", "avif", "jp2", "heic", "jxl")
"""The peers, in the order of `peers.PEERS`."""
RATIO_SWEPT: frozenset[str] = frozenset({"jp2"})
"""Peers swept by compression ratio rather than a 0..100 quality."""

DEFAULT_REFERENCE = "jpeg"
DEFAULT_AEC_QUALITIES: tuple[float, ...] = (1, 15, 29, 43, 57, 72, 86, 100)
"""Evenly spaced over 1..100: the quality knob moves bpp in roughly even ratios."""
DEFAULT_CODECS: tuple[str, ...] = (AEC, "jpeg", "webp", "avif", "jp2", "heic", "jxl")
"""What runs without --codecs; heic and jxl only when their plugins are installed."""
KNOWN_CODECS: tuple[str, ...] = (AEC, *PEER_NAMES)


def aec_name(effort: int) -> str:
    """The codec name of aec at an effort: 'aec' for 0, 'aec-e4' for 4."""
    return AEC if effort == 0 else f"{AEC_EFFORT_PREFIX}{effort}"


def aec_effort(name: str) -> int | None:
    """The effort of an aec codec name ('aec' → 0, 'aec-e4' → 4); None for a peer."""
    if name == AEC:
        return 0
    if name.startswith(AEC_EFFORT_PREFIX) and name[len(AEC_EFFORT_PREFIX) :].isdigit():
        return int(name[len(AEC_EFFORT_PREFIX) :])
    return None


def is_aec(name: str) -> bool:
    return aec_effort(name) is not None


def with_efforts(codecs: list[str], efforts: Sequence[int]) -> list[str]:
    """aec in `codecs` replaced by one aec codec per effort, in the order given (none given:
    effort 0 alone). UsageError when efforts are given but aec is not measured."""
    if not efforts:
        return codecs
    bad = [e for e in efforts if not 0 <= e <= MAX_EFFORT]
    if bad:
        raise UsageError(f"--effort must be from 0 to {MAX_EFFORT}, got {bad[0]}")
    if AEC not in codecs:
        raise UsageError("--effort applies to aec, which --codecs leaves out")
    at = codecs.index(AEC)
    names = list(dict.fromkeys(aec_name(e) for e in efforts))
    return [*codecs[:at], *names, *codecs[at + 1 :]]


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


def check_sweep(codec: str, values: Sequence[float]) -> None:
    """SweepError unless every value is one `codec` accepts."""
    if is_aec(codec):
        bad = [v for v in values if not QUALITY_MIN <= v <= QUALITY_MAX]
        what = f"aec qualities must be from {QUALITY_MIN:g} to {QUALITY_MAX:g}"
    elif codec in RATIO_SWEPT:
        bad = [v for v in values if v <= 1]
        what = f"{codec} ratios must be above 1"
    else:
        bad = [v for v in values if not 0 <= v <= 100 or v != int(v)]
        what = f"{codec} qualities must be whole numbers from 0 to 100"
    if bad:
        raise SweepError(f"{what}, got {', '.join(f'{v:g}' for v in bad)}")
