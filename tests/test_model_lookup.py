"""The command line decodes every file with the model it names: files of several models decode in
one call whichever model is the default, a file whose model is absent is refused in one line,
and `aecompress models` lists what is available."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_checkpoint, photo_like
from PIL import Image
from typer.testing import CliRunner

from aecompress import container
from aecompress.checkpoint import load_checkpoint, save_checkpoint
from aecompress.cli import app
from aecompress.codec import Codec
from aecompress.imagefile import decode_image
from aecompress.registry import MODEL_ENV, MODELS_DIR_ENV, read_index


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Two tiny seeded models in a folder of their own ($AECOMPRESS_MODELS)."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for seed, name in ((1, "tiny-a"), (2, "tiny-b")):
        paths[name] = folder / f"{name}.pt"
        save_checkpoint(make_tiny_checkpoint(seed=seed, model_id=name), paths[name])
    return paths


@pytest.fixture
def run(monkeypatch):
    runner = CliRunner()

    def invoke(*args, env: dict[str, str | None] | None = None):
        for key, value in (env or {}).items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture
def written(run, models, tmp_path) -> dict[str, Path]:
    """x.aec by tiny-a, y.aec by tiny-b, z.aec by the shipped default model."""
    folder = str(models["tiny-a"].parent)
    files = {}
    for name, model, seed in (("x", "tiny-a", 0), ("y", "tiny-b", 1), ("z", None, 2)):
        src = tmp_path / f"{name}.png"
        Image.fromarray(photo_like(40, 56, seed)).save(src)
        env = {MODELS_DIR_ENV: folder, MODEL_ENV: None}
        args = ["--model", model] if name == "x" else []  # by id, found in the folder
        if name == "y":
            env[MODEL_ENV] = str(models["tiny-b"])  # by the default for encoding
        r = run("encode", src, "-o", tmp_path / f"{name}.aec", "-q", "50", *args, env=env)
        assert r.exit_code == 0, r.output
        files[name] = tmp_path / f"{name}.aec"
    return files


def expected_pixels(aec: Path, model: Path) -> np.ndarray:
    return decode_image(Codec(load_checkpoint(model)), aec.read_bytes()).rgb


def test_files_name_the_model_that_wrote_them(written, models):
    shipped = read_index().default_model()
    ids = {n: container.unpack(p.read_bytes())[0] for n, p in written.items()}
    assert ids["x"].model_id == "tiny-a" and ids["y"].model_id == "tiny-b"
    assert (ids["z"].model_id, ids["z"].fingerprint.hex()) == (
        shipped.model_id,
        shipped.fingerprint,
    )


@pytest.mark.parametrize("default", ["tiny-a", "tiny-b", None])
def test_one_decode_call_restores_files_of_several_models(run, written, models, tmp_path, default):
    out = tmp_path / "out"
    out.mkdir()
    env = {
        MODELS_DIR_ENV: str(models["tiny-a"].parent),
        MODEL_ENV: str(models[default]) if default else None,
    }
    r = run("decode", *written.values(), "-o", out, env=env)
    assert r.exit_code == 0, r.output
    truth = {"x": models["tiny-a"], "y": models["tiny-b"], "z": read_index().default_model().path}
    for name, aec in written.items():
        decoded = np.asarray(Image.open(out / f"{name}.aec.png").convert("RGB"))
        assert np.array_equal(decoded, expected_pixels(aec, truth[name])), name
    # Each model is loaded once, when a file first names it.
    assert r.stderr.count("model tiny-a") == 1 and r.stderr.count("model tiny-b") == 1


def test_a_file_whose_model_is_absent_is_refused_in_one_line(run, written, models, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = run("decode", *written.values(), "-o", out, env={MODELS_DIR_ENV: None, MODEL_ENV: None})
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, r.stderr
    for line, name in zip(errors, ("x", "y"), strict=True):
        header = container.unpack(written[name].read_bytes())[0]
        assert str(written[name]) in line
        assert f"encoded with model {header.model_id} ({header.fingerprint.hex()})" in line
        assert "not available" in line and f"${MODELS_DIR_ENV} (unset)" in line
    assert "2 of 3 inputs failed" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["z.aec.png"]
    # Pointing at the model file is enough.
    r = run("decode", written["x"], "-o", out / "x.png", "--model", models["tiny-a"])
    assert r.exit_code == 0, r.output


def test_info_names_the_model_file_or_its_absence(run, written, models):
    env = {MODELS_DIR_ENV: str(models["tiny-a"].parent), MODEL_ENV: None}
    r = run("info", *written.values(), "--json", env=env)
    assert r.exit_code == 0, r.output
    reports = json.loads(r.stdout)["results"]
    assert [Path(rep["model_file"]).name for rep in reports[:2]] == ["tiny-a.pt", "tiny-b.pt"]
    assert reports[2]["model_file"] == str(read_index().default_model().path)
    r = run("info", written["x"], env={MODELS_DIR_ENV: None})
    assert r.exit_code == 0, r.output
    assert "model tiny-a" in r.stdout and "model not available" in r.stdout


def test_models_lists_the_available_models(run, models):
    env = {MODELS_DIR_ENV: str(models["tiny-a"].parent), MODEL_ENV: str(models["tiny-b"])}
    r = run("models", "--json", env=env)
    assert r.exit_code == 0, r.output
    rows = {row["model_id"]: row for row in json.loads(r.stdout)}
    index = read_index()
    shipped = index.default_model()
    assert set(rows) == {"tiny-a", "tiny-b", *(m.model_id for m in index.models)}
    assert [m for m, row in rows.items() if row["default"]] == ["tiny-b"]
    assert rows["tiny-a"]["source"] == f"${MODELS_DIR_ENV}"
    assert rows["tiny-b"]["source"] == f"${MODEL_ENV}"
    s = rows[shipped.model_id]
    assert s["source"] == "package" and s["fingerprint"] == shipped.fingerprint
    assert s["bytes"] == shipped.path.stat().st_size
    assert s["trained_on"] and s["training_seconds"] > 0 and s["images"] > 0
    assert [p["quality"] for p in s["kodak"]] == [p.quality for p in shipped.kodak]
    # Without the environment: the shipped models alone, and the index's default is marked.
    r = run("models", env={MODELS_DIR_ENV: None, MODEL_ENV: None})
    assert r.exit_code == 0, r.output
    assert shipped.model_id in r.stdout and shipped.fingerprint in r.stdout
    assert "default" in r.stdout and "tiny-a" not in r.stdout
    assert "looked in:" in r.stderr


def test_unknown_model_choice_is_one_line(run, tmp_path):
    src = tmp_path / "p.png"
    Image.fromarray(photo_like(24, 32)).save(src)
    r = run("encode", src, "--model", "no-such-model", env={MODEL_ENV: None})
    assert r.exit_code == 1
    assert "model file not found: no-such-model" in r.stderr
    assert not (tmp_path / "p.aec").exists()
    r = run("decode", tmp_path / "p.aec", "--model", "no-such-model")
    assert r.exit_code == 1 and "model file not found: no-such-model" in r.stderr


def test_a_new_default_in_the_index_keeps_the_old_default_files_decodable(
    run, models, tmp_path, monkeypatch
):
    """The package index names the default: switching it from tiny-a to tiny-b (both shipped)
    changes what encode uses, and files of both still decode in one call."""
    from aecompress import registry

    pkg = tmp_path / "pretrained"
    pkg.mkdir()
    entries = []
    for name, path in models.items():
        (pkg / path.name).write_bytes(path.read_bytes())
        fp = load_checkpoint(path).fingerprint.hex()
        entries.append({"model_id": name, "file": path.name, "fingerprint": fp})
    monkeypatch.setattr(registry, "package_folder", lambda: pkg)
    src = tmp_path / "p.png"
    Image.fromarray(photo_like(40, 56, 3)).save(src)
    for default in ("tiny-a", "tiny-b"):
        (pkg / "models.json").write_text(json.dumps({"default": default, "models": entries}))
        r = run("encode", src, "-o", tmp_path / f"{default}.aec", env={MODEL_ENV: None})
        assert r.exit_code == 0, r.output
        header = container.unpack((tmp_path / f"{default}.aec").read_bytes())[0]
        assert header.model_id == default
    out = tmp_path / "out"
    out.mkdir()
    r = run("decode", tmp_path / "tiny-a.aec", tmp_path / "tiny-b.aec", "-o", out)
    assert r.exit_code == 0, r.output
    for name in ("tiny-a", "tiny-b"):
        decoded = np.asarray(Image.open(out / f"{name}.aec.png").convert("RGB"))
        assert np.array_equal(decoded, expected_pixels(tmp_path / f"{name}.aec", models[name]))


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("by", ["id", "fingerprint", "file"])
def test_every_option_that_takes_a_model_takes_a_file_an_id_or_a_fingerprint(
    run, models, tmp_path, by
):
    """`train --init`, `bench --model`, `encode --model` and a lineage's start find a model
    through the one lookup (`registry.find_model`)."""
    from aecompress import lineage
    from aecompress.registry import find_model

    path = models["tiny-a"]
    choice = {
        "id": "tiny-a",
        "fingerprint": load_checkpoint(path).fingerprint.hex(),
        "file": str(path),
    }[by]
    env = {MODELS_DIR_ENV: str(path.parent), MODEL_ENV: None}
    src = tmp_path / "p.png"
    Image.fromarray(photo_like(64, 64, 4)).save(src)
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(photo_like(64, 64, 5)).save(data / "0.png")

    r = run("train", data, "--out", tmp_path / "run", "--init", choice, "--steps", 1,
            "--batch-size", 2, "--patch-size", 64, "--export-always", env=env)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (
        load_checkpoint(tmp_path / "run" / "model.pt")
        .provenance["init"]
        .startswith(f"{path} (model tiny-a, ")
    )
    r = run("bench", src, "--codecs", "aec", "--qualities", "50", "--model", choice,
            "--json", tmp_path / "b.json", env=env)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "b.json").read_text())["machine"]["model_id"] == "tiny-a"
    r = run("encode", src, "-o", tmp_path / "p.aec", "--model", choice, env=env)
    assert r.exit_code == 0, r.output
    assert container.unpack((tmp_path / "p.aec").read_bytes())[0].model_id == "tiny-a"
    config = lineage.LineageConfig(data=[str(data)], valid=[], start=choice)
    assert lineage.resolve_start(config) == find_model(choice, "--model") == path


def test_an_unknown_model_for_init_is_one_line(run, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(photo_like(64, 64, 5)).save(data / "0.png")
    r = run("train", data, "--out", tmp_path / "run", "--init", "no-such-model", "--steps", 1)
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        "error: model file not found: no-such-model (--init: a model file or training state, "
        "or the id or fingerprint of a model listed by `aecompress models`)"
    )
    assert not (tmp_path / "run").exists()
