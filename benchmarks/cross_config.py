"""Decode the same .aec files under different configurations and compare.

Encodes every image on the CPU (2 threads, contiguous tensors) and on CUDA when present, then
decodes each file with 1 thread / contiguous and with 2 threads / channels_last (and on CUDA
when present). Reports whether the entropy-decoded symbols are identical (they must be) and
the largest pixel difference, which can only come from float rounding in g_s.

    python3 benchmarks/cross_config.py ../shared/data/kodak --quality 50
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from aecompress import container
from aecompress.checkpoint import load_checkpoint
from aecompress.codec import Codec
from aecompress.imagefile import decode_image, encode_image
from aecompress.imageio import load_image
from aecompress.registry import default_model_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--quality", type=float, default=50.0)
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    ckpt = load_checkpoint(args.model or default_model_path())
    configs = [
        ("1 thread, contiguous", 1, False, "cpu"),
        ("2 threads, channels_last", 2, True, "cpu"),
    ]
    if torch.cuda.is_available():
        configs.append(("cuda", 2, False, "cuda"))
    encoders = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    worst, identical, n, same_bytes = 0, True, 0, 0
    for path in sorted(args.folder.glob("*.png")):
        torch.set_num_threads(2)
        image = load_image(path)
        # Files written on every encoding device, each decoded under every configuration.
        files = [encode_image(Codec(ckpt, dev), image, args.quality).data for dev in encoders]
        same_bytes += all(f == files[0] for f in files)
        for data in files:
            outs = []
            for _, threads, cl, dev in configs:
                torch.set_num_threads(threads)
                codec = Codec(ckpt, dev, channels_last=cl)
                z_hat, sym, _ = codec.decode_symbols(*container.unpack(data))
                outs.append((z_hat, sym, decode_image(codec, data).rgb.astype(np.int16)))
            for z_hat, sym, rgb in outs[1:]:
                identical &= torch.equal(z_hat, outs[0][0]) and torch.equal(sym, outs[0][1])
                worst = max(worst, int(np.abs(rgb - outs[0][2]).max()))
        n += 1
    names = " vs ".join(c[0] for c in configs)
    print(f"{n} images encoded on {' and '.join(encoders)}, each file decoded as {names}: "
          f"symbols identical: {identical}; largest pixel difference: {worst}")  # fmt: skip
    if len(encoders) > 1:
        print(
            f"files identical whatever the encoding device: {same_bytes} of {n} (a float "
            "difference in g_a may round a latent the other way; either file decodes alike "
            "everywhere)"
        )


if __name__ == "__main__":
    main()
