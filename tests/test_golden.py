"""Files written by every shipped model still decode, with no flags, whatever the default is.

tests/golden holds, for each model in pretrained/models.json, a small .aec file it wrote, the
pixels it decodes to and the hash of its symbols (tests/golden/make_golden.py writes them).
Shipping a new default therefore cannot strand the files of the old one, and removing a model
means removing its golden files too: a deliberate step, noted in pretrained/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from golden.make_golden import symbols_sha256
from PIL import Image
from typer.testing import CliRunner

from aecompress import container
from aecompress.checkpoint import load_checkpoint
from aecompress.cli import app
from aecompress.codec import Codec
from aecompress.registry import ModelLibrary, read_index

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(GOLDEN.glob("*.json"))


def test_every_shipped_model_has_golden_files_and_every_golden_model_is_shipped():
    shipped = {m.model_id: m.fingerprint for m in read_index().models}
    golden = {}
    for path in CASES:
        meta = json.loads(path.read_text())
        golden[meta["model_id"]] = meta["fingerprint"]
    missing = sorted(set(shipped) - set(golden))
    assert not missing, f"run `python3 tests/golden/make_golden.py ID` for {missing}"
    removed = sorted(set(golden) - set(shipped))
    assert not removed, (
        f"{removed} no longer shipped: their .aec files would stop decoding; removing a model "
        "is a deliberate step (pretrained/README.md)"
    )
    assert golden == shipped


@pytest.mark.parametrize("meta_path", CASES, ids=[p.stem for p in CASES])
def test_golden_file_decodes_with_no_flags(meta_path, tmp_path):
    meta = json.loads(meta_path.read_text())
    aec = meta_path.with_suffix(".aec")
    header = container.unpack(aec.read_bytes())[0]
    assert (header.model_id, header.fingerprint.hex()) == (meta["model_id"], meta["fingerprint"])
    out = tmp_path / "decoded.png"
    r = CliRunner().invoke(app, ["decode", str(aec), "-o", str(out)])
    assert r.exit_code == 0, r.output
    decoded = np.asarray(Image.open(out).convert("RGB")).astype(int)
    expected = np.asarray(Image.open(meta_path.with_suffix(".png")).convert("RGB")).astype(int)
    # The symbols are exact on any machine; the float synthesis may move a pixel by a unit.
    assert np.abs(decoded - expected).max() <= 2
    found = ModelLibrary().find(header.model_id, header.fingerprint)
    codec = Codec(load_checkpoint(found.path))
    assert symbols_sha256(codec, aec.read_bytes()) == meta["symbols_sha256"]


def test_every_shipped_model_has_a_refined_golden_file():
    """A file whose latents were refined (encode --effort) decodes like any other: the decoder
    is the same, so the refined golden files above must decode bit-exactly too."""
    for entry in read_index().models:
        meta_path = GOLDEN / f"{entry.model_id}.refined.json"
        assert meta_path.exists(), f"run `python3 tests/golden/make_golden.py {entry.model_id}`"
        meta = json.loads(meta_path.read_text())
        assert meta["refined"] and meta["effort"] > 0
        plain = (GOLDEN / f"{entry.model_id}.aec").read_bytes()
        refined = meta_path.with_suffix(".aec").read_bytes()
        assert refined != plain
        assert (
            container.unpack(refined)[0].quality
            == json.loads((GOLDEN / f"{entry.model_id}.json").read_text())["quality"]
        )
