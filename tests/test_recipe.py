"""The training recipe: GDN whose cross-channel weights learn (and old files that still compute
the same numbers), per-level loss normalisation, spike clipping, weight averaging, stratified
trade-off positions, the wall-clock schedule, and one set of defaults for library and CLI."""

import time

import pytest
import torch
import typer
from conftest import photo_like

from aecompress.cli import app
from aecompress.config import RECIPE_2026_11, ModelConfig, TrainConfig
from aecompress.durations import Interval, parse_interval
from aecompress.layers import GDN
from aecompress.model import HyperpriorModel
from aecompress.recipe import (
    LevelNormaliser,
    SpikeClip,
    WeightAverage,
    learning_rate,
    stratified_positions,
)
from aecompress.registry import ModelLibrary
from aecompress.training.loop import Reporter, StepStats, rd_loss, train

pytestmark = pytest.mark.usefixtures("one_thread")


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    return m - torch.diag(torch.diag(m))


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_cross_channel_weights_train(inverse):
    torch.manual_seed(0)
    gdn = GDN(6, inverse=inverse)
    assert torch.count_nonzero(off_diagonal(gdn.gamma())) == 0  # starts as 0.1 * I
    x = torch.randn(4, 6, 8, 8)
    # A target that asks for more normalisation (forward: smaller, inverse: larger outputs),
    # so that every gamma entry is pushed up, off the lower bound.
    target = x * (2.0 if inverse else 0.5)
    opt = torch.optim.Adam(gdn.parameters(), lr=1e-3)
    ((gdn(x) - target) ** 2).mean().backward()
    assert torch.count_nonzero(off_diagonal(gdn.gamma_reparam.grad)) == 30
    opt.step()
    gamma = gdn.gamma().detach()
    assert torch.count_nonzero(off_diagonal(gamma)) == 30
    assert (gamma >= 0).all() and (gdn.beta() > 0).all()


def test_old_gdn_stays_per_channel():
    """The comparison recipe keeps the GDN of the first model: no cross-channel gradient."""
    torch.manual_seed(0)
    model = HyperpriorModel(ModelConfig(N=8, M=8, Nh=8))
    model.freeze_gdn_cross_channel()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        rd_loss(model, torch.rand(2, 3, 64, 64), torch.tensor([0.5, 6.0]))[0].backward()
        opt.step()
    for layer in model.modules():
        if isinstance(layer, GDN):
            assert torch.count_nonzero(off_diagonal(layer.gamma())) == 0


def test_old_gdn_files_compute_the_same_numbers():
    """Weights stored as gamma_sqrt / beta_sqrt (models before the reparametrisation) load and
    give, bit for bit, x / sqrt(beta_sqrt² + beta_min + conv(x², gamma_sqrt²))."""
    torch.manual_seed(1)
    c = 5
    gamma_sqrt = torch.randn(c, c) * 0.3  # negative entries too: the old formula squared them
    beta_sqrt = torch.randn(c)
    x = torch.randn(2, c, 7, 9)
    for inverse in (False, True):
        gdn = GDN(c, inverse=inverse)
        gdn.load_state_dict({"gamma_sqrt": gamma_sqrt.clone(), "beta_sqrt": beta_sqrt.clone()})
        beta = beta_sqrt**2 + gdn.beta_min
        norm = torch.sqrt(torch.nn.functional.conv2d(x * x, (gamma_sqrt**2).view(c, c, 1, 1), beta))
        expected = x * norm if inverse else x / norm
        assert torch.equal(gdn(x), expected)


def test_files_of_the_first_model_load_under_the_new_names(tmp_path):
    """The first shipped model (aec-hp-n64-cpu-2026.11, no longer shipped) stored its GDN as
    gamma_sqrt / beta_sqrt; a user who keeps that file must still decode its .aec files, with
    the same beta and gamma as the old formula (gamma = gamma_sqrt², beta = beta_sqrt² + min)."""
    from conftest import make_tiny_checkpoint

    from aecompress.checkpoint import _payload, load_checkpoint

    payload = _payload(make_tiny_checkpoint())
    legacy = {}
    for name, value in payload["weights"].items():
        name = name.replace("gamma_reparam", "gamma_sqrt").replace("beta_reparam", "beta_sqrt")
        legacy[name] = value
    payload["weights"] = legacy
    torch.save(payload, tmp_path / "legacy.pt")
    model = load_checkpoint(tmp_path / "legacy.pt").model
    names = {n for n, _ in model.named_parameters()}
    assert not any("gamma_sqrt" in n for n in names)
    layers = [m for m in model.modules() if isinstance(m, GDN)]
    assert len(layers) == 6 and all(m.pedestal == 0.0 for m in layers)
    first = layers[0]
    gamma_sqrt = legacy["g_a.1.gamma_sqrt"].float()
    beta_sqrt = legacy["g_a.1.beta_sqrt"].float()
    assert torch.equal(first.gamma(), gamma_sqrt**2)
    assert torch.equal(first.beta(), beta_sqrt**2 + first.beta_min)


