"""The training loop: the rate–distortion loss, the optimizer and its schedule, periodic
validation, saving the state, and progress reported through `Reporter`.

Each example gets its own trade-off position t ~ U[0, K-1]; its loss is
    lambda(t) * 255² * MSE(x, x_hat) + bits(y) / pixels + bits(z) / pixels
with lambda(t) interpolated geometrically between the configured levels, so the continuous
quality knob is trained directly, not only at the K levels. Rates use additive uniform noise;
the decoder sees straight-through rounded latents (`HyperpriorModel.forward`).

On CUDA: TF32 convolutions, channels_last for the model and the batches, fused Adam, and no
host synchronisation between log steps. Matmuls stay IEEE float32: the only ones are the
factorized density's, which evaluate the rate of z. `bf16=True` runs g_a and g_s (nearly all of
the arithmetic) under bfloat16 autocast, except the two layers at the latent, which produce y and
consume y_hat; h_a, the hyperprior synthesis, the noise, the densities and every log2 of a rate
stay float32 (`HyperpriorModel.forward`'s `inner_dtype`).
"""

from __future__ import annotations

import math
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..config import TrainConfig
from ..errors import AecError
from ..model import HyperpriorModel, ModelConfig, interpolate_levels
from ..recipe import LevelNormaliser, SpikeClip, WeightAverage, learning_rate
from ..validate import ValidationResult, frozen_copy
from .budget import StepTimes
from .data import CropNoise, DataSource, ImageSet, training_batch
from .distributed import Control, Coordinator, lost_contact
from .progress import Reporter, Silent, StepStats, estimate_seconds_left
from .state import BEST_FILE, STATE_FILE, TrainingState, read_state, save_best, save_state

LOG_FILE = "train.log"


def step_progress(step: int, cfg: TrainConfig) -> float:
    """The fraction of a run planned in steps that is done after `step` (0 during warm-up)."""
    return (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)


def lr_at(step: int, cfg: TrainConfig, progress: float) -> float:
    """The learning rate of `step` at `progress` (0..1) through the run."""
    return learning_rate(step, progress, cfg.lr, cfg.lr_final, cfg.warmup, cfg.anneal)


def rd_loss(
    model: HyperpriorModel,
    x: torch.Tensor,
    position: torch.Tensor,
    mixed: torch.dtype | None = None,
    log_lambdas: torch.Tensor | None = None,
    normaliser: LevelNormaliser | None = None,
    noise: Callable[[torch.Tensor], torch.Tensor] | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    norm_power: float = 1.0,
):
    """Mean RD loss of the batch; also returns mean bpp and mean PSNR for logging.

    normaliser: divides each crop's loss by its level's running mean of the distortion term
    (updated with this batch first) to `norm_power`: at 1 every level moves the shared weights
    alike, below 1 the top levels pull harder; the returned bpp and PSNR are raw.

    mixed: autocast dtype for the inner layers of g_a / g_s, None for plain float32.
    log_lambdas: K×1 log of the levels' lambdas, already on the device (model.lambdas builds
    it from a Python list every call, a host-to-device copy that waits for the GPU).
    noise: the rate terms' noise (`HyperpriorModel.forward`); reduce: sums the normaliser's
    batch statistics over the processes of a run (`Coordinator.sum_`).
    """
    out = model(x, position, inner_dtype=mixed, noise=noise)
    pixels = x.shape[2] * x.shape[3]
    mse = ((out.x_hat - x) ** 2).mean((1, 2, 3))
    bpp = (out.bits_y + out.bits_z) / pixels
    if log_lambdas is None:
        lam = model.lambdas(position)
    else:
        lam = torch.exp(interpolate_levels(log_lambdas, position)).squeeze(1)
    distortion = lam * 255**2 * mse  # B
    per_crop = distortion + bpp
    if normaliser is not None:
        normaliser.update(position, distortion, reduce)
        per_crop = per_crop / normaliser.scale(position, norm_power)
    psnr = (10 * torch.log10(1 / mse.detach().clamp(min=1e-10))).mean()
    return per_crop.mean(), bpp.mean().detach(), psnr


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def append_log(out_dir: Path, text: str) -> None:
    with open(Path(out_dir) / LOG_FILE, "a", encoding="utf-8") as f:
        f.write(f"{timestamp()} {text}\n")


