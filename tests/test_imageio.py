"""Tests for aecompress.imageio (loading every supported mode) and the way back in
aecompress.imagefile: restoring, saving, alpha planes."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import photo_like
from PIL import Image, ImageCms, features

from aecompress import imagefile
from aecompress.errors import AecError, FormatError, ImageError
from aecompress.imagefile import (
    alpha_from_bytes,
    alpha_to_bytes,
    restore_image,
    save_image,
)
from aecompress.imageformats import ImageOptions, image_format_for, output_mode
from aecompress.imageio import SourceImage, load_image
from aecompress.modes import ColourMode
from aecompress.palette import nearest_palette_indices

H, W = 24, 36


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _save(image: Image.Image, path: Path, fmt: str | None = None, **params) -> Path:
    image.save(path, format=fmt, **params)
    return path


def _rgb(rng: np.random.Generator, height: int = H, width: int = W) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _gray(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (H, W), dtype=np.uint8)


def _palette_image(rng: np.random.Generator, colours: int = 40) -> tuple[Image.Image, np.ndarray]:
    indices = rng.integers(0, colours, (H, W), dtype=np.uint8)
    image = Image.frombytes("P", (W, H), indices.tobytes())
    # Distinct colours, so every index is recoverable from its colour.
    values = rng.choice(1 << 24, size=colours, replace=False)
    palette = np.stack([values >> 16, (values >> 8) & 255, values & 255], axis=1)
    image.putpalette(palette.astype(np.uint8).tobytes())
    return image, indices


def _check_source(source: SourceImage, mode: ColourMode) -> None:
    assert source.mode == mode
    assert source.rgb.dtype == np.uint8
    assert source.rgb.shape == (source.height, source.width, 3)
    assert source.rgb.flags["C_CONTIGUOUS"]
    if mode.has_alpha:
        assert source.alpha is not None
        assert source.alpha.dtype == np.uint8
        assert source.alpha.shape == (source.height, source.width)
    else:
        assert source.alpha is None
    if mode.has_palette:
        assert source.palette is not None
        assert 3 <= len(source.palette) <= 768 and len(source.palette) % 3 == 0
    else:
        assert source.palette is None


def _roundtrip(source: SourceImage) -> Image.Image:
    return restore_image(source.rgb, source.mode, source.alpha, source.palette, source.icc)


# ---------------------------------------------------------------------------------------------
# Modes: load and exact restore


def test_rgb_loads_and_restores_exactly(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = _rgb(rng)
    source = load_image(_save(Image.fromarray(pixels), tmp_path / "rgb.png"))
    _check_source(source, ColourMode.RGB)
    assert (source.width, source.height) == (W, H)
    assert np.array_equal(source.rgb, pixels)
    assert source.warnings == []
    restored = _roundtrip(source)
    assert restored.mode == "RGB"
    assert np.array_equal(np.asarray(restored), pixels)


def test_gray_is_coded_as_equal_channels(tmp_path: Path, rng: np.random.Generator) -> None:
    gray = _gray(rng)
    source = load_image(_save(Image.fromarray(gray), tmp_path / "gray.png"))
    _check_source(source, ColourMode.L)
    for channel in range(3):
        assert np.array_equal(source.rgb[:, :, channel], gray)
    restored = _roundtrip(source)
    assert restored.mode == "L"
    assert np.array_equal(np.asarray(restored), gray)


def test_rgba_keeps_alpha_exactly(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    source = load_image(_save(Image.fromarray(pixels, "RGBA"), tmp_path / "rgba.png"))
    _check_source(source, ColourMode.RGBA)
    assert np.array_equal(source.rgb, pixels[:, :, :3])
    assert np.array_equal(source.alpha, pixels[:, :, 3])
    restored = _roundtrip(source)
    assert restored.mode == "RGBA"
    assert np.array_equal(np.asarray(restored), pixels)


def test_la_keeps_alpha_exactly(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 256, (H, W, 2), dtype=np.uint8)
    source = load_image(_save(Image.fromarray(pixels, "LA"), tmp_path / "la.png"))
    _check_source(source, ColourMode.LA)
    assert np.array_equal(source.rgb[:, :, 1], pixels[:, :, 0])
    assert np.array_equal(source.alpha, pixels[:, :, 1])
    restored = _roundtrip(source)
    assert restored.mode == "LA"
    assert np.array_equal(np.asarray(restored), pixels)


def test_palette_image_round_trips(tmp_path: Path, rng: np.random.Generator) -> None:
    image, indices = _palette_image(rng)
    source = load_image(_save(image, tmp_path / "pal.png"))
    _check_source(source, ColourMode.P)
    assert source.palette == bytes(image.getpalette("RGB"))  # 40 entries, not padded to 256
    assert len(source.palette) == 40 * 3
    table = np.frombuffer(source.palette, dtype=np.uint8).reshape(40, 3)
    assert np.array_equal(source.rgb, table[indices])
    assert np.array_equal(np.asarray(image.convert("RGB")), source.rgb)
    restored = _roundtrip(source)
    assert restored.mode == "P"
    assert np.array_equal(np.asarray(restored), indices)
    assert bytes(restored.getpalette("RGB")) == source.palette


def test_quantized_palette_keeps_its_length(tmp_path: Path, rng: np.random.Generator) -> None:
    image = Image.fromarray(_rgb(rng)).quantize(16)
    source = load_image(_save(image, tmp_path / "q16.png"))
    _check_source(source, ColourMode.P)
    assert len(source.palette) == 48
    table = np.frombuffer(source.palette, dtype=np.uint8).reshape(16, 3)
    colours = {tuple(entry) for entry in table.tolist()}

    # Decoded pixels are close to, not exactly, the palette colours; dark ones must not drift
    # to a black padding entry that the palette never had.
    noise = rng.integers(-6, 7, source.rgb.shape)
    perturbed = np.clip(source.rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    perturbed[0] = rng.integers(0, 8, perturbed[0].shape)  # a row of decoded near-black pixels
    restored = restore_image(perturbed, source.mode, palette=source.palette)
    assert restored.mode == "P"
    assert bytes(restored.getpalette("RGB")) == source.palette
    assert int(np.asarray(restored).max()) < 16
    used = {tuple(c) for c in np.asarray(restored.convert("RGB")).reshape(-1, 3).tolist()}
    assert used <= colours
    if (0, 0, 0) not in colours:
        assert (0, 0, 0) not in used
    # Black pixels, the colour the old zero padding used to offer, still map into the palette.
    black = np.zeros((2, 3, 3), dtype=np.uint8)
    assert int(nearest_palette_indices(black, source.palette).max()) < 16


def test_indices_past_the_palette_get_just_enough_entries(tmp_path: Path) -> None:
    image = Image.frombytes("P", (4, 1), bytes([0, 1, 2, 9]))
    image.putpalette(bytes(range(1, 13)))  # 4 entries, but index 9 is used
    source = load_image(_save(image, tmp_path / "short.bmp"))
    _check_source(source, ColourMode.P)
    assert source.palette == bytes(range(1, 13)) + bytes(6 * 3)  # entries 4..9 are black
    assert source.rgb[0, 3].tolist() == [0, 0, 0]
    assert np.asarray(_roundtrip(source)).tolist() == [[0, 1, 2, 4]]  # first black entry


def test_palette_with_transparency_index_is_pa(tmp_path: Path, rng: np.random.Generator) -> None:
    image, indices = _palette_image(rng)
    source = load_image(_save(image, tmp_path / "pal_t.png", transparency=3))
    _check_source(source, ColourMode.PA)
    assert np.array_equal(source.alpha, np.where(indices == 3, 0, 255).astype(np.uint8))
    restored = _roundtrip(source)
    assert restored.mode == "PA"
    assert np.array_equal(np.asarray(restored.getchannel(0)), indices)
    assert np.array_equal(np.asarray(restored.getchannel(1)), source.alpha)
    assert np.array_equal(np.asarray(restored.convert("RGBA"))[:, :, :3], source.rgb)


def test_palette_with_per_index_alpha_is_pa(tmp_path: Path, rng: np.random.Generator) -> None:
    image, indices = _palette_image(rng)
    table = rng.integers(0, 256, 40, dtype=np.uint8)
    source = load_image(_save(image, tmp_path / "pal_trns.png", transparency=table.tobytes()))
    _check_source(source, ColourMode.PA)
    assert np.array_equal(source.alpha, table[indices])
    restored = _roundtrip(source)
    assert restored.mode == "PA"
    assert np.array_equal(np.asarray(restored.getchannel(0)), indices)
    assert np.array_equal(np.asarray(restored.getchannel(1)), table[indices])


def test_pa_saves_to_png_as_palette_with_trns(tmp_path: Path, rng: np.random.Generator) -> None:
    image, indices = _palette_image(rng)
    source = load_image(_save(image, tmp_path / "pal_t.png", transparency=5))
    data = save_image(_roundtrip(source), "PNG", None)
    written = Image.open(io.BytesIO(data))
    assert written.mode == "P"
    again = load_image(data)
    assert again.mode == ColourMode.PA
    assert np.array_equal(again.rgb, source.rgb)
    assert np.array_equal(again.alpha, source.alpha)


def test_pa_with_inconsistent_alpha_saves_as_rgba(rng: np.random.Generator) -> None:
    _, indices = _palette_image(rng)
    palette = rng.integers(0, 256, 768, dtype=np.uint8).tobytes()
    rgb = np.frombuffer(palette, dtype=np.uint8).reshape(256, 3)[indices]
    alpha = rng.integers(0, 256, (H, W), dtype=np.uint8)  # not a function of the index
    restored = restore_image(rgb, ColourMode.PA, alpha, palette)
    written = Image.open(io.BytesIO(save_image(restored, "PNG", None)))
    assert written.mode == "RGBA"
    pixels = np.asarray(written)
    assert np.array_equal(pixels[:, :, 3], alpha)
    assert np.array_equal(pixels[:, :, :3], rgb)


def test_one_bit_becomes_gray_with_warning(tmp_path: Path, rng: np.random.Generator) -> None:
    bits = rng.integers(0, 2, (H, W)).astype(bool)
    source = load_image(_save(Image.fromarray(bits), tmp_path / "bits.png"))
    _check_source(source, ColourMode.L)
    assert np.array_equal(source.rgb[:, :, 0], np.where(bits, 255, 0).astype(np.uint8))
    assert any("1-bit" in note for note in source.warnings)


def test_sixteen_bit_is_reduced_to_eight(tmp_path: Path, rng: np.random.Generator) -> None:
    values = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    with Image.open(path) as written:
        assert written.mode.startswith("I")
    source = load_image(path)
    _check_source(source, ColourMode.L)
    assert np.array_equal(source.rgb[:, :, 0], (values >> 8).astype(np.uint8))
    assert "reduced 16-bit samples to 8-bit" in source.warnings


def test_cmyk_becomes_rgb_with_warning(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "CMYK")
    source = load_image(_save(image, tmp_path / "cmyk.tif"))
    _check_source(source, ColourMode.RGB)
    assert np.array_equal(source.rgb, np.asarray(image.convert("RGB")))
    assert "converted CMYK to RGB" in source.warnings


def test_float_and_int32_become_gray(tmp_path: Path, rng: np.random.Generator) -> None:
    floats = rng.random((H, W)).astype(np.float32)
    source = load_image(_save(Image.fromarray(floats), tmp_path / "float.tif"))
    _check_source(source, ColourMode.L)
    assert np.array_equal(source.rgb[:, :, 0], np.rint(floats * 255.0).astype(np.uint8))
    assert source.warnings

    ints = rng.integers(0, 65536, (H, W)).astype(np.int32)
    source = load_image(_save(Image.fromarray(ints), tmp_path / "int.tif"))
    _check_source(source, ColourMode.L)
    assert np.array_equal(source.rgb[:, :, 0], (ints >> 8).astype(np.uint8))
    assert "reduced 16-bit samples to 8-bit" in source.warnings


def test_rgb_with_colour_key_becomes_rgba(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = _rgb(rng)
    pixels[0, 0] = (1, 2, 3)
    path = _save(Image.fromarray(pixels), tmp_path / "key.png", transparency=(1, 2, 3))
    source = load_image(path)
    _check_source(source, ColourMode.RGBA)
    assert source.alpha[0, 0] == 0
    assert np.array_equal(source.rgb, pixels)


def test_load_from_bytes(rng: np.random.Generator) -> None:
    pixels = _rgb(rng)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    source = load_image(buffer.getvalue())
    assert np.array_equal(source.rgb, pixels)


# ---------------------------------------------------------------------------------------------
# Orientation, ICC, frames


def test_exif_orientation_is_applied(tmp_path: Path, rng: np.random.Generator) -> None:
    pixels = _rgb(rng)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _save(Image.fromarray(pixels), tmp_path / "turned.png", exif=exif)
    source = load_image(path)
    assert (source.width, source.height) == (H, W)
    assert np.array_equal(source.rgb, np.rot90(pixels, k=-1))


def test_exif_orientation_in_jpeg(tmp_path: Path, rng: np.random.Generator) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(Image.fromarray(_rgb(rng)), tmp_path / "turned.jpg", exif=exif)
    source = load_image(path)
    assert (source.width, source.height) == (H, W)


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_icc_profile_is_kept_and_written_back(tmp_path: Path, rng: np.random.Generator) -> None:
    icc = _srgb_profile()
    pixels = _rgb(rng)
    source = load_image(_save(Image.fromarray(pixels), tmp_path / "icc.png", icc_profile=icc))
    assert source.icc == icc
    data = save_image(_roundtrip(source), "PNG", source.icc)
    written = Image.open(io.BytesIO(data))
    assert written.info.get("icc_profile") == icc
    assert np.array_equal(np.asarray(written), pixels)
    jpeg = Image.open(io.BytesIO(save_image(_roundtrip(source), "JPEG", source.icc)))
    assert jpeg.info.get("icc_profile") == icc


def test_cmyk_icc_profile_is_dropped(rng: np.random.Generator) -> None:
    fake_cmyk_icc = bytes(16) + b"CMYK" + bytes(108)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (H, W, 4), dtype=np.uint8), "CMYK").save(
        buffer, format="JPEG", icc_profile=fake_cmyk_icc
    )
    source = load_image(buffer.getvalue())
    assert source.mode == ColourMode.RGB
    assert source.icc is None
    assert any("ICC" in note for note in source.warnings)


def test_multi_frame_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (W, H), (value, value, value)) for value in (10, 120, 240)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    source = load_image(path)
    assert source.mode in (ColourMode.P, ColourMode.RGB)
    assert np.all(source.rgb == 10)
    assert f"{path} has 3 frames; only the first is encoded" in source.warnings


# ---------------------------------------------------------------------------------------------
# Failures


def _message(source) -> str:
    with pytest.raises(ImageError) as caught:
        load_image(source)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n")
    message = _message(path)
    assert "notes.png" in message
    assert "not a readable image" in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert "empty.png" in _message(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "nowhere.png" in _message(tmp_path / "nowhere.png")


@pytest.mark.parametrize("fmt, suffix", [("PNG", "png"), ("JPEG", "jpg")])
def test_truncated_files(tmp_path: Path, rng: np.random.Generator, fmt: str, suffix: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_rgb(rng, 64, 96)).save(buffer, format=fmt)
    data = buffer.getvalue()
    path = tmp_path / f"cut.{suffix}"
    path.write_bytes(data[: len(data) // 2])
    assert "cut." + suffix in _message(path)


def test_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    message = _message(path)
    assert "bomb.png" in message


def test_bytes_errors_are_image_errors() -> None:
    assert "not a readable image" in _message(b"\x89PNG\r\n\x1a\nrubbish")


# ---------------------------------------------------------------------------------------------
# Saving and formats


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("a.png", "PNG"),
        ("a.PNG", "PNG"),
        ("a.jpg", "JPEG"),
        ("a.jpeg", "JPEG"),
        ("a.webp", "WEBP"),
        ("a.tif", "TIFF"),
        ("a.tiff", "TIFF"),
        ("a.bmp", "BMP"),
        ("a.jp2", "JPEG2000"),
        ("a.JP2", "JPEG2000"),
        ("a.gif", "GIF"),
    ],
)
def test_image_format_for(name: str, fmt: str) -> None:
    assert image_format_for(Path(name)) == fmt


@pytest.mark.parametrize("name", ["a.aec", "a.txt", "noext"])
def test_image_format_for_unknown(name: str) -> None:
    with pytest.raises(ImageError):
        image_format_for(Path(name))


NEEDS_OPENJPEG = pytest.mark.skipif(
    not features.check("jpg_2000"), reason="this Pillow has no OpenJPEG"
)


@pytest.mark.parametrize("mode", list(ColourMode))
@pytest.mark.parametrize(
    "fmt",
    [
        None,
        "PNG",
        "JPEG",
        "WEBP",
        "TIFF",
        "BMP",
        "GIF",
        pytest.param("JPEG2000", marks=NEEDS_OPENJPEG),
    ],
)
def test_save_image_writes_every_mode(
    rng: np.random.Generator, mode: ColourMode, fmt: str | None
) -> None:
    palette = rng.integers(0, 256, 768, dtype=np.uint8).tobytes()
    if mode.has_palette:
        rgb = np.frombuffer(palette, dtype=np.uint8).reshape(256, 3)[rng.integers(0, 256, (H, W))]
    else:
        rgb = _rgb(rng)
    alpha = _gray(rng) if mode.has_alpha else None
    image = restore_image(rgb, mode, alpha, palette if mode.has_palette else None)
    assert image.mode == mode.name  # the Pillow mode of the same name
    data = save_image(image, fmt, None)
    written = Image.open(io.BytesIO(data))
    written.load()
    assert written.format == (fmt or "PNG")
    assert written.size == (W, H)


def test_lossless_formats_keep_pixels(rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    image = restore_image(pixels[:, :, :3].copy(), ColourMode.RGBA, pixels[:, :, 3].copy())
    lossless = ("PNG", "WEBP", "TIFF") + (("JPEG2000",) if features.check("jpg_2000") else ())
    for fmt in lossless:
        written = Image.open(io.BytesIO(save_image(image, fmt, None)))
        assert np.array_equal(np.asarray(written.convert("RGBA")), pixels), fmt


@NEEDS_OPENJPEG
def test_jpeg_2000_quality_is_the_psnr_to_reach() -> None:
    rgb = photo_like(96, 128, 4)
    image = restore_image(rgb, ColourMode.RGB)
    sizes = []
    for q in (35, 40):
        data = save_image(image, "JPEG2000", None, q)
        written = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)
        psnr = 10 * np.log10(255**2 / np.mean((written - rgb) ** 2))
        assert abs(psnr - q) < 1.5, (q, psnr)
        sizes.append(len(data))
    assert sizes[0] < sizes[1] < len(save_image(image, "JPEG2000", None))


@pytest.mark.parametrize(
    "mode", [ColourMode.P, ColourMode.PA, ColourMode.L, ColourMode.LA], ids=lambda m: m.name
)
def test_gif_keeps_palette_and_gray_images_exactly(rng: np.random.Generator, mode) -> None:
    """GIF holds 256 colours: a palette or gray image fits as it is (its alpha dropped)."""
    palette = rng.integers(0, 256, 3 * 40, dtype=np.uint8).tobytes()
    if mode.has_palette:
        rgb = np.frombuffer(palette, dtype=np.uint8).reshape(40, 3)[rng.integers(0, 40, (H, W))]
    else:
        rgb = np.repeat(_gray(rng)[:, :, None], 3, axis=2)
    alpha = _gray(rng) if mode.has_alpha else None
    image = restore_image(rgb, mode, alpha, palette if mode.has_palette else None)
    written = Image.open(io.BytesIO(save_image(image, "GIF", None)))
    assert written.format == "GIF" and written.mode in ("P", "L")
    assert np.array_equal(np.asarray(written.convert("RGB")), rgb)


OUTPUT_MODES = [  # mode, format, options, the mode written or the refusal's words
    (ColourMode.RGB, "PNG", ImageOptions(), "RGB"),
    (ColourMode.RGBA, "JPEG", ImageOptions(), "has transparency (RGBA), which JPEG cannot"),
    (ColourMode.RGBA, "JPEG", ImageOptions(drop_alpha=True), "RGB"),
    (ColourMode.PA, "JPEG", ImageOptions(drop_alpha=True), "RGB"),
    (ColourMode.RGBA, "JPEG2000", ImageOptions(), "RGBA"),
    (ColourMode.RGB, "GIF", ImageOptions(), "is full-colour and GIF holds 256 colours"),
    (ColourMode.RGB, "GIF", ImageOptions(reduce_colours=True), "P"),
    (ColourMode.RGBA, "GIF", ImageOptions(reduce_colours=True), "--drop-alpha"),
    (ColourMode.RGBA, "GIF", ImageOptions(drop_alpha=True), "--reduce-colours"),
    (ColourMode.RGBA, "GIF", ImageOptions(drop_alpha=True, reduce_colours=True), "P"),
    (ColourMode.P, "GIF", ImageOptions(), "P"),
    (ColourMode.L, "GIF", ImageOptions(), "L"),
    (ColourMode.PA, "GIF", ImageOptions(drop_alpha=True), "P"),
    (ColourMode.LA, "GIF", ImageOptions(drop_alpha=True), "L"),
]


@pytest.mark.parametrize(("mode", "fmt", "options", "expected"), OUTPUT_MODES)
def test_output_mode(mode, fmt, options, expected) -> None:
    if len(expected) > 4:
        with pytest.raises(AecError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            output_mode("x.aec", mode, fmt, options)
    else:
        assert output_mode("x.aec", mode, fmt, options) == expected


def test_restore_rejects_bad_input(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError):
        restore_image(_rgb(rng), ColourMode.RGBA)  # alpha missing
    for palette in (None, b"", b"short", bytes(4), bytes(771), bytes(769)):
        with pytest.raises(ValueError):
            restore_image(_rgb(rng), ColourMode.P, palette=palette)
    for palette in (b"", bytes(4), bytes(769)):
        with pytest.raises(ValueError, match="palette must be 3 to 768 bytes"):
            nearest_palette_indices(_rgb(rng), palette)
    with pytest.raises(ValueError):
        restore_image(_rgb(rng).astype(np.float32), ColourMode.RGB)


# ---------------------------------------------------------------------------------------------
# Alpha planes


def test_alpha_round_trip(rng: np.random.Generator) -> None:
    alpha = _gray(rng)
    data = alpha_to_bytes(alpha)
    assert zlib.decompress(data) == alpha.tobytes()
    back = alpha_from_bytes(data, W, H)
    assert back.shape == (H, W) and back.dtype == np.uint8
    assert np.array_equal(back, alpha)
    back[0, 0] ^= 1  # writable


def test_alpha_wrong_size_is_format_error(rng: np.random.Generator) -> None:
    data = alpha_to_bytes(_gray(rng))
    with pytest.raises(FormatError):
        alpha_from_bytes(data, W + 1, H)
    with pytest.raises(FormatError):
        alpha_from_bytes(data, W - 1, H)
    with pytest.raises(FormatError):
        alpha_from_bytes(data[:-5], W, H)
    with pytest.raises(FormatError):
        alpha_from_bytes(b"not zlib at all", W, H)
    with pytest.raises(FormatError):
        alpha_from_bytes(data + b"junk", W, H)


def test_alpha_zlib_bomb_is_refused() -> None:
    bomb = zlib.compress(bytes(50_000_000), 9)
    assert len(bomb) < 100_000
    with pytest.raises(FormatError, match="more than the 100 bytes"):
        alpha_from_bytes(bomb, 10, 10)


def test_alpha_decompression_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = zlib.decompressobj

    class Spy:
        def __init__(self) -> None:
            self._inner = real()

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            seen.append(max_length)
            return self._inner.decompress(data, max_length)

        def __getattr__(self, name: str):
            return getattr(self._inner, name)

    monkeypatch.setattr(imagefile.zlib, "decompressobj", Spy)
    with pytest.raises(FormatError):
        alpha_from_bytes(zlib.compress(bytes(1_000_000)), 10, 10)
    assert seen and all(0 < limit <= 101 for limit in seen)


def test_png_output_uses_the_fast_zlib_level() -> None:
    """Decoded PNGs are written at PNG_COMPRESS_LEVEL, not Pillow's slower default (6): the
    FLEVEL bits of the zlib stream in the first IDAT chunk say which (1: levels 2-5)."""
    from aecompress.imagefile import save_image
    from aecompress.imageformats import PNG_COMPRESS_LEVEL

    def flevel(png: bytes) -> int:
        at = png.index(b"IDAT") + 4
        return png[at + 1] >> 6

    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 80, 3), np.uint8))
    assert PNG_COMPRESS_LEVEL == 2
    assert flevel(save_image(image, "PNG", None)) == 1
    default = io.BytesIO()
    image.save(default, "PNG")
    assert flevel(default.getvalue()) == 2  # what the check tells apart
    decoded = Image.open(io.BytesIO(save_image(image, "PNG", None)))
    assert np.array_equal(np.asarray(decoded), np.asarray(image))
