"""benchmarks/ship_model.py and aecompress/shipping/: compare a candidate with the default,
decide, and ship it into a repository, here a temporary one.

The fake repository's default is a shipped model whose synthesis is slightly off (a bias on its
last layer): the same rates, a lower PSNR, so the unchanged model is a candidate that is better
on any images, and one further off is worse. Images are three 64×64 generated ones per set, so a
whole comparison takes about a second.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_images, make_tiny_checkpoint
from golden.make_golden import symbols_sha256, write_golden
from PIL import Image

from aecompress import container, shipping
from aecompress.checkpoint import load_checkpoint, save_checkpoint
from aecompress.codec import Codec
from aecompress.errors import AecError
from aecompress.imagefile import decode_image
from aecompress.modelfile import read_identity
from aecompress.registry import read_index

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "ship_model.py"
NEW = "fake-new"

README = """# fake

## Where it stands

<!-- default-model:begin -->

The default model is `fake-default`.

<!-- default-model:end -->

Text after the block that shipping leaves alone.
"""

MODELS_README = """# Shipped models

<!-- shipped-models:begin -->

| model id | file | fingerprint | default |
| --- | --- | --- | --- |

<!-- shipped-models:end -->

## Shipping a new model

benchmarks/ship_model.py.

# `fake-default`

`fake-default.pt`, the current default.

```sh
# a shell comment, not a heading
```

# `fake-old`

`fake-old.pt`, the default until `fake-default`.
"""


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny images gain nothing from threads on a busy machine."""


def _smallest_shipped() -> Path:
    return min((m.path for m in read_index().models), key=lambda p: p.stat().st_size)


def _off_by(source: Path, bias: float, model_id: str, path: Path) -> Path:
    """The model in `source` with its synthesis's last bias moved: same rates, lower PSNR."""
    ckpt = load_checkpoint(source)
    last = [m for m in ckpt.model.g_s.modules() if getattr(m, "bias", None) is not None][-1]
    with torch.no_grad():
        last.bias += bias
    ckpt.model_id = model_id
    save_checkpoint(ckpt, path)
    return path


