"""Training data: crops cut on the device are crops of the images, with every flip drawn."""

import numpy as np
import torch

from aecompress.training.data import ImageSet


def test_crops_are_crops_of_the_images_with_flips():
    # Images of different sizes whose pixels encode (image, channel, row, column).
    sizes = [(3, 5), (4, 4), (6, 3)]
    images = []
    for k, (h, w) in enumerate(sizes):
        c, r, q = np.meshgrid(np.arange(3), np.arange(h), np.arange(w), indexing="ij")
        images.append(torch.from_numpy((k * 64 + c * 20 + r * 4 + q).astype(np.uint8)))
    data = ImageSet(images)
    gen = torch.Generator().manual_seed(1)
    batch = data.crops(64, 3, gen)
    assert batch.shape == (64, 3, 3, 3) and batch.dtype == torch.uint8
    seen = set()
    for crop in batch:
        k = int(crop[0, 0, 0]) // 64
        im = images[k]
        h, w = sizes[k]
        found = [
            (top, left, fv, fh)
            for top in range(h - 2)
            for left in range(w - 2)
            for fv in (False, True)
            for fh in (False, True)
            if torch.equal(
                crop,
                im[:, top : top + 3, left : left + 3]
                .flip([2] * fh + [1] * fv if fh or fv else [])
                .contiguous(),
            )
        ]
        assert found, crop
        seen.add((k, *found[0][2:]))
    assert {k for k, *_ in seen} == {0, 1, 2}  # every image, both flips, drawn
    assert {(fv, fh) for _, fv, fh in seen} == {(a, b) for a in (0, 1) for b in (0, 1)}
