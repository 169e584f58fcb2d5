"""MODEL_CARD.md for an exported checkpoint, rendered from what the checkpoint itself carries.

Everything on the card comes from the checkpoint: its id, fingerprint and config, and the
provenance strings `aecompress train` writes (the exact command, data, steps, wall time, device,
torch version, training settings and the validation figures measured through the real codec).
A checkpoint without some of these (an older or hand-made one) gets a card without those lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .fileio import write_atomic

if TYPE_CHECKING:
    from .checkpoint import Checkpoint


def _json(provenance: dict[str, str], key: str):
    try:
        return json.loads(provenance[key])
    except (KeyError, ValueError, TypeError):
        return None


def _duration(seconds: str | None) -> str | None:
    try:
        s = round(float(seconds))
    except (TypeError, ValueError):
        return None
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _sources(entries) -> str | None:
    if not isinstance(entries, list):
        return None
    parts = []
    for e in entries:
        n = e.get("images")
        files = e.get("files")
        extra = f", {files} files" if files is not None and files != n else ""
        parts.append(f"`{e.get('path')}` ({n} images{extra})")
    return "; ".join(parts)


_WEIGHTS = {
    "last": "the last step's weights",
    "average": "the weight average",
    "best validation": "the weights of the best periodic validation",
    "start": "the starting weights (the trained ones did not beat them)",
}


def _selected(p: dict[str, str]) -> str:
    """Which weights were exported, and only what was compared to choose them."""
    kind = p["selected_weights"]
    text = _WEIGHTS.get(kind, kind)
    if kind == "start":
        return text
    compared = _json(p, "selection")
    if "validation" not in p:
        return text + " (not compared with other candidates: nothing was validated)"
    if not isinstance(compared, list):  # a model from before the field: chosen by validation
        return text + " (chosen by validation)"
    others = [_WEIGHTS.get(k, k) for k in compared if k != kind]
    if not others:
        return text + " (the only candidate validated)"
    return text + f" (it validated better than {' and '.join(others)})"


def _batch(tc: dict, processes: int) -> str:
    flips = "all eight flips and rotations" if tc.get("dihedral") else "random flips"
    batch = tc.get("batch_size")
    text = f"{batch} random crops of {tc.get('patch_size')}² px, {flips}"
    if processes > 1 and isinstance(batch, int):
        text += f"; {batch // processes} per process"
    return text


def _processes(p: dict[str, str]) -> int:
    """How many processes trained the model's last session (1 for models before the field)."""
    try:
        return int(p.get("processes", "1"))
    except ValueError:
        return 1


def _schedule(tc: dict, p: dict) -> str:
    over = ""
    if p.get("time_budget"):
        over = f" over the wall clock of a {_duration(p['time_budget'])} budget (export included)"
    elif tc.get("train_seconds"):
        over = f" over {_duration(tc['train_seconds'])} of training"
    anneal = float(tc.get("anneal", 1.0))
    shape = "cosine" if anneal >= 1 else f"held, then a cosine over the last {anneal:.0%}"
    text = (
        f"Adam, {tc.get('lr'):g} to {tc.get('lr_final'):g}, {shape}{over}, "
        f"{tc.get('warmup')} warm-up steps"
    )
    if tc.get("gain_lr_scale", 1) != 1:
        text += f"; gain vectors at {tc['gain_lr_scale']:g}× that rate"
    clips = []
    if tc.get("clip_factor"):
        clips.append(f"at {tc['clip_factor']:g}× its running mean")
    if tc.get("grad_clip"):
        clips.append(f"at {tc['grad_clip']:g}")
    if clips:
        text += "; gradient norm clipped " + " and ".join(clips)
    if tc.get("ema_decay"):
        text += f"; weight average with decay {tc['ema_decay']:g}"
    return text


def _objective(tc: dict) -> str:
    positions = (
        "t stratified over [0, K−1] (one crop per 1/B of the range)"
        if tc.get("stratified")
        else "t ~ U[0, K−1] per crop"
    )
    text = f"λ(t)·255²·MSE + bpp with {positions}"
    if tc.get("level_norm"):
        text += ", each crop divided by its level's running mean of λ·255²·MSE"
    return text + (
        "; additive uniform noise for the rates, straight-through rounding for the decoder"
    )