def _entry(path: Path) -> dict:
    ident = read_identity(path)
    return {"model_id": ident.model_id, "file": path.name, "fingerprint": ident.fingerprint.hex()}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A folder with a fake repository (`repo/`), image sets beside it and candidate files."""
    base = tmp_path_factory.mktemp("ship")
    repo = base / "repo"
    pretrained = repo / "pretrained"
    for folder in (pretrained, repo / "tests" / "golden", repo / "benchmarks", base / "runs"):
        folder.mkdir(parents=True)
    save_checkpoint(make_tiny_checkpoint(model_id="fake-old"), pretrained / "fake-old.pt")
    real = _smallest_shipped()
    _off_by(real, 0.005, "fake-default", pretrained / "fake-default.pt")
    models = [_entry(pretrained / "fake-old.pt"), _entry(pretrained / "fake-default.pt")]
    index = {"default": "fake-default", "models": models}
    (pretrained / "models.json").write_text(json.dumps(index, indent=2) + "\n")
    (pretrained / "README.md").write_text(MODELS_README)
    (repo / "README.md").write_text(README)
    for model_id in ("fake-old", "fake-default"):
        write_golden(model_id, repo / "tests" / "golden", pretrained)
    shutil.copy(real, base / "runs" / "better.pt")  # trained under another id: re-saved on ship
    _off_by(real, 0.01, "worse-run", base / "runs" / "worse.pt")
    shutil.copy(pretrained / "fake-default.pt", base / "runs" / "same.pt")
    make_images(base / "kodak", count=3, height=64, width=64, seed=0)
    make_images(base / "valid", count=3, height=64, width=64, seed=10)
    return base


@pytest.fixture
def work(template, tmp_path) -> Path:
    """A fresh copy of the template; commands run from its repository, as from a checkout."""
    shutil.copytree(template, tmp_path / "w")
    return tmp_path / "w"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("ship_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(candidate: str, *extra: str, model_id: str = NEW) -> list[str]:
    return [candidate, "--model-id", model_id, "--kodak", "../kodak", "--valid", "../valid",
            "--threads", "1", "--repo", ".", *extra]  # fmt: skip


def _run(script, work: Path, monkeypatch, *args: str) -> int:
    monkeypatch.chdir(work / "repo")  # paths as typed from the checkout's root
    return script.main(list(args))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ----- shipping a better candidate ---------------------------------------------------------------


def test_a_better_candidate_ships(script, work, monkeypatch, capsys):
    repo = work / "repo"
    before = _snapshot(repo)
    report = "benchmarks/compare-new.md"
    rc = _run(
        script, work, monkeypatch, *_args("../runs/better.pt", "--lineage", "--report", report)
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "better: BD-rate against `fake-default`" in out and f"shipped {NEW}" in out

    # The model file carries the new id, and the fingerprint computed from its bytes is listed.
    shipped = load_checkpoint(repo / "pretrained" / f"{NEW}.pt")
    raw = json.loads((repo / "pretrained" / "models.json").read_text())
    (entry,) = [m for m in raw["models"] if m["model_id"] == NEW]
    assert shipped.model_id == NEW and shipped.fingerprint.hex() == entry["fingerprint"]
    assert read_identity(repo / "pretrained" / f"{NEW}.pt").fingerprint == shipped.fingerprint
    trained = load_checkpoint(work / "runs" / "better.pt")
    assert shipping.same_weights(shipped, trained)
    assert shipped.provenance == {**trained.provenance, "trained_as": trained.model_id}
    assert raw["default"] == NEW and raw["lineage"] == NEW
    assert entry["file"] == f"{NEW}.pt"
    # Its training history ends with the run that made it, under the id it ships as.
    last = entry["history"][-1]
    assert last["model_id"] == NEW and last["steps"] == int(trained.provenance["steps"])
    assert last["seconds"] == float(trained.provenance["wall_seconds"])
    command = (
        f"python3 benchmarks/ship_model.py ../runs/better.pt --model-id {NEW} --kodak ../kodak "
        f"--valid ../valid --threads 1 --lineage --report {report}"
    )
    assert entry["kodak"]["command"] == command
    assert "torch" in entry["kodak"]["machine"] and "-core" in entry["kodak"]["machine"]
    points = entry["kodak"]["points"]
    assert [p["quality"] for p in points] == [1, 10, 25, 50, 75, 90, 100]
    assert all(round(p["bpp"], 3) == p["bpp"] and round(p["psnr"], 2) == p["psnr"] for p in points)

    # The older models stay, with their files and golden files; the index reads back.
    index = read_index(repo / "pretrained")
    assert [m.model_id for m in index.models] == ["fake-old", "fake-default", NEW]
    assert index.default_model().model_id == NEW
    for name in ("fake-old", "fake-default"):
        for suffix in (".aec", ".png", ".json"):
            path = f"tests/golden/{name}{suffix}"
            assert (repo / path).read_bytes() == before[path]
        assert (repo / "pretrained" / f"{name}.pt").read_bytes() == before[f"pretrained/{name}.pt"]

    _check_golden(repo, shipped)
    _check_readmes(repo, entry)
    assert (repo / "benchmarks" / "compare-new.json").is_file()
    assert json.loads((repo / "benchmarks" / "compare-new.json").read_text())["decision"]["better"]

    # Nothing the ship wrote names this machine's folders.
    for path in repo.rglob("*"):
        if path.suffix in (".json", ".md"):
            assert str(work) not in path.read_text(), path


def _check_golden(repo: Path, shipped) -> None:
    golden = repo / "tests" / "golden"
    meta = json.loads((golden / f"{NEW}.json").read_text())
    data = (golden / f"{NEW}.aec").read_bytes()
    header = container.unpack(data)[0]
    assert (header.model_id, header.fingerprint) == (NEW, shipped.fingerprint)
    assert meta["fingerprint"] == shipped.fingerprint.hex()
    codec = Codec(shipped)
    decoded = decode_image(codec, data).rgb.astype(int)
    expected = np.asarray(Image.open(golden / f"{NEW}.png").convert("RGB")).astype(int)
    assert np.abs(decoded - expected).max() <= 2
    assert symbols_sha256(codec, data) == meta["symbols_sha256"]


def _check_readmes(repo: Path, entry: dict) -> None:
    text = (repo / "pretrained" / "README.md").read_text()
    table = text.split("<!-- shipped-models:begin -->")[1].split("<!-- shipped-models:end -->")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows[0] == f"| `{NEW}` | `{NEW}.pt` (4.8 MiB) | `{entry['fingerprint']}` | yes |"
    assert [r.split(" | ")[0] for r in rows] == [f"| `{NEW}`", "| `fake-default`", "| `fake-old`"]
    assert all(r.endswith("| no (kept: its files decode) |") for r in rows[1:])
    # The new section comes right before the previous default's, which now says until when.
    assert text.index(f"# `{NEW}`") < text.index("# `fake-default`") < text.index("# `fake-old`")
    assert text.count(shipping.CURRENT_DEFAULT) == 1
    new_section = text.split(f"# `{NEW}`")[1].split("# `fake-default`")[0]
    assert shipping.CURRENT_DEFAULT in new_section and entry["fingerprint"] in new_section
    assert entry["kodak"]["command"] in new_section and entry["kodak"]["machine"] in new_section
    assert "Trained as `aec-" in new_section and "| PSNR dB |" in new_section
    assert "[compare-new.md](../benchmarks/compare-new.md)" in new_section
    old_section = text.split("# `fake-default`")[1].split("# `fake-old`")[0]
    assert "Trained as `aec-" not in old_section
    assert f"`fake-default.pt`, the default until `{NEW}`." in old_section
    assert "# a shell comment, not a heading" in old_section

    readme = (repo / "README.md").read_text()
    block = readme.split("<!-- default-model:begin -->")[1].split("<!-- default-model:end -->")[0]
    words = " ".join(block.split())  # lines are wrapped
    assert f"The default model is `{NEW}`" in words
    assert "against the previous default, `fake-default`" in words
    assert "On Kodak: q1 " in words and "/ q50 " in words and "/ q100 " in words
    assert "([compare-new.md](benchmarks/compare-new.md))" in words
    outside = readme.replace(block, "")
    assert outside == README.replace(README.split("<!-- default-model:begin -->")[1]
                                     .split("<!-- default-model:end -->")[0], "")  # fmt: skip


# ----- nothing ships -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "candidate, model_id, extra, reason",
    [
        ("../runs/worse.pt", NEW, [], "it must be negative on both"),
        # The same weights: only the id in each file's header differs.
        ("../runs/same.pt", "fake-same", [], "the same weights as `fake-default`"),
        # The untrained tiny model's PSNR is far below any real model's.
        ("../runs/better.pt", NEW, ["--against", "fake-old"], "no PSNR range in common with"),
    ],
    ids=["worse", "same-weights", "against-another-model"],
)
def test_a_candidate_that_is_not_better_changes_nothing(
    script, work, monkeypatch, capsys, candidate, model_id, extra, reason
):
    before = _snapshot(work)
    rc = _run(script, work, monkeypatch, *_args(candidate, *extra, model_id=model_id))
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "not better: " in out and reason in out
    assert "not shipped: nothing changed" in out
    assert _snapshot(work) == before


def test_dry_run_changes_nothing(script, work, monkeypatch, capsys):
    before = _snapshot(work)
    rc = _run(script, work, monkeypatch, *_args("../runs/better.pt", "--dry-run", "--lineage"))
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "better: BD-rate against" in out and "--dry-run: nothing changed" in out
    for name in ("Kodak", "valid/"):
        assert f"{name} (3 images, ../" in out
    assert _snapshot(work) == before


@pytest.mark.parametrize(
    "candidate, model_id, limits, message",
    [
        ("../runs/better.pt", "fake-old", {}, "model id fake-old is already listed"),
        ("../runs/missing.pt", NEW, {}, "not found: ../runs/missing.pt"),
        ("../kodak/0.png", NEW, {}, "not a readable aecompress model file"),
        ("../runs/better.pt", "bad/id", {}, "model id 'bad/id' must be"),
        ("../runs/better.pt", NEW, {"MAX_MODEL_BYTES": 2**20}, "over the 1.0 MiB limit"),
        ("../runs/better.pt", NEW, {"MAX_PRETRAINED_BYTES": 8 * 2**20}, "over the 8.0 MiB limit"),
    ],
    ids=["listed", "missing", "unreadable", "bad-id", "file-size", "total-size"],
)
def test_refusals_are_one_line_and_change_nothing(
    script, work, monkeypatch, capsys, candidate, model_id, limits, message
):
    for name, value in limits.items():
        monkeypatch.setattr(shipping.candidate, name, value)  # where the refusals read them
    before = _snapshot(work)
    rc = _run(script, work, monkeypatch, *_args(candidate, model_id=model_id))
    captured = capsys.readouterr()
    assert rc == 1
    assert captured.err.startswith("ship_model: error: ") and message in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""
    assert _snapshot(work) == before


def test_the_command_exits_1_with_one_line(work):
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "none.pt", "--model-id", NEW, "--kodak", "../kodak",
         "--valid", "../valid", "--repo", "."],
        cwd=work / "repo", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert r.stderr == "ship_model: error: aecompress model file not found: none.pt\n"


# ----- the decision and the file edits, from given figures ---------------------------------------


def _curve(model_id: str, fingerprint: str, shift: float, bd_jpeg: float | None):
    points = tuple(
        shipping.RdPoint(q, 0.2 + q / 100, 28.0 + 6 * q / 100 + shift) for q in shipping.QUALITIES
    )
    return shipping.ModelCurve(model_id, fingerprint, points, bd_jpeg)


def _given(kodak_bd, valid_bd, fingerprint="0" * 16, same=False, model_id="given-new"):
    sets = []
    for name, bd in (("Kodak", kodak_bd), ("valid/", valid_bd)):
        sets.append(
            shipping.SetComparison(
                name=name,
                folder=f"../{name.strip('/').lower()}",
                images=3,
                jpeg=(),
                reference=_curve("fake-default", "1" * 16, 0.0, -30.0),
                candidate=_curve(model_id, fingerprint, 0.1, -31.25),
                bd_vs_reference=bd,
                common_psnr=(28.1, 34.0),
            )  # fmt: skip
        )
    return shipping.Comparison(
        kodak=sets[0], valid=sets[1], trained_as="run-7", reference_is_default=True,
        same_weights=same, command="python3 benchmarks/ship_model.py x.pt",
        machine="2-core x86_64 CPU, torch 2, 1 torch threads, 2026-12-03", date="2026-12-03",
    )  # fmt: skip


def test_decide_needs_a_negative_bd_rate_on_both_sets():
    assert shipping.decide(_given(-1.0, -0.01)).better
    for kodak, valid in ((-1.0, 0.0), (0.5, -2.0), (None, -1.0), (-1.0, None)):
        decision = shipping.decide(_given(kodak, valid))
        assert not decision.better and decision.reason
    assert "same weights" in shipping.decide(_given(-1.0, -1.0, same=True)).reason
    assert "+0.50% on Kodak" in shipping.decide(_given(0.5, -2.0)).reason.replace("−", "-")


def test_ship_from_given_figures_writes_them(template, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(template / "repo", repo)
    ckpt = make_tiny_checkpoint(seed=3, model_id="given-new")
    model_file = tmp_path / "given.pt"
    save_checkpoint(ckpt, model_file)
    comparison = _given(-1.5, -0.25, fingerprint=ckpt.fingerprint.hex())
    changed = shipping.ship(repo, comparison, model_file, write_golden)
    assert {p.relative_to(repo).as_posix() for p in changed} == {
        "pretrained/given-new.pt", "pretrained/models.json", "pretrained/README.md", "README.md",
        "tests/golden/given-new.aec", "tests/golden/given-new.png", "tests/golden/given-new.json",
        "tests/golden/given-new.refined.aec", "tests/golden/given-new.refined.png",
        "tests/golden/given-new.refined.json",
    }  # fmt: skip
    raw = json.loads((repo / "pretrained" / "models.json").read_text())
    assert raw["default"] == "given-new" and "lineage" not in raw
    assert raw["models"][-1]["kodak"]["points"][0] == {"quality": 1, "bpp": 0.21, "psnr": 28.16}
    readme = " ".join((repo / "README.md").read_text().split())  # lines are wrapped
    assert "BD-rate **−31.2% against JPEG 4:2:0** on Kodak" in readme
    assert "−1.5% against the previous default, `fake-default`" in readme
    assert "On Kodak: q1 0.210 bpp 28.16 dB / q50 0.700 bpp 31.10 dB / q100 1.200 bpp" in readme
    section = (repo / "pretrained" / "README.md").read_text().split("# `given-new`")[1]
    assert "**Status: BD-rate −31.2% against JPEG 4:2:0 on Kodak** (−30.0% for `fake-default`" in (
        " ".join(section.split())
    )
    assert "−1.5% on Kodak, −0.2% on `valid/`" in " ".join(section.split())


def test_a_failed_ship_restores_every_file(template, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(template / "repo", repo)
    before = _snapshot(repo)
    ckpt = make_tiny_checkpoint(seed=3, model_id="given-new")
    model_file = tmp_path / "given.pt"
    save_checkpoint(ckpt, model_file)
    comparison = _given(-1.5, -0.25, fingerprint=ckpt.fingerprint.hex())

    def failing_golden(model_id, golden, pretrained):
        (golden / f"{model_id}.aec").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        shipping.ship(repo, comparison, model_file, failing_golden)
    assert _snapshot(repo) == before
    # A README without its markers is refused before anything is written.
    (repo / "README.md").write_text("# no markers\n")
    before = _snapshot(repo)
    with pytest.raises(AecError, match="README.md: needs one <!-- default-model:begin -->"):
        shipping.ship(repo, comparison, model_file, write_golden)
    assert _snapshot(repo) == before
    # A file that is not the measured one is refused too.
    other = tmp_path / "other.pt"
    save_checkpoint(make_tiny_checkpoint(seed=4, model_id="given-new"), other)
    with pytest.raises(AecError, match="not the measured given-new"):
        shipping.ship(repo, comparison, other, write_golden)


# ----- the real repository -----------------------------------------------------------------------


def test_the_real_repository_is_ready_to_ship_into():
    readme = (ROOT / "README.md").read_text()
    models_readme = (ROOT / "pretrained" / "README.md").read_text()
    for text, name in ((readme, "default-model"), (models_readme, "shipped-models")):
        assert text.count(f"<!-- {name}:begin -->") == 1 and text.count(f"<!-- {name}:end -->") == 1
    index = read_index()  # an extra top-level key such as "lineage" must not disturb it
    assert index.default_model().path.is_file()
    # The table in pretrained/README.md is the one shipping would write for the index as it is.
    raw = json.loads((ROOT / "pretrained" / "models.json").read_text())
    sizes = {p.name: p.stat().st_size for p in (ROOT / "pretrained").glob("*.pt")}
    table = models_readme.split("<!-- shipped-models:begin -->")[1].split(
        "<!-- shipped-models:end -->"
    )[0]
    assert table.strip() == shipping.shipped_models_table(raw, sizes)
    lineage = raw.get("lineage")
    assert lineage is None or lineage in {m.model_id for m in index.models}


def test_recorded_paths_are_relative_to_the_repository(tmp_path):
    layout = shipping.RepoLayout(tmp_path / "repo")
    assert layout.recorded(tmp_path / "shared" / "data" / "kodak") == "../shared/data/kodak"
    assert layout.recorded(tmp_path / "repo" / "runs" / "model.pt") == "runs/model.pt"


def test_recorded_paths_name_no_machine_folders(tmp_path, monkeypatch):
    """Beside the checkout: relative; a lineage model in the user's cache: under ~."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    layout = shipping.RepoLayout(tmp_path / "work" / "repo")
    assert layout.recorded(tmp_path / "work" / "shared" / "kodak") == "../shared/kodak"
    cached = tmp_path / "home" / ".cache" / "aecompress" / "lineage" / "sessions" / "0001"
    assert layout.recorded(cached / "model.pt") == (
        "~/.cache/aecompress/lineage/sessions/0001/model.pt"
    )


def test_a_recorded_command_keeps_the_home_folder_expandable(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    layout = shipping.RepoLayout(tmp_path / "work" / "repo")
    request = shipping.ShipRequest(
        candidate=tmp_path / "home" / ".cache" / "m.pt", model_id="x",
        kodak=tmp_path / "work" / "shared" / "kodak", valid=tmp_path / "work" / "shared" / "v",
    )  # fmt: skip
    assert request.command(layout).startswith("python3 benchmarks/ship_model.py ~/.cache/m.pt ")
