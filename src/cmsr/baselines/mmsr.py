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
gradients). Here the neighbourhood is visited one offset at a time (shifted views),
so only the 121 weights per pixel are stored, and rows are processed in blocks
(``max_chunk_bytes``) that are recomputed in the backward pass when there is more
than one (activation checkpointing): memory is bounded for any image size. The
backward pass is written by hand (no per-offset autograd nodes); on one CPU thread
the 11 x 11 modulation (forward and backward) at 160 x 160 took 0.75 s and +95 MB,
against 3.9 s and +770 MB for autograd through shifted views, and more for unfolding.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from cmsr.api import PreparedPair, resolve_device
from cmsr.baselines.base import Baseline
from cmsr.resample import downsample

WIDTH = 64
DEFAULT_ITERATIONS = 1000
DEFAULT_LEARNING_RATE = 2e-3
LR_DECAY = 0.9998
LR_DECAY_EVERY = 5
DEFAULT_WEIGHT_DECAY = (5e-4, 0.0, 0.0, 0.0)  # guide, source, modulation, prediction
DEFAULT_SOURCE_NEIGHBOURHOOD = 11
DEFAULT_GUIDE_NEIGHBOURHOOD = 5
DEFAULT_CHUNK_BYTES = 64 * 2**20


def _shifted(padded: torch.Tensor, dy: int, dx: int, rows: int, width: int) -> torch.Tensor:
    """The keys at offset ``(dy, dx)`` of every pixel: a view of ``padded``."""
    return padded[:, :, dy:dy + rows, dx:dx + width]


class _LocalAttention(torch.autograd.Function):
    """:func:`local_attention` on a block, with a hand-written backward pass.

    Only the query, the padded keys (both inputs) and the ``size**2`` weights per
    pixel are saved; the neighbourhood is visited one offset at a time (shifted views),
    in the forward and the backward pass, so no ``C x size**2`` tensor is ever built.

    Forward: ``l_k = <K_k, q>``, ``w = softmax_k(l)``, ``out = sum_k w_k K_k``.
    Backward: ``g_w_k = <g_out, K_k>``, ``g_l = w (g_w - sum_k w_k g_w_k)``,
    ``g_q = sum_k g_l_k K_k``, ``g_K_k += g_l_k q + w_k g_out`` (at offset ``k``).
    """

    @staticmethod
    def forward(ctx: Any, query: torch.Tensor, padded: torch.Tensor,
                size: int) -> torch.Tensor:
        rows, width = query.shape[-2:]
        offsets = [(dy, dx) for dy in range(size) for dx in range(size)]
        logits = torch.stack([(_shifted(padded, dy, dx, rows, width) * query).sum(dim=1)
                              for dy, dx in offsets], dim=1)            # (B, k^2, rows, W)
        weights = logits.softmax(dim=1)
        out = torch.zeros_like(query)
        for index, (dy, dx) in enumerate(offsets):
            out.addcmul_(_shifted(padded, dy, dx, rows, width), weights[:, index:index + 1])
        ctx.save_for_backward(query, padded, weights)
        ctx.size = size
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        query, padded, weights = ctx.saved_tensors
        size = ctx.size
        rows, width = query.shape[-2:]
        offsets = [(dy, dx) for dy in range(size) for dx in range(size)]
        grad_weights = torch.stack([(_shifted(padded, dy, dx, rows, width) * grad_out).sum(dim=1)
                                    for dy, dx in offsets], dim=1)
        grad_logits = weights * (grad_weights - (weights * grad_weights).sum(dim=1, keepdim=True))
        grad_query = torch.zeros_like(query) if ctx.needs_input_grad[0] else None
        grad_padded = torch.zeros_like(padded) if ctx.needs_input_grad[1] else None
        for index, (dy, dx) in enumerate(offsets):
            grad_logit = grad_logits[:, index:index + 1]
            if grad_query is not None:
                grad_query.addcmul_(_shifted(padded, dy, dx, rows, width), grad_logit)
            if grad_padded is not None:
                view = _shifted(grad_padded, dy, dx, rows, width)
                view.addcmul_(query, grad_logit)
                view.addcmul_(grad_out, weights[:, index:index + 1])
        return grad_query, grad_padded, None


