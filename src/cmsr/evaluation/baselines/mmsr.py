"""MMSR, mutual modulation (Dong, Yokoya, Wang and Uezato, "Learning Mutual Modulation
for Self-Supervised Cross-Modal Super-Resolution", ECCV 2022).

Two feature branches, one on the guide and one on the bilinearly enlarged source
(the target), meet in a *mutual modulation*:

* source-to-guide: at every pixel, the source features of an ``11 x 11``
  neighbourhood are averaged with weights ``softmax_k <f_s(p + k), f_g(p)>`` (a
  cross-domain adaptive filter steered by the guide), which lends the source the
  guide's resolution;
* guide-to-source: the guide features of a ``5 x 5`` neighbourhood, weighted by
  ``softmax_k <f_g(p + k), f_s(p)>``, which makes the guide mimic the source's
  modality and suppresses structure the source does not have;

the two modulated maps are fused by a 1x1 convolution and a per-pixel head predicts
the high-resolution target. Training is self-supervised by cycle consistency: the
prediction, reduced to the source's size (average over each low-resolution pixel's
footprint), must equal the source (L1), on the whole image at every step.

Architecture and settings (supplementary, sections I-III, and the authors' code,
palmdong/MMSR), used here: 64 channels; guide branch two 3x3 convolutions and two
3x3 residual blocks; source branch the same with 1x1 kernels; 1x1 projections
before the modulation; neighbourhoods 11 (source-to-guide) and 5 (guide-to-source)
for depth (5 and 3 for elevation models); 1x1 fusion; three 1x1 residual blocks and
a 1x1 output layer; zero padding; guide bands and source standardised over the
image; Adam, learning rate 2e-3 multiplied by 0.9998 every 5 steps, weight decay
5e-4 on the guide branch and 0 elsewhere; 1000 steps (whole image per step).

Memory and time: the published code unfolds ``64 x 121`` neighbour values per pixel
(31 KB in float32, 3.2 GB for a 320 x 320 output, several times that with the
gradients). Here the modulation is computed per tile of ``8 x 8`` pixels (``4 x 4``
for neighbourhoods up to 5) with batched matrix products (:class:`_LocalAttention`):
one product gives every pixel of the tile its logits against all keys of the tile's
``18 x 18`` region, a mask limits the softmax to the pixel's own ``11 x 11``
neighbourhood, a second product filters. That multiplies 2.7 times more pairs than
needed, but as GEMMs instead of 121 memory-bound passes over shifted views (the
previous implementation here), and nothing ``C x 121`` per pixel is ever built. Tile
rows are processed in blocks of at most ``max_chunk_bytes`` of temporaries, only the
queries and the padded keys are saved, and the hand-written backward pass recomputes
the weights block by block: the modulation's memory is bounded for any image size.
On the CPU the network runs channels-last (oneDNN's fast layout for the 3x3
convolutions, and the modulation's) and the 1x1 convolutions are plain matrix
products (:class:`Pointwise`). Results equal the published formulation up to float
rounding (tests compare with it, in float64 and in float32).

Cost on CPU (measured on a shared 2-core Xeon at 2.1 GHz with AVX-512 and AMX,
PyTorch 2.13, Middlebury13 pair ``01_1`` at x4, 320 x 320 output; medians of
repeated runs at load average 4-5): one training step (forward, backward, Adam)
takes 2.7 s with 2 threads and 2.8 s of CPU time on one thread, against 8.0-8.4 s
and 7.2 s before the tiled modulation (the 11 x 11 and 5 x 5 modulation fell from 6.4 to
1.0 s of CPU; the 3x3 guide convolutions, about 1 s, are now the largest part). The
published 1000 steps thus take about 45 minutes (2.3 hours before; 137 s on the
authors' RTX 3090); peak resident memory 2.2 GB (1.7 GB before). With
``precision="bfloat16"`` a step takes 1.8 s (about 30 minutes per pair) and 1.4 GB;
in 300-step runs on a 160 x 160 crop its RMSE stayed within the spread of two float32
seeds (0.742 and 0.748 against 0.732 and 0.758; bicubic 1.228). The 2-thread
figures are with ``OMP_WAIT_POLICY=PASSIVE``: with OpenMP's default spinning the
same steps took 8-13 s (46 s before) on the loaded machine, more than with one
thread; there, use one thread per process or the passive policy.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cmsr.evaluation.baselines.base import Baseline
from cmsr.method.api import PreparedPair, resolve_device
from cmsr.method.resample import downsample

WIDTH = 64
DEFAULT_ITERATIONS = 1000
DEFAULT_LEARNING_RATE = 2e-3
LR_DECAY = 0.9998
LR_DECAY_EVERY = 5
DEFAULT_WEIGHT_DECAY = (5e-4, 0.0, 0.0, 0.0)  # guide, source, modulation, prediction
DEFAULT_SOURCE_NEIGHBOURHOOD = 11
DEFAULT_GUIDE_NEIGHBOURHOOD = 5
DEFAULT_CHUNK_BYTES = 32 * 2**20
PRECISIONS = ("float32", "bfloat16")


def _tile_side(size: int) -> int:
    """Side of the square pixel tiles whose neighbourhoods are handled by one matrix product:
    8 for large neighbourhoods, 4 for small ones (fewer wasted products)."""
    return 8 if size >= 7 else 4


def _band_mask(tile: int, size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(tile**2, extent**2)`` additive mask of a tile's neighbourhoods in its region.

    Row ``i * tile + j`` is the tile's pixel ``(i, j)``, column ``y * extent + x`` the
    region's pixel ``(y, x)`` (``extent = tile + size - 1``; the region starts
    ``size // 2`` pixels above and left of the tile): 0 when ``(y, x)`` is in the pixel's
    ``size x size`` neighbourhood (``0 <= y - i, x - j < size``), -inf otherwise.
    """
    extent = tile + size - 1
    offset = (torch.arange(extent, device=device)[None, :]
              - torch.arange(tile, device=device)[:, None])
    inside = (offset >= 0) & (offset < size)                             # (tile, extent)
    window = (inside[:, None, :, None] & inside[None, :, None, :]).reshape(tile * tile,
                                                                           extent * extent)
    mask = torch.zeros(window.shape, dtype=dtype, device=device)
    return mask.masked_fill_(~window, float("-inf"))


