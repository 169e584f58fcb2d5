"""The peer codecs through Pillow: plugins detected, every built-in one round-trips."""

from __future__ import annotations

import sys

import pytest
from conftest import photo_like

from aecompress.bench import peers
from aecompress.bench.runner import measure


def test_missing_plugin_package_is_detected(monkeypatch):
    monkeypatch.setattr(peers, "_REASONS", {})
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "pillow_jxl", None)
    assert peers.unavailable_reason("heic") == "pillow-heif not installed"
    assert peers.unavailable_reason("jxl") == "pillow-jxl-plugin not installed"
    assert peers.unavailable_reason("jpeg") is None


@pytest.mark.parametrize("name", ["jpeg", "jpeg444", "webp", "avif", "jp2"])
def test_built_in_peers_round_trip(name):
    if peers.unavailable_reason(name):
        pytest.skip(peers.unavailable_reason(name))
    peer = peers.get_peer(name)
    rgb = photo_like(40, 56, 3)
    data = peer.encode(rgb, peer.sweep[-1])
    back = peer.decode(data)
    assert back.shape == rgb.shape and back.dtype == rgb.dtype
    assert measure(name, peer.sweep[-1], "x", rgb, peer.encode, peer.decode).psnr > 20