def describe_data(provenance: dict[str, str]) -> str | None:
    """What the model was trained on: the folders and image counts `aecompress train` records,
    or the free text of an older checkpoint."""
    return _sources(_json(provenance, "data")) or provenance.get("data") or None


def _session_device(session: dict) -> str:
    device = str(session.get("device"))
    processes = session.get("processes", 1)
    return f"{processes} processes, {device} each" if processes != 1 else device


def _warnings(p: dict[str, str]) -> list[str]:
    """What the run that made (or kept) the model warned about, at the top of the card."""
    if not p.get("warning"):
        return []
    lines = [f"> **Warning:** {_cell(w)}" for w in p["warning"].split("\n") if w.strip()]
    return [*"\n>\n".join(lines).split("\n"), ""]


def _figures_table(figures: list[dict]) -> list[str]:
    lines = ["| quality | bpp | PSNR (dB) |", "| ---: | ---: | ---: |"]
    return lines + [f"| {f['quality']:g} | {f['bpp']:.4f} | {f['psnr']:.2f} |" for f in figures]


def _check(p: dict[str, str]) -> list[str]:
    """A run without --valid: nothing was validated; what its check on training images gave."""
    check = _json(p, "check")
    if not isinstance(check, dict) or not check.get("figures"):
        return []
    return [
        "## Not validated",
        "",
        "No validation images were given (`--valid`), so this model was not validated. As a "
        "check that it works at all, it was encoded and decoded through the real codec on "
        f"{p.get('check_data') or 'training images'}: images it was trained on, so these "
        "figures do not say how it does on others.",
        "",
        *_figures_table(check["figures"]),
        "",
    ]