def _grad_norm(model, x, position, normaliser=None) -> float:
    model.zero_grad()
    torch.manual_seed(5)  # the same noise for every call
    rd_loss(model, x, position, normaliser=normaliser)[0].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))


def test_level_normalisation_balances_the_gradient_of_each_level():
    """On a fixed batch, the raw loss of the top level has a much larger gradient than that of
    the bottom level; divided by each level's running mean loss, they are comparable.

    Measured on the N = 64 model the recipe was chosen with (on the 10-minute N = 128 GPU model
    the same batch gives 20.1× raw and 4.4× normalised)."""
    from aecompress.checkpoint import load_checkpoint

    path = ModelLibrary().encoder_model("aec-hp-n64-cpu-2026.11c")
    model = load_checkpoint(path).model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    crops = [torch.from_numpy(photo_like(128, 128, s)).permute(2, 0, 1) for s in range(4)]
    x = torch.stack(crops).float() / 255
    k = model.config.levels
    ends = {0.0: 0.0, float(k - 1): 0.0}
    for pos in ends:
        ends[pos] = _grad_norm(model, x, torch.full((4,), pos))
    # The first batch of a level sets its running mean: here, this batch's own distortion.
    normaliser = LevelNormaliser(k, "cpu")
    raw_ratio = ends[float(k - 1)] / ends[0.0]
    normalised = [_grad_norm(model, x, torch.full((4,), pos), normaliser) for pos in ends]
    ratio = max(normalised) / min(normalised)
    assert raw_ratio > 10, raw_ratio
    assert ratio < 4, (ratio, raw_ratio)


def test_level_normaliser_tracks_each_level():
    norm = LevelNormaliser(3, "cpu", decay=0.5)
    norm.update(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 100.0]))
    assert torch.allclose(norm.means, torch.tensor([1.0, 0.0, 100.0]))
    # Positions between levels use the geometric mean of their neighbours; unseen ones fall
    # back to the largest mean so the first steps are not blown up.
    assert torch.allclose(norm.scale(torch.tensor([0.0, 2.0])), torch.tensor([1.0, 100.0]))
    assert torch.allclose(norm.scale(torch.tensor([1.0])), torch.tensor([100.0]))
    norm.update(torch.tensor([0.0]), torch.tensor([3.0]))  # weight 1, decay 0.5: halfway
    assert torch.allclose(norm.means[0], torch.tensor(2.0))


def test_spike_clip_catches_spikes_only():
    p = torch.nn.Parameter(torch.zeros(4))
    clip = SpikeClip(factor=4.0, absolute=0.0, device="cpu")
    for scale in (1.0, 1.2, 0.9, 1.1):
        p.grad = torch.full((4,), scale / 2)  # norm = scale
        clip([p])
        assert torch.allclose(p.grad.norm(), torch.tensor(scale))  # untouched
    assert int(clip.take_clipped()) == 0
    mean = float(clip.mean)
    p.grad = torch.full((4,), 50.0)  # norm 100: a spike
    clip([p])
    assert torch.allclose(p.grad.norm(), torch.tensor(4 * mean), rtol=1e-5)
    assert int(clip.take_clipped()) == 1 and float(clip.mean) < 1.5


def test_weight_average_follows_the_model():
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
    avg = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    avg.update(model)  # first decay (1 + 0) / (10 + 0) = 0.1: mostly the new weights
    assert torch.allclose(avg.weights()["weight"], torch.full((1, 2), 0.9))
    restored = WeightAverage(model, decay=0.9)
    restored.load_state_dict(avg.state_dict())
    assert restored.updates == 1 and torch.equal(
        restored.weights()["weight"], avg.weights()["weight"]
    )


def test_stratified_positions_cover_every_slice():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        pos = stratified_positions(8, 8, gen, "cpu")
        slices = torch.floor(pos / 7 * 8).long()
        assert torch.equal(slices, torch.arange(8))


def test_learning_rate_schedule():
    assert learning_rate(0, 0.0, 1e-3, 1e-5, 10) == pytest.approx(1e-4)
    assert learning_rate(10, 0.0, 1e-3, 1e-5, 10) == pytest.approx(1e-3)
    assert learning_rate(500, 0.5, 1e-3, 1e-5, 10) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(900, 1.0, 1e-3, 1e-5, 10) == pytest.approx(1e-5)
    assert learning_rate(900, 1.7, 1e-3, 1e-5, 10) == pytest.approx(1e-5)


