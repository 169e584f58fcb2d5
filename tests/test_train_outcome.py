"""What `aecompress train` says about the model it hands over: what it measured (a validation,
or, without --valid, a check on training images that the card and the report do not call a
validation), the verdict against the --init start (kept when not beaten on --valid), the loud
warnings, and the id a model gets when none is given."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from conftest import TINY_ARGS, make_images, train_cli

import aecompress.training.run as run_module
from aecompress.checkpoint import load_checkpoint
from aecompress.export import weights_digest
from aecompress.training.outcome import FAR_WORSE, MeasureSet, judge
from aecompress.validate import QualityFigures, ValidationResult, validate_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def figures(psnr: float, score: float, step: int = 5) -> ValidationResult:
    """A measurement whose quality 50 gives `psnr` and whose score is `score`."""
    qs = (1.0, 25.0, 50.0, 75.0, 100.0)
    return ValidationResult(
        step=step,
        images=2,
        figures=tuple(QualityFigures(q, 0.5, psnr, score) for q in qs),
        seconds=1.0,
    )


VALID = MeasureSet([object()] * 2, validation=True)
CHECK = MeasureSet([object()] * 4, validation=False)


def test_the_verdict_says_what_was_measured_and_when_it_is_far_from_usable():
    v = judge(figures(31.0, 5.0), VALID, steps=100)
    assert v.summary == (
        "validated on 2 validation images: 0.500 bpp 31.00 dB at quality 50, score 5.0000"
    )
    assert not v.keep_start and v.warnings == ()
    v = judge(figures(14.0, 900.0), CHECK, steps=10)  # the model of the report: 14 dB
    assert v.summary.startswith("not validated (no --valid); checked on 4 training images")
    assert v.warnings == (
        "THE EXPORTED MODEL IS FAR FROM USABLE: 14.00 dB at quality 50 on 4 training images "
        "(centre crops of at most 128 px) (a usable one gives 25 dB or more) after 10 training "
        "steps; train longer, or fine-tune a shipped model with --init",
    )


def test_the_verdict_against_the_start():
    start = figures(31.0, 5.0, step=0)
    better, worse, far = figures(31.5, 4.9), figures(30.9, 5.1), figures(29.0, 5.0 * FAR_WORSE)
    assert not judge(better, VALID, 9, start).keep_start
    assert "; beats the start: score 4.9000 against the start's 5.0000" in (
        judge(better, VALID, 9, start).summary
    )
    # On --valid, not better is enough to keep the start.
    v = judge(worse, VALID, 9, start)
    assert v.keep_start and "did not beat the start, which is kept" in v.summary
    # ... unless the lineage asks for its own weights: then a far worse one is said loudly.
    v = judge(far, VALID, 9, start, export_always=True)
    assert not v.keep_start
    assert v.warnings[0].startswith("THE EXPORTED MODEL IS FAR WORSE THAN ITS START")
    # Without --valid the check cannot rank close models: only far worse keeps the start.
    v = judge(worse, CHECK, 9, start)
    assert not v.keep_start and v.warnings[0].startswith("the exported model does not beat")
    assert v.warnings[0].endswith("; give --valid to compare them")
    assert judge(far, CHECK, 9, start).keep_start


def test_without_valid_nothing_is_called_validated(tmp_path):
    data = make_images(tmp_path / "data")
    out = tmp_path / "run"
    r = train_cli(data, "--out", out, "--steps", 2, *TINY_ARGS)
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(out / "model.pt")
    assert "validation" not in ckpt.provenance
    check = json.loads(ckpt.provenance["check"])
    assert check["images"] == 3 and check["step"] == 2
    card = (out / "MODEL_CARD.md").read_text()
    assert "validated better" not in card and "## Validation" not in card
    assert "| exported weights | the weight average (not compared with other candidates: " \
        "nothing was validated) |" in card  # fmt: skip
    assert "## Not validated\n\nNo validation images were given (`--valid`)" in card
    assert "check (real files)" in r.stdout and "validation (real files)" not in r.stdout
    assert "not validated (no --valid); checked on 3 training images" in r.stdout
    # A tiny model trained 2 steps is far from usable: the last word, and the card's first.
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("warning: THE EXPORTED MODEL IS FAR FROM USABLE: ")
    assert "after 2 training steps" in last
    assert card.splitlines()[2].startswith("> **Warning:** THE EXPORTED MODEL IS FAR FROM USABLE")


def test_the_card_names_only_the_candidates_that_were_compared(tmp_path):
    data = make_images(tmp_path / "data")
    valid = make_images(tmp_path / "valid", count=1, seed=5)
    out = tmp_path / "run"
    r = train_cli(data, "--out", out, "--steps", 2, *TINY_ARGS, "--valid", valid)
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(out / "model.pt")
    assert json.loads(ckpt.provenance["selection"]) == ["average", "last"]
    kind = ckpt.provenance["selected_weights"]
    other = {"average": "the last step's weights", "last": "the weight average"}[kind]
    assert f"(it validated better than {other}) |" in (out / "MODEL_CARD.md").read_text()


def _start_loses(monkeypatch, loser_step: int | None):
    """Make the measurement of step `loser_step` (0: the start) score far worse."""
    real = validate_checkpoint  # the module's own, however often this is called

    def rigged(ckpt, images, qualities, device="cpu", step=0):
        result = real(ckpt, images, qualities, device, step)
        if (step == 0) == (loser_step == 0):
            worse = tuple(replace(f, rd=f.rd * 2 + 1) for f in result.figures)
            result = replace(result, figures=worse)
        return result

    monkeypatch.setattr(run_module, "validate_checkpoint", rigged)


def test_init_keeps_the_start_when_training_does_not_beat_it_on_valid(
    tmp_path, tiny_model_path, monkeypatch
):
    _start_loses(monkeypatch, loser_step=2)  # the trained weights lose
    data = make_images(tmp_path / "data")
    valid = make_images(tmp_path / "valid", count=1, seed=5)
    out = tmp_path / "run"
    args = ["--steps", 2, "--batch-size", 2, "--patch-size", 64, "--valid", valid]
    r = train_cli(data, "--out", out, *args, "--init", tiny_model_path)
    assert r.exit_code == 0, r.output
    assert (out / "model.pt").read_bytes() == tiny_model_path.read_bytes()
    start = load_checkpoint(tiny_model_path)
    ident = f"{start.model_id} ({start.fingerprint.hex()})"
    assert r.stdout.splitlines()[0] == (
        f"kept the start as {out / 'model.pt'} ({start.model_id}, {start.fingerprint.hex()}), "
        "unchanged: 2 steps "
        f"({r.stdout.split(' steps (')[1].split(')')[0]}) did not beat it"
    )
    assert "did not beat the start, which is kept" in r.stdout
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("warning: the trained weights (step 2) did not beat the start on 1 ")
    assert f"{out / 'model.pt'} is the start, {ident}, unchanged" in last
    assert f"aecompress train --export-from {out / 'state.pt'} --force" in last
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# {start.model_id}\n")
    assert "## Kept by a training run" in card and "trained 2 steps" in card
    # The escape hatch it names exports the trained weights.
    again = train_cli("--export-from", out / "state.pt", "--force")
    assert again.exit_code == 0, again.output
    assert load_checkpoint(out / "model.pt").fingerprint != start.fingerprint


def test_init_exports_what_beats_the_start_and_export_always_what_does_not(
    tmp_path, tiny_model_path, monkeypatch
):
    data = make_images(tmp_path / "data")
    valid = make_images(tmp_path / "valid", count=1, seed=5)
    args = ["--steps", 2, "--batch-size", 2, "--patch-size", 64, "--valid", valid,
            "--init", tiny_model_path]  # fmt: skip
    _start_loses(monkeypatch, loser_step=0)
    r = train_cli(data, "--out", tmp_path / "better", *args)
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "better" / "model.pt")
    assert str(tiny_model_path) in ckpt.provenance["init"]
    comparison = json.loads(ckpt.provenance["start_comparison"])
    assert comparison["start_figures"]["score"] > comparison["trained_figures"]["score"]
    assert "beats the start" in r.stdout and "start PSNR" in r.stdout
    assert (
        "the trained weights beat the start" in (tmp_path / "better" / "MODEL_CARD.md").read_text()
    )

    _start_loses(monkeypatch, loser_step=2)
    r = train_cli(data, "--out", tmp_path / "always", *args, "--export-always")
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "always" / "model.pt")
    assert str(tiny_model_path) in ckpt.provenance["init"]  # the trained weights
    assert "THE EXPORTED MODEL IS FAR WORSE THAN ITS START on 1 validation image:" in r.stderr
    card = (tmp_path / "always" / "MODEL_CARD.md").read_text()
    assert "> **Warning:** THE EXPORTED MODEL IS FAR WORSE THAN ITS START" in card
    assert "exported anyway (`--export-always`)" in card


def test_a_model_gets_an_id_of_its_own(tmp_path):
    data = make_images(tmp_path / "data")
    ids = []
    for seed in (1, 2):
        out = tmp_path / f"run{seed}"
        r = train_cli(data, "--out", out, "--steps", 1, *TINY_ARGS, "--seed", seed)
        assert r.exit_code == 0, r.output
        ckpt = load_checkpoint(out / "model.pt")
        assert re.fullmatch(r"aec-hp-custom-\d{8}-[0-9a-f]{8}", ckpt.model_id), ckpt.model_id
        assert len(ckpt.model_id) <= 32  # what an .aec header holds
        assert ckpt.model_id.endswith("-" + weights_digest(ckpt.model))
        ids.append(ckpt.model_id)
    assert ids[0] != ids[1]


def test_lineage_sessions_export_their_own_weights(tmp_path, tiny_model_path):
    """A lineage session exports its weights even when they do not beat its start on valid/
    (benchmarks/ship_model.py judges the lineage), or the lineage would never move."""
    from aecompress import lineage

    data = make_images(tmp_path / "data", count=1)
    config = lineage.create_or_check(tmp_path / "lin", [data], [data], str(tiny_model_path))
    args = lineage.plan_session(tmp_path / "lin", config, "1h").args
    assert "--init" in args and "--valid" in args and "--export-always" in args


@pytest.mark.parametrize("model_id", ["a" * 33, "my model", "modèle"])
def test_a_model_id_no_aec_file_can_hold_is_a_usage_error(tmp_path, model_id):
    data = make_images(tmp_path / "data", count=1)
    r = train_cli(data, "--out", tmp_path / "run", "--steps", 1, "--model-id", model_id)
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        f"error: --model-id {model_id!r}: give 1 to 32 printable ASCII characters, no spaces "
        "(every .aec file names its model by it)"
    )
    assert not (tmp_path / "run").exists()


def test_the_check_cuts_the_centre_of_the_first_training_images():
    import torch

    from aecompress.training.outcome import CHECK_IMAGES, CHECK_SIDE, check_images

    images = [torch.arange(3 * 300 * 200, dtype=torch.int32).reshape(3, 300, 200).to(torch.uint8)]
    images += [torch.zeros(3, 64, 90, dtype=torch.uint8)] * 5
    found = check_images(images)
    assert len(found) == CHECK_IMAGES
    assert found[0].rgb.shape == (CHECK_SIDE, CHECK_SIDE, 3) and found[1].rgb.shape == (64, 90, 3)
    top, left = (300 - CHECK_SIDE) // 2, (200 - CHECK_SIDE) // 2
    assert (
        found[0].rgb == images[0][:, top : top + 128, left : left + 128].permute(1, 2, 0).numpy()
    ).all()


def test_a_card_claims_only_what_its_provenance_shows(tiny_checkpoint):
    from aecompress.modelcard import render_model_card

    def card(**provenance) -> str:
        ckpt = replace(tiny_checkpoint, provenance=provenance)
        return render_model_card(ckpt)

    val = figures(31.0, 5.0).to_json()
    assert "| exported weights | the weight average (not compared with other candidates: " \
        "nothing was validated) |" in card(selected_weights="average")  # fmt: skip
    # A model from before the candidates were recorded: chosen by validation, no more.
    assert "| the weight average (chosen by validation) |" in card(
        selected_weights="average", validation=val
    )
    assert "| the last step's weights (the only candidate validated) |" in card(
        selected_weights="last", validation=val, selection='["last"]'
    )
    assert "| the weight average (it validated better than the last step's weights and the " \
        "weights of the best periodic validation) |" in card(
        selected_weights="average", validation=val,
        selection='["average", "last", "best validation"]',
    )  # fmt: skip
