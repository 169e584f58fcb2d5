"""The integer scale network is exact: it equals an int64 reference whatever the threads."""

import numpy as np
import pytest
import torch

from aecompress.intnet import SHIFT, Z_CLIP, IntegerLayer, IntegerScaleNetwork


def reference(net: IntegerScaleNetwork, z: np.ndarray) -> np.ndarray:
    """Plain int64 numpy evaluation of the same network (direct loops over kernel taps)."""
    a = np.clip(z.astype(np.int64), -Z_CLIP, Z_CLIP)[0]  # C×H×W
    for layer in net.layers:
        w = layer.weight.numpy().astype(np.int64)
        k, s = w.shape[-1], layer.stride
        pad = k // 2
        cin, h, wd = a.shape
        if layer.transposed:  # Cin×Cout×k×k; output is s× larger
            cout = w.shape[1]
            full = np.zeros((cout, (h - 1) * s + k, (wd - 1) * s + k), dtype=np.int64)
            for i in range(k):
                for j in range(k):
                    contrib = np.einsum("chw,cd->dhw", a, w[:, :, i, j])
                    full[:, i : i + (h - 1) * s + 1 : s, j : j + (wd - 1) * s + 1 : s] += contrib
            acc = full[:, pad : pad + h * s, pad : pad + wd * s]
        else:  # Cout×Cin×k×k, stride 1 here
            cout = w.shape[0]
            padded = np.pad(a, ((0, 0), (pad, pad), (pad, pad)))
            acc = np.zeros((cout, h, wd), dtype=np.int64)
            for i in range(k):
                for j in range(k):
                    acc += np.einsum("chw,dc->dhw", padded[:, i : i + h, j : j + wd], w[:, :, i, j])
        acc = acc + layer.bias.numpy().astype(np.int64)[:, None, None] + 2 ** (SHIFT - 1)
        a = np.clip(acc >> SHIFT, 0, layer.clip_max)  # >> is floor division for int64
    return a[None]


def test_matches_int64_reference(tiny_checkpoint):
    net = tiny_checkpoint.scale_network
    rng = np.random.default_rng(0)
    z = rng.integers(-40, 41, size=(1, 16, 3, 5))
    z[0, 0, 0, 0] = 10**6  # clipped to Z_CLIP by both
    out = net(torch.from_numpy(z)).numpy()
    assert out.dtype == np.int64
    assert out.shape == (1, 16, 12, 20)
    assert np.array_equal(out, reference(net, z))


def test_identical_across_threads_and_layouts(tiny_checkpoint):
    net = tiny_checkpoint.scale_network
    z = torch.from_numpy(np.random.default_rng(1).integers(-30, 31, size=(1, 16, 9, 7)))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = net(z)
        torch.set_num_threads(2)
        two = net(z)
        cl = net(z.to(memory_format=torch.channels_last))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two) and torch.equal(one, cl)


def test_uses_the_whole_index_range(tiny_checkpoint):
    # Large |z| and zero z should map to different scales: the network is not degenerate.
    net = tiny_checkpoint.scale_network
    z = torch.zeros(1, 16, 4, 4, dtype=torch.int64)
    z[..., :2, :] = 25
    assert len(torch.unique(net(z))) > 1


def test_overflowing_weights_are_refused():
    huge = IntegerLayer(
        weight=torch.full((4, 4, 3, 3), 2**40, dtype=torch.int64),
        bias=torch.zeros(4, dtype=torch.int64),
        transposed=False,
        stride=1,
        clip_max=63,
    )
    with pytest.raises(ValueError, match="overflow"):
        IntegerScaleNetwork([huge])
