"""Tests for cmsr.files: exact round trips, layout rules and one-line errors for bad files."""

from __future__ import annotations

import errno
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from cmsr.errors import InputError
from cmsr.files import (
    SUPPORTED_READ,
    SUPPORTED_WRITE,
    atomic,
    checks,
    describe,
    read_image,
    write_image,
    writers,
)

RNG = np.random.default_rng(20210619)


# --------------------------------------------------------------------------- helpers


def expect_error(path: Path, *words: str, call=read_image, **kwargs) -> str:
    """Run ``call(path)``; assert a one-line InputError naming the file and a problem word."""
    with pytest.raises(InputError) as info:
        call(path, **kwargs)
    message = str(info.value)
    assert path.name in message, message
    assert "\n" not in message, message
    assert any(word in message.lower() for word in words), message
    return message


def leftovers(folder: Path) -> list[str]:
    """Temporary files write_image may have left behind."""
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


def _filtered(rows: np.ndarray, pixel_bytes: int, filters: list[int]) -> bytes:
    """PNG scanlines of ``rows`` (uint8, one row of bytes each), row ``i`` filtered with
    ``filters[i % len(filters)]`` (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    x = rows.astype(np.int32)
    a = np.zeros_like(x)
    a[:, pixel_bytes:] = x[:, :-pixel_bytes]  # the byte one pixel to the left
    b = np.zeros_like(x)
    b[1:] = x[:-1]  # the byte above
    c = np.zeros_like(x)
    c[1:] = a[:-1]  # above and to the left
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    predictions = [np.zeros_like(x), a, b, (a + b) // 2, paeth]
    out = b""
    for i in range(len(rows)):
        kind = filters[i % len(filters)]
        out += bytes([kind]) + ((x[i] - predictions[kind][i]) % 256).astype(np.uint8).tobytes()
    return out


def png_bytes(
    pixels: np.ndarray, colour_type: int, *, interlace: bool = False, size=None,
    filters: tuple[int, ...] = (0,),
) -> bytes:
    """A minimal 16-bit PNG encoder for the tests (any of the five filters, optional Adam7)."""
    pixels = pixels if pixels.ndim == 3 else pixels[:, :, None]
    height, width = pixels.shape[:2]
    data = pixels.astype(">u2")
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)] if interlace else [(0, 0, 1, 1)]  # fmt: skip
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = np.ascontiguousarray(data[y0::dy, x0::dx])
        if sub.size:
            rows = sub.view(np.uint8).reshape(sub.shape[0], -1)
            raw += _filtered(rows, 2 * pixels.shape[2], list(filters))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    width, height = size or (width, height)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, int(interlace))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))  # fmt: skip


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, content) chunks of a PNG file, read without any PNG library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def decode_unfiltered_png16(data: bytes) -> tuple[int, np.ndarray]:
    """(colour type, pixels (H, W, P)) of a non-interlaced 16-bit PNG whose rows all use
    filter 0, decoded with zlib and NumPy alone: an independent check of what we write."""
    chunks = png_chunks(data)
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, interlace) == (16, 0)
    planes = {0: 1, 4: 2, 2: 3, 6: 4}[colour_type]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + 2 * width * planes)
    assert (rows[:, 0] == 0).all()
    pixels = np.ascontiguousarray(rows[:, 1:]).view(">u2").reshape(height, width, planes)
    return colour_type, pixels.astype(np.uint16)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("grey8.png", RNG.integers(0, 256, (17, 23), dtype=np.uint8)),
        ("rgb8.png", RNG.integers(0, 256, (17, 23, 3), dtype=np.uint8)),
        ("grey16.png", RNG.integers(0, 65536, (17, 23), dtype=np.uint16)),
        ("rgb16.png", RNG.integers(0, 65536, (17, 23, 3), dtype=np.uint16)),
        ("grey32f.tif", RNG.standard_normal((19, 21)).astype(np.float32)),
        ("bands32f.tiff", RNG.standard_normal((19, 21, 4)).astype(np.float32)),
        ("grey16.tif", RNG.integers(0, 65536, (19, 21), dtype=np.uint16)),
        ("rgb8.tif", RNG.integers(0, 256, (19, 21, 3), dtype=np.uint8)),
        ("depth64.tif", RNG.standard_normal((5, 6)).astype(np.float64)),
        ("bands.npy", RNG.standard_normal((9, 10, 7)).astype(np.float32)),
        ("counts.npy", RNG.integers(-5, 5, (9, 10), dtype=np.int16)),
    ],
)
def test_round_trip_is_exact(tmp_path: Path, name: str, image: np.ndarray) -> None:
    path = write_image(tmp_path / name, image)
    assert path == tmp_path / name
    back = read_image(path)
    assert back.dtype == image.dtype
    assert back.shape == image.shape
    np.testing.assert_array_equal(back, image)
    assert back.flags.c_contiguous and back.flags.writeable


def test_uint16_png_keeps_full_range(tmp_path: Path) -> None:
    image = np.array([[0, 1, 255, 256], [32767, 32768, 65534, 65535]], dtype=np.uint16)
    back = read_image(write_image(tmp_path / "t.png", image))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, image)


def test_uint16_rgba_png_drops_alpha_exactly(tmp_path: Path) -> None:
    image = RNG.integers(0, 65536, (7, 9, 4), dtype=np.uint16)
    back = read_image(write_image(tmp_path / "t.png", image))
    np.testing.assert_array_equal(back, image[:, :, :3])


def test_interlaced_16bit_rgb_png_read_exactly(tmp_path: Path) -> None:
    image = RNG.integers(0, 65536, (13, 11, 3), dtype=np.uint16)
    path = tmp_path / "adam7.png"
    path.write_bytes(png_bytes(image, 2, interlace=True))
    np.testing.assert_array_equal(read_image(path), image)


def test_16bit_grey_alpha_png_read_exactly(tmp_path: Path) -> None:
    image = RNG.integers(0, 65536, (6, 5, 2), dtype=np.uint16)
    path = tmp_path / "la16.png"
    path.write_bytes(png_bytes(image, 4))
    back = read_image(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, image[:, :, 0])


def _every_uint16(channels: int) -> np.ndarray:
    """256 x 256 pixels holding each value 0..65535 once per channel, differently placed."""
    values = np.arange(65536, dtype=np.uint16)
    bands = [RNG.permutation(values).reshape(256, 256) for _ in range(channels)]
    return bands[0] if channels == 1 else np.stack(bands, axis=2)


@pytest.mark.parametrize(("channels", "colour_type"), [(1, 0), (3, 2), (4, 6)])
def test_every_16bit_value_round_trips_as_a_standard_png(
    tmp_path: Path, channels: int, colour_type: int
) -> None:
    image = _every_uint16(channels)
    path = write_image(tmp_path / "all.png", image)
    back = read_image(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, image if channels < 4 else image[:, :, :3])
    # the file itself, decoded without pypng or Pillow
    found_type, pixels = decode_unfiltered_png16(path.read_bytes())
    assert found_type == colour_type
    np.testing.assert_array_equal(pixels, image.reshape(256, 256, channels))


def test_16bit_grey_png_agrees_with_pillow_both_ways(tmp_path: Path) -> None:
    image = _every_uint16(1)
    ours = write_image(tmp_path / "ours.png", image)
    with Image.open(ours) as im:
        assert im.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(im), image)
    Image.fromarray(image).save(tmp_path / "pillow.png")  # mode I;16, a 16-bit grey PNG
    assert png_chunks((tmp_path / "pillow.png").read_bytes())[0][1][8] == 16
    np.testing.assert_array_equal(read_image(tmp_path / "pillow.png"), image)


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize(("colour_type", "planes"), [(0, 1), (4, 2), (2, 3), (6, 4)])
def test_16bit_pngs_using_every_row_filter_are_read_exactly(
    tmp_path: Path, colour_type: int, planes: int, interlace: bool
) -> None:
    ramp = np.add.outer(np.arange(21) * 2000, np.arange(19) * 1500)[:, :, None]
    image = (ramp + RNG.integers(0, 3000, (21, 19, planes))).astype(np.uint16)
    path = tmp_path / "filtered.png"
    path.write_bytes(png_bytes(image, colour_type, interlace=interlace, filters=(0, 1, 2, 3, 4)))
    expected = {1: image[:, :, 0], 2: image[:, :, 0], 3: image, 4: image[:, :, :3]}[planes]
    np.testing.assert_array_equal(read_image(path), expected)


def test_16bit_png_inflating_beyond_its_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inflate_bomb.png"
    path.write_bytes(png_bytes(np.zeros((1000, 1000, 3), np.uint16), 2, size=(1, 1)))
    assert path.stat().st_size < 50_000  # 6 MB of pixel stream for a 1x1 image
    expect_error(path, "longer than")


def test_16bit_png_with_short_pixel_data_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "short16.png"
    path.write_bytes(png_bytes(np.zeros((10, 8, 3), np.uint16), 2, size=(8, 20)))
    expect_error(path, "truncated")


def test_16bit_palette_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "palette16.png"
    path.write_bytes(png_bytes(np.zeros((4, 4), np.uint16), 3))
    expect_error(path, "not a valid png")


def test_pillow_bomb_limit_applies_to_16bit_pngs(tmp_path: Path, monkeypatch) -> None:
    path = write_image(tmp_path / "x.png", np.zeros((20, 30, 3), np.uint16))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    expect_error(path, "too large")


def test_npy_float_with_nan_round_trips_bit_exactly(tmp_path: Path) -> None:
    image = RNG.standard_normal((8, 9)).astype(np.float32)
    image[2, 3] = np.nan
    image[4, 4] = -np.inf
    image[0, 0] = -0.0
    back = read_image(write_image(tmp_path / "t.npy", image))
    np.testing.assert_array_equal(back.view(np.uint32), image.view(np.uint32))


@pytest.mark.parametrize("planar", [True, False])
def test_band_first_tiff_comes_back_band_last(tmp_path: Path, planar: bool) -> None:
    bands = RNG.standard_normal((5, 20, 24)).astype(np.float32)
    path = tmp_path / "chw.tif"
    if planar:  # one page, separate sample planes
        tifffile.imwrite(path, bands, photometric="minisblack", planarconfig="separate")
    else:  # tifffile's default: one page per band
        tifffile.imwrite(path, bands)
    back = read_image(path)
    assert back.shape == (20, 24, 5)
    np.testing.assert_array_equal(back, np.moveaxis(bands, 0, -1))


def test_band_last_tiff_written_by_tifffile_defaults(tmp_path: Path) -> None:
    image = RNG.standard_normal((20, 24, 5)).astype(np.float32)
    path = tmp_path / "hwc.tif"
    tifffile.imwrite(path, image)  # stored as 20 pages of 24x5, read back as (20, 24, 5)
    np.testing.assert_array_equal(read_image(path), image)


@pytest.mark.parametrize("name", ["single.npy", "single.tif"])
def test_trailing_singleton_channel_is_squeezed(tmp_path: Path, name: str) -> None:
    image = RNG.standard_normal((6, 7, 1)).astype(np.float32)
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, image)
    else:
        tifffile.imwrite(path, image)
    back = read_image(path)
    assert back.shape == (6, 7)
    np.testing.assert_array_equal(back, image[:, :, 0])


def test_leading_singleton_axes_are_dropped(tmp_path: Path) -> None:
    image = RNG.standard_normal((1, 1, 20, 18, 2)).astype(np.float32)
    np.save(tmp_path / "batch.npy", image)
    assert read_image(tmp_path / "batch.npy").shape == (20, 18, 2)


def test_rgba_and_grey_alpha_pngs_drop_alpha(tmp_path: Path) -> None:
    rgba = RNG.integers(0, 256, (5, 6, 4), dtype=np.uint8)  # non-constant alpha
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgba[:, :, :3])
    la = RNG.integers(0, 256, (5, 6, 2), dtype=np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), la[:, :, 0])


def test_palette_png_becomes_rgb(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).quantize(8).save(tmp_path / "p.png")
    back = read_image(tmp_path / "p.png")
    assert back.shape == (6, 5, 3) and back.dtype == np.uint8
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    np.testing.assert_array_equal(back, expected)


_GREYS = np.array([0, 90, 180, 250], np.uint8)
"""The grey levels of a palette whose indices (0..3) differ from its values."""


def _palette_image(entries: list[tuple[int, int, int]]) -> tuple[Image.Image, np.ndarray]:
    """A 7x9 P-mode image using indices 0..3 of a palette starting with ``entries``."""
    indices = RNG.integers(0, 4, (7, 9), dtype=np.uint8)
    indices[0, :4] = [0, 1, 2, 3]  # every index used
    im = Image.fromarray(indices, mode="P")
    im.putpalette([value for entry in entries for value in entry])
    return im, indices


@pytest.mark.parametrize("ext", [".png", ".bmp"])
def test_grey_palette_image_is_one_grey_band(tmp_path: Path, ext: str) -> None:
    im, indices = _palette_image([(g, g, g) for g in _GREYS])
    im.save(tmp_path / f"grey{ext}")
    back = read_image(tmp_path / f"grey{ext}")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, _GREYS[indices])  # the greys, not the indices


def test_palette_grey_where_used_is_one_band(tmp_path: Path) -> None:
    im, indices = _palette_image([(g, g, g) for g in _GREYS] + [(255, 0, 0), (0, 0, 255)])
    im.save(tmp_path / "grey_used.png")
    np.testing.assert_array_equal(read_image(tmp_path / "grey_used.png"), _GREYS[indices])


def test_colour_palette_with_one_grey_entry_stays_rgb(tmp_path: Path) -> None:
    colours = np.array([(7, 7, 7), (9, 9, 9), (200, 200, 200), (10, 200, 30)], np.uint8)
    im, indices = _palette_image([tuple(c) for c in colours])
    im.save(tmp_path / "colour.png")
    back = read_image(tmp_path / "colour.png")
    np.testing.assert_array_equal(back, colours[indices])


@pytest.mark.parametrize("grey", [True, False])
def test_palette_transparency_is_dropped_like_alpha(tmp_path: Path, grey: bool) -> None:
    colours = (np.repeat(_GREYS[:, None], 3, axis=1) if grey
               else np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)], np.uint8))
    im, indices = _palette_image([tuple(c) for c in colours])
    im.save(tmp_path / "trns.png", transparency=bytes([0, 128, 255, 40]))
    with Image.open(tmp_path / "trns.png") as check:
        assert check.mode == "P" and "transparency" in check.info
    expected = colours[indices]
    np.testing.assert_array_equal(read_image(tmp_path / "trns.png"),
                                  expected[:, :, 0] if grey else expected)


def test_grey_palette_target_gives_a_one_band_result(tmp_path: Path) -> None:
    from cmsr.cli import main  # the whole command: read, super-resolve, write

    indices = (np.add.outer(np.arange(12), np.arange(12)) % 4).astype(np.uint8)
    im = Image.fromarray(indices, mode="P")
    im.putpalette([value for g in _GREYS for value in (g, g, g)])
    im.save(tmp_path / "target.png")
    guide = RNG.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    write_image(tmp_path / "guide.png", guide)
    out = tmp_path / "out.png"
    assert main(["sr", "--target", str(tmp_path / "target.png"), "--guide",
                 str(tmp_path / "guide.png"), "-o", str(out), "--preset", "quick",
                 "--iters", "4", "--quiet"]) == 0
    result = read_image(out)
    assert result.shape == (48, 48) and result.dtype == np.uint8


def test_jpeg_and_bmp_are_read(tmp_path: Path) -> None:
    rgb = np.full((16, 24, 3), (200, 100, 50), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "b.JPEG", quality=95)
    Image.fromarray(rgb).save(tmp_path / "c.bmp")
    jpg = read_image(tmp_path / "a.jpg")
    assert jpg.shape == (16, 24, 3) and jpg.dtype == np.uint8
    assert np.abs(jpg.astype(int) - rgb).max() <= 3
    assert read_image(tmp_path / "b.JPEG").shape == (16, 24)
    np.testing.assert_array_equal(read_image(tmp_path / "c.bmp"), rgb)


def test_bool_and_big_endian_npy(tmp_path: Path) -> None:
    np.save(tmp_path / "mask.npy", np.eye(4, dtype=bool))
    mask = read_image(tmp_path / "mask.npy")
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, np.eye(4, dtype=np.uint8))
    big = np.arange(12, dtype=">f4").reshape(3, 4)
    np.save(tmp_path / "big.npy", big)
    back = read_image(tmp_path / "big.npy")
    assert back.dtype == np.float32 and back.dtype.isnative
    np.testing.assert_array_equal(back, big)


def test_describe() -> None:
    assert describe(np.zeros((320, 320), np.uint8)) == "320x320 uint8 grey"
    assert describe(np.zeros((480, 640, 3), np.uint8)) == "640x480x3 uint8"
    assert describe(np.zeros(5, np.float32)) == "array of shape (5,) float32"


def test_supported_extensions() -> None:
    assert set(SUPPORTED_WRITE) <= set(SUPPORTED_READ)
    assert all(ext.startswith(".") and ext == ext.lower() for ext in SUPPORTED_READ)


@settings(max_examples=25, deadline=None)
@given(
    image=st.sampled_from([np.uint16, np.float32]).flatmap(
        lambda dtype: hnp.arrays(
            dtype,
            st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(
                lambda hw: st.sampled_from([hw, (*hw, 2), (*hw, 3), (*hw, 5)])
            ),
        )
    ),
    ext=st.sampled_from([".tif", ".npy"]),
)
def test_property_tiff_and_npy_round_trip_exactly(
    tmp_path_factory: pytest.TempPathFactory, image: np.ndarray, ext: str
) -> None:
    path = write_image(tmp_path_factory.mktemp("prop") / f"x{ext}", image)
    back = read_image(path)
    assert back.dtype == image.dtype and back.shape == image.shape
    bits = np.uint16 if image.dtype == np.uint16 else np.uint32
    np.testing.assert_array_equal(back.view(bits), image.view(bits))


# --------------------------------------------------------------------------- read errors


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.png", "no such file")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "folder.png").mkdir()
    expect_error(tmp_path / "folder.png", "directory")


def test_unsupported_extension_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    path.write_bytes(b"GIF89a")
    message = expect_error(path, "unsupported")
    assert ".png" in message and ".npy" in message


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.tif").touch()
    expect_error(tmp_path / "empty.tif", "empty")


@pytest.mark.parametrize("name", ["notes.png", "notes.tif", "notes.npy", "notes.jpg"])
def test_text_file_with_image_extension(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("just some text, no pixels here\n" * 3)
    expect_error(tmp_path / name, "not a")


def test_jpeg_named_png(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png", format="JPEG")
    expect_error(tmp_path / "x.png", "not a png")


@pytest.mark.parametrize("name", ["cut.png", "cut.jpg", "cut16.png"])
def test_truncated_pil_images(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "cut16.png":
        write_image(path, RNG.integers(0, 65536, (40, 40, 3), dtype=np.uint16))
    else:
        noise = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated")


def test_truncated_tiff_and_npy(tmp_path: Path) -> None:
    for name in ("cut.tif", "cut.npy"):
        path = write_image(tmp_path / name, RNG.standard_normal((64, 64)).astype(np.float32))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        expect_error(path, "truncated", "failed to read", "decoded")


def test_npz_named_npy(tmp_path: Path) -> None:
    with open(tmp_path / "pack.npy", "wb") as fh:
        np.savez(fh, a=np.zeros((3, 3)))
    expect_error(tmp_path / "pack.npy", "zip")


@pytest.mark.parametrize(
    ("array", "word"),
    [
        (np.zeros((0, 5), np.float32), "empty"),
        (np.zeros((4, 0, 3), np.uint8), "empty"),
        (np.zeros(5, np.float32), "1-d"),
        (np.zeros((2, 3, 4, 5), np.float32), "stack"),
        (np.zeros((4, 4), np.complex64), "complex"),
        (np.zeros((4, 4, 65), np.float32), "channels"),
        (np.array([["a", "b"], ["c", "d"]]), "text"),
    ],
)
def test_bad_npy_arrays(tmp_path: Path, array: np.ndarray, word: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    expect_error(tmp_path / "bad.npy", word)


class _Booby:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_object_npy_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    array = np.empty((2, 2), dtype=object)
    array[:] = [[_Booby(marker)] * 2] * 2
    np.save(tmp_path / "objects.npy", array, allow_pickle=True)
    expect_error(tmp_path / "objects.npy", "objects")
    assert not marker.exists()


def test_huge_png_header_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(np.zeros((1, 1), np.uint16), 0, size=(100_000, 100_000)))
    message = expect_error(path, "too large")
    assert "100000x100000" in message


def test_pixel_limit_applies_to_every_format(tmp_path: Path, monkeypatch) -> None:
    image = np.zeros((20, 30), np.uint8)
    paths = [write_image(tmp_path / f"x{ext}", image) for ext in (".png", ".tif", ".npy")]
    Image.fromarray(image).save(tmp_path / "x.bmp")
    monkeypatch.setattr(checks, "MAX_PIXELS", 599)
    for path in [*paths, tmp_path / "x.bmp"]:
        expect_error(path, "too large")


def test_pillow_bomb_warning_becomes_input_error(tmp_path: Path, monkeypatch) -> None:
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "x.bmp")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # warns above 500, fails above 1000
    expect_error(tmp_path / "x.bmp", "too large")


def test_tiff_stack_is_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((100, 20, 70), np.uint8))
    expect_error(tmp_path / "stack.tif", "stack")
    tifffile.imwrite(tmp_path / "stack4d.tif", np.zeros((3, 2, 20, 20), np.uint8))
    expect_error(tmp_path / "stack4d.tif", "stack")


def test_complex_tiff_is_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((4, 4), np.complex64), photometric="minisblack")
    expect_error(tmp_path / "c.tif", "complex")


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize(
    ("name", "image", "word"),
    [
        ("f.png", np.zeros((4, 4), np.float32), ".tif"),
        ("b.png", np.zeros((4, 4), bool), "uint8"),
        ("i.png", np.zeros((4, 4), np.int32), "uint8"),
        ("two.png", np.zeros((4, 4, 2), np.uint8), "channels"),
        ("c.tif", np.zeros((4, 4), np.complex64), "complex"),
        ("o.npy", np.zeros((4, 4), object), "objects"),
        ("e.npy", np.zeros((0, 4), np.float32), "empty"),
        ("v.npy", np.zeros(4, np.float32), "1-d"),
        ("x.jpg", np.zeros((4, 4), np.uint8), "cannot write"),
    ],
)
def test_write_refuses_what_the_format_cannot_hold(
    tmp_path: Path, name: str, image: np.ndarray, word: str
) -> None:
    expect_error(tmp_path / name, word, call=write_image, image=image)
    assert list(tmp_path.iterdir()) == []


def test_write_without_overwrite_leaves_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "out.npy"
    path.write_bytes(b"precious")
    message = expect_error(path, "already exists", call=write_image, image=np.ones((3, 3)))
    assert "--overwrite" in message
    assert path.read_bytes() == b"precious"
    assert leftovers(tmp_path) == []


def test_write_with_overwrite_replaces(tmp_path: Path) -> None:
    path = tmp_path / "out.tif"
    path.write_bytes(b"old")
    write_image(path, np.full((3, 4), 7, np.uint16), overwrite=True)
    np.testing.assert_array_equal(read_image(path), np.full((3, 4), 7, np.uint16))
    assert leftovers(tmp_path) == []


def test_write_creates_parent_folders_and_usual_permissions(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a" / "b" / "c.png", np.zeros((2, 2), np.uint8))
    assert path.is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_write_into_directory_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.npy").mkdir()
    expect_error(tmp_path / "d.npy", "directory", call=write_image, image=np.zeros((2, 2)))


def test_failed_write_removes_temporary_file(tmp_path: Path, monkeypatch) -> None:
    def disk_full(fh, image, **kwargs) -> None:
        fh.write(b"II*\x00 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers.tifffile, "imwrite", disk_full)
    expect_error(tmp_path / "t.tif", "no space", call=write_image, image=np.zeros((3, 3)))
    assert list(tmp_path.iterdir()) == []

    def crash(fh, image, **kwargs) -> None:
        fh.write(b"partial")
        raise RuntimeError("encoder bug")

    monkeypatch.setattr(writers.tifffile, "imwrite", crash)
    with pytest.raises(RuntimeError):
        write_image(tmp_path / "t.tif", np.zeros((3, 3)))
    assert list(tmp_path.iterdir()) == []


def test_file_created_during_write_is_not_clobbered(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "race.npy"
    real_write = writers._write_npy

    def racing_write(fh, image) -> None:
        real_write(fh, image)
        path.write_bytes(b"someone else's")  # appears after the existence check

    monkeypatch.setattr(writers, "_write_npy", racing_write)
    expect_error(path, "already exists", call=write_image, image=np.zeros((3, 3)))
    assert path.read_bytes() == b"someone else's"
    assert leftovers(tmp_path) == []


def test_write_without_hard_links_falls_back(tmp_path: Path, monkeypatch) -> None:
    def no_links(src, dst) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)
    path = write_image(tmp_path / "x.npy", np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(read_image(path), np.arange(6.0).reshape(2, 3))
    expect_error(path, "already exists", call=write_image, image=np.zeros((2, 2)))
    assert leftovers(tmp_path) == []
