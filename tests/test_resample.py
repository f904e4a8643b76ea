"""Tests for cmsr.method.resample: MATLAB imresize weights, exactness and differentiability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmsr.method.resample import (
    box,
    cubic,
    downsample,
    linear,
    resize,
    resize_matrix,
    scaled_size,
    upsample_bicubic,
)


def _image(shape, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=dtype)


# ------------------------------------------------------------------------ kernels


def test_cubic_kernel_interpolates_and_has_support_two():
    x = torch.tensor([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 2.5], dtype=torch.float64)
    assert torch.equal(cubic(x), torch.tensor([0, 0, 0, 1, 0, 0, 0], dtype=torch.float64))


def test_cubic_kernel_is_continuous_at_one_and_symmetric():
    eps = 1e-9
    x = torch.tensor([1 - eps, 1 + eps, 0.3, -0.3, 1.7, -1.7], dtype=torch.float64)
    values = cubic(x)
    assert abs(float(values[0] - values[1])) < 1e-8
    assert float(values[2]) == float(values[3])
    assert float(values[4]) == float(values[5])


def test_cubic_kernel_partition_of_unity():
    shifts = torch.linspace(0, 1, 11, dtype=torch.float64)
    total = sum(cubic(shifts + k) for k in range(-3, 4))
    torch.testing.assert_close(total, torch.ones_like(shifts), rtol=0, atol=1e-12)


def test_linear_and_box_kernels():
    x = torch.tensor([-1.5, -0.5, -0.25, 0.0, 0.49, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(linear(x), torch.tensor([0, 0.5, 0.75, 1, 0.51, 0.5, 0],
                                                       dtype=torch.float64))
    # box is half-open [-0.5, 0.5), as MATLAB's
    assert box(x).tolist() == [0, 1, 1, 1, 1, 0, 0]


# ------------------------------------------------------------------ resize_matrix


@pytest.mark.parametrize("kernel", ["cubic", "linear", "box"])
@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize(("n_in", "n_out"), [(4, 8), (10, 7), (7, 17), (5, 1), (1, 5), (9, 3),
                                             (13, 13), (2, 31)])
def test_resize_matrix_rows_sum_to_one(kernel, antialias, n_in, n_out):
    matrix = resize_matrix(n_in, n_out, kernel=kernel, antialias=antialias, dtype=torch.float64)
    assert matrix.shape == (n_out, n_in)
    torch.testing.assert_close(matrix.sum(dim=1), torch.ones(n_out, dtype=torch.float64),
                               rtol=0, atol=1e-12)


def test_resize_matrix_matlab_bicubic_x2_first_row_with_mirrored_border():
    # Output pixel 1 of a x2 enlargement sits at u = 0.75; its taps fall on input
    # pixels -1, 0, 1, 2 (1-based) with MATLAB's weights. Pixels 0 and -1 mirror onto 1 and 2.
    taps = {-1: -0.0234375, 0: 0.2265625, 1: 0.8671875, 2: -0.0703125}
    mirror = {-1: 2, 0: 1, 1: 1, 2: 2}
    expected = torch.zeros(4, dtype=torch.float64)
    for pixel, weight in taps.items():
        expected[mirror[pixel] - 1] += weight
    matrix = resize_matrix(4, 8, dtype=torch.float64)
    torch.testing.assert_close(matrix[0], expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(expected, torch.tensor([1.09375, -0.09375, 0.0, 0.0],
                                                      dtype=torch.float64))


def test_resize_matrix_matlab_bicubic_x2_interior_rows():
    matrix = resize_matrix(6, 12, dtype=torch.float64)
    # output pixel 4 (1-based): u = 2.25, taps on input pixels 1..4
    torch.testing.assert_close(matrix[3], torch.tensor(
        [-0.0703125, 0.8671875, 0.2265625, -0.0234375, 0, 0], dtype=torch.float64))
    # output pixel 5: u = 2.75, the mirror image
    torch.testing.assert_close(matrix[4], torch.tensor(
        [-0.0234375, 0.2265625, 0.8671875, -0.0703125, 0, 0], dtype=torch.float64))


def test_resize_matrix_is_flip_symmetric():
    # mirroring the input and the output gives the same weights reversed
    for n_in, n_out in [(4, 8), (10, 7), (7, 17), (9, 3)]:
        matrix = resize_matrix(n_in, n_out, dtype=torch.float64)
        torch.testing.assert_close(matrix, matrix.flip(0).flip(1), rtol=0, atol=1e-12)


def test_resize_matrix_box_docstring_example():
    expected = torch.tensor([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    assert torch.equal(resize_matrix(4, 2, kernel="box"), expected)


def test_resize_matrix_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lengths"):
        resize_matrix(0, 3)
    with pytest.raises(ValueError, match="lengths"):
        resize_matrix(3, 0)
    with pytest.raises(ValueError, match="unknown kernel"):
        resize_matrix(3, 6, kernel="lanczos3")


def test_resize_matrix_dtype_and_device():
    matrix = resize_matrix(5, 9, dtype=torch.float32, device="cpu")
    assert matrix.dtype == torch.float32
    assert matrix.device.type == "cpu"


# ------------------------------------------------------------------------- resize


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_box_downscale_by_integer_factor_equals_avg_pool(factor):
    image = _image((2, 3, 6 * factor, 5 * factor))
    out = resize(image, (6, 5), kernel="box")
    torch.testing.assert_close(out, F.avg_pool2d(image, factor), rtol=0, atol=1e-12)


def test_box_downscale_with_different_integer_factors_per_axis():
    image = _image((1, 1, 12, 12))
    out = downsample(image, (4, 6), kernel="box")
    torch.testing.assert_close(out, F.avg_pool2d(image, (3, 2)), rtol=0, atol=1e-12)


def test_box_docstring_example():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    expected = torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]])
    torch.testing.assert_close(resize(x, (2, 2), kernel="box"), expected)


@pytest.mark.parametrize("kernel", ["cubic", "linear", "box"])
@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize(("size_in", "size_out"), [((7, 5), (17, 11)), ((12, 12), (5, 7)),
                                                   ((10, 9), (7, 20)), ((3, 4), (1, 1)),
                                                   ((1, 1), (4, 3))])
def test_constant_image_stays_constant(kernel, antialias, size_in, size_out):
    image = torch.full((1, 2, *size_in), 3.25, dtype=torch.float64)
    out = resize(image, size_out, kernel=kernel, antialias=antialias)
    assert out.shape == (1, 2, *size_out)
    torch.testing.assert_close(out, torch.full_like(out, 3.25), rtol=0, atol=1e-12)


def test_box_downscale_by_non_integer_factor_weights_pixels_by_footprint_overlap():
    eye = torch.eye(5, dtype=torch.float64)[None, None]  # column j = unit impulse at pixel j
    weights = downsample(eye, (2, 5), kernel="box")[0, 0]
    expected = torch.tensor([[0.4, 0.4, 0.2, 0.0, 0.0], [0.0, 0.0, 0.2, 0.4, 0.4]],
                            dtype=torch.float64)
    torch.testing.assert_close(weights, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("size_in", "size_out"), [((7, 5), (17, 11)), ((5, 7), (11, 17)),
                                                   ((10, 9), (3, 20)), ((4, 4), (4, 9))])
def test_output_size_non_square_non_divisible(size_in, size_out):
    image = _image((2, 3, *size_in), dtype=torch.float32)
    assert resize(image, size_out).shape == (2, 3, *size_out)
    assert upsample_bicubic(image, size_out).shape == (2, 3, *size_out)
    assert downsample(image, size_out, kernel="box").shape == (2, 3, *size_out)


def test_resize_same_size_is_identity():
    image = _image((1, 2, 6, 7))
    assert torch.equal(resize(image, (6, 7)), image)


def test_resize_keeps_float_dtype_and_casts_others_to_float32():
    assert resize(_image((1, 1, 4, 4), dtype=torch.float64), (8, 8)).dtype == torch.float64
    assert resize(_image((1, 1, 4, 4), dtype=torch.float32), (8, 8)).dtype == torch.float32
    integers = torch.arange(16, dtype=torch.int64).reshape(1, 1, 4, 4)
    out = resize(integers, (2, 2), kernel="box")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))


def test_resize_rejects_non_4d_input():
    with pytest.raises(ValueError, match="B, C, H, W"):
        resize(torch.zeros(4, 4), (8, 8))


def test_resize_is_separable_matrix_product():
    image = _image((1, 1, 7, 5))
    rows = resize_matrix(7, 17, dtype=torch.float64)
    cols = resize_matrix(5, 11, dtype=torch.float64)
    torch.testing.assert_close(resize(image, (17, 11)), rows @ image @ cols.T)
    # the x and y passes commute: resizing one axis at a time gives the same result
    two_pass = resize(resize(image, (17, 5)), (17, 11))
    torch.testing.assert_close(resize(image, (17, 11)), two_pass)


@pytest.mark.parametrize(("n_in", "n_out"), [(8, 16), (6, 15), (5, 20), (9, 13)])
def test_cubic_upsampling_reproduces_linear_ramp_away_from_borders(n_in, n_out):
    ramp = torch.arange(n_in, dtype=torch.float64)  # value = zero-based pixel index
    image = ramp.reshape(1, 1, 1, n_in).expand(1, 1, 3, n_in)
    out = upsample_bicubic(image, (3, n_out))[0, 0, 1]
    s = n_out / n_in
    centres = torch.arange(1, n_out + 1, dtype=torch.float64) / s + 0.5 * (1 - 1 / s) - 1
    interior = (centres >= 1.0) & (centres <= n_in - 2.0)  # all 4 taps inside the image
    assert interior.sum() >= 4
    torch.testing.assert_close(out[interior], centres[interior], rtol=0, atol=1e-12)


def _matlab_imresize_1d(values: np.ndarray, n_out: int) -> np.ndarray:
    """MATLAB's antialiased bicubic imresize along one axis, written out directly."""

    def keys(x):
        ax = np.abs(x)
        return np.where(ax <= 1, 1.5 * ax**3 - 2.5 * ax**2 + 1,
                        np.where(ax <= 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0.0))

    n_in = values.shape[0]
    s = n_out / n_in
    stretch = min(s, 1.0)
    out = np.zeros(n_out)
    for i in range(1, n_out + 1):
        u = i / s + 0.5 * (1 - 1 / s)
        js = np.arange(math.floor(u) - 20, math.ceil(u) + 21)  # generous window, 1-based
        w = stretch * keys(stretch * (u - js))
        w = w / w.sum()
        # symmetric padding: ... 2 1 | 1 2 ... n | n n-1 ...
        idx = js - 1
        idx = np.mod(idx, 2 * n_in)
        idx = np.where(idx >= n_in, 2 * n_in - 1 - idx, idx)
        out[i - 1] = float((w * values[idx]).sum())
    return out


