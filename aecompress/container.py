"""The .aec container: a small versioned header, five byte streams and a CRC32 trailer.

The byte layout is specified in docs/FORMAT.md. This module only moves bytes; it knows
nothing about models or tensors, so it can be fuzzed and reused without torch.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .errors import FormatError
from .modes import ColourMode
from .quality import QUALITY_CENTI_MAX, QUALITY_CENTI_MIN

MAGIC = b"\x89AEC"
FORMAT_VERSION = 1  # the version this build writes
READABLE_VERSIONS = frozenset({FORMAT_VERSION})  # the versions it reads

# Largest image (in pixels) that unpack accepts unless the caller raises the limit.
# 1 << 28 is about 268 megapixels: ~800 MB as 8-bit RGB and ~3.2 GB as the float32
# tensor the decoder builds, so a forged header cannot make a reader allocate without bound.
DEFAULT_MAX_PIXELS = 1 << 28

# A palette stream holds n RGB entries, 3 x n bytes for 1 <= n <= 256.
PALETTE_MAX_LEN = 768
MAX_MODEL_ID_LEN = 32

# magic, version, flags, header_len, model_id_len
_PREFIX = struct.Struct(">4sBBHB")
# fingerprint, width, height, mode, quality_centi, five stream lengths
_FIELDS = struct.Struct(">8sIIBH5I")
_CRC = struct.Struct(">I")
_U32_MAX = 0xFFFFFFFF
_MODE_VALUES = frozenset(int(m) for m in ColourMode)


@dataclass(frozen=True)
class Header:
    model_id: str
    fingerprint: bytes  # exactly 8 bytes
    width: int
    height: int
    mode: ColourMode
    quality_centi: int  # quality * 100, 100..10000
    version: int = FORMAT_VERSION  # the file's format version byte (what was read, or written)

    @property
    def quality(self) -> float:
        return self.quality_centi / 100

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Streams:
    z: bytes
    y: bytes
    alpha: bytes = b""  # compressed alpha plane, present iff mode.has_alpha
    palette: bytes = b""  # n RGB entries (3n bytes, 1 <= n <= 256) iff mode.has_palette
    icc: bytes = b""  # ICC profile, optional


def _header_len(model_id_len: int) -> int:
    return _PREFIX.size + model_id_len + _FIELDS.size


def _is_printable_ascii(raw: bytes) -> bool:
    return all(0x21 <= b <= 0x7E for b in raw)


def _semantic_problem(
    model_id: bytes, width: int, height: int, mode_value: int, quality_centi: int, s: Streams
) -> str | None:
    """First rule of the format these values break, as a user-facing sentence, or None.

    Shared by pack (which raises ValueError) and unpack (which raises FormatError), so the
    writer can never produce a file the reader refuses.
    """
    if not 1 <= len(model_id) <= MAX_MODEL_ID_LEN:
        return f"model id length {len(model_id)} is outside 1..{MAX_MODEL_ID_LEN}"
    if not _is_printable_ascii(model_id):
        return "model id is not printable ASCII"
    if width == 0 or height == 0:
        return "zero width or height"
    if mode_value not in _MODE_VALUES:
        return f"unknown colour mode {mode_value}"
    mode = ColourMode(mode_value)
    if not QUALITY_CENTI_MIN <= quality_centi <= QUALITY_CENTI_MAX:
        return f"quality {quality_centi / 100:.2f} is outside 1.00..100.00"
    for name, stream in (("z", s.z), ("y", s.y)):
        if not stream:
            return f"empty {name} stream"
        # The entropy coder's output is a sequence of 32-bit words.
        if len(stream) % 4:
            return f"{name} stream length {len(stream)} is not a multiple of 4"
    if mode.has_alpha and not s.alpha:
        return f"alpha stream missing for mode {mode.name}"
    if not mode.has_alpha and s.alpha:
        return f"unexpected alpha stream for mode {mode.name}"
    if mode.has_palette and (not 3 <= len(s.palette) <= PALETTE_MAX_LEN or len(s.palette) % 3):
        return (
            f"palette stream must be 3 to {PALETTE_MAX_LEN} bytes, a multiple of 3 "
            f"(got {len(s.palette)})"
        )
    if not mode.has_palette and s.palette:
        return f"unexpected palette stream for mode {mode.name}"
    return None


def pack(header: Header, streams: Streams) -> bytes:
    """Serialise a header and its streams; ValueError if they break the format's rules."""
    if not isinstance(header.model_id, str) or not header.model_id.isascii():
        raise ValueError("model id is not printable ASCII")
    model_id = header.model_id.encode("ascii")
    if not isinstance(header.fingerprint, bytes) or len(header.fingerprint) != 8:
        raise ValueError("fingerprint must be exactly 8 bytes")
    for name in ("width", "height", "quality_centi"):
        value = getattr(header, name)
        if not isinstance(value, int) or not 0 <= value <= _U32_MAX:
            raise ValueError(f"{name} must be an integer in 0..{_U32_MAX}, not {value!r}")
    problem = _semantic_problem(
        model_id, header.width, header.height, int(header.mode), header.quality_centi, streams
    )
    if problem:
        raise ValueError(problem)
    parts = (streams.z, streams.y, streams.alpha, streams.palette, streams.icc)
    if any(len(p) > _U32_MAX for p in parts):
        raise ValueError("a stream is longer than 4 GiB")

    out = bytearray()
    out += _PREFIX.pack(MAGIC, FORMAT_VERSION, 0, _header_len(len(model_id)), len(model_id))
    out += model_id
    out += _FIELDS.pack(
        header.fingerprint,
        header.width,
        header.height,
        int(header.mode),
        header.quality_centi,
        *(len(p) for p in parts),
    )
    for p in parts:
        out += p
    out += _CRC.pack(zlib.crc32(out))
    return bytes(out)


