"""The mutation engine that fuzzes the .aec decoder: hostile files made from valid ones.

Seed files are encoded with a model in every colour mode; each case mutates one of them --
truncation, bit flips, byte insertions and deletions, trailing bytes, header field edits,
replaced / swapped / spliced streams, foreign model ids -- with and without the CRC recomputed
(as an adversary would). `decode_like_the_cli` runs a case through the real decode path. A case
may decode or raise an AecError subclass; anything else, or a case past its deadline, is a bug.
`benchmarks/fuzz.py` runs hundreds of thousands of cases; tests/test_fuzz.py a few thousand.
"""

from __future__ import annotations

import io
import random
import re
import signal
import struct
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from . import container
from .codec import Codec
from .container import Header, Streams
from .errors import AecError
from .imagefile import decode_to_image_file, encode_image
from .imageio import load_image

# Forged sizes are refused above this many pixels, so a case stays small and fast; sizes up
# to it are still decoded in full (the pixel limit itself is tested in tests/test_robustness).
FUZZ_MAX_PIXELS = 1 << 16
CASE_DEADLINE_S = 5.0

_U32 = struct.Struct(">I")
_STREAMS = ("z", "y", "alpha", "palette", "icc")


# ----- seed files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    data: bytes
    header: Header
    streams: Streams