def test_a_timed_run_stops_on_time_and_ends_at_the_final_rate(tmp_path):
    images = [torch.from_numpy(photo_like(64, 80, s)).permute(2, 0, 1) for s in range(3)]
    cfg = TrainConfig(
        steps=10**9, batch_size=2, patch_size=64, warmup=2, train_seconds=2.0, log_every=1,
        checkpoint_every=10**6, lr=1e-3, lr_final=1e-5,
    )  # fmt: skip
    lines: list[StepStats] = []

    class Lines(Reporter):
        def stats(self, stats: StepStats) -> None:
            lines.append(stats)

    t0 = time.perf_counter()
    result = train(images, tmp_path, ModelConfig(N=8, M=8, Nh=8), cfg, reporter=Lines())
    wall = time.perf_counter() - t0
    assert 2.0 <= result.elapsed < 2.0 + 1.0 and wall < 2.0 + 5.0
    assert result.step == lines[-1].step > 10
    assert lines[-1].lr < 1e-5 + 0.05 * (1e-3 - 1e-5)  # the cosine reached its end
    assert (tmp_path / "state.pt").is_file() and result.averaged is not None


def test_library_and_cli_share_one_set_of_defaults():
    command = typer.main.get_command(app).commands["train"]
    defaults = {p.name: p.default for p in command.params}
    train_cfg, model_cfg = TrainConfig(), ModelConfig()
    names = {"n": "N", "m": "M", "nh": "Nh"}
    # Options that take steps or a time set a pair of fields.
    intervals = {
        "valid_every": ("valid_every", "valid_seconds"),
        "checkpoint_every": ("checkpoint_every", "checkpoint_seconds"),
    }
    checked = 0
    for option, default in defaults.items():
        if option in intervals:
            steps, seconds = (getattr(train_cfg, f) for f in intervals[option])
            assert parse_interval(default) == Interval(steps, seconds), option
            checked += 1
            continue
        field = names.get(option, option)
        for cfg in (train_cfg, model_cfg):
            if hasattr(cfg, field):
                assert default == getattr(cfg, field), option
                checked += 1
    assert checked >= 12


def test_old_states_keep_the_recipe_they_were_trained_with():
    old = {"steps": 9000, "batch_size": 8, "patch_size": 128, "lr": 3e-4, "grad_clip": 1.0}
    cfg = TrainConfig.from_dict(old)
    assert not cfg.level_norm and not cfg.gdn_cross_channel and cfg.ema_decay == 0
    assert cfg.gain_spread == RECIPE_2026_11.gain_spread == 1.2
    assert TrainConfig.from_dict(vars(TrainConfig())) == TrainConfig()


def test_the_normaliser_power_leans_the_weight_towards_the_top_levels():
    norm = LevelNormaliser(3, "cpu")
    norm.update(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 9.0, 100.0]))
    pos = torch.tensor([0.0, 1.0, 2.0, 1.5])
    full = norm.scale(pos)
    assert torch.equal(norm.scale(pos, 1.0), full)
    assert torch.allclose(norm.scale(pos, 0.5), full.sqrt())
    assert torch.allclose(norm.scale(pos, 0.0), torch.ones(4))  # the raw loss


def test_rd_loss_at_normaliser_power_0_is_the_raw_loss():
    torch.manual_seed(0)
    model = HyperpriorModel(ModelConfig(N=8, M=8, Nh=8, lambdas=(0.01, 0.1)))
    x = torch.rand(2, 3, 64, 64)
    pos = torch.tensor([0.0, 1.0])
    results = []
    for normaliser in (None, LevelNormaliser(2, "cpu")):
        torch.manual_seed(1)  # the same rate noise
        results.append(rd_loss(model, x, pos, normaliser=normaliser, norm_power=0.0)[0])
    assert torch.allclose(*results)


def test_position_power_crowds_the_slices_towards_the_top():
    gen = torch.Generator().manual_seed(0)
    plain = stratified_positions(8, 8, gen.manual_seed(3), "cpu")
    assert torch.equal(stratified_positions(8, 8, gen.manual_seed(3), "cpu", 1.0), plain)
    skewed = stratified_positions(8, 8, gen.manual_seed(3), "cpu", 0.5)
    assert torch.allclose(skewed, (plain / 7).sqrt() * 7)
    assert int((skewed > 3.5).sum()) == 6  # 3/4 of the crops in the upper half