@pytest.mark.parametrize(("n_in", "n_out"), [(10, 7), (9, 4), (7, 17)])
def test_cubic_resize_matches_direct_matlab_formula(n_in, n_out):
    rng = np.random.default_rng(3)
    image = rng.random((n_in, n_in + 1))
    expected = np.stack([_matlab_imresize_1d(col, n_out) for col in image.T], axis=1)
    m_out = round((n_in + 1) * n_out / n_in)
    expected = np.stack([_matlab_imresize_1d(row, m_out) for row in expected], axis=0)
    got = resize(torch.from_numpy(image)[None, None], (n_out, m_out), antialias=True)[0, 0]
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


def test_antialias_attenuates_nyquist_pattern():
    # a pixel-level checkerboard shrunk by a non-integer factor: antialiased ~ grey
    y, x = np.mgrid[:20, :20]
    checker = torch.from_numpy(((x + y) % 2).astype(np.float64))[None, None]
    smooth = resize(checker, (7, 7), antialias=True)
    aliased = resize(checker, (7, 7), antialias=False)
    assert float((smooth - 0.5).abs().max()) < 0.1
    assert float((aliased - 0.5).abs().max()) > 0.3


def test_resize_gradcheck_float64():
    image = _image((1, 2, 4, 3)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: resize(t, (7, 5)), (image,))
    assert torch.autograd.gradcheck(lambda t: resize(t, (2, 2), kernel="box"), (image,))
    assert torch.autograd.gradcheck(lambda t: resize(t, (3, 2), kernel="linear"), (image,))


