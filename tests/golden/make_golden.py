"""Write the golden files of a shipped model: a small .aec file it encoded, the pixels it decodes
to and the hash of its entropy-decoded symbols; and the same for a file encoded at the highest
effort, whose latents were refined (`encode --effort`, effort.py), which every decoder of the
model must read alike. Run once when a model is added to pretrained/:

    python3 tests/golden/make_golden.py MODEL_ID

(benchmarks/ship_model.py calls `write_golden` itself when it ships a model.)
tests/test_golden.py then decodes every golden file with no flags, whatever the default model
is, so that no shipped model can be replaced or removed without its files noticing.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # conftest's image generator

from conftest import photo_like  # noqa: E402

from aecompress import container  # noqa: E402
from aecompress.checkpoint import load_checkpoint  # noqa: E402
from aecompress.codec import Codec  # noqa: E402
from aecompress.effort import encode_with_effort  # noqa: E402
from aecompress.effort_levels import MAX_EFFORT  # noqa: E402
from aecompress.errors import AecError  # noqa: E402
from aecompress.imagefile import decode_image, encode_image  # noqa: E402
from aecompress.imageio import SourceImage  # noqa: E402
from aecompress.modes import ColourMode  # noqa: E402
from aecompress.registry import read_index  # noqa: E402

HEIGHT, WIDTH, SEED, QUALITY = 48, 64, 7, 50.0


def symbols_sha256(codec: Codec, data: bytes) -> str:
    """SHA-256 of z_hat and the y residuals as little-endian int64: exact on any machine."""
    z_hat, sym, _ = codec.decode_symbols(*container.unpack(data))
    h = hashlib.sha256()
    for t in (z_hat, sym):
        h.update(t.numpy().astype("<i8").tobytes())
    return h.hexdigest()


def write_golden(model_id: str, golden: Path = HERE, pretrained: Path | None = None) -> list[Path]:
    """Write <golden>/<model_id>.aec, .png and .json, and .refined.aec, .refined.png and
    .refined.json, for the model that the index in `pretrained` (the package's shipped models
    when None) lists under `model_id`."""
    index = read_index(pretrained)
    entries = [m for m in index.models if m.model_id == model_id]
    if not entries:
        raise AecError(f"{model_id} is not listed in {index.folder / 'models.json'}")
    (entry,) = entries
    codec = Codec(load_checkpoint(entry.path))
    image = SourceImage(rgb=photo_like(HEIGHT, WIDTH, SEED), mode=ColourMode.RGB)
    data = encode_image(codec, image, QUALITY).data
    paths = _write(codec, data, Path(golden) / model_id, entry.fingerprint, {})
    # The refined file: the refinement must have won, or it would be the plain file again.
    if not encode_with_effort(codec, image.rgb, QUALITY, MAX_EFFORT).refined:
        raise AecError(f"{model_id}: the refined encode did not beat the plain one")
    refined = encode_image(codec, image, QUALITY, effort=MAX_EFFORT).data
    extra = {"effort": MAX_EFFORT, "refined": True}
    return paths + _write(codec, refined, Path(golden) / f"{model_id}.refined", entry.fingerprint,
                          extra)  # fmt: skip


def _write(codec: Codec, data: bytes, stem: Path, fingerprint: str, extra: dict) -> list[Path]:
    """stem.aec, stem.png (its decoded pixels) and stem.json (what the test checks)."""
    paths = [stem.with_name(stem.name + suffix) for suffix in (".aec", ".png", ".json")]
    paths[0].write_bytes(data)
    Image.fromarray(decode_image(codec, data).rgb).save(paths[1])
    header = container.unpack(data)[0]
    meta = {
        "model_id": header.model_id,
        "fingerprint": fingerprint,
        "quality": header.quality,
        **extra,
        "symbols_sha256": symbols_sha256(codec, data),
    }
    paths[2].write_text(json.dumps(meta, indent=2) + "\n")
    return paths


def main() -> None:
    (model_id,) = sys.argv[1:]
    aec = write_golden(model_id)[0]
    print(f"wrote {model_id}.aec ({aec.stat().st_size} bytes), .png and .json in {HERE}")


if __name__ == "__main__":
    main()
