"""Batches through the pipeline (cli/pipeline.py): the files, the order, the failures, --fail-fast
and Ctrl-C are those of one input at a time; the throughput line and the JSON summary; and the
torch-thread policy on a fake clock."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import photo_like
from PIL import Image

from aecompress import operations
from aecompress.cli import pipeline, torch_threads
from aecompress.cli.torch_threads import TorchThreads
from aecompress.codec import Codec
from aecompress.errors import ImageError


@pytest.fixture
def run(cli, monkeypatch):
    """The CLI in-process, with the pipeline taken for several inputs whatever the machine."""
    monkeypatch.setattr(pipeline, "usable_cpus", lambda: 2)
    return cli


@pytest.fixture
def parts(monkeypatch):
    """Records (part, input name, ran in the main thread) for every first and second part."""
    calls: list[tuple[str, str, bool]] = []
    for name in ("encode_start", "encode_finish", "decode_start", "decode_finish"):
        real = getattr(operations, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            source = args[1] if _name.endswith("start") else args[0].source
            main = threading.current_thread() is threading.main_thread()
            calls.append((_name, Path(source).name, main))
            return _real(*args, **kwargs)

        monkeypatch.setattr(operations, name, spy)
    return calls


def slow_finish(monkeypatch, name: str, slow: str | set, seconds: float = 0.4, error=None):
    """Make the second part `name` of the input(s) named `slow` take `seconds`, then raise
    `error` if any."""
    real = getattr(operations, name)
    slow = {slow} if isinstance(slow, str) else slow

    def finish(job):
        if Path(job.source).name in slow:
            time.sleep(seconds)
            if error is not None:
                raise error
        return real(job)

    monkeypatch.setattr(operations, name, finish)


@pytest.fixture
def thread_counts(monkeypatch) -> list[int]:
    """Torch on two threads for the test; records every torch.set_num_threads."""
    import torch

    calls: list[int] = []
    real = torch.set_num_threads
    before = torch.get_num_threads()
    real(2)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n))[1])
    yield calls
    real(before)


def images(folder: Path) -> list[Path]:
    """Four inputs of different sizes and colour modes: RGB, RGBA, L and P."""
    folder.mkdir(exist_ok=True)
    rgba = Image.fromarray(photo_like(40, 56, 1)).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    made = {
        "d.png": Image.fromarray(photo_like(48, 40, 0)),
        "b.png": rgba,
        "c.png": Image.fromarray(photo_like(33, 70, 2)).convert("L"),
        "a.png": Image.fromarray(photo_like(64, 24, 3)).quantize(16),
    }
    for name, image in made.items():
        image.save(folder / name)
    return [folder / name for name in made]  # not in sorted order


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_a_batch_writes_the_files_of_one_input_at_a_time(
    run, tmp_path, parts, monkeypatch, thread_counts
):
    """Byte for byte, with torch's threads changing under the batch as they do on a CPU."""
    monkeypatch.setattr(torch_threads, "SHARE", 0.0)  # one thread fewer whenever the worker works
    sources = images(tmp_path / "src")
    alone, batch = tmp_path / "alone", tmp_path / "batch"
    for src in sources:
        assert run("encode", src, "-o", f"{alone}/", "--mkdir").exit_code == 0
    assert all(main for _, _, main in parts)  # one input: everything in the main thread
    parts.clear()
    slow_finish(monkeypatch, "encode_finish", {"d.png", "b.png"}, 0.2)  # busy during c and a
    r = run("encode", *sources, "-o", f"{batch}/", "--mkdir")
    assert r.exit_code == 0, r.output
    assert 1 in thread_counts and thread_counts[-1] == 2
    assert {(part, main) for part, _, main in parts} == {
        ("encode_start", True),
        ("encode_finish", False),
    }
    names = sorted(p.name for p in alone.iterdir())
    assert names == sorted(p.name for p in batch.iterdir()) and len(names) == 4
    for name in names:
        assert (batch / name).read_bytes() == (alone / name).read_bytes(), name

    one, many = tmp_path / "one", tmp_path / "many"
    aecs = [alone / f"{p.stem}.aec" for p in sources]
    for aec in aecs:
        assert run("decode", aec, "-o", f"{one}/", "--mkdir").exit_code == 0
    parts.clear()
    thread_counts.clear()
    slow_finish(monkeypatch, "decode_finish", {"d.aec", "b.aec"}, 0.2)
    r = run("decode", *aecs, "-o", f"{many}/", "--mkdir")
    assert r.exit_code == 0, r.output
    assert 1 in thread_counts and thread_counts[-1] == 2
    assert {(part, main) for part, _, main in parts} == {
        ("decode_start", True),
        ("decode_finish", False),
    }
    for aec in aecs:
        name = aec.name + ".png"
        with Image.open(one / name) as a, Image.open(many / name) as b:
            assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b)), name


