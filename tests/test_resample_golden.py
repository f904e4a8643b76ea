"""cmsr's MATLAB-style resize against values from other implementations.

* ``golden/resize_octave.npz``: GNU Octave 7.3's ``imresize`` (image package 2.14), made
  by ``golden/make_resize_golden.py`` on integer-valued images 8x6 to 16x16: bicubic
  and bilinear enlargement x1.5, x2, x3, x4, antialiased reduction /2, /3, /4,
  non-square and mixed, and reduction without antialiasing. Octave's reduction widens
  the kernel by the factor as MATLAB's does (its own tests check it against MATLAB's
  arrays, below). cmsr and Octave agree to 5e-13 on values up to 255 in float64.
* MATLAB's own ``imresize`` outputs, as GNU Octave's image package ships them in the
  tests of its ``imresize.m`` (rounded by MATLAB to uint8, where its integer path may
  be one level off, as that file notes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cmsr.method.resample import downsample, resize

GOLDEN = np.load(Path(__file__).parent / "golden" / "resize_octave.npz")
CASES = sorted({key.split("/")[0] for key in GOLDEN.files if "/" in key})


def _cmsr(image: np.ndarray, size: tuple[int, int], name: str,
          dtype: torch.dtype = torch.float64) -> np.ndarray:
    """cmsr's resize of ``image`` as the case ``name`` says (kernel, antialiasing)."""
    kernel = "cubic" if name.startswith("cubic") else "linear"
    x = torch.from_numpy(np.asarray(image, dtype=np.float64)).to(dtype)[None, None]
    if name.endswith("_aliased"):
        out = downsample(x, size, kernel=f"{kernel}-aliased")  # type: ignore[arg-type]
    elif size[0] <= image.shape[0] and size[1] <= image.shape[1]:
        out = downsample(x, size, kernel=kernel)
    else:
        out = resize(x, size, kernel=kernel)
    return out[0, 0].double().numpy()


def test_the_fixture_covers_enlargement_reduction_and_antialiasing():
    assert len(CASES) == 12
    assert "Octave 7.3.0" in str(GOLDEN["versions"])
    # the antialiased and the plain reduction of the same kind of input differ a lot:
    # the fixture does exercise the widened kernel
    image = GOLDEN["cubic_div2_aliased/input"]
    widened = _cmsr(image, (8, 6), "cubic")
    assert np.abs(widened - GOLDEN["cubic_div2_aliased/output"]).max() > 20


@pytest.mark.parametrize("name", CASES)
def test_resize_matches_octave_in_float64(name):
    # Tolerance 1e-9 on values up to 255: far above float64 round-off from another
    # order of summation (measured: at most 5e-13), far below any error of a centre,
    # a kernel weight or a border (those move values by whole levels).
    image, expected = GOLDEN[f"{name}/input"], GOLDEN[f"{name}/output"]
    got = _cmsr(image, expected.shape, name)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", CASES)
def test_resize_matches_octave_in_float32(name):
    # float32 (what cmsr trains in): 3e-4 on values up to 255 is a few float32 eps.
    image, expected = GOLDEN[f"{name}/input"], GOLDEN[f"{name}/output"]
    got = _cmsr(image, expected.shape, name, dtype=torch.float32)
    np.testing.assert_allclose(got, expected, rtol=0, atol=3e-4)


