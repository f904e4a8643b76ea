"""MMSR's mutual modulation as tiled matrix products: :func:`local_attention`.

``out[p] = sum_k softmax_k(<keys[p + k], query[p]>) keys[p + k]`` over the
``size x size`` neighbourhood of every pixel (see :mod:`cmsr.evaluation.baselines.mmsr`).

The published code unfolds ``64 x 121`` neighbour values per pixel (31 KB in float32,
3.2 GB for a 320 x 320 output, several times that with the gradients). Here the
modulation is computed per tile of ``8 x 8`` pixels (``4 x 4`` for neighbourhoods up
to 5) with batched matrix products (:class:`_LocalAttention`): one product gives
every pixel of the tile its logits against all keys of the tile's ``18 x 18``
region, a mask limits the softmax to the pixel's own ``11 x 11`` neighbourhood, a
second product filters. That multiplies 2.7 times more pairs than needed, but as
GEMMs instead of 121 memory-bound passes over shifted views, and nothing
``C x 121`` per pixel is ever built. Tile rows are processed in blocks of at most
``max_chunk_bytes`` of temporaries, only the queries and the padded keys are saved,
and the hand-written backward pass recomputes the weights block by block: the
modulation's memory is bounded for any image size.
"""

from __future__ import annotations

from typing import Any

import torch

DEFAULT_CHUNK_BYTES = 32 * 2**20


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