def _channels_last_canvas(image: torch.Tensor, top: int, left: int, height: int,
                          width: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, height, width, C)`` contiguous, ``image`` at ``(top, left)``
    and zeros around it (a view, no copy, when nothing is added and ``image`` is
    channels-last)."""
    batch, channels, rows, cols = image.shape
    pixels = image.permute(0, 2, 3, 1)
    if (top, left, height, width) == (0, 0, rows, cols) and pixels.is_contiguous():
        return pixels
    canvas = image.new_zeros(batch, height, width, channels)
    canvas[:, top:top + rows, left:left + cols] = pixels
    return canvas


def _tiles(pixels: torch.Tensor, tile: int) -> torch.Tensor:
    """``(B, tile * ny, tile * nx, C)`` -> ``(B * ny * nx, tile**2, C)``, one matrix per tile."""
    batch, rows, cols, channels = pixels.shape
    blocks = pixels.view(batch, rows // tile, tile, cols // tile, tile, channels)
    return blocks.transpose(2, 3).reshape(-1, tile * tile, channels)


def _untile_into(pixels: torch.Tensor, tiles: torch.Tensor, tile: int) -> None:
    """Inverse of :func:`_tiles`, written into the view ``pixels``."""
    batch, rows, cols, channels = pixels.shape
    pixels.view(batch, rows // tile, tile, cols // tile, tile, channels).copy_(
        tiles.view(batch, rows // tile, cols // tile, tile, tile, channels).transpose(2, 3))


def _regions(padded: torch.Tensor, tile: int, extent: int, ny: int, nx: int) -> torch.Tensor:
    """The ``extent x extent`` region of each of ``ny x nx`` tiles (stride ``tile``) of
    ``padded (B, rows, cols, C)``: ``(B * ny * nx, extent**2, C)`` (a copy)."""
    batch, channels = padded.shape[0], padded.shape[-1]
    stride = padded.stride()
    windows = padded.as_strided(
        (batch, ny, nx, extent, extent, channels),
        (stride[0], tile * stride[1], tile * stride[2], stride[1], stride[2], stride[3]),
        padded.storage_offset())
    return windows.reshape(-1, extent * extent, channels)


def _add_regions(canvas: torch.Tensor, regions: torch.Tensor, tile: int, extent: int,
                 ny: int, nx: int) -> None:
    """Inverse of :func:`_regions` (overlaps summed): ``canvas (B, rows, cols, C)`` with
    ``rows >= (ny + n - 1) * tile``, ``cols >= (nx + n - 1) * tile``, ``n = ceil(extent /
    tile)``, receives each region; ``n**2`` strided additions of ``tile``-sided blocks."""
    batch, channels = canvas.shape[0], canvas.shape[-1]
    blocks = -(-extent // tile)
    grid = canvas[:, :(ny + blocks - 1) * tile, :(nx + blocks - 1) * tile]
    grid = grid.unflatten(2, (nx + blocks - 1, tile)).unflatten(1, (ny + blocks - 1, tile))
    parts = regions.view(batch, ny, nx, extent, extent, channels)
    for by in range(blocks):
        rows = slice(by * tile, min(extent, (by + 1) * tile))
        for bx in range(blocks):
            cols = slice(bx * tile, min(extent, (bx + 1) * tile))
            part = parts[:, :, :, rows, cols].permute(0, 1, 3, 2, 4, 5)
            grid[:, by:by + ny, :part.shape[2], bx:bx + nx, :part.shape[4]].add_(part)


class _LocalAttention(torch.autograd.Function):
    """:func:`local_attention` as batched matrix products over pixel tiles.

    The image is cut into ``t x t`` tiles; a tile's ``size x size`` neighbourhoods all
    lie in its ``e x e`` region (``e = t + size - 1``). Per tile, with ``Q (t^2, C)``
    its queries and ``K (e^2, C)`` its region's keys: ``L = Q K^T + M`` (``M`` is 0
    in each pixel's neighbourhood and -inf elsewhere, :func:`_band_mask`),
    ``W = softmax(L)`` by rows (exactly the neighbourhood softmax: masked entries get
    weight 0) and ``out = W K``. This does ``e^2 / size^2`` times the necessary
    products (2.7 for 11 x 11 with ``t = 8``), as a few large GEMMs instead of a loop over
    ``size^2`` memory-bound shifted products. Rows of tiles are processed in blocks
    of about ``max_chunk_bytes`` of temporaries. Only the (padded) queries and keys
    are saved; the backward pass recomputes ``W`` block by block (as flash attention
    does) and, with ``G`` the output gradient:
    ``g_L = W * (G K^T - rowsum(W * G K^T))``, ``g_Q = g_L K``,
    ``g_K = g_L^T Q + W^T G``, the regions' ``g_K`` summed back into the image.
    """

    @staticmethod
    def forward(ctx: Any, query: torch.Tensor, keys: torch.Tensor, size: int,
                max_chunk_bytes: float) -> torch.Tensor:
        batch, channels, height, width = query.shape
        tile, extent, ny, nx = _geometry(height, width, size)
        radius = size // 2
        queries = _channels_last_canvas(query, 0, 0, ny * tile, nx * tile)
        padded = _channels_last_canvas(keys, radius, radius, ny * tile + 2 * radius,
                                       nx * tile + 2 * radius)
        mask = _band_mask(tile, size, query.dtype, query.device)
        out = queries.new_empty(queries.shape)
        for top, bottom in _row_blocks(batch, channels, size, ny, nx,
                                       query.element_size(), max_chunk_bytes):
            q = _tiles(queries[:, top * tile:bottom * tile], tile)
            k = _regions(padded[:, top * tile:], tile, extent, bottom - top, nx)
            weights = torch.baddbmm(mask, q, k.transpose(1, 2)).softmax(dim=-1)
            _untile_into(out[:, top * tile:bottom * tile], torch.bmm(weights, k), tile)
        ctx.save_for_backward(queries, padded)
        ctx.shape = (height, width, size, max_chunk_bytes)
        return out[:, :height, :width].permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        queries, padded = ctx.saved_tensors
        height, width, size, max_chunk_bytes = ctx.shape
        batch, _, _, channels = queries.shape
        tile, extent, ny, nx = _geometry(height, width, size)
        radius = size // 2
        want_query, want_keys = ctx.needs_input_grad[:2]
        grads = _channels_last_canvas(grad_out, 0, 0, ny * tile, nx * tile)
        mask = _band_mask(tile, size, queries.dtype, queries.device)
        grad_query = queries.new_empty(queries.shape) if want_query else None
        blocks = -(-extent // tile)
        grad_padded = (queries.new_zeros(batch, (ny + blocks - 1) * tile,
                                         (nx + blocks - 1) * tile, channels)
                       if want_keys else None)
        for top, bottom in _row_blocks(batch, channels, size, ny, nx,
                                       queries.element_size(), max_chunk_bytes):
            q = _tiles(queries[:, top * tile:bottom * tile], tile)
            g = _tiles(grads[:, top * tile:bottom * tile], tile)
            k = _regions(padded[:, top * tile:], tile, extent, bottom - top, nx)
            k_t = k.transpose(1, 2)
            weights = torch.baddbmm(mask, q, k_t).softmax(dim=-1)
            grad_logits = torch._softmax_backward_data(torch.bmm(g, k_t), weights, -1,
                                                       weights.dtype)
            if grad_query is not None:
                _untile_into(grad_query[:, top * tile:bottom * tile],
                             torch.bmm(grad_logits, k), tile)
            if grad_padded is not None:
                grad_k = torch.bmm(grad_logits.transpose(1, 2), q)
                grad_k.baddbmm_(weights.transpose(1, 2), g)
                _add_regions(grad_padded[:, top * tile:], grad_k, tile, extent,
                             bottom - top, nx)
        if grad_query is not None:
            grad_query = grad_query[:, :height, :width].permute(0, 3, 1, 2)
        grad_keys = None
        if grad_padded is not None:
            grad_keys = grad_padded[:, radius:radius + height,
                                    radius:radius + width].permute(0, 3, 1, 2)
        return grad_query, grad_keys, None, None


def _geometry(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """Tile side, region side and the number of tile rows and columns covering the image."""
    tile = _tile_side(size)
    return tile, tile + size - 1, -(-height // tile), -(-width // tile)


def _row_blocks(batch: int, channels: int, size: int, ny: int, nx: int,
                element_size: int, max_chunk_bytes: float) -> list[tuple[int, int]]:
    """Blocks ``[top, bottom)`` of tile rows whose temporaries fit ``max_chunk_bytes``."""
    tile = _tile_side(size)
    extent = tile + size - 1
    # per tile: queries, output gradient, results (t^2 C each), region keys and their
    # gradient (e^2 C each), logits, weights and their gradients (t^2 e^2 each)
    per_tile = ((3 * tile * tile + 2 * extent * extent) * channels
                + 4 * tile * tile * extent * extent) * element_size
    step = max(1, int(max_chunk_bytes // (per_tile * batch * nx)))
    return [(top, min(ny, top + step)) for top in range(0, ny, step)]


def local_attention(query: torch.Tensor, keys: torch.Tensor, size: int, *,
                    max_chunk_bytes: float = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Cross-domain adaptive filtering over ``size x size`` neighbourhoods (MMSR's modulation).

    ``out[p] = sum_k softmax_k(<keys[p + k], query[p]>) keys[p + k]``, the sum over
    the ``size**2`` offsets ``k``; keys outside the image are zero vectors (zero
    padding, as published: they still take part in the softmax).

    Parameters
    ----------
    query:
        ``(B, C, H, W)`` features that steer the filter.
    keys:
        ``(B, C, H, W)`` features that are filtered.
    size:
        Odd neighbourhood side.
    max_chunk_bytes:
        Tiles are processed in blocks of rows whose temporaries (the tiles' queries,
        region keys, logits and weights, and their gradients) stay under about this
        size; nothing of that size is kept for the backward pass (only the queries and
        the padded keys), so memory is bounded for any image size.

    Returns
    -------
    ``(B, C, H, W)`` (channels-last memory layout).
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"neighbourhood size must be odd and >= 1, got {size}")
    if query.shape != keys.shape or query.dim() != 4:
        raise ValueError(f"query and keys must have the same (B, C, H, W) shape, got "
                         f"{tuple(query.shape)} and {tuple(keys.shape)}")
    return _LocalAttention.apply(query, keys, size, max_chunk_bytes)


class Pointwise(nn.Conv2d):
    """A 1x1 convolution computed as one matrix product over the pixels (channels last):
    same parameters and result as :class:`torch.nn.Conv2d`, faster on the CPU, where
    PyTorch sends small-batch 1x1 convolutions to a slow im2col path."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in, H, W)`` -> ``(B, out, H, W)``."""
        return F.linear(x.movedim(1, -1), self.weight.flatten(1), self.bias).movedim(-1, 1)