def _match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded moment buffers their parameter's memory layout (state.pt holds contiguous
    tensors; CUDA parameters are channels_last, and fused Adam walks the raw memory)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p, {})
            for k, v in st.items():
                if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p).copy_(v)


def _restore(
    state: TrainingState,
    model: HyperpriorModel,
    optimizer: torch.optim.Optimizer,
    recipe_parts: Sequence[tuple[Any, dict | None]],
    cuda: bool,
) -> None:
    """Load a saved run into the freshly built model, optimizer and recipe parts (each with
    its saved state_dict, None when the run did not keep it), and restore the RNGs."""
    model.load_state_dict(state.model)
    if state.optimizer is not None:
        try:
            optimizer.load_state_dict(state.optimizer)
        except ValueError as e:  # parameter groups of another version
            raise AecError(
                f"the optimizer state of the resumed run does not fit this version ({e}); "
                "start a new run from its weights with --init"
            ) from e
        _match_layouts(optimizer)
    for part, saved in recipe_parts:
        if part is not None and saved is not None:
            part.load_state_dict(saved)
    if isinstance(state.python_rng, tuple):
        random.setstate(state.python_rng)
    if state.torch_rng is not None:
        torch.set_rng_state(state.torch_rng)
    if cuda and state.cuda_rng:
        for index, rng in enumerate(state.cuda_rng[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(rng, index)


class _StopRequest:
    """SIGINT / SIGTERM ask the loop to stop after the current step and save the state; a
    second Ctrl-C stops at once, without saving."""

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class TrainResult:
    model: HyperpriorModel  # on the training device, eval mode
    step: int
    elapsed: float  # wall seconds of training, all sessions of the run
    best: dict | None  # {"step", "score", "images"} of the best validation (out_dir/best.pt)
    history: list[dict]  # every periodic validation, as ValidationResult.to_dict()
    averaged: HyperpriorModel | None = None  # the weight average (CPU), when kept
    session_steps: int = 0  # steps of this call (a resumed run counts from where it resumed)
    session_seconds: float = 0.0  # ... and its training seconds

    @property
    def steps_per_s(self) -> float:
        return self.session_steps / self.session_seconds if self.session_seconds > 0 else 0.0


def train(
    images: Sequence[torch.Tensor] | ImageSet,
    out_dir: Path,
    model_config: ModelConfig,
    cfg: TrainConfig,
    resume: Path | TrainingState | None = None,
    *,
    device: torch.device | str = "cpu",
    bf16: bool = False,
    init_weights: Mapping[str, torch.Tensor] | None = None,
    validator: Callable[[HyperpriorModel, int], ValidationResult] | None = None,
    reporter: Reporter | None = None,
    data_sources: Sequence[DataSource] = (),
    run_info: Mapping[str, Any] | None = None,
    deadline: float | None = None,
    coordinator: Coordinator | None = None,
    validation_seconds: float = 0.0,
) -> TrainResult:
    """Train from scratch, from `init_weights`, or on from `resume` (whose model config wins).

    The run ends at cfg.steps (0: no step limit), after cfg.train_seconds of training time, or
    at `deadline` (a time.monotonic() value), whichever comes first. With a deadline the
    schedule runs over wall-clock time: its progress goes from where a resumed run left it to
    1 at the deadline, so the anneal ends when the run does; no step starts that would end past
    it (`StepTimes`), nor a periodic validation (`validation_seconds`: the expected seconds of
    one, until one is timed).

    Writes out_dir/state.pt every `checkpoint_every` steps and `checkpoint_seconds` seconds, at
    the end and when stopped by SIGINT / SIGTERM (then raises KeyboardInterrupt);
    out_dir/train.log gets a line per log step and per validation; out_dir/best.pt the weights
    of the best validation score. run_info (JSON-like) is stored in state.pt as it is, for the
    provenance of later sessions. Progress goes to `reporter` (none: nothing is shown).

    coordinator: the processes of a run started by torchrun (training/distributed.py). Each
    trains on its rows of the global batch of cfg.batch_size crops, with the gradients
    averaged; process 0's clock decides the schedule and the end, and it alone logs,
    validates (the others wait) and writes the files; `validator`, `deadline` and `reporter`
    matter there only. None: this process alone.
    """
    coord = coordinator if coordinator is not None else Coordinator()
    main = coord.is_main
    device = torch.device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = images if isinstance(images, ImageSet) else ImageSet(images, device)
    if data.device.type != device.type:
        raise ValueError(f"images are on {data.device}, training on {device}")
    if cfg.patch_size > data.min_side:
        raise AecError(f"a training image is smaller than the {cfg.patch_size}px patch size")
    budgeted = deadline is not None
    timed = cfg.train_seconds > 0
    if cfg.steps <= 0 and not (budgeted or timed) and main:  # the others follow process 0
        raise ValueError("a run without a step limit needs train_seconds or a deadline")
    if cfg.batch_size % coord.world:
        raise AecError(
            f"the batch of {cfg.batch_size} crops does not split over {coord.world} processes"
        )
    state = read_state(resume) if isinstance(resume, str | Path) else resume
    if state is not None:
        model_config = state.model_config
    cuda = device.type == "cuda"
    memory_format = torch.channels_last if cuda else torch.contiguous_format

    random.seed(cfg.seed)
    model = build_model(model_config, cfg, init_weights)
    model.to(device, memory_format=memory_format)
    optimizer = _optimizer(model, cfg, cuda)
    normaliser = LevelNormaliser(model_config.levels, device) if cfg.level_norm else None
    clip = SpikeClip(cfg.clip_factor, cfg.grad_clip, device)
    # The average is of weights every process shares: process 0 keeps it, for its exports.
    average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 and main else None
    step, elapsed, best, history = 0, 0.0, None, []
    if state is not None:
        recipe_parts = ((normaliser, state.level_norm), (clip, state.clip), (average, state.ema))
        _restore(state, model, optimizer, recipe_parts, cuda)
        step, elapsed, best, history = state.step, state.elapsed, state.best, list(state.history)
    net = coord.wrap(model)  # what the step calls: the model, or DDP averaging the gradients
    noise = CropNoise(device)
    reduce = coord.sum_ if coord.world > 1 else None

    reporter = reporter if reporter is not None else Silent()
    mixed = torch.bfloat16 if bf16 else None
    log_lambdas = torch.log(torch.tensor(model_config.lambdas)).unsqueeze(1).to(device)
    gen = torch.Generator(device=device)
    sums = torch.zeros(3, device=device)  # loss, bpp, PSNR summed since the last log line
    count = 0
    # What state.pt records about the data and the sessions: this call's, else the resumed run's.
    recorded_data = [asdict(s) for s in data_sources] if data_sources else []
    if state is not None and not data_sources:
        recorded_data = state.data
    info = dict(run_info or (state.run_info if state is not None else {}))
    flags = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    t_start = time.perf_counter()
    t_window, s_window = t_start, step
    saved_at = step if state is not None else -1
    last_save = time.monotonic()
    first_step = step
    paused = 0.0  # seconds of this session spent validating, not training
    t_begin = time.monotonic()
    p_begin = 0.0  # schedule progress at the start of this session (for a deadline)
    if state is not None and budgeted:
        p_begin = state.progress
        if p_begin is None:  # a state from before progress was saved: its own step plan
            planned = state.train_config
            p_begin = step_progress(step, planned) if planned.steps > 0 else 0.0
        p_begin = min(1.0, max(0.0, p_begin))
    pixels_per_step = cfg.batch_size * cfg.patch_size**2
    step_times = StepTimes()  # of this session's steps: none starts that would end too late
    next_valid = math.inf  # training seconds at which the next timed validation is due
    if cfg.valid_seconds > 0:
        next_valid = (math.floor(elapsed / cfg.valid_seconds) + 1) * cfg.valid_seconds

    def training_seconds() -> float:
        """Training time of the run so far, all sessions, validations excluded."""
        return elapsed + time.perf_counter() - t_start - paused

    def progress_now() -> float:
        """How far through the schedule the run is (0..1)."""
        if budgeted:  # 1 where the last step that fits starts
            span = deadline - step_times.estimate() - t_begin
            done = (time.monotonic() - t_begin) / span if span > 0 else 1.0
            return p_begin + (1 - p_begin) * min(1.0, done)
        if timed:
            return training_seconds() / cfg.train_seconds
        return step_progress(step, cfg)

    def seconds_left(steps_per_s: float) -> float | None:
        return estimate_seconds_left(
            step, cfg.steps, steps_per_s,
            deadline_left=deadline - time.monotonic() if budgeted else None,
            train_left=cfg.train_seconds - training_seconds() if timed else None,
        )  # fmt: skip

    def finished() -> bool:
        if cfg.steps > 0 and step >= cfg.steps:
            return True
        if timed and training_seconds() >= cfg.train_seconds:
            return True
        return budgeted and time.monotonic() + step_times.estimate() >= deadline

    def validation_fits() -> bool:
        """Whether a periodic validation would end before the deadline (always without one)."""
        return not budgeted or time.monotonic() + validation_seconds <= deadline

    def control(stop: _StopRequest) -> Control:
        """Where the run stands, as process 0 sees it (alone: as this process sees it)."""
        return coord.agree(
            Control(
                progress=progress_now(),
                finished=finished(),
                stop=stop.requested,
                validate=next_valid <= training_seconds(),
                checkpoint=0 < cfg.checkpoint_seconds <= time.monotonic() - last_save,
            )
        )

    def log_line(text: str) -> None:
        if logfile is not None:
            logfile.write(f"{timestamp()} {text}\n")

    def log_window(lr: float) -> None:
        """One log line with the means since the previous one (the one sync per window)."""
        nonlocal count, t_window, s_window
        coord.sum_(sums)  # the means of the whole batch, on every process
        check_finite()
        loss_m, bpp_m, psnr_m = (sums / (count * coord.world)).tolist()
        now = time.perf_counter()
        rate = (step - s_window) / (now - t_window)
        stats = StepStats(
            step, loss_m, bpp_m, psnr_m, rate, lr, cfg.steps, int(clip.take_clipped()),
            rate * pixels_per_step / 1e6, seconds_left(rate),
        )  # fmt: skip
        log_line(stats.line())
        reporter.stats(stats)
        sums.zero_()
        count, t_window, s_window = 0, now, step

    def check_finite() -> None:
        if count and not bool(torch.isfinite(sums).all()):
            raise AecError(
                f"the loss is not finite at step {step}; {out_dir / STATE_FILE} holds the last "
                "saved state: resume from it with a lower --lr"
            )

    def save() -> None:
        nonlocal saved_at, last_save
        if not main:  # process 0 writes the state every process shares
            saved_at, last_save = step, time.monotonic()
            return
        check_finite()  # never save a diverged model over a good one
        cuda_rngs = torch.cuda.is_available() and torch.cuda.is_initialized()
        state_now = TrainingState(
            model_config=model.config, train_config=cfg, model=model.state_dict(),
            optimizer=optimizer.state_dict(), step=step, python_rng=random.getstate(),
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if cuda_rngs else None,
            elapsed=training_seconds(), best=best, history=history, data=recorded_data,
            run_info=info, level_norm=normaliser.state_dict() if normaliser is not None else None,
            clip=clip.state_dict(), ema=average.state_dict() if average is not None else None,
            progress=progress_now(),
        )  # fmt: skip
        save_state(out_dir / STATE_FILE, state_now)
        saved_at, last_save = step, time.monotonic()

    logfile = open(out_dir / LOG_FILE, "a", encoding="utf-8", buffering=1) if main else None
    try:
        if cuda:
            torch.backends.cudnn.allow_tf32 = True  # the transforms' convolutions
            torch.backends.cuda.matmul.allow_tf32 = False  # only the density of z: keep IEEE
            torch.backends.cudnn.benchmark = True  # one crop size: tune the kernels once
        with _StopRequest() as stop:
            if budgeted:
                reporter.start(step, 0, max(0.0, deadline - time.monotonic()))
            else:
                reporter.start(step, cfg.steps, cfg.train_seconds - elapsed if timed else 0.0)
            model.train()
            ctl = control(stop)
            while not ctl.finished:
                if ctl.stop:
                    if saved_at != step:
                        save()
                    path = out_dir / STATE_FILE
                    log_line(f"stopped at step {step}; {path} saved")
                    reporter.message(
                        f"stopped at step {step}: {path} saved; continue with --resume {path}"
                    )
                    coord.wait()  # the others leave once the state is written
                    raise KeyboardInterrupt
                t_step = time.monotonic()
                lr = lr_at(step, cfg, ctl.progress)
                for group in optimizer.param_groups:
                    group["lr"] = lr * group["lr_scale"]
                x, position = training_batch(
                    data, cfg, model_config.levels, step, gen, coord.part, noise
                )
                x = x.contiguous(memory_format=memory_format)
                loss, bpp, psnr = rd_loss(
                    net, x, position, mixed, log_lambdas, normaliser, noise, reduce,
                    cfg.level_norm_power,
                )  # fmt: skip
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip(model.parameters())
                optimizer.step()
                if average is not None:
                    average.update(model)
                step += 1
                sums += torch.stack((loss.detach(), bpp, psnr))
                count += 1
                reporter.advance(step)
                step_times.add(time.monotonic() - t_step)
                ctl = control(stop)
                end = ctl.finished
                if step % cfg.log_every == 0 or end:
                    log_window(lr)
                due = not end and (  # the final model is validated at export
                    (cfg.valid_every > 0 and step % cfg.valid_every == 0) or ctl.validate
                )
                if validator is not None and due and not validation_fits():
                    log_line(f"skipped the validation of step {step}: it would end past the "
                             "time budget's deadline")  # fmt: skip
                elif validator is not None and due:
                    devices = [device] if cuda else []
                    trained = training_seconds()
                    t_valid = time.monotonic()
                    with torch.random.fork_rng(devices=devices, device_type=device.type):
                        candidate = _averaged(model, average)
                        result = replace(validator(candidate, step), train_seconds=trained)
                    validation_seconds = time.monotonic() - t_valid  # the next one's estimate
                    model.train()
                    t_window += result.seconds  # steps/s counts training time only
                    paused += result.seconds
                    while next_valid <= trained:
                        next_valid += cfg.valid_seconds
                    history.append(result.to_dict())
                    better = (
                        best is None
                        or best.get("images") != result.images  # another validation set
                        or result.score < best["score"]
                    )
                    if better:
                        best = {"step": step, "score": result.score, "images": result.images}
                        save_best(out_dir / BEST_FILE, candidate, cfg, step, result)
                    line = f"validation {result.summary()}" + (" (best)" if better else "")
                    log_line(f"{line} [{result.seconds:.1f} s]")
                    reporter.message(line)
                if due:
                    coord.wait()  # the others wait for process 0's validation
                if (
                    end
                    or (cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0)
                    or ctl.checkpoint
                ):
                    save()
                if not end and (due or ctl.checkpoint):  # time went by: look again
                    ctl = control(stop)
            if count:  # stopped by the time budget inside a log window
                log_window(lr)
            if saved_at != step:
                save()
    except RuntimeError as e:
        if coord.world > 1 and lost_contact(e):
            raise coord.lost(e) from e
        raise
    finally:
        reporter.stop()
        if logfile is not None:
            logfile.close()
        if cuda:
            (
                torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark,
            ) = flags
    session_seconds = training_seconds() - elapsed
    elapsed = training_seconds()
    averaged = _averaged(model, average).eval() if average is not None else None
    return TrainResult(
        model.eval(), step, elapsed, best, history, averaged, step - first_step, session_seconds
    )


def build_model(
    model_config: ModelConfig,
    cfg: TrainConfig,
    init_weights: Mapping[str, torch.Tensor] | None = None,
) -> HyperpriorModel:
    """The model a run starts from (CPU, float32): initial weights drawn from cfg.seed, with the
    recipe's gain spread and GDN form, or `init_weights`. Reseeds torch's generator."""
    torch.manual_seed(cfg.seed)
    model = HyperpriorModel(model_config)
    model.spread_gains(cfg.gain_spread)
    if not cfg.gdn_cross_channel:
        model.freeze_gdn_cross_channel()
    if init_weights is not None:
        model.load_state_dict(init_weights)
    return model


def _optimizer(model: HyperpriorModel, cfg: TrainConfig, cuda: bool) -> torch.optim.Adam:
    """Adam with the gain vectors in their own group (lr × gain_lr_scale): they set the rate
    range of the quality knob and otherwise barely move from their initial guess."""
    gains = {id(p) for p in model.gain_parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in gains], "lr_scale": 1.0},
        {"params": model.gain_parameters(), "lr_scale": cfg.gain_lr_scale},
    ]
    return torch.optim.Adam(groups, lr=cfg.lr, **({"fused": True} if cuda else {}))


def _averaged(model: HyperpriorModel, average: WeightAverage | None) -> HyperpriorModel:
    """The model to validate: a copy holding the weight average when there is one."""
    if average is None:
        return model
    copy = frozen_copy(model)
    copy.load_state_dict({k: v.to("cpu", torch.float32) for k, v in average.weights().items()})
    return copy
