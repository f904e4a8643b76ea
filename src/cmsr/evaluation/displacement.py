"""Moving the guide for misalignment studies: a global shift and rotation, a smooth
random local warp, and a smooth horizontal disparity as between the two cameras of a
stereo rig (:func:`displace`, :func:`displacement_field`, :func:`disparity_field`).

Randomness is reproducible: everything is drawn from ``seed``, with separate streams
(:func:`random_stream`) for the input noise, the guide noise, the shift direction,
the local warp and the disparity, so switching one of them on or off leaves the
others unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cmsr.errors import InputError
from cmsr.method.normalize import array_to_tensor, tensor_to_array
from cmsr.method.resample import resize
from cmsr.method.validate import check_array
from cmsr.method.warp.grid import sample

WARP_CONTROL_POINTS: int = 4
"""The local warp is a ``4 x 4`` grid of random control displacements, upsampled."""

#: How far a disparity field strays from its mean: it spans ``mean * (1 +- this)``.
DISPARITY_VARIATION: float = 0.5

# Stream numbers under SeedSequence(seed).spawn: one per kind of randomness. (Children of
# a SeedSequence depend only on their index, so adding a stream changes no other.)
INPUT_NOISE, GUIDE_NOISE, SHIFT, WARP, DISPARITY = range(5)
_STREAMS = 5


def random_stream(seed: int, stream: int) -> np.random.Generator:
    """The generator of one kind of randomness (:data:`INPUT_NOISE`, ...) under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(_STREAMS)[stream])


# --------------------------------------------------------------------------- displacement


def disparity_field(height: int, width: int, *, mean: float, seed: int) -> np.ndarray:
    """A smooth random horizontal disparity, as between two cameras side by side.

    A ``4 x 4`` grid of random values (the :data:`DISPARITY` stream of ``seed``),
    enlarged with MATLAB-style bicubic interpolation, centred and scaled so that the
    field's mean is exactly ``mean`` and it spans ``mean * (1 - v)`` to ``mean * (1 + v)``
    at most, ``v`` = :data:`DISPARITY_VARIATION` (nearer and farther parts of a scene).

    Parameters
    ----------
    height, width:
        Size in pixels.
    mean:
        Mean disparity in pixels, >= 0.
    seed:
        Seed of the field's shape.

    Returns
    -------
    numpy.ndarray
        ``(height, width)`` float64, pixels.

    Examples
    --------
    >>> field = disparity_field(30, 40, mean=4.0, seed=0)
    >>> round(float(field.mean()), 6), bool(field.min() >= 2.0), bool(field.max() <= 6.0)
    (4.0, True, True)
    """
    if not mean:
        return np.zeros((height, width))
    points = WARP_CONTROL_POINTS
    coarse = random_stream(seed, DISPARITY).standard_normal((1, 1, points, points))
    fine = resize(torch.from_numpy(coarse), (height, width), kernel="cubic")[0, 0].numpy()
    fine = fine - fine.mean()
    largest = float(np.abs(fine).max())
    variation = fine / largest if largest > 0 else fine
    return mean * (1.0 + DISPARITY_VARIATION * variation)


def displacement_field(
    height: int,
    width: int,
    *,
    shift: float,
    rotation: float,
    local_warp: float,
    seed: int,
    direction: float | None = None,
    disparity: float = 0.0,
) -> np.ndarray:
    """Where each output pixel of a displaced image samples the input.

    The displaced image is ``out[y, x] = image[y + dy, x + dx]`` with ``(dx, dy) =
    field[y, x]`` (bilinear interpolation). The content is first rotated
    counter-clockwise by ``rotation`` degrees about the image centre and moved by
    ``shift`` pixels in a direction drawn from ``seed`` (one rigid motion), then
    warped locally. So a pure shift gives a constant field of length
    ``shift`` (the content moves by ``-field``), and a pure local warp a field whose
    largest length is exactly ``local_warp``.

    Parameters
    ----------
    height, width:
        Image size in pixels.
    shift:
        Length of the global displacement, pixels.
    rotation:
        Degrees, counter-clockwise as displayed.
    local_warp:
        Largest length of the local warp, pixels: a ``4 x 4`` grid of random
        control displacements, upsampled with MATLAB-style bicubic interpolation and
        scaled to that length.
    seed:
        Seed of the shift direction and of the local warp (independent streams).
    direction:
        Direction the content moves in, degrees from the +x axis towards +y (down
        as displayed); drawn uniformly from ``seed`` when None.
    disparity:
        Mean of a horizontal disparity added last (:func:`disparity_field`): each
        pixel samples that many pixels to its right, so the content moves left, as
        in the right camera of a rig whose other camera saw the original.

    Returns
    -------
    numpy.ndarray
        ``(height, width, 2)`` float32 offsets ``(dx, dy)`` in pixels.

    Examples
    --------
    >>> field = displacement_field(4, 6, shift=3.0, rotation=0.0, local_warp=0.0,
    ...                            seed=0, direction=0.0)
    >>> field[0, 0].tolist()  # content moves 3 px right: pixels sample 3 px left
    [-3.0, 0.0]
    >>> field = displacement_field(32, 32, shift=0.0, rotation=0.0, local_warp=2.0, seed=1)
    >>> round(float(np.hypot(field[..., 0], field[..., 1]).max()), 5)
    2.0
    """
    return _field(height, width, shift=shift, rotation=rotation, local_warp=local_warp,
                  seed=seed, direction=direction, disparity=disparity).astype(np.float32)