def _need(data: bytes, n: int) -> None:
    if len(data) < n:
        raise FormatError(f"file is truncated: expected at least {n} bytes, got {len(data)}")


def unpack(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Header, Streams]:
    """Parse and fully validate an .aec file; any defect raises FormatError, nothing else."""
    data = bytes(data)
    # Magic first, so that a file of another kind is named as such rather than as corrupt.
    if not data:
        raise FormatError("not an .aec file (the file is empty)")
    if data[:4] != MAGIC[: len(data)]:
        raise FormatError("not an .aec file (bad magic bytes)")
    _need(data, 5)
    if data[4] not in READABLE_VERSIONS:
        raise FormatError(
            f"unsupported .aec format version {data[4]} "
            f"(this build reads version {', '.join(map(str, sorted(READABLE_VERSIONS)))})"
        )
    _need(data, 6)
    if data[5] != 0:
        raise FormatError(f"unsupported flags 0x{data[5]:02x} (version 1 requires 0)")
    _need(data, _PREFIX.size)
    _, _, _, header_len, id_len = _PREFIX.unpack_from(data)
    if not 1 <= id_len <= MAX_MODEL_ID_LEN:
        raise FormatError(f"model id length {id_len} is outside 1..{MAX_MODEL_ID_LEN}")
    if header_len != _header_len(id_len):
        raise FormatError(f"header length {header_len} does not match its fields")
    _need(data, header_len)
    model_id = data[_PREFIX.size : _PREFIX.size + id_len]
    fingerprint, width, height, mode_value, quality_centi, *lengths = _FIELDS.unpack_from(
        data, _PREFIX.size + id_len
    )
    total = header_len + sum(lengths) + _CRC.size
    if len(data) < total:
        raise FormatError(f"file is truncated: expected {total} bytes, got {len(data)}")
    if len(data) > total:
        raise FormatError(
            f"trailing data after the end of the .aec file ({len(data) - total} bytes)"
        )
    # Only now is every byte accounted for; the CRC then guards all of them at once.
    if zlib.crc32(data[:-4]) != _CRC.unpack_from(data, total - 4)[0]:
        raise FormatError("checksum mismatch: the file is corrupt")

    parts = []
    offset = header_len
    for n in lengths:
        parts.append(data[offset : offset + n])
        offset += n
    streams = Streams(*parts)
    problem = _semantic_problem(model_id, width, height, mode_value, quality_centi, streams)
    if problem:
        raise FormatError(problem)
    # Checked here, before any caller sizes a buffer from width and height.
    if width * height > max_pixels:
        raise FormatError(
            f"image size {width}x{height} exceeds the limit of {max_pixels} pixels "
            "(raise it with --max-pixels)"
        )
    header = Header(
        model_id=model_id.decode("ascii"),
        fingerprint=fingerprint,
        width=width,
        height=height,
        mode=ColourMode(mode_value),
        quality_centi=quality_centi,
        version=data[4],
    )
    return header, streams


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """Validate a whole .aec file (CRC included) and return just its header."""
    return unpack(data, max_pixels)[0]