def conv(in_channels: int, out_channels: int, kernel: int) -> nn.Conv2d:
    """A ``kernel x kernel`` convolution with zero padding keeping the size."""
    if kernel == 1:
        return Pointwise(in_channels, out_channels)
    return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)


class ResBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` with ``kernel x kernel`` convolutions, same width."""

    def __init__(self, width: int, kernel: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(width, width, kernel), nn.ReLU(),
                                  conv(width, width, kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, width, H, W)`` -> same shape."""
        return x + self.body(x)


def feature_branch(in_channels: int, kernel: int) -> nn.Sequential:
    """Two ``kernel``-sized convolutions with ReLU, then two residual blocks; 64 wide."""
    return nn.Sequential(conv(in_channels, WIDTH, kernel), nn.ReLU(),
                         conv(WIDTH, WIDTH, kernel), nn.ReLU(),
                         ResBlock(WIDTH, kernel), ResBlock(WIDTH, kernel))


class MutualModulation(nn.Module):
    """Source-to-guide and guide-to-source modulation, fused by a 1x1 convolution.

    Parameters
    ----------
    source_neighbourhood:
        Side of the source-to-guide neighbourhood (published 11 for depth, 5 for DEM).
    guide_neighbourhood:
        Side of the guide-to-source neighbourhood (published 5 for depth, 3 for DEM).
    max_chunk_bytes:
        Memory bound of one block of neighbourhoods (see :func:`local_attention`).
    """

    def __init__(self, source_neighbourhood: int = DEFAULT_SOURCE_NEIGHBOURHOOD,
                 guide_neighbourhood: int = DEFAULT_GUIDE_NEIGHBOURHOOD,
                 max_chunk_bytes: float = DEFAULT_CHUNK_BYTES) -> None:
        super().__init__()
        self.source_neighbourhood = source_neighbourhood
        self.guide_neighbourhood = guide_neighbourhood
        self.max_chunk_bytes = max_chunk_bytes
        self.project_guide = Pointwise(WIDTH, WIDTH)
        self.project_source = Pointwise(WIDTH, WIDTH)
        self.fuse = Pointwise(2 * WIDTH, WIDTH)

    def forward(self, guide_features: torch.Tensor, source_features: torch.Tensor
                ) -> torch.Tensor:
        """Two ``(B, 64, H, W)`` feature maps -> fused ``(B, 64, H, W)``."""
        guide = self.project_guide(guide_features)
        source = self.project_source(source_features)
        source_to_guide = local_attention(guide, source, self.source_neighbourhood,
                                          max_chunk_bytes=self.max_chunk_bytes)
        guide_to_source = local_attention(source, guide, self.guide_neighbourhood,
                                          max_chunk_bytes=self.max_chunk_bytes)
        return self.fuse(torch.cat([source_to_guide, guide_to_source], dim=1))


class MMSRNet(nn.Module):
    """MMSR's network: guide and source branches, mutual modulation, per-pixel head.

    Parameters
    ----------
    guide_channels, target_channels:
        ``C`` and ``c``.
    source_neighbourhood, guide_neighbourhood, max_chunk_bytes:
        See :class:`MutualModulation`.
    precision:
        ``"float32"`` (everything in float32), or ``"bfloat16"``: the feature branches
        and the prediction head run under bfloat16 autocast (their convolutions are
        most of the cost; several times faster on CPUs with AVX-512 BF16 / AMX), the
        modulation (projections, softmax, filtering, fusion) stays in float32.
    """

    def __init__(self, guide_channels: int, target_channels: int = 1, *,
                 source_neighbourhood: int = DEFAULT_SOURCE_NEIGHBOURHOOD,
                 guide_neighbourhood: int = DEFAULT_GUIDE_NEIGHBOURHOOD,
                 max_chunk_bytes: float = DEFAULT_CHUNK_BYTES,
                 precision: str = "float32") -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        self.guide_branch = feature_branch(guide_channels, 3)
        self.source_branch = feature_branch(target_channels, 1)
        self.modulation = MutualModulation(source_neighbourhood, guide_neighbourhood,
                                           max_chunk_bytes)
        self.prediction = nn.Sequential(ResBlock(WIDTH, 1), ResBlock(WIDTH, 1),
                                        ResBlock(WIDTH, 1), Pointwise(WIDTH, target_channels))

    def forward(self, guide: torch.Tensor, source_up: torch.Tensor) -> torch.Tensor:
        """Predict the high-resolution target.

        Parameters
        ----------
        guide:
            ``(B, C, H, W)`` standardised guide.
        source_up:
            ``(B, c, H, W)`` standardised source, bilinearly enlarged to the guide.

        Returns
        -------
        ``(B, c, H, W)`` in the source's standardised units.
        """
        with self._autocast(guide):
            guide_features = self.guide_branch(guide)
            source_features = self.source_branch(source_up)
        fused = self.modulation(guide_features.float(), source_features.float())
        with self._autocast(fused):
            prediction = self.prediction(fused)
        return prediction.float()

    def _autocast(self, like: torch.Tensor) -> torch.autocast:
        """bfloat16 autocast on ``like``'s device when ``precision == "bfloat16"``."""
        return torch.autocast(like.device.type, dtype=torch.bfloat16,
                              enabled=self.precision == "bfloat16")

    def parameter_groups(self, weight_decay: tuple[float, float, float, float]) -> list[dict]:
        """Adam groups with per-part weight decay (guide, source, modulation, prediction)."""
        parts = (self.guide_branch, self.source_branch, self.modulation, self.prediction)
        return [{"params": list(part.parameters()), "weight_decay": decay}
                for part, decay in zip(parts, weight_decay, strict=True)]


def _standardise(image: torch.Tensor, valid: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-band zero mean, unit standard deviation over (valid) pixels of ``(1, c, H, W)``.

    Returns the standardised image, and ``mean`` and ``std`` as ``(1, c, 1, 1)``.
    """
    flat = image[0].flatten(1)
    if valid is not None:
        flat = flat[:, valid[0, 0].flatten() > 0.5]
    mean = flat.mean(dim=1)[None, :, None, None]
    std = flat.std(dim=1, unbiased=False)[None, :, None, None]
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (image - mean) / std, mean, std


class MMSR(Baseline):
    """Dong et al.'s mutual-modulation super-resolution, trained on the pair.

    Parameters
    ----------
    iterations:
        Adam steps on the whole image; published 1000 (on a GPU).
    learning_rate:
        Initial step size; published 2e-3, times 0.9998 every 5 steps.
    weight_decay:
        ``(guide, source, modulation, prediction)``; published ``(5e-4, 0, 0, 0)``.
    source_neighbourhood, guide_neighbourhood:
        Modulation neighbourhoods; published 11 and 5 (depth), 5 and 3 (DEM).
    loss:
        ``"l1"`` (published) or ``"mse"``.
    seed:
        Seeds the initialisation.
    device:
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.
    max_chunk_bytes:
        Memory bound of one block of neighbourhoods (see :func:`local_attention`).
    precision:
        ``"float32"`` (default) or ``"bfloat16"`` (bfloat16 autocast for the feature
        branches and the prediction head, see :class:`MMSRNet`): an opt-in speed-up
        for CPUs with bfloat16 matrix units, not the published numerics.
    """

    name = "mmsr"

    def __init__(self, iterations: int = DEFAULT_ITERATIONS,
                 learning_rate: float = DEFAULT_LEARNING_RATE,
                 weight_decay: tuple[float, float, float, float] = DEFAULT_WEIGHT_DECAY,
                 source_neighbourhood: int = DEFAULT_SOURCE_NEIGHBOURHOOD,
                 guide_neighbourhood: int = DEFAULT_GUIDE_NEIGHBOURHOOD,
                 loss: str = "l1", seed: int = 0, device: str = "auto",
                 max_chunk_bytes: float = DEFAULT_CHUNK_BYTES,
                 precision: str = "float32") -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if iterations < 1 or learning_rate <= 0:
            raise ValueError("iterations must be >= 1 and learning_rate > 0")
        if loss not in ("l1", "mse"):
            raise ValueError(f"loss must be 'l1' or 'mse', got {loss!r}")
        for size in (source_neighbourhood, guide_neighbourhood):
            if size < 1 or size % 2 == 0:
                raise ValueError(f"neighbourhoods must be odd and >= 1, got {size}")
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.weight_decay = tuple(weight_decay)
        self.source_neighbourhood = source_neighbourhood
        self.guide_neighbourhood = guide_neighbourhood
        self.loss = loss
        self.seed = seed
        self.device = resolve_device(device)
        self.max_chunk_bytes = max_chunk_bytes
        self.precision = precision
        self.net: MMSRNet | None = None
        self.losses: list[float] = []
        self._inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self._standard: tuple[torch.Tensor, torch.Tensor] | None = None

    def _prepare(self, pair: PreparedPair) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                     torch.Tensor]:
        """Standardised guide, standardised source, its enlargement and the valid mask."""
        device = self.device
        valid = pair.valid.to(device)
        source, mean, std = _standardise(pair.target.to(device), valid)
        guide, _, _ = _standardise(pair.guide.to(device))
        source_up = F.interpolate(source, size=tuple(guide.shape[-2:]), mode="bilinear",
                                  align_corners=False)
        guide = guide.contiguous(memory_format=self._layout())
        source_up = source_up.contiguous(memory_format=self._layout())
        self._standard = (mean, std)
        self._inputs = (guide, source_up)
        return guide, source, source_up, valid

    def _fit(self, pair: PreparedPair) -> None:
        guide, source, source_up, valid = self._prepare(pair)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = MMSRNet(guide.shape[1], source.shape[1],
                          source_neighbourhood=self.source_neighbourhood,
                          guide_neighbourhood=self.guide_neighbourhood,
                          max_chunk_bytes=self.max_chunk_bytes, precision=self.precision)
        net = net.to(self.device, memory_format=self._layout()).train()
        optimizer = torch.optim.Adam(net.parameter_groups(self.weight_decay),
                                     lr=self.learning_rate)
        size = tuple(source.shape[-2:])
        count = valid.sum().clamp(min=1.0) * source.shape[1]
        self.losses = []
        for step in range(self.iterations):
            if (step + 1) % LR_DECAY_EVERY == 0:
                for group in optimizer.param_groups:
                    group["lr"] *= LR_DECAY
            prediction = net(guide, source_up)
            reduced = downsample(prediction, size, kernel="box")
            error = reduced - source
            error = error.abs() if self.loss == "l1" else error.square()
            loss = (error * valid).sum() / count
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            self.losses.append(float(loss.detach()))
        self.net = net.eval()

    def _layout(self) -> torch.memory_format:
        """Channels-last on the CPU (oneDNN's fast convolution layout, and the one the
        modulation and the 1x1 convolutions work in), PyTorch's default elsewhere."""
        return torch.channels_last if self.device.type == "cpu" else torch.contiguous_format

    @torch.no_grad()
    def _predict(self, pair: PreparedPair) -> torch.Tensor:
        assert self.net is not None and self._inputs is not None
        assert self._standard is not None
        guide, source_up = self._inputs
        mean, std = self._standard
        return (self.net(guide, source_up) * std + mean).cpu()

    def __repr__(self) -> str:
        return (f"MMSR(iterations={self.iterations}, learning_rate={self.learning_rate}, "
                f"weight_decay={self.weight_decay}, "
                f"neighbourhoods=({self.source_neighbourhood}, {self.guide_neighbourhood}), "
                f"loss={self.loss!r}, seed={self.seed}, precision={self.precision!r})")


def neighbourhood_bytes(height: int, width: int, size: int, channels: int = WIDTH) -> int:
    """Bytes of one full-image float32 neighbourhood tensor (what chunking avoids)."""
    return 4 * channels * size * size * height * width
