"""A built wheel carries every shipped model, and once installed it finds them from any folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import photo_like
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _can_build_without_isolation() -> bool:
    """setuptools >= 70.1 builds wheels itself; older ones need the `wheel` package."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    if (major, minor) >= (70, 1):
        return True
    try:
        import wheel  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of the project (the build writes into its source tree)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("aecompress", "pretrained"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    # Without build isolation when this environment can build (fast, offline); else pip fetches
    # the build requirements from the package index.
    flags = ["--no-build-isolation"] if _can_build_without_isolation() else []
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *flags, "-w", str(dist), "."]
    r = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (found,) = dist.glob("aecompress-*.whl")
    return found


def test_wheel_holds_every_shipped_model(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.name for p in (ROOT / "pretrained").iterdir() if p.suffix == ".pt")
    assert shipped, "pretrained/ holds no model"
    for name in [*shipped, "models.json", "__init__.py"]:
        assert f"aecompress/pretrained/{name}" in names, name
    with zipfile.ZipFile(wheel) as z:
        for name in shipped:  # whole files, not pointers or stubs
            size = z.getinfo(f"aecompress/pretrained/{name}").file_size
            assert size == (ROOT / "pretrained" / name).stat().st_size


def test_wheel_holds_every_module(wheel):
    """Every sub-package is listed in pyproject.toml: a test run from the checkout would not
    notice one left out, since the editable install still finds it."""
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "aecompress").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert [m for m in modules if m not in names] == []


def test_wheel_holds_the_files_named_in_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "aecompress/py.typed" in names  # the package is typed; checkers look for this marker


# Library features the code relies on, and the release that introduced each: the declared
# floors in pyproject.toml must not allow a release without them.
FEATURES_SINCE = {
    "typer": {"typer.TyperException": (0, 27, 2)},
    "numpy": {"np.trapezoid": (2, 0)},
}


def _floors() -> dict[str, tuple[int, ...]]:
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {}
    for dep in deps:
        m = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", dep)
        if m:
            floors[m.group(1).lower()] = tuple(int(x) for x in m.group(2).split("."))
    return floors


def test_declared_floors_cover_the_features_used():
    """`pip install aecompress` must never pick a release that lacks what the code calls: on
    an older Typer every handled error would become a traceback."""
    source = "\n".join(p.read_text() for p in (ROOT / "aecompress").rglob("*.py"))
    floors = _floors()
    for package, features in FEATURES_SINCE.items():
        for feature, since in features.items():
            if feature in source:
                assert floors.get(package, (0,)) >= since, f"{package} floor below {feature}"


def test_the_test_extra_installs_what_the_tests_would_skip_without():
    """`pip install -e ".[test]"` (the README's test command) must install every optional module
    a test skips without, or that test never runs where the suite is run."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = extra["optional-dependencies"]["test"]
    installed = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in extra}
    skipped = set()
    for path in (ROOT / "tests").glob("*.py"):
        skipped |= set(re.findall(r"importorskip\(\"([A-Za-z0-9_]+)", path.read_text()))
    standard = set(sys.stdlib_module_names)
    assert skipped - standard, "no optional module found: the pattern no longer matches"
    assert sorted(skipped - standard - installed) == []


def test_installed_wheel_works_from_any_folder(wheel, tmp_path):
    """Installed apart from the checkout, run from an unrelated folder with no model settings:
    models are found inside the installed package, and encode / decode / info / models work."""
    site = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    Image.fromarray(photo_like(48, 64)).save(work / "photo.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AECOMPRESS_")}
    env["PYTHONPATH"] = str(site)  # before site-packages, where the editable checkout is

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "aecompress", *args],
            cwd=work, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    r = cli("models", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    shipped = json.loads((ROOT / "pretrained" / "models.json").read_text())
    assert sorted(r["model_id"] for r in rows) == sorted(m["model_id"] for m in shipped["models"])
    for r_ in rows:
        assert Path(r_["file"]).is_relative_to(site / "aecompress" / "pretrained"), r_["file"]
    (row,) = [r_ for r_ in rows if r_["default"]]
    assert row["model_id"] == shipped["default"]
    r = cli("encode", "photo.png", "-q", "40")
    assert r.returncode == 0, r.stderr
    assert f"model {row['model_id']} ({row['fingerprint']})" in r.stderr
    r = cli("info", "photo.aec", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"][0]["model_file"] == row["file"]
    r = cli("decode", "photo.aec", "-o", "back.png")
    assert r.returncode == 0, r.stderr
    with Image.open(work / "back.png") as im:
        assert im.size == (64, 48)