def _comparison(c: dict, kept: bool) -> list[str]:
    """The start and the trained weights, measured on the same images."""
    start, trained = c.get("start_figures") or {}, c.get("trained_figures") or {}
    if not start.get("figures") or not trained.get("figures"):
        return []
    lines = [
        "| quality | start bpp | start PSNR (dB) | trained bpp | trained PSNR (dB) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for s, t in zip(start["figures"], trained["figures"], strict=False):
        lines.append(
            f"| {s['quality']:g} | {s['bpp']:.4f} | {s['psnr']:.2f} | {t['bpp']:.4f} | "
            f"{t['psnr']:.2f} |"
        )
    verdict = (
        "the trained weights did not beat the start, so the start was kept"
        if kept
        else "the trained weights beat the start"
        if trained.get("score", 0) < start.get("score", 0)
        else "the trained weights did not beat the start, and were exported anyway "
        "(`--export-always`)"
    )
    return [
        f"Start: {_cell(c.get('start'))}. Both measured through the real codec on "
        f"{c.get('images')}. Scores (mean of λ(q)·MSE + bpp, lower is better): start "
        f"{start.get('score', float('nan')):.4f}, trained {trained.get('score', float('nan')):.4f}"
        f": {verdict}.",
        "",
        *lines,
        "",
    ]


def _against_start(p: dict[str, str]) -> list[str]:
    c = _json(p, "start_comparison")
    if isinstance(c, dict):
        body = _comparison(c, kept=False)
        return ["## Against the start", "", *body] if body else []
    k = _json(p, "kept_by_run")
    if not isinstance(k, dict):
        return []
    body = _comparison(k.get("comparison") or {}, kept=True)
    command = f" (`{_cell(k['command'])}`)" if k.get("command") else ""
    return [
        "## Kept by a training run",
        "",
        f"A training run{command} started from this model and trained {k.get('steps')} steps; "
        "its weights did not beat this model, so the run's model.pt is this model, unchanged "
        "(same id and fingerprint).",
        "",
        *body,
    ]


def render_model_card(ckpt: Checkpoint) -> str:
    p = ckpt.provenance
    c = ckpt.config
    lines = [
        f"# {ckpt.model_id}",
        "",
        *_warnings(p),
        "A learned image compression model for `aecompress`: the mean-scale hyperprior of Minnen, "
        "Ballé & Toderici (2018) with one model for the whole quality range (per-channel gain "
        "vectors), fp16 weights and integer coding tables.",
        "",
        f"- fingerprint: `{ckpt.fingerprint.hex()}` (every .aec file it writes names it)",
        "- use: `aecompress encode photo.png --model model.pt -q 50`",
        "",
        "## Architecture",
        "",
        "| N | M | Nh | trade-off levels (λ) | Gaussian scales |",
        "| ---: | ---: | ---: | --- | --- |",
        f"| {c.N} | {c.M} | {c.Nh} | {', '.join(f'{v:g}' for v in c.lambdas)} | "
        f"{c.num_scales}, {c.scale_min:g} to {c.scale_max:g} |",
        "",
    ]

    rows: list[tuple[str, str]] = []
    tc = _json(p, "train_config") or {}
    steps = p.get("steps")
    if steps:
        sel = p.get("selected_step")
        rows.append(
            ("steps", steps + (f" (weights from step {sel})" if sel and sel != steps else ""))
        )
    if tc:
        rows.append(("batch", _batch(tc, _processes(p))))
        rows.append(("learning rate", _schedule(tc, p)))
        rows.append(("seed", str(tc.get("seed"))))
    rows.append(("objective", _objective(tc)))
    if p.get("selected_weights"):
        rows.append(("exported weights", _selected(p)))
    data = describe_data(p)
    if data:
        rows.append(("data", data))
    if p.get("init"):
        rows.append(("initialised from", p["init"]))
    sessions = _json(p, "sessions")
    if isinstance(sessions, list) and len(sessions) > 1:
        rows.append(("sessions", f"{len(sessions)} (the run was stopped and resumed; below)"))
    wall = _duration(p.get("wall_seconds"))
    if wall:
        rows.append(("wall time", wall + " of training (all sessions of the run)"))
    for key, label in (
        ("exported_from", "exported from a training state"),
        ("speed", "speed"),
        ("device", "device"),
        ("precision", "precision"),
        ("torch", "torch"),
        ("aecompress", "aecompress"),
        ("created", "exported"),
    ):
        if p.get(key):
            rows.append((label, p[key]))
    if _processes(p) > 1:
        rows.append(("processes", f"{_processes(p)} (torchrun), on one device each"))
    if rows or p.get("command"):
        lines += ["## Training", ""]
        if p.get("command"):
            lines += ["```sh", p["command"], "```", ""]
        lines += ["| | |", "| --- | --- |"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]
        lines.append("")
        if isinstance(sessions, list) and len(sessions) > 1:
            lines += ["| from step | device | command |", "| ---: | --- | --- |"]
            lines += [
                f"| {s.get('from_step')} | {_cell(_session_device(s))} | "
                f"`{_cell(s.get('command'))}` |"
                for s in sessions
            ]
            lines.append("")

    val = _json(p, "validation")
    if isinstance(val, dict) and val.get("figures"):
        source = _sources(_json(p, "valid_data")) or f"{val.get('images')} validation images"
        lines += [
            "## Validation",
            "",
            f"Measured at step {val.get('step')} through the real codec on {source}: "
            "bpp is the .aec file's length (header included) × 8 / pixels, PSNR is on the "
            "decoded RGB uint8 pixels, both averaged per image.",
            "",
            "| quality | bpp | PSNR (dB) |",
            "| ---: | ---: | ---: |",
        ]
        for f in val["figures"]:
            lines.append(f"| {f['quality']:g} | {f['bpp']:.4f} | {f['psnr']:.2f} |")
        score = val.get("score")
        if score is not None:
            lines += [
                "",
                f"Selection score (mean of λ(q)·MSE + bpp over these qualities, lower is "
                f"better): {score:.4f}.",
            ]
        lines.append("")
    lines += _check(p)
    lines += _against_start(p)
    other = {
        k: v
        for k, v in p.items()
        if k
        not in {
            "command", "steps", "selected_step", "train_config", "data", "images", "init",
            "sessions", "wall_seconds", "device", "precision", "torch", "aecompress",
            "created", "validation", "valid_data", "speed", "time_budget", "selected_weights",
            "exported_from", "processes", "selection", "check", "check_data", "outcome",
            "start_comparison", "warning", "kept_by_run",
        }
    }  # fmt: skip
    if other:
        lines += ["## Other provenance", "", "| | |", "| --- | --- |"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(other.items())]
        lines.append("")
    return "\n".join(lines)


def write_model_card(ckpt: Checkpoint, path: Path) -> None:
    """Write the card atomically (temporary file, then rename)."""
    text = render_model_card(ckpt).encode("utf-8")
    write_atomic(Path(path), lambda f: f.write(text), force=True)
