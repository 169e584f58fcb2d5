"""What a model file says about itself (id, fingerprint, provenance), read without torch.

`info` and `models` must answer in a fraction of a second, and importing torch alone takes
seconds. A model file is what `torch.save` writes: a zip holding a pickle (`data.pkl`) whose
tensors point at raw storages (`data/<key>`). This module reads that pickle with an unpickler
that knows only the few names a model file uses, maps each tensor to its bytes in the zip, and
hashes them exactly as `checkpoint` does with torch, so the fingerprint is the same.

Anything unexpected (an older torch format, a tensor that is not contiguous, a name outside
the list) raises `NotReadableHere`, and callers fall back to the torch reader, which gives the
same answer (or the same error) more slowly.
"""

from __future__ import annotations

import collections
import hashlib
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_FORMAT = "aecompress-checkpoint"
CHECKPOINT_VERSION = 1
FINGERPRINT_GROUPS = ("weights", "z_tables", "y_tables", "scale_network")

# torch's storage classes, as `torch.save` names them, -> (str(tensor.dtype), bytes per item)
_STORAGES = {
    "HalfStorage": ("torch.float16", 2),
    "FloatStorage": ("torch.float32", 4),
    "DoubleStorage": ("torch.float64", 8),
    "BFloat16Storage": ("torch.bfloat16", 2),
    "ByteStorage": ("torch.uint8", 1),
    "CharStorage": ("torch.int8", 1),
    "ShortStorage": ("torch.int16", 2),
    "IntStorage": ("torch.int32", 4),
    "LongStorage": ("torch.int64", 8),
    "BoolStorage": ("torch.bool", 1),
}


class NotReadableHere(Exception):
    """This reader cannot read the file; the torch reader may (and decides what is wrong)."""


@dataclass(frozen=True)
class CheckpointIdentity:
    """What a checkpoint file says about itself, read without building the model."""

    model_id: str
    fingerprint: bytes  # 8 bytes, as every .aec file it writes names it
    provenance: dict[str, str]


@dataclass(frozen=True)
class TensorBytes:
    """A tensor as the fingerprint sees it: dtype name (`str(tensor.dtype)`), shape, and its
    elements' bytes in C order."""

    dtype: str
    shape: tuple[int, ...]
    data: bytes | memoryview  # any buffer: hashed as it is


def fingerprint(
    model_id: str, config: Mapping, groups: Mapping[str, Mapping[str, TensorBytes]]
) -> bytes:
    """SHA-256 (first 8 bytes) of the id, config, weights and tables in a canonical order."""
    h = hashlib.sha256()
    h.update(model_id.encode())
    h.update(repr(sorted(config.items())).encode())
    for group in FINGERPRINT_GROUPS:
        for name in sorted(groups[group]):
            t = groups[group][name]
            h.update(f"{group}/{name}/{t.dtype}/{t.shape}".encode())
            h.update(t.data)
    return h.digest()[:8]


@dataclass(frozen=True)
class _StorageType:
    dtype: str
    itemsize: int


@dataclass(frozen=True)
class _Storage:
    kind: _StorageType
    key: str


@dataclass(frozen=True)
class _LazyTensor:
    storage: _Storage
    offset: int  # in items
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, shape, stride, *_ignored) -> _LazyTensor:
    return _LazyTensor(storage, int(offset), tuple(int(s) for s in shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Builds nothing but plain containers and _LazyTensor placeholders: no code from the
    file runs (names outside the list are refused)."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _STORAGES:
            return _StorageType(*_STORAGES[name])
        raise NotReadableHere(f"unexpected name {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, number of items)
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise NotReadableHere("unexpected persistent id")
        kind = pid[1]
        if not isinstance(kind, _StorageType):
            raise NotReadableHere("unexpected storage type")
        return _Storage(kind, str(pid[2]))


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


class _TorchZip:
    """The pickle and storages of one `torch.save` zip file."""

    def __init__(self, path: Path):
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile, ValueError) as e:
            raise NotReadableHere(str(e)) from e
        pickles = [n for n in self.zip.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise NotReadableHere("no single data.pkl")
        self.prefix = pickles[0][: -len("data.pkl")]
        byteorder = self.prefix + "byteorder"
        if byteorder in self.zip.namelist() and self.zip.read(byteorder) != b"little":
            raise NotReadableHere("big-endian storages")

    def payload(self):
        import io

        try:
            return _Unpickler(io.BytesIO(self.zip.read(self.prefix + "data.pkl"))).load()
        except NotReadableHere:
            raise
        except Exception as e:  # a damaged pickle: let torch name the problem
            raise NotReadableHere(str(e)) from e

    def tensor_bytes(self, t: _LazyTensor, cache: dict[str, bytes]) -> TensorBytes:
        numel = 1
        for n in t.shape:
            numel *= n
        # Dimensions of size 1 may carry any stride; the others must be C-contiguous.
        expected = _c_strides(t.shape)
        if any(n != 1 and s != e for n, s, e in zip(t.shape, t.stride, expected, strict=True)):
            raise NotReadableHere("a tensor that is not contiguous")
        if t.storage.key not in cache:
            try:
                cache[t.storage.key] = self.zip.read(f"{self.prefix}data/{t.storage.key}")
            except KeyError as e:
                raise NotReadableHere("a missing storage") from e
        size = t.storage.kind.itemsize
        raw = cache[t.storage.key][t.offset * size : (t.offset + numel) * size]
        if len(raw) != numel * size:
            raise NotReadableHere("a storage shorter than its tensor")
        return TensorBytes(t.storage.kind.dtype, t.shape, raw)


def _tensor_groups(tz: _TorchZip, payload: dict) -> dict[str, dict[str, TensorBytes]]:
    cache: dict[str, bytes] = {}
    groups = {}
    for group in FINGERPRINT_GROUPS:
        tensors = payload[group]
        if not isinstance(tensors, Mapping):
            raise NotReadableHere(f"{group} is not a mapping")
        out = {}
        for name, t in tensors.items():
            if not isinstance(t, _LazyTensor):
                raise NotReadableHere(f"{group}/{name} is not a tensor")
            out[name] = tz.tensor_bytes(t, cache)
        groups[group] = out
    return groups


def read_identity_without_torch(path: Path) -> CheckpointIdentity:
    """Id, fingerprint and provenance of a model file written by `save_checkpoint`.

    Raises NotReadableHere for anything but a well-formed, current model file; the caller
    then asks torch (`checkpoint.read_identity`), which also words the errors."""
    tz = _TorchZip(Path(path))
    payload = tz.payload()
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise NotReadableHere("not a model file")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise NotReadableHere("another version")
    try:
        model_id = str(payload["model_id"])
        config = payload["config"]
        groups = _tensor_groups(tz, payload)
        provenance = payload.get("provenance", {})
        return CheckpointIdentity(
            model_id=model_id,
            fingerprint=fingerprint(model_id, config, groups),
            provenance={str(k): str(v) for k, v in provenance.items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise NotReadableHere(str(e)) from e


def read_identity(path: Path) -> CheckpointIdentity:
    """Id, fingerprint and provenance of a model file; CheckpointError if it is not one.

    Without torch where it can (milliseconds); through torch otherwise."""
    try:
        return read_identity_without_torch(path)
    except NotReadableHere:
        from .checkpoint import read_identity_with_torch

        return read_identity_with_torch(path)