def test_downsample_of_upsample_is_close_to_identity_for_smooth_image():
    y, x = np.mgrid[:12, :12] / 12.0
    smooth = torch.from_numpy(np.sin(2 * x) + np.cos(3 * y))[None, None]
    back = downsample(upsample_bicubic(smooth, (48, 48)), (12, 12))
    assert float((back - smooth).abs().max()) < 0.02


# -------------------------------------------------------------------- scaled_size


def test_scaled_size():
    assert scaled_size((80, 60), (4.0, 4.0)) == (320, 240)
    assert scaled_size((7, 5), (2.5, 2.2)) == (18, 11)  # 17.5 rounds to even, 11.0
    assert scaled_size((10, 10), (1.26, 1.24)) == (13, 12)
    assert scaled_size((3, 3), (0.1, 0.1)) == (1, 1)  # never below one pixel
    assert scaled_size((12, 9), (0.5, 1 / 3)) == (6, 3)


def test_aliased_reduction_interpolates_at_the_output_centres():
    from cmsr.method.resample import downsample
    x = torch.arange(64.0, dtype=torch.float64).reshape(1, 1, 8, 8)
    # linear interpolation at the centres of 2x2 blocks of a ramp is the block mean
    expected = x.reshape(1, 1, 4, 2, 4, 2).mean(dim=(3, 5))
    torch.testing.assert_close(downsample(x, (4, 4), kernel="linear-aliased"), expected)
    rng = torch.Generator().manual_seed(0)
    noisy = torch.rand(1, 1, 32, 32, generator=rng, dtype=torch.float64)
    aliased = downsample(noisy, (4, 4), kernel="cubic-aliased")
    smooth = downsample(noisy, (4, 4), kernel="cubic")
    assert aliased.std() > 2 * smooth.std()  # no antialiasing: the noise survives


def test_a_box_kernel_file_equals_average_pooling_and_has_gradients():
    from cmsr.method.resample import blur_and_sample, downsample
    x = torch.rand(2, 3, 24, 36, dtype=torch.float64, requires_grad=True)
    box = tuple(tuple(1.0 for _ in range(4)) for _ in range(4))
    torch.testing.assert_close(downsample(x, (6, 9), kernel=box),
                               downsample(x, (6, 9), kernel="box"))
    kernel = torch.rand(3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda image: blur_and_sample(image, (3, 4), kernel),
        (x[:1, :1, :9, :12].detach().requires_grad_(),))


def test_an_odd_kernel_is_centred():
    from cmsr.method.resample import blur_and_sample
    image = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    image[0, 0, 4, 4] = 1.0
    kernel = torch.zeros(3, 3, dtype=torch.float64)
    kernel[1, 1] = 1.0  # identity blur: reading at the centres is point sampling
    out = blur_and_sample(image, (3, 3), kernel)
    assert out[0, 0, 1, 1] == 1.0 and out.sum() == 1.0