# MATLAB's imresize on this 8x10 uint8 image (from the tests in GNU Octave's image
# package, imresize.m, "reference results from matlab").
MATLAB_INPUT = np.array([
    [116, 227, 153, 69, 146, 194, 59, 130, 139, 106],
    [2, 47, 137, 249, 90, 75, 16, 24, 158, 44],
    [155, 68, 46, 84, 166, 156, 69, 204, 32, 152],
    [71, 221, 137, 230, 210, 153, 192, 115, 30, 118],
    [107, 143, 108, 52, 51, 73, 101, 21, 175, 90],
    [54, 158, 143, 77, 26, 168, 113, 229, 165, 225],
    [9, 47, 133, 135, 130, 207, 236, 43, 19, 73],
    [129, 60, 59, 243, 64, 181, 249, 56, 32, 86],
])
MATLAB_OUTPUTS = {
    # imresize(in, 0.5, "bicubic") (antialiased)
    "cubic": [[105, 140, 126, 81, 109], [110, 134, 153, 114, 93],
              [108, 108, 94, 127, 146], [67, 126, 162, 149, 62]],
    # imresize(in, 0.5, "bicubic", "Antialiasing", false)
    "cubic_aliased": [[92, 164, 123, 38, 118], [139, 116, 188, 167, 69],
                      [121, 87, 67, 108, 180], [54, 153, 141, 149, 42]],
    # imresize(in, 0.5, "bilinear") (antialiased)
    "linear": [[108, 136, 125, 89, 107], [111, 132, 143, 114, 99],
               [106, 110, 106, 127, 136], [75, 124, 154, 142, 75]],
    # imresize(in, 0.5, "bilinear", "Antialiasing", false)
    "linear_aliased": [[98, 152, 126, 58, 112], [129, 125, 172, 146, 83],
                       [116, 96, 80, 116, 164], [62, 143, 146, 147, 53]],
    # imresize(in, 1.5, "bicubic")
    "cubic_x1.5": [
        [116, 187, 237, 171, 94, 61, 135, 191, 187, 75, 91, 142, 140, 124, 108],
        [43, 92, 143, 149, 164, 163, 119, 123, 118, 44, 38, 80, 151, 118, 62],
        [13, 21, 47, 107, 195, 228, 115, 81, 70, 24, 19, 56, 137, 105, 48],
        [146, 98, 49, 49, 71, 107, 148, 159, 132, 58, 124, 176, 61, 85, 146],
        [118, 139, 144, 92, 116, 168, 201, 188, 159, 140, 167, 158, 27, 69, 153],
        [61, 151, 218, 145, 174, 219, 201, 164, 146, 187, 148, 84, 48, 76, 115],
        [102, 132, 151, 119, 90, 72, 72, 72, 83, 114, 60, 31, 144, 130, 80],
        [81, 121, 154, 133, 87, 41, 19, 67, 116, 95, 108, 140, 183, 180, 163],
        [37, 95, 152, 150, 117, 73, 35, 108, 179, 130, 174, 214, 153, 176, 219],
        [3, 29, 73, 131, 136, 120, 116, 162, 214, 229, 147, 54, 35, 62, 96],
        [67, 54, 51, 83, 153, 187, 111, 141, 210, 255, 149, 22, 13, 42, 74],
        [142, 99, 53, 43, 164, 237, 77, 103, 197, 254, 159, 42, 31, 59, 91]],
    # imresize(in, 1.5, "bilinear")
    "linear_x1.5": [
        [116, 172, 215, 165, 111, 82, 133, 170, 171, 81, 95, 132, 138, 123, 106],
        [59, 98, 138, 144, 152, 152, 125, 127, 119, 54, 58, 89, 137, 112, 75],
        [27, 39, 62, 110, 172, 202, 123, 96, 78, 36, 40, 68, 123, 100, 62],
        [129, 97, 64, 62, 87, 119, 146, 148, 128, 74, 117, 154, 73, 94, 134],
        [113, 129, 136, 101, 125, 162, 183, 172, 151, 135, 146, 139, 53, 83, 135],
        [77, 143, 195, 145, 166, 197, 186, 162, 146, 171, 138, 92, 62, 84, 113],
        [101, 129, 149, 120, 98, 81, 78, 82, 91, 111, 77, 56, 132, 123, 95],
        [81, 116, 147, 130, 96, 61, 43, 80, 119, 109, 116, 132, 162, 164, 158],
        [46, 93, 139, 141, 114, 80, 50, 109, 168, 141, 166, 189, 151, 171, 200],
        [16, 41, 77, 123, 130, 123, 115, 157, 204, 214, 145, 69, 48, 71, 98],
        [69, 62, 61, 89, 143, 174, 112, 146, 202, 235, 147, 46, 30, 53, 80],
        [129, 95, 60, 59, 151, 213, 94, 123, 192, 238, 153, 52, 36, 59, 86]],
}


def _uint8(values: np.ndarray) -> np.ndarray:
    """MATLAB's cast to uint8: round half away from zero, saturate."""
    return np.clip(np.floor(values + 0.5), 0, 255)


@pytest.mark.parametrize("name", sorted(MATLAB_OUTPUTS))
def test_resize_matches_matlab_uint8_outputs(name):
    # MATLAB resizes a uint8 image one axis at a time (rows first when both scales are
    # equal) and rounds to uint8 after each; so does this comparison. Measured: 437 of
    # the 440 pixels equal, 3 one level off (MATLAB's integer path, as imresize.m in
    # Octave notes; at most 2 in one case). Tolerance: one level, at most 2 pixels off
    # per case. The antialiased and the plain reductions differ by up to 53 levels.
    expected = np.asarray(MATLAB_OUTPUTS[name], dtype=np.float64)
    kernel = name.removesuffix("_x1.5")
    rows = _uint8(_cmsr(MATLAB_INPUT, (expected.shape[0], MATLAB_INPUT.shape[1]), kernel))
    got = _uint8(_cmsr(rows, expected.shape, kernel))
    assert np.abs(got - expected).max() <= 1.0
    assert np.count_nonzero(got != expected) <= 2


def test_resize_matches_matlab_float_enlargement_of_two_pixels():
    # MATLAB: imresize([10 6], [3 3]) (bicubic) is [10.2778 8 5.7222] on every row.
    got = _cmsr(np.array([[10.0, 6.0]]), (3, 3), "cubic")
    expected = np.tile([10.27777777777777, 8.0, 5.72222222222222], (3, 1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)
