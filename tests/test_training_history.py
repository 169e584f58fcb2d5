"""A model's training is every run that made it: `aecompress models` shows the whole chain, from
the checkpoint's own history or, for files written before it carried one, from the index."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aecompress.cli import app
from aecompress.modelfile import read_identity
from aecompress.registry import MODEL_ENV, MODELS_DIR_ENV, read_index
from aecompress.training_history import (
    HISTORY_KEY,
    TrainingRun,
    dump_runs,
    history,
    parse_runs,
    totals,
)

FIRST = TrainingRun("m-1", 21024, 473.0, "cuda (NVIDIA H200)")
SECOND = TrainingRun("m-2", 8745, 149.0, "cuda (NVIDIA H200)")


def test_runs_survive_their_json_form():
    assert parse_runs(dump_runs([FIRST, SECOND])) == (FIRST, SECOND)
    with pytest.raises(ValueError, match="malformed training history"):
        parse_runs('[{"model_id": "x"}]')


def test_the_history_is_the_earlier_runs_then_the_last():
    provenance = {
        "steps": "100",
        "wall_seconds": "60",
        "device": "cpu (2 threads)",
        HISTORY_KEY: dump_runs([FIRST, SECOND]),
    }
    runs = history("m-3", provenance)
    assert runs == (FIRST, SECOND, TrainingRun("m-3", 100, 60.0, "cpu (2 threads)"))
    t = totals(runs)
    assert (t.runs, t.steps, t.seconds, t.devices) == (3, 29869, 682.0, ("cuda", "cpu"))


def test_a_file_without_a_history_takes_the_index_record_or_its_own_run():
    provenance = {"steps": "8745", "wall_seconds": "149", "device": "cuda (NVIDIA H200)"}
    assert history("m-2", provenance, recorded=(FIRST, SECOND)) == (FIRST, SECOND)
    assert history("m-2", provenance) == (SECOND,)
    assert history("m-0", {}) == ()  # nothing recorded: no invented run
    # A damaged field counts as absent rather than failing `aecompress models`.
    assert history("m-2", {**provenance, HISTORY_KEY: "not json"}) == (SECOND,)


def test_every_shipped_model_records_its_whole_history_ending_in_its_own_run():
    for m in read_index().models:
        assert m.history, f"{m.model_id}: the index records no training history"
        last = m.history[-1]
        provenance = read_identity(m.path).provenance
        assert last.model_id == m.model_id
        assert last.steps == int(provenance["steps"])
        assert last.seconds == pytest.approx(float(provenance["wall_seconds"]), abs=1)
        assert last.device == provenance["device"]


def test_models_shows_the_total_over_all_runs(monkeypatch):
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    monkeypatch.delenv(MODEL_ENV, raising=False)
    runner = CliRunner()
    r = runner.invoke(app, ["models", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["model_id"]: row for row in json.loads(r.stdout)}
    for m in read_index().models:
        row = rows[m.model_id]
        assert [run["steps"] for run in row["runs"]] == [run.steps for run in m.history]
        assert row["total_steps"] == sum(run.steps for run in m.history)
        assert row["total_seconds"] == pytest.approx(sum(run.seconds for run in m.history))
    default = read_index().default_model()
    r = runner.invoke(app, ["models"])
    assert r.exit_code == 0, r.output
    whole = totals(default.history)
    assert f"{whole.runs} runs, {whole.steps:,} steps" in r.stdout
    assert f"{whole.seconds / 60:.0f} min" in r.stdout


def _model_file(path, seed, model_id, provenance):
    from dataclasses import replace

    from conftest import make_tiny_checkpoint

    from aecompress.checkpoint import save_checkpoint

    ckpt = make_tiny_checkpoint(seed=seed, model_id=model_id)
    save_checkpoint(replace(ckpt, provenance=provenance), path)
    return read_identity(path).fingerprint.hex()


def test_a_chain_of_files_is_followed_through_each_init(tmp_path):
    from aecompress.training_history import file_history

    run = {"wall_seconds": "60", "device": "cpu (1 threads)"}
    fp_a = _model_file(tmp_path / "a.pt", 1, "tiny-a", {**run, "steps": "10"})
    init_a = f"{tmp_path / 'a.pt'} (model tiny-a, {fp_a})"
    fp_b = _model_file(tmp_path / "b.pt", 2, "tiny-b", {**run, "steps": "20", "init": init_a})
    init_b = f"{tmp_path / 'b.pt'} (model tiny-b, {fp_b})"
    _model_file(tmp_path / "c.pt", 3, "tiny-c", {**run, "steps": "30", "init": init_b})
    runs = file_history(tmp_path / "c.pt")
    assert [(r.model_id, r.steps) for r in runs] == [("tiny-a", 10), ("tiny-b", 20), ("tiny-c", 30)]
    # The index's record stands for a start that is gone, or whose file now holds other weights.
    (tmp_path / "b.pt").unlink()
    recorded = {("tiny-b", fp_b): (FIRST, SECOND)}
    runs = file_history(tmp_path / "c.pt", lambda i, f: recorded.get((i, f), ()))
    assert [r.model_id for r in runs] == ["m-1", "m-2", "tiny-c"]
    assert [r.model_id for r in file_history(tmp_path / "c.pt")] == ["tiny-c"]
    # A file that carries its history is not walked past.
    _model_file(tmp_path / "d.pt", 4, "tiny-d",
                {**run, "steps": "5", "init": init_b, HISTORY_KEY: dump_runs([FIRST])})  # fmt: skip
    assert [r.model_id for r in file_history(tmp_path / "d.pt")] == ["m-1", "tiny-d"]


def test_a_run_from_a_model_carries_the_runs_that_made_it(tmp_path):
    """`train --init` writes the start's whole history into the new model's provenance, so the
    chain survives its files: the second run's model lists both runs after the first is gone."""
    from conftest import TINY_ARGS, make_images, train_cli

    from aecompress.training_history import file_history

    data = make_images(tmp_path / "data", count=2)
    first, second = tmp_path / "first", tmp_path / "second"
    r = train_cli(data, "--out", first, "--steps", 2, *TINY_ARGS, "--model-id", "tiny-first")
    assert r.exit_code == 0, r.output
    assert HISTORY_KEY not in read_identity(first / "model.pt").provenance  # from scratch
    args = ["--steps", 3, "--batch-size", 2, "--patch-size", 64, "--export-always"]
    r = train_cli(data, "--out", second, *args, "--init", first / "model.pt",
                  "--model-id", "tiny-second")  # fmt: skip
    assert r.exit_code == 0, r.output
    provenance = read_identity(second / "model.pt").provenance
    assert [r.model_id for r in parse_runs(provenance[HISTORY_KEY])] == ["tiny-first"]
    (first / "model.pt").unlink()
    runs = file_history(second / "model.pt")
    assert [(r.model_id, r.steps) for r in runs] == [("tiny-first", 2), ("tiny-second", 3)]
