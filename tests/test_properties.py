"""Property-based tests (hypothesis) of reading, writing and checking images.

* Any valid array of a supported dtype and shape survives ``write_image`` ->
  ``read_image`` bit for bit in the lossless formats (PNG, TIFF, NPY).
* ``read_image`` of a damaged file (cut, bytes overwritten, bytes inserted) returns a
  proper image or raises :class:`InputError`, nothing else.
* ``check_image`` accepts exactly the images a plain statement of its rules accepts,
  and its verdict does not depend on orientation.
* ``prepare_pair`` raises nothing but :class:`InputError` for any small pair, whatever
  its shapes, dtypes and NaN pattern, and what it returns is finite and in range.

Example counts are kept modest: the whole file runs in well under 30 s on one core.
"""

from __future__ import annotations

import io
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from cmsr.errors import InputError
from cmsr.files import read_image, write_image
from cmsr.method.api import prepare_pair
from cmsr.method.validate import MAX_BANDS, MIN_SIDE, check_image


def _examples(count: int) -> settings:
    """Hypothesis settings: ``count`` examples, no per-example deadline."""
    return settings(max_examples=count, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


REAL_DTYPES = [np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32,
               np.uint64, np.int64, np.float16, np.float32, np.float64]


def _dtypes(names: list[type], *, byte_orders: bool = True) -> st.SearchStrategy[np.dtype]:
    """The given dtypes, multi-byte ones also in the non-native byte order."""
    plain = [np.dtype(t) for t in names]
    swapped = [d.newbyteorder("S") for d in plain if d.itemsize > 1] if byte_orders else []
    return st.sampled_from(plain + swapped)


def _sides(low: int = 1, high: int = 12) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(low, high), st.integers(low, high))


def _bits(array: np.ndarray) -> np.ndarray:
    """The array's values as native unsigned integers of the same width (NaN-exact)."""
    native = array.astype(array.dtype.newbyteorder("="))
    if native.dtype == np.bool_:
        return native.view(np.uint8)
    return native.view(f"u{native.dtype.itemsize}")


# --------------------------------------------------------------------------- round trips


@st.composite
def _writable(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    """(extension, array) pairs the format stores exactly."""
    ext = draw(st.sampled_from([".png", ".tif", ".npy"]))
    height, width = draw(_sides())
    if ext == ".png":
        dtype = draw(_dtypes([np.uint8, np.uint16]))
        shape = draw(st.sampled_from([(height, width), (height, width, 1),
                                      (height, width, 3)]))
    else:
        dtype = draw(_dtypes(REAL_DTYPES))
        channels = draw(st.sampled_from([None, 1, 2, 3, 4, 5, 16]))
        shape = (height, width) if channels is None else (height, width, channels)
    return ext, draw(hnp.arrays(dtype, shape))


@_examples(120)
@given(case=_writable())
def test_lossless_formats_round_trip_exactly(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, np.ndarray],
) -> None:
    ext, image = case
    path = write_image(tmp_path_factory.mktemp("trip") / f"image{ext}", image)
    back = read_image(path)
    expected = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    want = np.dtype(np.uint8) if image.dtype == np.bool_ else image.dtype.newbyteorder("=")
    assert back.dtype == want
    assert back.shape == expected.shape
    assert back.flags.c_contiguous and back.flags.writeable and back.dtype.isnative
    np.testing.assert_array_equal(_bits(back), _bits(expected.astype(want)))


# --------------------------------------------------------------------------- damaged files


