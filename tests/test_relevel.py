"""Starting a model with another quality range or a wider latent from trained weights
(`train --init` with --lambda-min/--lambda-max/--levels or a larger --M)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY, make_images, photo_like

from aecompress.config import TrainConfig, log_spaced_lambdas
from aecompress.model import HyperpriorModel
from aecompress.training.options import TrainOptions, TrainUsageError, plan_run
from aecompress.training.relevel import relevel_rows, widen_latent


def test_log_spaced_lambdas_give_the_default_range():
    from aecompress.config import ModelConfig

    assert ModelConfig().lambdas == log_spaced_lambdas(0.0016, 0.3, 8)
    with pytest.raises(ValueError):
        log_spaced_lambdas(0.3, 0.1, 4)


def test_relevel_keeps_interpolates_and_extrapolates_in_log_lambda():
    old = (0.01, 0.04, 0.16)
    table = torch.tensor([[0.0, 1.0], [1.0, 3.0], [2.0, 4.0]])
    assert torch.equal(relevel_rows(table, old, old), table)
    mid, below, above = relevel_rows(table, old, (0.02, 0.005, 0.64))
    assert torch.allclose(mid, torch.tensor([0.5, 2.0]))
    assert torch.allclose(below, torch.tensor([-0.5, 0.0]))  # the first segment's slope
    assert torch.allclose(above, torch.tensor([3.0, 5.0]))  # the last one's, a step on
    with pytest.raises(ValueError):
        relevel_rows(table, old[:2], old)


def _model(config, seed=0) -> HyperpriorModel:
    torch.manual_seed(seed)
    return HyperpriorModel(config).eval()


def test_a_widened_latent_reconstructs_as_the_narrow_one_did():
    narrow = _model(TINY)
    wide_config = replace(TINY, M=TINY.M + 8)
    fresh = _model(wide_config, seed=1).state_dict()
    wide = _model(wide_config)
    wide.load_state_dict(widen_latent(narrow.state_dict(), fresh, TINY.M))
    x = torch.from_numpy(photo_like(64, 64)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        for q in (1.0, 50.0, 100.0):
            y_n, y_w = narrow.analysis(x, q), wide.analysis(x, q)
            assert torch.equal(y_w[:, : TINY.M], y_n)
            assert torch.equal(narrow.h_a(y_n), wide.h_a(y_w))  # z does not see the new ones
            y_hat_w = torch.round(y_w)
            assert torch.allclose(
                narrow.synthesis(y_hat_w[:, : TINY.M], q), wide.synthesis(y_hat_w, q), atol=1e-6
            )
    gains = wide.log_gain.detach()
    assert torch.allclose(gains[:, TINY.M :], narrow.log_gain.detach().mean(1, keepdim=True))
    with pytest.raises(ValueError, match="cannot widen"):
        widen_latent(wide.state_dict(), narrow.state_dict(), wide_config.M)


def _init_options(tmp_path: Path, model_path: Path, **model_changes) -> TrainOptions:
    data = make_images(tmp_path / "data", count=1)
    return TrainOptions(
        data=[data], out_dir=tmp_path / "run", config=TrainConfig(),
        model_config=replace(TINY, **model_changes), init=model_path,
    )  # fmt: skip


def test_init_with_a_new_quality_range_redraws_the_gains(tmp_path, tiny_model_path):
    lambdas = log_spaced_lambdas(0.001, 0.8, 5)
    notes = []
    plan = plan_run(
        _init_options(tmp_path, tiny_model_path, lambdas=lambdas), {"lambdas"}, notes.append
    )
    assert plan.model_config.lambdas == lambdas
    assert plan.model_config.M == TINY.M
    assert plan.init_weights["log_gain"].shape == (5, TINY.M)
    assert any("gain vectors are re-drawn" in n for n in notes)
    # The levels the two ranges share keep their trained gains.
    old = _model(TINY).state_dict()  # the tiny checkpoint's weights, up to fp16
    ckpt_gains = plan_run(
        _init_options(tmp_path, tiny_model_path), set(), lambda _: None
    ).init_weights["log_gain"]
    assert ckpt_gains.shape == old["log_gain"].shape
    at = relevel_rows(plan.init_weights["log_gain"], lambdas, TINY.lambdas)
    assert torch.allclose(at, ckpt_gains.float(), atol=1e-5)


def test_init_with_a_larger_latent_widens_and_a_smaller_one_is_refused(tmp_path, tiny_model_path):
    notes = []
    plan = plan_run(_init_options(tmp_path, tiny_model_path, M=TINY.M + 8), {"M"}, notes.append)
    assert plan.model_config.M == TINY.M + 8
    assert plan.init_weights["g_s.0.weight"].shape[0] == TINY.M + 8
    assert not plan.init_weights["g_s.0.weight"][TINY.M :].any()
    assert any("widened from M = 16 to 24" in n for n in notes)
    with pytest.raises(TrainUsageError, match="--M 8 conflicts"):
        plan_run(_init_options(tmp_path, tiny_model_path, M=8), {"M"}, lambda _: None)
    with pytest.raises(TrainUsageError, match="--N 32 conflicts"):
        plan_run(_init_options(tmp_path, tiny_model_path, N=32), {"N"}, lambda _: None)


def test_train_refuses_an_empty_quality_range_as_a_usage_error(tmp_path):
    from conftest import train_cli

    data = make_images(tmp_path / "data", count=1)
    result = train_cli(data, "--out", tmp_path / "run", "--lambda-min", "0.5", "--lambda-max",
                       "0.1", "--steps", "1")  # fmt: skip
    assert result.exit_code == 2
    assert "--lambda-min 0.5 must be above 0 and below --lambda-max 0.1" in result.output
    assert not (tmp_path / "run").exists()