def _attend_rows(query: torch.Tensor, padded_keys: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`local_attention` for a block of rows (``padded_keys`` has ``size // 2``
    extra rows and columns on each side)."""
    return _LocalAttention.apply(query, padded_keys, size)


def local_attention(query: torch.Tensor, keys: torch.Tensor, size: int, *,
                    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
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
        Rows are processed in blocks whose working tensors (the ``size**2`` weights
        per pixel, their gradients, a few ``C``-channel temporaries) stay under this
        size; with gradients enabled and more than one block, each block is
        checkpointed (recomputed in the backward pass), so memory stays bounded for
        any image size.

    Returns
    -------
    ``(B, C, H, W)``.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"neighbourhood size must be odd and >= 1, got {size}")
    batch, channels, height, width = keys.shape
    radius = size // 2
    padded = F.pad(keys, (radius, radius, radius, radius))
    per_row = batch * width * keys.element_size() * (2 * size * size + 6 * channels)
    block = max(1, int(max_chunk_bytes // per_row))
    if block >= height:
        return _attend_rows(query, padded, size)
    train = torch.is_grad_enabled() and (query.requires_grad or keys.requires_grad)
    pieces = []
    for top in range(0, height, block):
        bottom = min(height, top + block)
        part_query = query[:, :, top:bottom]
        part_keys = padded[:, :, top:bottom + 2 * radius]
        if train:
            pieces.append(checkpoint(_attend_rows, part_query, part_keys, size,
                                     use_reentrant=False))
        else:
            pieces.append(_attend_rows(part_query, part_keys, size))
    return torch.cat(pieces, dim=2)


class ResBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` with ``kernel x kernel`` convolutions, same width."""

    def __init__(self, width: int, kernel: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, kernel, padding=kernel // 2),
                                  nn.ReLU(),
                                  nn.Conv2d(width, width, kernel, padding=kernel // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, width, H, W)`` -> same shape."""
        return x + self.body(x)


def feature_branch(in_channels: int, kernel: int) -> nn.Sequential:
    """Two ``kernel``-sized convolutions with ReLU, then two residual blocks; 64 wide."""
    pad = kernel // 2
    return nn.Sequential(nn.Conv2d(in_channels, WIDTH, kernel, padding=pad), nn.ReLU(),
                         nn.Conv2d(WIDTH, WIDTH, kernel, padding=pad), nn.ReLU(),
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
                 max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        super().__init__()
        self.source_neighbourhood = source_neighbourhood
        self.guide_neighbourhood = guide_neighbourhood
        self.max_chunk_bytes = max_chunk_bytes
        self.project_guide = nn.Conv2d(WIDTH, WIDTH, 1)
        self.project_source = nn.Conv2d(WIDTH, WIDTH, 1)
        self.fuse = nn.Conv2d(2 * WIDTH, WIDTH, 1)

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
    """

    def __init__(self, guide_channels: int, target_channels: int = 1, *,
                 source_neighbourhood: int = DEFAULT_SOURCE_NEIGHBOURHOOD,
                 guide_neighbourhood: int = DEFAULT_GUIDE_NEIGHBOURHOOD,
                 max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        super().__init__()
        self.guide_branch = feature_branch(guide_channels, 3)
        self.source_branch = feature_branch(target_channels, 1)
        self.modulation = MutualModulation(source_neighbourhood, guide_neighbourhood,
                                           max_chunk_bytes)
        self.prediction = nn.Sequential(ResBlock(WIDTH, 1), ResBlock(WIDTH, 1),
                                        ResBlock(WIDTH, 1), nn.Conv2d(WIDTH, target_channels, 1))

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
        fused = self.modulation(self.guide_branch(guide), self.source_branch(source_up))
        return self.prediction(fused)

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
    """

    name = "mmsr"

    def __init__(self, iterations: int = DEFAULT_ITERATIONS,
                 learning_rate: float = DEFAULT_LEARNING_RATE,
                 weight_decay: tuple[float, float, float, float] = DEFAULT_WEIGHT_DECAY,
                 source_neighbourhood: int = DEFAULT_SOURCE_NEIGHBOURHOOD,
                 guide_neighbourhood: int = DEFAULT_GUIDE_NEIGHBOURHOOD,
                 loss: str = "l1", seed: int = 0, device: str = "auto",
                 max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        super().__init__()
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
                          max_chunk_bytes=self.max_chunk_bytes)
        net = net.to(self.device).train()
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
                f"loss={self.loss!r}, seed={self.seed})")


def neighbourhood_bytes(height: int, width: int, size: int, channels: int = WIDTH) -> int:
    """Bytes of one full-image float32 neighbourhood tensor (what chunking avoids)."""
    return 4 * channels * size * size * height * width