def _valid_files() -> dict[str, bytes]:
    """Small valid files of every readable kind, to be damaged."""
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    files: dict[str, bytes] = {}
    for name, image, fmt in [("grey.png", grey, "PNG"), ("rgb.png", rgb, "PNG"),
                             ("rgb.jpg", rgb, "JPEG"), ("grey.bmp", grey, "BMP")]:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt)
        files[name] = buffer.getvalue()
    for name, image, compression in [
        ("float.tif", rng.standard_normal((9, 11)).astype(np.float32), None),
        ("bands.tif", rng.integers(0, 4000, (9, 11, 4), dtype=np.uint16), "zlib"),
    ]:
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, image, compression=compression, photometric="minisblack")
        files[name] = buffer.getvalue()
    buffer = io.BytesIO()
    np.save(buffer, rng.standard_normal((9, 11, 2)))
    files["array.npy"] = buffer.getvalue()
    pixels = rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    header = (9).to_bytes(4, "big")
    ihdr = (11).to_bytes(4, "big") + header + bytes([16, 2, 0, 0, 0])

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")

    files["rgb16.png"] = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                          + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return files


VALID_FILES = _valid_files()


@st.composite
def _damaged(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(VALID_FILES)))
    data = bytearray(VALID_FILES[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cut", "set", "insert", "header"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:  # overwrite bytes; "header" aims at the first 64, where the sizes are
            at = at % 64 if kind == "header" else at
            new = draw(st.binary(min_size=1, max_size=4))
            data[at : at + len(new)] = new
    return name, bytes(data)


@_examples(200)
@given(case=_damaged())
def test_damaged_files_give_an_image_or_an_input_error(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, bytes],
) -> None:
    name, data = case
    path = tmp_path_factory.mktemp("damaged") / name
    path.write_bytes(data)
    try:
        image = read_image(path)
    except InputError as error:
        message = str(error)
        assert message.startswith(str(path)) and "\n" not in message, message
        event("refused")
        return
    event("read")
    assert image.ndim in (2, 3) and image.size > 0
    assert image.dtype.kind in "uif" and image.dtype.isnative
    assert image.flags.c_contiguous and image.flags.writeable


# --------------------------------------------------------------------------- check_image


def _problem(image: np.ndarray, allow_nan: bool) -> str | None:
    """check_image's rules, stated plainly: the problem with ``image``, or None."""
    if image.ndim not in (2, 3):
        return "shape"
    if image.size == 0:
        return "empty"
    if image.ndim == 3 and not 1 <= image.shape[2] <= MAX_BANDS:
        return "bands"
    if min(image.shape[:2]) < MIN_SIDE:
        return "too small"
    if image.dtype.kind not in "biuf":
        return "dtype"
    values = image.astype(np.float64)
    if np.isinf(values).any():
        return "infinite"
    if np.isnan(values).any() and not allow_nan:
        return "NaN"
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "no valid pixels"
    if finite.min() == finite.max():
        return "constant"
    with np.errstate(over="ignore"):  # the overflow is what this branch detects
        span = np.float64(finite.max()) - np.float64(finite.min())
    if not np.isfinite(span):
        return "too wide"
    return None


_ANY_DTYPES = [*REAL_DTYPES, np.complex64, np.dtype("timedelta64[s]"),
               np.dtype("datetime64[s]")]
_SPECIALS = ("nan", "inf", "-inf", "range", "block", "all-nan")
"""What :func:`_values` may plant: NaN, +-inf, the dtype's +-max (a range float64 cannot
span), a block of NaN (as invalid depth), NaN everywhere."""


@st.composite
def _values(draw: st.DrawFn, dtype: np.dtype, shape: tuple[int, ...],
            specials: tuple[str, ...] = _SPECIALS, one_in: int = 2) -> np.ndarray:
    """An array of ``dtype`` and ``shape``; floats are finite but for, one time in
    ``one_in``, one of ``specials`` at random places."""
    if dtype.kind in "mM":
        return draw(hnp.arrays(dtype, shape, elements=st.integers(-1000, 1000).map(
            lambda n: np.array(n).astype(dtype))))
    fill = draw(st.sampled_from([None, st.nothing()]))  # nothing: no constant background
    if dtype.kind == "f":
        info = np.finfo(dtype)
        elements = st.floats(-1e3, 1e3, width=info.bits)
        image = draw(hnp.arrays(dtype, shape, elements=elements, fill=fill))
    else:
        image = draw(hnp.arrays(dtype, shape, fill=fill))
    if image.size > 1 and draw(st.integers(0, 3)) > 0:  # hypothesis likes constant arrays
        image.flat[0], image.flat[-1] = 0, 1
    if dtype.kind != "f" or image.size == 0 or not specials or draw(
            st.integers(1, one_in)) > 1:
        return image
    special = draw(st.sampled_from(specials))
    where = draw(hnp.arrays(np.bool_, shape))
    if special == "range":
        image[where] = info.max
        image.flat[0] = -info.max
    elif special == "block" and len(shape) >= 2:
        y, x = draw(st.integers(0, shape[0] - 1)), draw(st.integers(0, shape[1] - 1))
        image[y:, x:] = np.nan
    elif special == "all-nan":
        image[...] = np.nan
    else:
        image[where] = float(special) if special != "block" else np.nan
    return image


@st.composite
def _images(draw: st.DrawFn) -> np.ndarray:
    """Small arrays of any dimensionality, size, dtype and values (NaN, inf included)."""
    ndim = draw(st.sampled_from([1, 2, 2, 2, 3, 3, 4]))
    sides = st.sampled_from([0, 1, 3, 4, 4, 5, 6, 7, 8])
    shape = [draw(sides) for _ in range(min(ndim, 2))]
    if ndim >= 3:
        shape.append(draw(st.sampled_from([0, 1, 2, 3, 3, 5, 16, 17])))
    if ndim == 4:
        shape.append(2)
    dtype = np.dtype(draw(st.sampled_from(_ANY_DTYPES)))
    return draw(_values(dtype, tuple(shape)))


@_examples(300)
@given(image=_images(), allow_nan=st.booleans())
def test_check_image_follows_its_rules(image: np.ndarray, allow_nan: bool) -> None:
    problem = _problem(image, allow_nan)
    event(f"problem: {problem}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            check_image(image, "thermal.png", allow_nan=allow_nan)
        except InputError as error:
            assert problem is not None, f"refused a good image: {error}"
            message = str(error)
            assert message.startswith("thermal.png: ") and "\n" not in message
            assert problem.lower() in message.lower(), (problem, message)
            verdict = "refused"
        else:
            assert problem is None, f"accepted an image with problem {problem!r}"
            verdict = "accepted"
        if image.ndim in (2, 3):  # orientation does not matter
            for turned in (image[::-1], image[:, ::-1], np.swapaxes(image, 0, 1)):
                try:
                    check_image(turned, "thermal.png", allow_nan=allow_nan)
                    assert verdict == "accepted"
                except InputError:
                    assert verdict == "refused"


# --------------------------------------------------------------------------- prepare_pair

_PAIR_DTYPES = [np.bool_, np.uint8, np.int16, np.uint16, np.int64, np.float16, np.float32,
                np.float32, np.float64, np.float64]


@st.composite
def _side_image(draw: st.DrawFn, height: int, width: int, specials: tuple[str, ...],
                one_in: int) -> np.ndarray:
    bands = draw(st.sampled_from([None, None, 1, 3, 3, 5]))
    shape = (height, width) if bands is None else (height, width, bands)
    dtype = np.dtype(draw(st.sampled_from(_PAIR_DTYPES)))
    return draw(_values(dtype, shape, specials, one_in))


@st.composite
def _pairs(draw: st.DrawFn) -> dict[str, object]:
    h, w = (draw(st.sampled_from([3, 4, 5, 6, 7, 8, 9, 9])) for _ in range(2))
    gh, gw = draw(st.sampled_from([(2 * h, 2 * w), (2 * h, 2 * w), (4 * h, 4 * w),
                                   (4 * h, 4 * w), (3 * h, 2 * w), (h + 1, w + 2),
                                   (2 * h, 5 * w), (h, w), (h - 1, w), (17 * h, 17 * w)]))
    target = draw(_side_image(h, w, ("nan", "inf", "range", "range", "block", "all-nan"), 2))
    guide = draw(_side_image(gh, gw, ("nan", "inf", "range", "range"), 4))
    scale = draw(st.sampled_from([None] * 8 + [0.5, 1.05, 1.5, 2.0, 4.0, 17.0,
                                              float("nan"), float("inf")]))
    invalid = draw(st.sampled_from([None, None, None, 0.0, 1.0, float("nan")]))
    mask = draw(st.none() | st.none() | hnp.arrays(np.bool_, (h, w)))
    return {"target": target, "guide": guide, "scale": scale, "invalid": invalid,
            "mask": mask}


@_examples(250)
@given(pair=_pairs())
def test_prepare_pair_raises_only_input_errors(pair: dict[str, object]) -> None:
    target, guide = pair["target"], pair["guide"]
    assert isinstance(target, np.ndarray) and isinstance(guide, np.ndarray)
    try:
        prepared = prepare_pair(target, guide, scale=pair["scale"], mask=pair["mask"],
                                invalid_value=pair["invalid"], device=torch.device("cpu"),
                                target_name="t.tif", guide_name="g.png")
    except InputError as error:
        message = str(error)
        assert "\n" not in message
        assert message.split(": ")[0] in ("t.tif", "g.png", "--scale"), message
        event("refused")
        return
    event("accepted")
    c = 1 if target.ndim == 2 else target.shape[2]
    assert prepared.target.shape[:2] == (1, c)
    assert prepared.target.shape[-2:] == target.shape[:2]
    assert prepared.valid.shape == (1, 1, *target.shape[:2])
    assert set(prepared.valid.unique().tolist()) <= {0.0, 1.0}
    assert prepared.valid.sum() > 0
    assert torch.isfinite(prepared.target).all()
    assert torch.isfinite(prepared.guide).all()
    assert prepared.guide.min() >= 0 and prepared.guide.max() <= 1
    out_h, out_w = prepared.guide.shape[-2:]
    assert out_h > target.shape[0] or out_w > target.shape[1]
    assert all(1 <= s <= 16.5 for s in prepared.scale)


def test_prepare_pair_refuses_a_range_float64_cannot_span() -> None:
    """Found by the properties above: a finite range whose width overflows gave NaN."""
    target = np.random.default_rng(1).random((8, 8))
    target[0, 0], target[7, 7] = -1e308, 1e308
    guide = np.random.default_rng(0).random((32, 32))
    with pytest.raises(InputError, match=r"t\.npy: .*too wide"):
        prepare_pair(target, guide, scale=None, mask=None, invalid_value=None,
                     device=torch.device("cpu"), target_name="t.npy")


def test_forced_scale_that_keeps_the_size_is_refused() -> None:
    """Found by the properties above: --scale 1.05 on 8x8 "super-resolved" to 8x8."""
    rng = np.random.default_rng(2)
    with pytest.raises(InputError, match=r"^--scale: 1\.05 x the 8x8 target rounds to"):
        prepare_pair(rng.random((8, 8)), rng.random((16, 16)), scale=1.05, mask=None,
                     invalid_value=None, device=torch.device("cpu"))
    prepared = prepare_pair(rng.random((8, 8)), rng.random((16, 16)), scale=1.1, mask=None,
                            invalid_value=None, device=torch.device("cpu"))
    assert prepared.guide.shape[-2:] == (9, 9)


def test_check_image_refuses_time_spans() -> None:
    """Found by the properties above: NumPy counts timedelta64 as a number."""
    spans = np.arange(36).reshape(6, 6).astype("timedelta64[s]")
    with pytest.raises(InputError, match="unsupported dtype timedelta64"):
        check_image(spans, "spans.npy", allow_nan=False)


def test_corpus_module_is_importable_without_cmsr_io() -> None:
    """The fuzz corpus builds files with other libraries than the one it tests."""
    source = (Path(__file__).parent / "fuzz" / "corpus.py").read_text()
    assert "cmsr" not in "".join(line for line in source.splitlines()
                                 if line.startswith(("import", "from")))