def seed_images() -> list[tuple[Image.Image, float]]:
    """Small images in every colour mode (and with an ICC profile), with a quality each."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:72]
    base = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], axis=2)
    base = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    rgb = Image.fromarray(base)
    alpha = Image.fromarray(rng.integers(0, 256, (48, 72), dtype=np.uint8))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    la = rgb.convert("L")
    la.putalpha(alpha)
    pa = rgb.quantize(12)
    pa.info["transparency"] = 0
    icc = rgb.crop((0, 0, 17, 9))
    icc.info["icc_profile"] = b"\0" * 16 + b"RGB " + bytes(range(100))
    return [
        (rgb, 50.0),
        (rgb.convert("L").crop((0, 0, 1, 1)), 1.0),
        (rgba.crop((0, 0, 33, 20)), 90.0),
        (la.crop((0, 0, 20, 30)), 30.0),
        (rgb.quantize(16), 75.0),
        (pa.crop((0, 0, 25, 19)), 60.0),
        (icc, 100.0),
        (rgb.crop((0, 0, 70, 3)), 12.34),
    ]


def make_seeds(codec: Codec) -> list[Seed]:
    seeds = []
    for image, quality in seed_images():
        buf = io.BytesIO()
        params = {"icc_profile": image.info["icc_profile"]} if "icc_profile" in image.info else {}
        if "transparency" in image.info:
            params["transparency"] = image.info["transparency"]
        image.save(buf, "PNG", **params)
        data = encode_image(codec, load_image(buf.getvalue()), quality).data
        header, streams = container.unpack(data)
        seeds.append(Seed(data, header, streams))
    return seeds


# ----- writing files, valid or not ----------------------------------------------------------------


def fix_crc(data: bytes | bytearray) -> bytes:
    """Recompute the trailing CRC-32, as an adversary who edits a file would."""
    data = bytearray(data)
    if len(data) >= 4:
        data[-4:] = _U32.pack(zlib.crc32(bytes(data[:-4])))
    return bytes(data)


def forge(
    seed: Seed,
    *,
    version: int = container.FORMAT_VERSION,
    flags: int = 0,
    model_id: bytes | None = None,
    header_len: int | None = None,
    fingerprint: bytes | None = None,
    width: int | None = None,
    height: int | None = None,
    mode: int | None = None,
    quality_centi: int | None = None,
    streams: dict[str, bytes] | None = None,
    lengths: list[int] | None = None,
) -> bytes:
    """An .aec file from fields that need not obey any rule (only their byte widths), CRC fixed.

    Deliberately not container.pack, which refuses to write what a reader must refuse.
    """
    h = seed.header
    mid = h.model_id.encode() if model_id is None else model_id
    parts = {name: getattr(seed.streams, name) for name in _STREAMS}
    parts.update(streams or {})
    body = [parts[name] for name in _STREAMS]
    out = bytearray(container.MAGIC)
    out += bytes([version & 0xFF, flags & 0xFF])
    out += struct.pack(">H", (48 + len(mid) if header_len is None else header_len) & 0xFFFF)
    out += bytes([len(mid) & 0xFF]) + mid
    out += (h.fingerprint if fingerprint is None else fingerprint)[:8].ljust(8, b"\0")
    out += struct.pack(
        ">IIBH",
        (h.width if width is None else width) & 0xFFFFFFFF,
        (h.height if height is None else height) & 0xFFFFFFFF,
        (int(h.mode) if mode is None else mode) & 0xFF,
        (h.quality_centi if quality_centi is None else quality_centi) & 0xFFFF,
    )
    for n in lengths if lengths is not None else [len(b) for b in body]:
        out += _U32.pack(n & 0xFFFFFFFF)
    for b in body:
        out += b
    return fix_crc(out + b"\0\0\0\0")


# Header fields as (name, offset from the end of the model id or None for the fixed prefix,
# offset, size); n = model id length. Offsets as in docs/FORMAT.md.
def _fields(n: int) -> list[tuple[str, int, int]]:
    f = [("magic", 0, 4), ("version", 4, 1), ("flags", 5, 1), ("header_len", 6, 2)]
    f += [("id_len", 8, 1), ("model_id", 9, n), ("fingerprint", 9 + n, 8)]
    f += [("width", 17 + n, 4), ("height", 21 + n, 4), ("mode", 25 + n, 1)]
    f += [("quality", 26 + n, 2)]
    f += [(f"len_{s}", 28 + n + 4 * i, 4) for i, s in enumerate(_STREAMS)]
    return f


def _special(r: random.Random, size: int, old: int) -> int:
    top = (1 << (8 * size)) - 1
    choices = [0, 1, 2, 3, 4, top, top - 1, top // 2 + 1, old + 1, old - 1, old + 4, old - 4,
               old * 2, old // 2, r.randrange(top + 1), r.randrange(256), 200_000]  # fmt: skip
    return r.choice(choices) & top


# ----- mutators ---------------------------------------------------------------------------------
# Each takes a Random and the seeds and returns the mutated bytes.


def m_truncate(r: random.Random, seeds: list[Seed]) -> bytes:
    d = r.choice(seeds).data
    return d[: r.randrange(len(d))]


def _maybe_crc(r: random.Random, d: bytes | bytearray) -> bytes:
    return fix_crc(d) if r.random() < 0.5 else bytes(d)


def m_bitflip(r: random.Random, seeds: list[Seed]) -> bytes:
    d = bytearray(r.choice(seeds).data)
    for _ in range(r.choice((1, 1, 1, 2, 3, 8))):
        d[r.randrange(len(d))] ^= 1 << r.randrange(8)
    return _maybe_crc(r, d)


def m_byteset(r: random.Random, seeds: list[Seed]) -> bytes:
    d = bytearray(r.choice(seeds).data)
    for _ in range(r.choice((1, 2, 4))):
        d[r.randrange(len(d))] = r.choice((0, 0xFF, r.randrange(256)))
    return _maybe_crc(r, d)


def m_insert(r: random.Random, seeds: list[Seed]) -> bytes:
    d = bytearray(r.choice(seeds).data)
    pos = r.randrange(len(d) + 1)
    d[pos:pos] = r.randbytes(r.choice((1, 2, 4, 8, 13)))
    return _maybe_crc(r, d)


def m_delete(r: random.Random, seeds: list[Seed]) -> bytes:
    d = bytearray(r.choice(seeds).data)
    pos = r.randrange(len(d))
    del d[pos : pos + r.choice((1, 2, 4, 8, 13))]
    return _maybe_crc(r, d)


def m_trailing(r: random.Random, seeds: list[Seed]) -> bytes:
    d = r.choice(seeds).data
    return d + r.choice((b"\0", r.randbytes(r.randrange(1, 64)), d))


def m_field(r: random.Random, seeds: list[Seed]) -> bytes:
    """Set one header field to a boundary or random value; half the time fix the CRC."""
    s = r.choice(seeds)
    d = bytearray(s.data)
    name, off, size = r.choice(_fields(len(s.header.model_id)))
    if name in ("magic", "model_id", "fingerprint"):
        i = off + r.randrange(size)
        d[i] = r.choice((0, 0x20, 0x7F, 0xFF, d[i] ^ 1, r.randrange(256)))
    else:
        old = int.from_bytes(d[off : off + size], "big")
        d[off : off + size] = _special(r, size, old).to_bytes(size, "big")
    return _maybe_crc(r, d)


def _random_stream(r: random.Random, like: bytes) -> bytes:
    words = max(1, len(like) // 4)
    kind = r.randrange(7)
    if kind == 0:
        return b""
    if kind == 1:  # ends in a zero word: never produced by the ANS coder
        return r.randbytes(4 * r.randrange(words + 1)) + b"\0\0\0\0"
    if kind == 2:
        return b"\xff" * (4 * r.randrange(1, 2 * words + 2))
    if kind == 3:  # not a whole number of words
        return r.randbytes(4 * r.randrange(words + 1) + r.randrange(1, 4))
    if kind == 4:  # the real stream with a word changed
        b = bytearray(like or b"\0\0\0\1")
        i = 4 * r.randrange(max(1, len(b) // 4))
        b[i : i + 4] = r.randbytes(4)
        return bytes(b)
    if kind == 5:  # much longer than the real one
        return r.randbytes(4 * r.randrange(words, 8 * words + 2))
    return r.randbytes(4 * r.randrange(1, 2 * words + 2))


def m_stream(r: random.Random, seeds: list[Seed]) -> bytes:
    """Replace one stream, with the lengths and CRC consistent: it reaches the decoders."""
    s = r.choice(seeds)
    name = r.choice(("z", "y", "z", "y", "alpha", "palette", "icc"))
    old = getattr(s.streams, name)
    if name == "alpha" and r.random() < 0.5:
        w, h = s.header.width, s.header.height
        n = r.choice((w * h - 1, w * h + 1, 0, w * h))
        new = zlib.compress(bytes(n) + (r.randbytes(3) if r.random() < 0.3 else b""))
        if r.random() < 0.3:
            new = new[: r.randrange(1, len(new))]
        if r.random() < 0.2:  # a zlib bomb: far more than the plane's size
            new = zlib.compress(bytes(64 * (w * h + 1024)), 9)
    elif name == "palette":
        new = r.randbytes(r.choice((0, 1, 3, 6, 765, 768, 771, 3 * r.randrange(1, 257))))
    else:
        new = _random_stream(r, old)
    return forge(s, streams={name: new})


def m_stream_edit(r: random.Random, seeds: list[Seed]) -> bytes:
    """Flip bits, or insert / drop whole words, inside z or y; lengths and CRC consistent."""
    s = r.choice(seeds)
    name = r.choice(("z", "y"))
    b = bytearray(getattr(s.streams, name))
    op = r.randrange(3)
    if op == 0:
        for _ in range(r.choice((1, 1, 2, 5))):
            b[r.randrange(len(b))] ^= 1 << r.randrange(8)
    elif op == 1:
        i = 4 * r.randrange(len(b) // 4 + 1)
        b[i:i] = r.randbytes(4 * r.randrange(1, 4))
    elif len(b) > 4:
        i = 4 * r.randrange(len(b) // 4)
        del b[i : i + 4]
    return forge(s, streams={name: bytes(b)})


def m_swap(r: random.Random, seeds: list[Seed]) -> bytes:
    s = r.choice(seeds)
    return forge(s, streams={"z": s.streams.y, "y": s.streams.z})


def m_splice(r: random.Random, seeds: list[Seed]) -> bytes:
    """The header of one file with the streams of another (or some of them)."""
    a, b = r.choice(seeds), r.choice(seeds)
    names = r.sample(_STREAMS, r.randrange(1, 6))
    return forge(a, streams={n: getattr(b.streams, n) for n in names})


def m_resize(r: random.Random, seeds: list[Seed]) -> bytes:
    """Another width / height (mostly within the pixel limit), everything else consistent."""
    s = r.choice(seeds)
    w, h = s.header.width, s.header.height
    pick = r.randrange(5)
    if pick == 0:
        w, h = w + r.choice((-1, 1, 64)), h
    elif pick == 1:
        w, h = w, max(1, h + r.choice((-1, 1, 64)))
    elif pick == 2:
        w, h = h, w
    elif pick == 3:
        w, h = r.randrange(1, 257), r.randrange(1, 257)
    else:
        w, h = r.choice(((200_000, 200_000), (1 << 16, 1 << 16), (0xFFFFFFFF, 1), (1, 1 << 17)))
    return forge(s, width=max(w, 1), height=h)


def m_mode(r: random.Random, seeds: list[Seed]) -> bytes:
    """Another colour mode, with or without the alpha / palette streams it needs."""
    s = r.choice(seeds)
    mode = r.randrange(8)
    streams: dict[str, bytes] = {}
    if r.random() < 0.7:
        plane = bytes(s.header.width * s.header.height)
        streams["alpha"] = zlib.compress(plane) if mode in (2, 3, 5) else b""
        pal = r.randbytes(3 * r.randrange(1, 257))
        streams["palette"] = pal if mode in (4, 5) else b""
    return forge(s, mode=mode, streams=streams)


def m_quality(r: random.Random, seeds: list[Seed]) -> bytes:
    s = r.choice(seeds)
    return forge(s, quality_centi=r.choice((0, 99, 100, 10000, 10001, r.randrange(100, 10001))))


def m_model(r: random.Random, seeds: list[Seed]) -> bytes:
    """A header naming another model (or an invalid model id), everything else consistent."""
    s = r.choice(seeds)
    mid = s.header.model_id.encode()
    kind = r.randrange(4)
    if kind == 0:
        return forge(s, fingerprint=r.randbytes(8))
    if kind == 1:
        return forge(s, model_id=b"other-model")
    if kind == 2:  # invalid ids: empty, too long, a space, non-ASCII
        bad = r.choice((b"", b"x" * 33, b"a b", b"\x80abc", mid[:-1] + b"\x7f"))
        return forge(s, model_id=bad)
    return forge(s, model_id=mid, header_len=r.choice((0, 47 + len(mid), 49 + len(mid))))


def m_header_only(r: random.Random, seeds: list[Seed]) -> bytes:
    """Headers with absurd stream lengths and no payload, or zero-length / overlong streams."""
    s = r.choice(seeds)
    lengths = [len(getattr(s.streams, n)) for n in _STREAMS]
    i = r.randrange(5)
    lengths[i] = r.choice((0, 0xFFFFFFFF, 1 << 31, lengths[i] + 4, max(lengths[i] - 4, 0)))
    return forge(s, lengths=lengths)


def m_garbage(r: random.Random, seeds: list[Seed]) -> bytes:
    """Not an .aec file at all, or a valid magic followed by noise."""
    tail = r.randbytes(r.randrange(0, 200))
    return r.choice((b"", tail, container.MAGIC + tail, b"\x89PNG\r\n\x1a\n" + tail))


MUTATORS: dict[str, Callable[[random.Random, list[Seed]], bytes]] = {
    "truncate": m_truncate,
    "bitflip": m_bitflip,
    "byteset": m_byteset,
    "insert": m_insert,
    "delete": m_delete,
    "trailing": m_trailing,
    "field": m_field,
    "stream": m_stream,
    "stream_edit": m_stream_edit,
    "swap": m_swap,
    "splice": m_splice,
    "resize": m_resize,
    "mode": m_mode,
    "quality": m_quality,
    "model": m_model,
    "header_only": m_header_only,
    "garbage": m_garbage,
}
# The mutations that reach the entropy decoder (CRC fixed, container valid) are drawn more
# often: they are the slow ones and the interesting ones.
WEIGHTS = {"stream": 4, "stream_edit": 4, "splice": 2, "resize": 2, "mode": 2, "field": 2}


def case(seed: int, index: int, seeds: list[Seed]) -> tuple[str, bytes]:
    """Case `index` of run `seed`: (mutator name, file bytes). Deterministic."""
    r = random.Random(seed * 1_000_003 + index)
    names = list(MUTATORS)
    name = r.choices(names, weights=[WEIGHTS.get(n, 1) for n in names])[0]
    return name, MUTATORS[name](r, seeds)


# ----- running ----------------------------------------------------------------------------------


class CaseTimeout(BaseException):
    """Raised by the deadline alarm; a BaseException so that no `except Exception` eats it."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Interrupt a case that runs too long (SIGALRM, main thread only; elsewhere a no-op)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def alarm(_signum, _frame):
        raise CaseTimeout(f"case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def decode_like_the_cli(codec: Codec, data: bytes) -> None:
    """What `aecompress decode` does: decode the file, restore the image and write a PNG."""
    decode_to_image_file(codec, data, "PNG", max_pixels=FUZZ_MAX_PIXELS)


def outcome_of(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, AecError):
        return type(exc).__name__
    return "UNEXPECTED"


def message_class(exc: BaseException) -> str:
    """The message with its numbers blanked, to count which checks fire."""
    return re.sub(r"\d+", "#", str(exc).split(" (")[0])[:80]


# ----- runs ---------------------------------------------------------------------------------


@dataclass
class FuzzResult:
    cases: int = 0
    seconds: float = 0.0
    outcomes: Counter = field(default_factory=Counter)
    by_mutator: Counter = field(default_factory=Counter)  # (mutator, outcome) -> n
    messages: Counter = field(default_factory=Counter)
    unexpected: list[tuple[int, str, BaseException]] = field(default_factory=list)
    slowest: tuple[float, int, str] = (0.0, -1, "")
    max_rss_growth_mb: float = 0.0


def _max_rss_mb() -> float:
    try:
        import resource
    except ImportError:  # not on Windows
        return 0.0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


def run(
    codec: Codec,
    seeds: list[Seed],
    cases: int,
    seed: int = 0,
    start: int = 0,
    per_case_deadline: float = CASE_DEADLINE_S,
    progress: Callable[[FuzzResult], None] | None = None,
) -> FuzzResult:
    """Run cases start .. start + cases - 1 of run `seed`."""
    res = FuzzResult()
    rss0 = _max_rss_mb()
    t_start = time.perf_counter()
    for i in range(start, start + cases):
        name, data = case(seed, i, seeds)
        t0 = time.perf_counter()
        exc: BaseException | None = None
        try:
            with deadline(per_case_deadline):
                decode_like_the_cli(codec, data)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: B036 -- anything else is an outcome to record
            exc = e
        elapsed = time.perf_counter() - t0
        outcome = outcome_of(exc)
        res.cases += 1
        res.outcomes[outcome] += 1
        res.by_mutator[name, outcome] += 1
        if exc is not None:
            res.messages[f"{outcome}: {message_class(exc)}"] += 1
        if outcome == "UNEXPECTED" or elapsed > per_case_deadline:
            res.unexpected.append((i, name, exc or CaseTimeout(f"took {elapsed:.1f} s")))
        res.slowest = max(res.slowest, (elapsed, i, name))
        if progress is not None and res.cases % 5000 == 0:
            res.seconds = time.perf_counter() - t_start
            progress(res)
    res.seconds = time.perf_counter() - t_start
    res.max_rss_growth_mb = _max_rss_mb() - rss0
    return res


def report(res: FuzzResult, top: int = 15) -> str:
    lines = [
        f"{res.cases} cases in {res.seconds:.1f} s ({res.cases / max(res.seconds, 1e-9):.0f}/s), "
        f"slowest case {res.slowest[0] * 1000:.1f} ms (#{res.slowest[1]}, {res.slowest[2]}), "
        f"peak memory growth {res.max_rss_growth_mb:.0f} MB",
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in res.outcomes.most_common()),
        f"unexpected: {len(res.unexpected)}",
    ]
    for i, name, exc in res.unexpected[:20]:
        lines.append(f"  case {i} ({name}): {type(exc).__name__}: {exc}")
    lines.append("by mutator:")
    for m in MUTATORS:
        counts = {o: n for (mm, o), n in res.by_mutator.items() if mm == m}
        if counts:
            parts = ", ".join(f"{o} {n}" for o, n in sorted(counts.items()))
            lines.append(f"  {m:12} {parts}")
    lines.append("most common messages:")
    lines += [f"  {n:7}  {msg}" for msg, n in res.messages.most_common(top)]
    return "\n".join(lines)
