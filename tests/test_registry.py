"""Finding models: the package index is consistent with the files it ships, and a model is found
by the id and fingerprint a file names, among --model files, the environment and the package."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import make_tiny_checkpoint

from aecompress.checkpoint import save_checkpoint
from aecompress.errors import CheckpointError, ModelNotFoundError
from aecompress.modelfile import read_identity
from aecompress.registry import (
    FROM_ARGUMENT,
    FROM_MODEL_ENV,
    FROM_MODELS_DIR,
    FROM_PACKAGE,
    INDEX_FILE,
    MODEL_ENV,
    MODELS_DIR_ENV,
    ModelLibrary,
    package_folder,
    read_index,
)

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"


# ----- the shipped models -------------------------------------------------------------------


def test_package_folder_is_the_repositorys_pretrained_folder():
    # From the source tree or an editable install; tests/test_packaging.py covers a wheel.
    assert package_folder().resolve() == PRETRAINED.resolve()


def test_index_lists_every_shipped_checkpoint_with_its_true_identity():
    index = read_index()
    listed = {m.path.name for m in index.models}
    on_disk = {p.name for p in PRETRAINED.glob("*.pt")}
    assert listed == on_disk, "every checkpoint in pretrained/ must be in models.json, and back"
    for m in index.models:
        ident = read_identity(m.path)
        assert (ident.model_id, ident.fingerprint.hex()) == (m.model_id, m.fingerprint), m.path
        assert m.source == FROM_PACKAGE
    assert index.default_model().model_id == index.default


def test_shipped_models_fit_the_size_budget():
    sizes = [p.stat().st_size for p in PRETRAINED.glob("*.pt")]
    assert sizes and max(sizes) <= 16 * 2**20
    # 40 MiB in all, so that every model that has been the default can stay.
    assert sum(p.stat().st_size for p in PRETRAINED.iterdir() if p.is_file()) <= 40 * 2**20


def _write_index(folder: Path, raw: dict) -> None:
    (folder / INDEX_FILE).write_text(json.dumps(raw))


def test_malformed_indexes_are_refused(tmp_path):
    entry = {"model_id": "a", "file": "a.pt", "fingerprint": "00" * 8}
    cases = {
        "listed twice": {"default": "a", "models": [entry, entry]},
        "is not listed": {"default": "b", "models": [entry]},
        "16 hex digits": {"default": "a", "models": [{**entry, "fingerprint": "xyz"}]},
        "plain file name": {"default": "a", "models": [{**entry, "file": "../a.pt"}]},
        "malformed": {"models": [entry]},
    }
    for fragment, raw in cases.items():
        _write_index(tmp_path, raw)
        with pytest.raises(CheckpointError, match=fragment):
            read_index(tmp_path)
    (tmp_path / INDEX_FILE).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        read_index(tmp_path)


# ----- lookup ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two tiny models with the same id and different weights, in a folder of their own."""
    folder = tmp_path_factory.mktemp("models")
    a, b = (
        make_tiny_checkpoint(seed=1, model_id="tiny"),
        make_tiny_checkpoint(seed=2, model_id="tiny"),
    )
    save_checkpoint(a, folder / "a.pt")
    save_checkpoint(b, folder / "b.pt")
    (folder / "notes.txt").write_text("not a model")
    return folder, a.fingerprint, b.fingerprint


def test_models_are_found_by_id_and_fingerprint(two_models):
    folder, fa, fb = two_models
    lib = ModelLibrary(environ={MODELS_DIR_ENV: str(folder)})
    assert lib.find("tiny", fa).path == folder / "a.pt"
    assert lib.find("tiny", fb).path == folder / "b.pt"
    assert lib.find("tiny", fb).source == FROM_MODELS_DIR
    shipped = read_index().default_model()
    found = lib.find(shipped.model_id, bytes.fromhex(shipped.fingerprint))
    assert found.path == shipped.path and found.source == FROM_PACKAGE
    with pytest.raises(ModelNotFoundError) as e:
        lib.find("tiny", bytes(8))  # right id, unknown weights
    message = str(e.value)
    assert "encoded with model tiny (0000000000000000), which is not available" in message
    assert f"{FROM_MODELS_DIR} {folder}" in message and "the package's models in" in message
    assert "\n" not in message


def test_search_order_and_sources(two_models, tmp_path):
    folder, fa, _ = two_models
    copy = tmp_path / "copy.pt"
    copy.write_bytes((folder / "a.pt").read_bytes())
    lib = ModelLibrary([str(copy)], environ={MODELS_DIR_ENV: str(folder)})
    assert lib.find("tiny", fa).path == copy and lib.find("tiny", fa).source == FROM_ARGUMENT
    lib = ModelLibrary(environ={MODEL_ENV: str(copy), MODELS_DIR_ENV: str(folder)})
    assert lib.find("tiny", fa).source == FROM_MODEL_ENV
    sources = [m.source for m in lib.available()]
    assert (
        sources
        == [FROM_MODEL_ENV, *[FROM_PACKAGE] * len(read_index().models)] + [FROM_MODELS_DIR] * 2
    )


def test_unreadable_files_in_the_folder_are_skipped_and_noted(two_models, tmp_path):
    folder, _, fb = two_models
    for name in ("a.pt", "b.pt"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    (tmp_path / "0-broken.pt").write_bytes(b"not a checkpoint")
    lib = ModelLibrary(
        environ={MODELS_DIR_ENV: os.pathsep.join([str(tmp_path / "none"), str(tmp_path)])}
    )
    assert lib.find("tiny", fb).path == tmp_path / "b.pt"
    assert any("0-broken.pt" in p and "not a readable aecompress model" in p for p in lib.problems)
    assert any("cannot list" in p for p in lib.problems)


def test_a_named_model_file_that_cannot_be_read_is_an_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="bad.pt: not a readable aecompress model"):
        ModelLibrary([str(bad)]).check()
    with pytest.raises(CheckpointError, match="model file not found: nothing.pt"):
        ModelLibrary(["nothing.pt"]).check()


def test_encoder_model_choice(two_models):
    folder, _, fb = two_models
    env = {MODELS_DIR_ENV: str(folder)}
    default = read_index().default_model()
    assert ModelLibrary(environ=env).encoder_model() == default.path
    assert ModelLibrary(environ=env).encoder_model(str(folder / "b.pt")) == folder / "b.pt"
    # An available model by fingerprint or id (ids are matched in search order).
    assert ModelLibrary(environ=env).encoder_model(fb.hex()) == folder / "b.pt"
    assert ModelLibrary(environ=env).encoder_model(default.model_id) == default.path
    env_choice = {**env, MODEL_ENV: fb.hex()}
    assert ModelLibrary(environ=env_choice).encoder_model() == folder / "b.pt"
    with pytest.raises(CheckpointError, match="model file not found: nope") as e:
        ModelLibrary(environ={MODEL_ENV: "nope"}).encoder_model()
    assert f"${MODEL_ENV}" in str(e.value) and "aecompress models" in str(e.value)
