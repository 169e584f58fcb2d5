"""Model files identified without torch: the same id and fingerprint as the torch reader, on
the shipped models and a fresh export; anything unusual goes to the torch reader."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from aecompress.checkpoint import load_checkpoint, read_identity_with_torch, save_checkpoint
from aecompress.errors import CheckpointError
from aecompress.modelfile import NotReadableHere, read_identity, read_identity_without_torch

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"


@pytest.mark.parametrize("path", sorted(PRETRAINED.glob("*.pt")), ids=lambda p: p.name)
def test_shipped_models_have_the_same_identity_without_torch(path):
    assert read_identity_without_torch(path) == read_identity_with_torch(path)


def test_a_fresh_export_has_the_fingerprint_it_loads_with(tiny_checkpoint, tmp_path):
    path = tmp_path / "tiny.pt"
    save_checkpoint(tiny_checkpoint, path)
    ident = read_identity_without_torch(path)
    assert ident.fingerprint == load_checkpoint(path).fingerprint == tiny_checkpoint.fingerprint
    assert ident.model_id == tiny_checkpoint.model_id


def test_a_changed_weight_changes_the_fingerprint(tiny_checkpoint, tmp_path):
    payload = torch.load(_saved(tiny_checkpoint, tmp_path), weights_only=True)
    name = sorted(payload["weights"])[0]
    payload["weights"][name] = payload["weights"][name].clone()
    payload["weights"][name].view(-1)[0] += 1
    changed = tmp_path / "changed.pt"
    torch.save(payload, changed)
    assert read_identity_without_torch(changed).fingerprint != tiny_checkpoint.fingerprint
    assert read_identity(changed) == read_identity_with_torch(changed)


def test_a_tensor_that_is_not_contiguous_goes_to_torch(tiny_checkpoint, tmp_path):
    payload = torch.load(_saved(tiny_checkpoint, tmp_path), weights_only=True)
    name = next(n for n, t in payload["weights"].items() if t.dim() == 4)
    payload["weights"][name] = payload["weights"][name].transpose(0, 1).contiguous().transpose(0, 1)
    odd = tmp_path / "odd.pt"
    torch.save(payload, odd)
    with pytest.raises(NotReadableHere):
        read_identity_without_torch(odd)
    assert read_identity(odd).fingerprint == tiny_checkpoint.fingerprint


class _Boom:
    def __reduce__(self):
        return (print, ("code from a model file ran",))


def test_a_file_with_foreign_code_is_refused_without_running_it(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"format": "aecompress-checkpoint", "x": _Boom()}))
    with pytest.raises(NotReadableHere):
        read_identity_without_torch(path)
    with pytest.raises(CheckpointError):  # torch's weights_only reader refuses it too
        read_identity(path)
    assert "code from a model file ran" not in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04broken"])
def test_damaged_files_get_torch_s_one_line_error(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable aecompress model file"):
        read_identity(path)


def test_a_training_state_is_named_as_such(tmp_path):
    state = tmp_path / "state.pt"
    buffer = io.BytesIO()
    torch.save({"format": "aecompress-training-state", "model_config": {}, "model": {}}, buffer)
    state.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="a training state, not a model file") as info:
        load_checkpoint(state)
    assert "model.pt" in str(info.value) and "--export-from" in str(info.value)


def _saved(ckpt, folder: Path) -> Path:
    path = folder / "model.pt"
    save_checkpoint(ckpt, path)
    return path