def test_results_come_in_input_order(run, tmp_path, monkeypatch):
    sources = images(tmp_path / "src")
    slow_finish(monkeypatch, "encode_finish", "d.png")  # the first input is written last
    r = run("encode", *sources, "-o", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    results = json.loads(r.stdout)["results"]
    assert [x["input"] for x in results] == [str(p) for p in sources]
    aecs = [tmp_path / f"{p.stem}.aec" for p in sources]
    slow_finish(monkeypatch, "decode_finish", "d.aec")
    r = run("decode", *aecs, "-o", tmp_path / "out", "--mkdir", "-v")
    assert r.exit_code == 0, r.output
    assert [line.split(" -> ")[0] for line in r.stdout.splitlines()] == list(map(str, aecs))


def _alone(run, source: Path, target: Path) -> str:
    """The error line of `source` encoded on its own, to `target`."""
    r = run("encode", source, "-o", target)
    assert r.exit_code == 1
    return error_lines(r)[0]


@pytest.mark.parametrize("where", ["corrupt input", "existing output", "writing"])
def test_a_failure_in_the_middle_fails_alone(run, tmp_path, monkeypatch, where):
    sources = images(tmp_path / "src")  # d, b, c, a
    out = tmp_path / "out"
    out.mkdir()
    bad = sources[1]
    if where == "corrupt input":
        bad.write_bytes(bad.read_bytes()[:50])
    elif where == "existing output":
        (out / "b.aec").write_bytes(b"keep me")
    if where == "writing":  # the second part fails, on the worker thread
        slow_finish(monkeypatch, "encode_finish", bad.name, 0.1, RuntimeError("disk on fire"))
        expected = f"error: {bad}: internal error: RuntimeError: disk on fire"
    else:
        expected = _alone(run, bad, out / "b.aec")  # the message of the input on its own
    r = run("encode", *sources, "-o", out, "--json")
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert error_lines(r) == [expected]
    assert "1 of 4 inputs failed" in r.stderr
    report = json.loads(r.stdout)
    assert [x["input"] for x in report["results"]] == [str(p) for p in sources if p != bad]
    assert report["failed"] == [{"input": str(bad), "error": expected[len("error: ") :]}]
    assert report["not_processed"] == []
    written = {p.name for p in out.iterdir()}
    assert written == {"d.aec", "c.aec", "a.aec"} | (
        {"b.aec"} if where == "existing output" else set()
    )
    if where == "existing output":
        assert (out / "b.aec").read_bytes() == b"keep me"


@pytest.mark.parametrize("where", ["first part", "second part"])
def test_fail_fast_lists_the_rest_as_not_processed(run, tmp_path, monkeypatch, parts, where):
    src = tmp_path / "src"
    src.mkdir()
    names = ["a", "b", "c", "d", "e"]
    for i, n in enumerate(names):
        Image.fromarray(photo_like(24, 24, i)).save(src / f"{n}.png")
    sources = [src / f"{n}.png" for n in names]
    if where == "first part":  # fails at once, while a is still being written
        (src / "b.png").write_bytes(b"broken")
        slow_finish(monkeypatch, "encode_finish", "a.png", 0.3)
    else:  # fails late: the next inputs' first parts have run by then
        slow_finish(monkeypatch, "encode_finish", "b.png", 0.5, ImageError("b.png: boom"))
    out = tmp_path / "out"
    out.mkdir()
    r = run("encode", *sources, "-o", out, "--fail-fast", "--json")
    assert r.exit_code == 1 and len(error_lines(r)) == 1 and "b.png" in error_lines(r)[0]
    report = json.loads(r.stdout)
    assert [x["input"] for x in report["results"]] == [str(sources[0])]
    assert report["not_processed"] == list(map(str, sources[2:]))
    assert "stopped at the first failure (--fail-fast): 3 of 5 inputs not processed" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.aec"]  # c's output was never written
    started = [name for part, name, _ in parts if part == "encode_start"]
    if where == "first part":
        assert started == ["a.png", "b.png"]  # nothing starts after a failure known
    else:
        assert "c.png" in started  # c was coded before b failed, and dropped


def test_fail_fast_reports_the_first_failure_in_input_order(run, tmp_path, monkeypatch):
    """b's write fails after c's first part failed: one at a time, c would never have run."""
    sources = images(tmp_path / "src")  # d, b, c, a
    sources[2].write_bytes(b"broken")
    slow_finish(monkeypatch, "encode_finish", "b.png", 0.3, ImageError(f"{sources[1]}: late"))
    r = run("encode", *sources, "-o", tmp_path, "--fail-fast", "--json")
    assert r.exit_code == 1
    assert error_lines(r) == [f"error: {sources[1]}: late"]
    report = json.loads(r.stdout)
    assert report["not_processed"] == [str(sources[2]), str(sources[3])]
    assert sorted(p.name for p in tmp_path.glob("*.aec")) == ["d.aec"]


def test_ctrl_c_waits_for_the_write_in_flight(run, tmp_path, monkeypatch):
    sources = images(tmp_path / "src")  # d, b, c, a
    writing = threading.Event()
    real_finish, real_analyse = operations.encode_finish, Codec.analyse

    def finish(job):
        if Path(job.source).name == "b.png":
            writing.set()
            time.sleep(0.5)
        return real_finish(job)

    def analyse(self, rgb, *args, **kwargs):  # every encode, at any effort, starts here
        if rgb.shape[:2] == (33, 70):  # c.png: Ctrl-C while b is being written
            assert writing.wait(10)
            raise KeyboardInterrupt
        return real_analyse(self, rgb, *args, **kwargs)

    monkeypatch.setattr(operations, "encode_finish", finish)
    monkeypatch.setattr(Codec, "analyse", analyse)
    r = run("encode", *sources, "-o", tmp_path)
    assert r.exit_code == 130 and r.stderr.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.aec", "d.aec", "src"]  # no temp
    assert (tmp_path / "b.aec").read_bytes().startswith(b"\x89AEC")


def test_ctrl_c_in_a_write_starts_no_other(run, tmp_path, monkeypatch):
    sources = images(tmp_path / "src")
    slow_finish(monkeypatch, "encode_finish", "b.png", 0.2, KeyboardInterrupt())
    r = run("encode", *sources, "-o", tmp_path)
    assert r.exit_code == 130 and "interrupted" in r.stderr
    assert sorted(p.name for p in tmp_path.glob("*.aec")) == ["d.aec"]


def test_an_input_written_by_the_batch_waits_for_it(run, tmp_path, monkeypatch, valid_aec):
    """The second input is the first one's output: as one at a time, it exists when read."""
    (tmp_path / "a.aec").write_bytes(valid_aec)
    slow_finish(monkeypatch, "decode_finish", "a.aec", 0.3)
    r = run("decode", tmp_path / "a.aec", tmp_path / "a.aec.png")
    assert r.exit_code == 1
    (line,) = error_lines(r)  # not "no such file"
    assert line.startswith(f"error: {tmp_path / 'a.aec.png'}: not an .aec file"), line
    assert (tmp_path / "a.aec.png").is_file()


@pytest.fixture(scope="module")
def valid_aec(tiny_checkpoint) -> bytes:
    from aecompress.imagefile import encode_image
    from aecompress.imageio import SourceImage
    from aecompress.modes import ColourMode

    image = SourceImage(rgb=photo_like(40, 56, 1), mode=ColourMode.RGB)
    return encode_image(Codec(tiny_checkpoint, "cpu"), image, 50).data


# ----- the throughput line and the JSON summary -------------------------------------------------

LINE = re.compile(r"^(\d+) images?, (\d+\.\d) MP in (\d+\.\d) s: (\d+\.\d\d) images/s, "
                  r"(\d+\.\d\d) MP/s$")  # fmt: skip


def test_throughput_after_a_batch(run, tmp_path):
    sources = images(tmp_path / "src")
    sources[2].write_bytes(b"broken")  # failed inputs are not counted
    r = run("encode", *sources, "-o", tmp_path, "--json")
    assert r.exit_code == 1
    line = r.stderr.strip().splitlines()[-1]
    assert LINE.match(line) and line.startswith("3 images, 0.0 MP in "), line
    summary = json.loads(r.stdout)["summary"]
    assert summary["images"] == 3
    assert summary["megapixels"] == (48 * 40 + 40 * 56 + 64 * 24) / 1e6
    assert summary["seconds"] > 0
    assert summary["images_per_s"] == pytest.approx(3 / summary["seconds"])
    assert summary["megapixels_per_s"] == pytest.approx(summary["megapixels"] / summary["seconds"])

    aecs = [tmp_path / f"{p.stem}.aec" for p in sources if p != sources[2]]
    r = run("decode", *aecs, "-o", tmp_path / "out", "--mkdir")
    assert r.exit_code == 0, r.output
    assert LINE.match(r.stderr.strip().splitlines()[-1]).group(1) == "3"
    r = run("decode", *aecs, "-o", tmp_path / "out", "--force", "--quiet", "--json")
    assert r.exit_code == 0 and r.stderr == ""
    assert json.loads(r.stdout)["summary"]["images"] == 3


def test_no_throughput_line_for_one_input(run, tmp_path):
    src = images(tmp_path / "src")[0]
    r = run("encode", src, "-o", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    assert not any(LINE.match(line) for line in r.stderr.splitlines()), r.stderr
    assert json.loads(r.stdout)["summary"]["images"] == 1


# ----- torch threads ----------------------------------------------------------------------------


class FakeTorch:
    def __init__(self):
        self.threads = 4
        self.now = 0.0

    def set(self, n: int) -> None:
        self.threads = n


def test_torch_gets_one_thread_fewer_only_for_stages_the_worker_outlasts():
    fake = FakeTorch()
    t = TorchThreads(lambda: fake.threads, fake.set, clock=lambda: fake.now)

    def stage(name: str, seconds: float, worker_for: float | None = None) -> int:
        """Run `name` for `seconds`; the worker's job ends after `worker_for` seconds."""
        t.at_stage(name, 0, 1)
        used = fake.threads
        if worker_for is not None and worker_for < seconds:
            fake.now += worker_for
            t.finished()
            fake.now += seconds - worker_for
        else:
            fake.now += seconds
        t.at_stage(name, 1, 1)
        return used

    # No work for the worker: every thread.
    assert stage("analysis", 1.0) == 4
    # The worker busy through all of a stage: all threads the first time (nothing known yet),
    # then one fewer while it is busy.
    t.submitted()
    assert stage("analysis", 1.0) == 4
    assert stage("analysis", 1.0, worker_for=0.7) == 3
    assert fake.threads == 3  # until the next stage decides
    # On one thread fewer, busy for 0.5 of the stage (over SHARE): one fewer again.
    t.submitted()
    assert stage("analysis", 1.0, worker_for=0.5) == 3
    # Busy for 0.2 of a 1-second stage: under SHARE, so the next time keeps every thread.
    t.submitted()
    assert stage("synthesis", 1.0, worker_for=0.2) == 4
    t.submitted()
    assert stage("synthesis", 1.0, worker_for=0.2) == 4
    # With every thread, the worker ran on half a core: 0.6 of the stage counts as 0.3.
    t.submitted()
    assert stage("synthesis", 1.0, worker_for=0.6) == 4
    t.submitted()
    assert stage("synthesis", 1.0, worker_for=0.6) == 4
    # The analysis outlasted before, but now the worker has nothing to do: every thread.
    assert stage("analysis", 1.0) == 4
    t.submitted()
    assert stage("analysis", 1.0, worker_for=0.1) == 3
    t.end()
    assert fake.threads == 4


def test_torch_threads_are_restored_after_a_batch(run, tmp_path, monkeypatch, thread_counts):
    import torch

    monkeypatch.setattr(torch_threads, "SHARE", 0.0)
    slow_finish(monkeypatch, "encode_finish", {"d.png", "b.png", "c.png"}, 0.2)
    r = run("encode", *images(tmp_path / "src"), "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert thread_counts[0] == 1  # the last input ran on one thread fewer,
    assert torch.get_num_threads() == 2  # and the batch gave torch its threads back
