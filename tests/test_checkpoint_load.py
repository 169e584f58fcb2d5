"""Loading a model file: the file's tensors are mapped (torch.load(mmap=True)) and what the
checkpoint keeps is copied, so a loaded model never changes with the file it came from; the
result is what a plain read gives."""

from __future__ import annotations

import numpy as np
import torch
from conftest import make_tiny_checkpoint

from aecompress import checkpoint
from aecompress.checkpoint import load_checkpoint, save_checkpoint


def _kept(ckpt) -> dict[str, np.ndarray]:
    """Copies of everything a checkpoint holds that came from the file."""
    arrays = {f"w/{k}": v.detach().numpy().copy() for k, v in ckpt.model.state_dict().items()}
    for name in ("z_tables", "y_tables"):
        tables = getattr(ckpt, name)
        for field in ("offsets", "lengths", "pmfs"):
            arrays[f"{name}/{field}"] = np.array(getattr(tables, field), copy=True)
    for i, layer in enumerate(ckpt.scale_network.layers):
        arrays[f"int/{i}/weight"] = layer.weight.numpy().copy()
        arrays[f"int/{i}/bias"] = layer.bias.numpy().copy()
    return arrays


def test_a_loaded_model_does_not_change_with_its_file(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(make_tiny_checkpoint(seed=3), path)
    ckpt = load_checkpoint(path)
    before = _kept(ckpt)
    # Overwrite the file in place (same length: no truncation), as `cp` over it would.
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.write(b"\x55" * size)
    after = _kept(ckpt)
    assert before.keys() == after.keys()
    for key in before:
        assert np.array_equal(before[key], after[key]), key


def test_mapped_and_read_loads_are_the_same(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(make_tiny_checkpoint(seed=4), path)
    mapped = load_checkpoint(path)
    real_read = checkpoint.read_torch_file
    monkeypatch.setattr(
        checkpoint, "read_torch_file", lambda *a, **k: real_read(*a, **{**k, "mmap": False})
    )
    read = load_checkpoint(path)
    assert mapped.fingerprint == read.fingerprint
    a, b = _kept(mapped), _kept(read)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    for p in mapped.model.parameters():
        assert p.dtype == torch.float32 and p.device.type == "cpu" and not p.requires_grad
        assert p.is_contiguous()
    assert not mapped.model.training


def test_the_fingerprint_hashes_each_tensor_s_bytes_in_c_order():
    """Hashing tensors where they lie (no bytes copy) sees the same bytes as before: odd
    shapes, empty tensors, a transposed one, booleans, half floats."""
    tensors = [
        torch.tensor(5.0),
        torch.zeros(0),
        torch.zeros(0, 3, dtype=torch.int64),
        torch.arange(6).view(2, 3).t(),
        torch.ones(3, dtype=torch.bool),
        torch.randn(4).half(),
        torch.tensor(7, dtype=torch.int32),
    ]
    for t in tensors:
        assert bytes(checkpoint._buffer(t)) == t.contiguous().numpy().tobytes(), t
