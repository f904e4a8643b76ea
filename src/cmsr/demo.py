"""A built-in example pair, drawn procedurally: a depth map and an RGB photo of one scene.

The scene (all positions relative to the image size, so any size works):

* a **wall** at the back whose depth is a slanted plane, painted with rows of dark
  letter-like glyphs ("graffiti");
* a **board** (rectangle) standing at a slant, so its depth varies linearly, in front
  of the wall;
* a large **disc** at one constant depth, partly covering the board, printed with a
  fine checkerboard;
* a small **ball** (disc) in front of everything, overlapping the board;
* a thin **pole** at constant depth, narrower than two low-resolution pixels.

The depth map ("ground truth") is piecewise planar with sharp edges: brighter means
closer, as in a disparity map. The low-resolution target is that ground truth averaged
over ``scale x scale`` blocks, the way a depth sensor integrates its pixel footprint.

The RGB guide gives every object its own colour, so every depth edge is also a colour
edge, with soft shading and mild sensor noise. It also carries **texture that exists
only in the colour image**: the checkerboard on the flat disc and the glyphs on the
wall. A good guided super-resolution takes the edges from the guide and leaves this
texture out (the depth there is flat); copying it into the result is the typical
failure of guided methods ("texture copying"), which the demo makes visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The large textured disc: centre (y, x) and radius, as fractions of (H, W) and of H.
DISC = (0.42, 0.34, 0.26)
#: The ball: centre (y, x) and radius, as fractions of (H, W) and of H.
BALL = (0.70, 0.72, 0.14)
#: The slanted board: top, bottom (fractions of H), left, right (fractions of W).
BOARD = (0.18, 0.88, 0.48, 0.92)
#: The pole: left and right edge, as fractions of W (it spans the full height).
POLE = (0.045, 0.06)
#: Side of one checkerboard square on the disc, in high-resolution pixels.
CHECKER = 4


@dataclass(frozen=True)
class DemoPair:
    """A depth-like target, its RGB guide and the ground truth.

    Attributes
    ----------
    target_lr:
        ``(h, w)`` ``uint8``: the ground truth averaged over ``scale x scale`` blocks.
    guide:
        ``(H, W, 3)`` ``uint8`` RGB photo of the scene, ``H = h * scale``.
    ground_truth:
        ``(H, W)`` ``uint8`` depth-like map (brighter = closer).
    scale:
        The integer enlargement factor.
    texture_mask:
        ``(H, W)`` bool: where the guide shows texture that the depth does not have
        (the checkerboard on the disc and the glyphs on the wall).
    """

    target_lr: np.ndarray
    guide: np.ndarray
    ground_truth: np.ndarray
    scale: int
    texture_mask: np.ndarray


def _disc(yy: np.ndarray, xx: np.ndarray, spec: tuple[float, float, float]) -> np.ndarray:
    """``(H, W)`` bool disc; ``spec`` = centre (y / H, x / W) and radius / H."""
    height, width = yy.shape
    cy, cx, r = spec
    return (yy - cy * height) ** 2 + (xx - cx * width) ** 2 <= (r * height) ** 2


def _glyphs(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``(H, W)`` bool: rows of random 3x5-cell letter-like glyphs ("painted text")."""
    cell = max(1, round(height / 96))  # one glyph stroke, in pixels
    glyph_h, glyph_w = 5 * cell, 3 * cell
    mask = np.zeros((height, width), dtype=bool)
    line_gap = glyph_h + 3 * cell
    for top in range(2 * cell, height - glyph_h, line_gap):
        left = 2 * cell + int(rng.integers(0, 4 * cell + 1))
        while left + glyph_w < width:
            if rng.random() < 0.15:  # a space between words
                left += glyph_w + cell
                continue
            pattern = rng.random((5, 3)) < 0.55
            pattern[:, 0] |= rng.random() < 0.5  # most letters have a vertical stroke
            block = np.kron(pattern, np.ones((cell, cell), dtype=bool))
            mask[top:top + glyph_h, left:left + glyph_w] |= block
            left += glyph_w + cell
    return mask