def _field(height: int, width: int, *, shift: float, rotation: float, local_warp: float,
           seed: int, direction: float | None, disparity: float = 0.0) -> np.ndarray:
    """:func:`displacement_field` in float64."""
    if height < 1 or width < 1:
        raise InputError(f"the image size must be positive, got {width}x{height}", "image")
    ys, xs = np.meshgrid(np.arange(height, dtype=np.float64),
                         np.arange(width, dtype=np.float64), indexing="ij")
    # local warp first: the point each output pixel takes from the rigidly moved image
    warp_x = np.zeros((height, width))
    warp_y = np.zeros((height, width))
    if local_warp:
        points = WARP_CONTROL_POINTS
        coarse = random_stream(seed, WARP).standard_normal((1, 2, points, points))
        fine = resize(torch.from_numpy(coarse), (height, width), kernel="cubic")[0].numpy()
        length = np.hypot(fine[0], fine[1])
        largest = float(length.max())
        if largest > 0:
            warp_x, warp_y = fine[0] * (local_warp / largest), fine[1] * (local_warp / largest)
    px, py = xs + warp_x, ys + warp_y

    # then the rigid motion, inverted: content q goes to c + R (q - c) + t
    if shift or rotation:
        if direction is None:
            angle = random_stream(seed, SHIFT).uniform(0.0, 2.0 * math.pi)
        else:
            angle = math.radians(direction)
        tx, ty = shift * math.cos(angle), shift * math.sin(angle)
        theta = math.radians(rotation)
        cos, sin = math.cos(theta), math.sin(theta)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        vx, vy = px - tx - cx, py - ty - cy
        # R maps (x, y) to (x cos + y sin, -x sin + y cos): counter-clockwise with y down
        px, py = cx + vx * cos - vy * sin, cy + vx * sin + vy * cos
    if disparity:
        px = px + disparity_field(height, width, mean=disparity, seed=seed)
    return np.stack((px - xs, py - ys), axis=-1)


def displace(
    image: np.ndarray,
    *,
    shift: float = 0.0,
    rotation: float = 0.0,
    local_warp: float = 0.0,
    seed: int = 0,
    direction: float | None = None,
    disparity: float = 0.0,
) -> np.ndarray:
    """Move an image by a global shift and rotation, a smooth local warp and a horizontal
    disparity.

    See :func:`displacement_field` for the parameters. The image is resampled once
    with bicubic interpolation (a camera elsewhere sees the scene as sharply, so the
    move should not blur it the way bilinear interpolation at half-pixel offsets
    would), clipped to the image's own range; points outside it take the nearest
    border pixel, so there are no black borders. The size is unchanged.

    Parameters
    ----------
    image:
        ``(H, W)`` or ``(H, W, C)``, any real dtype.

    Returns
    -------
    numpy.ndarray
        Same shape, float32, within the input's range. With no displacement, the
        image itself as float32.

    Examples
    --------
    >>> image = np.arange(20, dtype=np.uint8).reshape(4, 5)
    >>> displace(image, shift=1.0, direction=0.0)[0].tolist()
    [0.0, 0.0, 1.0, 2.0, 3.0]
    >>> displace(image, rotation=180.0)[0].tolist()
    [19.0, 18.0, 17.0, 16.0, 15.0]
    """
    array = check_array(image, "image")
    if not (shift or rotation or local_warp or disparity):
        return np.array(array, dtype=np.float32)
    height, width = array.shape[:2]
    field = _field(height, width, shift=shift, rotation=rotation, local_warp=local_warp,
                   seed=seed, direction=direction, disparity=disparity)
    xs = np.arange(width, dtype=np.float64)[None, :] + field[..., 0]
    ys = np.arange(height, dtype=np.float64)[:, None] + field[..., 1]
    grid = np.stack(((2.0 * xs + 1.0) / width - 1.0, (2.0 * ys + 1.0) / height - 1.0), axis=-1)
    moved = sample(array_to_tensor(array, np.float64), torch.from_numpy(grid)[None],
                   mode="bicubic", padding_mode="border")
    moved = moved.clamp(float(np.nanmin(array)), float(np.nanmax(array)))
    return np.ascontiguousarray(tensor_to_array(moved, band_axis=array.ndim == 3))


# --------------------------------------------------------------------------- protocol
