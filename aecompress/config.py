"""The configurations of a model and of its training, with the one set of defaults that the
library and the `train` command share. No torch here: the CLI reads these defaults to build its
options without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Initial log gain of the top quality level (the bottom level starts at its negative).
GAIN_SPREAD = 1.5

# Qualities at which training validates through the real codec: both ends and the middle.
VALID_QUALITIES = (1.0, 25.0, 50.0, 75.0, 100.0)


def log_spaced_lambdas(lo: float, hi: float, k: int) -> tuple[float, ...]:
    """k rate–distortion trade-offs from lo to hi, log-spaced so that the quality knob moves
    through bpp in roughly even ratios."""
    if k < 2 or not 0 < lo < hi:
        raise ValueError(
            f"need 2 or more levels and 0 < lambda-min < lambda-max, got {k}, {lo}, {hi}"
        )
    return tuple(round(lo * (hi / lo) ** (i / (k - 1)), 6) for i in range(k))


def _default_lambdas() -> tuple[float, ...]:
    # Rate–distortion trade-offs (loss = lambda * 255² * MSE + bpp), ~0.1 to ~2 bpp on photos.
    return log_spaced_lambdas(0.0016, 0.3, 8)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network; stored in every checkpoint."""

    N: int = 128  # channels inside g_a / g_s
    M: int = 192  # channels of the latent y
    Nh: int = 128  # channels inside the hyperprior and of z
    lambdas: tuple[float, ...] = field(default_factory=_default_lambdas)
    scale_min: float = 0.11  # smallest std of the Gaussian table for y
    scale_max: float = 256.0  # largest std of the Gaussian table for y
    num_scales: int = 64  # entries of the Gaussian table (log-spaced)

    @property
    def levels(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["lambdas"] = tuple(float(v) for v in d["lambdas"])
        return cls(**d)


@dataclass
class TrainConfig:
    """How a model is trained; the defaults here are the `train` command's defaults too."""

    steps: int = 20000  # optimizer steps (with a time limit: an upper bound; 0: no limit)
    batch_size: int = 8
    # Crop side. 128 beat whole 256-px photos at equal pixels per step and equal CPU time
    # (benchmarks/convergence.md); 256 with 8 per step is for a GPU to measure.
    patch_size: int = 128
    lr: float = 3e-4
    lr_final: float = 1e-5  # the learning rate at the end of the run
    # Fraction of the run, at its end, over which the learning rate falls from lr to lr_final
    # along a cosine; before it the rate holds at lr (1.0: a cosine over the whole run). The
    # last quarter beat a whole-run cosine by 1.2 dB at 0.5 bpp at equal time
    # (benchmarks/schedule.md).
    anneal: float = 0.25
    warmup: int = 200
    grad_clip: float = 0.0  # absolute limit on the gradient norm (0: none)
    clip_factor: float = 4.0  # clip at this multiple of the running mean norm (0: none)
    seed: int = 0
    # state.pt is written every `checkpoint_every` steps and every `checkpoint_seconds` of wall
    # time (0: not by that measure), at the end, and when the run is stopped.
    checkpoint_every: int = 0
    checkpoint_seconds: float = 120.0
    log_every: int = 50
    # Validation (with validation images) every `valid_every` steps or every `valid_seconds`
    # of training time (0 and 0: only the exported model). Time suits CPU and GPU alike: 1000
    # steps are 3 minutes on a 2-core CPU and seconds on a GPU.
    valid_every: int = 0
    valid_seconds: float = 300.0
    train_seconds: float = 0.0  # > 0: stop after this much training time; schedule over time
    level_norm: bool = True  # divide each crop's loss by its level's running mean λ·255²·MSE
    # ... raised to this power: 1 equalises the levels' pull on the shared transforms, 0 is the
    # raw loss (the top levels' distortion dominates), in between leans towards the top.
    level_norm_power: float = 1.0
    stratified: bool = True  # one trade-off position in each 1/B of the range per batch
    # Positions are (K-1)·u^power for u uniform (or stratified) in [0, 1): 1 spreads the crops
    # evenly over the levels, below 1 puts more of them at the high-quality end.
    position_power: float = 1.0
    dihedral: bool = True  # all eight flips / rotations of the crops, not only two flips
    gain_lr_scale: float = 10.0  # learning rate of the gain vectors relative to lr
    gain_spread: float = GAIN_SPREAD
    ema_decay: float = 0.999  # weight average kept and exported if it validates better (0: off)
    gdn_cross_channel: bool = True  # False: the first model's per-channel GDN
    valid_qualities: tuple[float, ...] = VALID_QUALITIES

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Tolerates states written by older versions (missing or extra fields): a recipe
        field an old state lacks takes the value of the recipe it was written with."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        for name in RECIPE_FIELDS:
            values.setdefault(name, getattr(RECIPE_2026_11, name))
        values.setdefault("anneal", 1.0)  # states from before it: a cosine over the whole run
        if "valid_qualities" in values:
            values["valid_qualities"] = tuple(float(q) for q in values["valid_qualities"])
        return cls(**values)


# The recipe of the first shipped model (aec-hp-n64-cpu-2026.11), kept for comparisons.
RECIPE_FIELDS = (
    "patch_size", "grad_clip", "clip_factor", "level_norm", "stratified", "dihedral",
    "gain_lr_scale", "gain_spread", "ema_decay", "gdn_cross_channel", "level_norm_power",
    "position_power",
)  # fmt: skip
RECIPE_2026_11 = TrainConfig(
    steps=9000, patch_size=128, grad_clip=1.0, clip_factor=0.0, level_norm=False,
    stratified=False, dihedral=False, gain_lr_scale=1.0, gain_spread=1.2, ema_decay=0.0,
    gdn_cross_channel=False,
    valid_qualities=(10.0, 50.0, 90.0),
)  # fmt: skip


# TrainConfig fields that define a run: resuming with other values would not continue it.
RUN_FIELDS = ("batch_size", "warmup", "seed", *RECIPE_FIELDS)
# ... and those a resumed run may change (the schedule then differs from then on).
RESUME_FREE_FIELDS = (
    "steps", "lr", "lr_final", "anneal", "checkpoint_every", "checkpoint_seconds",
    "log_every", "valid_every", "valid_seconds", "train_seconds", "valid_qualities",
)  # fmt: skip
MODEL_FIELDS = ("N", "M", "Nh")