def _blur3(image: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur over the first two axes, edges repeated."""
    out = image
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (1, 1)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        first = np.take(padded, range(0, n), axis=axis)
        middle = np.take(padded, range(1, n + 1), axis=axis)
        last = np.take(padded, range(2, n + 2), axis=axis)
        out = (first + 2.0 * middle + last) / 4.0
    return out


def make_demo_pair(size: tuple[int, int] = (192, 256), scale: int = 4, seed: int = 0
                   ) -> DemoPair:
    """Draw the demo scene (see the module docstring).

    Parameters
    ----------
    size:
        ``(H, W)`` of the guide and the ground truth; both must be multiples of
        ``scale`` and at least ``8 * scale``.
    scale:
        Integer enlargement factor, 2 to 16.
    seed:
        Seeds the glyphs and the noise; the same arguments give identical arrays.

    Returns
    -------
    DemoPair
        ``target_lr (H/scale, W/scale) uint8``, ``guide (H, W, 3) uint8``,
        ``ground_truth (H, W) uint8``, ``scale``, ``texture_mask (H, W) bool``.

    Examples
    --------
    >>> pair = make_demo_pair((64, 96), scale=4)
    >>> pair.target_lr.shape, pair.guide.shape, pair.ground_truth.dtype
    ((16, 24), (64, 96, 3), dtype('uint8'))
    """
    height, width = int(size[0]), int(size[1])
    if not 2 <= scale <= 16 or int(scale) != scale:
        raise ValueError(f"scale must be an integer from 2 to 16, got {scale}")
    if height % scale or width % scale or min(height, width) < 8 * scale:
        raise ValueError(f"size {size} must be multiples of scale {scale}, at least "
                         f"{8 * scale} pixels each")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    v, u = yy / height, xx / width  # relative coordinates in [0, 1)

    # --- depth (brighter = closer), painted back to front
    depth = 40.0 + 45.0 * v + 20.0 * u  # the wall: a slanted plane
    top, bottom, left, right = BOARD
    board = (v >= top) & (v < bottom) & (u >= left) & (u < right)
    depth = np.where(board, 95.0 + 50.0 * (u - left) / (right - left), depth)
    disc = _disc(yy, xx, DISC)
    depth = np.where(disc, 165.0, depth)
    ball = _disc(yy, xx, BALL)
    depth = np.where(ball, 215.0, depth)
    pole = (u >= POLE[0]) & (u < POLE[0] + max(POLE[1] - POLE[0], 1.5 / width))
    depth = np.where(pole, 190.0, depth)
    ground_truth = np.clip(np.rint(depth), 0, 255).astype(np.uint8)

    # --- the low-resolution target: area average over scale x scale blocks
    blocks = ground_truth.reshape(height // scale, scale, width // scale, scale)
    target_lr = np.clip(np.rint(blocks.mean(axis=(1, 3))), 0, 255).astype(np.uint8)

    # --- the RGB guide: one colour per object, soft shading, RGB-only texture, noise
    wall = ~(board | disc | ball | pole)
    colour = np.empty((height, width, 3))
    colour[:] = (196.0, 178.0, 150.0)  # beige wall
    glyphs = _glyphs(height, width, rng) & wall
    colour[glyphs] = (70.0, 60.0, 110.0)  # painted text
    colour[board] = (70.0, 120.0, 190.0)  # blue board
    checker = ((yy // CHECKER + xx // CHECKER) % 2 == 0) & disc
    colour[disc] = (205.0, 80.0, 60.0)  # red disc ...
    colour[checker] = (245.0, 215.0, 120.0)  # ... printed with a yellow checkerboard
    colour[ball] = (60.0, 165.0, 80.0)  # green ball
    colour[pole] = (40.0, 40.0, 45.0)  # dark pole
    light = 0.8 + 0.25 * (1.0 - v) * (0.6 + 0.4 * u)  # soft light from the top right
    by, bx, br = BALL
    ball_shade = np.sqrt(np.clip(
        1.0 - ((yy - by * height) ** 2 + (xx - bx * width) ** 2) / (br * height) ** 2,
        0.0, 1.0))
    light = np.where(ball, light * (0.55 + 0.45 * ball_shade), light)
    guide = _blur3(colour * light[:, :, None])  # a touch of lens blur
    guide += rng.normal(0.0, 2.0, guide.shape)  # mild sensor noise
    guide_u8 = np.clip(np.rint(guide), 0, 255).astype(np.uint8)

    return DemoPair(target_lr=target_lr, guide=guide_u8, ground_truth=ground_truth,
                    scale=int(scale), texture_mask=glyphs | (disc & ~ball))
