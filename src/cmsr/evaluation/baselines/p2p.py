"""P2P, pixel-to-pixel transformation (de Lutio, D'Aronco, Wegner and Schindler, "Guided
Super-Resolution as Pixel-to-Pixel Transformation", ICCV 2019).

The roles of source and guide are swapped: a small network maps each high-resolution
pixel's guide colour and position to a target value, and is fitted so that the mean
of its outputs over every low-resolution pixel's footprint equals that pixel. The
target is never an input, so edges come from the guide alone.

Published defaults (paper and the authors' code, prs-eth/PixTransform:
``DEFAULT_PARAMS`` and the example notebook), used here:

* inputs: the guide's bands, each standardised over the image, and the pixel's
  ``(x, y)`` coordinates in [-0.5, 0.5] (here one pixel spacing for both axes,
  ``1 / (max(H, W) - 1)``, centred, so non-square images keep their aspect);
* network (per pixel, i.e. 1x1 convolutions): a colour branch ``C -> 32 -> 2048``
  and a spatial branch ``2 -> 32 -> 2048`` (ReLU between), summed, then
  ``ReLU -> 2048 -> 32 -> ReLU -> 32 -> c``; PyTorch's default initialisation;
* Adam, learning rate 1e-3, weight decay per branch: spatial 1e-4, colour 1e-3,
  head 1e-4 (the notebook's values; the library's ``DEFAULT_PARAMS`` has 1e-3 for
  the head);
* L1 loss between each low-resolution pixel (standardised) and the mean prediction
  over its footprint; batches of 32 low-resolution pixels, shuffled each epoch;
* 32 * 1024 = 32768 batches (``iteration``); no bicubic input, no final TV step.

Footprints are the box reduction of :func:`cmsr.method.resample.area_matrix`: exact
``scale x scale`` blocks for integer scales (the published case), overlap-weighted
for other scales. Invalid target pixels are not sampled.

Speed: every footprint's inputs are gathered once before training (a batch is one
row selection), the colour and spatial branches run together as two products
(:meth:`PixTransformNet.forward`), Adam is PyTorch's fused implementation (the same
update), and prediction goes through the image in chunks of 1024 pixels. A step
(512 pixels through the 2048-wide network, backward, Adam) is a few small products
plus passes over 4 MB activations, so memory traffic and per-operation overhead set
its cost rather than arithmetic.

Cost on CPU (measured on a shared 2-core Xeon at 2.1 GHz with AVX-512, PyTorch 2.13,
Middlebury13 pair ``01_1`` at x4, 320 x 320 output, 500-step runs extrapolated;
medians at load average 4-5): one step takes 13-14 ms on one thread (17.5 ms before
these changes), so the published 32768 steps take about 7.5 minutes (9.6 before; 131
s on the authors' RTX 3090); prediction 0.5 s (2.1 s before); peak resident memory
about 400 MB. Two threads do not help: 17.7 ms per step with
``OMP_WAIT_POLICY=PASSIVE`` (30.6 ms before), and 240 ms (370 ms before) with
OpenMP's default spinning on the loaded machine, where the threads spend their time
waiting for each other: pass ``threads=1`` there.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from cmsr.evaluation.baselines.base import Baseline
from cmsr.method.api import PreparedPair, resolve_device
from cmsr.method.config import seed_problems
from cmsr.method.resample import area_matrix
from cmsr.method.threads import torch_threads

BRANCH_WIDTH = 32
MERGE_WIDTH = 2048
DEFAULT_ITERATIONS = 32 * 1024
DEFAULT_BATCH_SIZE = 32
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_WEIGHT_DECAY = (1e-4, 1e-3, 1e-4)  # spatial, colour, head
PREDICT_CHUNK = 1024  # pixels per forward pass when predicting (8 MB per 2048-wide activation)


def _linears(branch: nn.Sequential) -> tuple[nn.Linear, nn.Linear]:
    """The two linear layers of a ``Linear, ReLU, Linear`` branch."""
    first, _, second = branch
    return cast(nn.Linear, first), cast(nn.Linear, second)


class PixTransformNet(nn.Module):
    """The per-pixel network: colour and spatial branches summed, then a head.

    Parameters
    ----------
    guide_channels:
        ``C``, the guide's bands.
    target_channels:
        ``c``, the target's bands (1 in the paper).
    """

    def __init__(self, guide_channels: int, target_channels: int = 1) -> None:
        super().__init__()
        self.guide_channels = guide_channels
        self.colour = nn.Sequential(nn.Linear(guide_channels, BRANCH_WIDTH), nn.ReLU(),
                                    nn.Linear(BRANCH_WIDTH, MERGE_WIDTH))
        self.spatial = nn.Sequential(nn.Linear(2, BRANCH_WIDTH), nn.ReLU(),
                                     nn.Linear(BRANCH_WIDTH, MERGE_WIDTH))
        self.head = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(MERGE_WIDTH, BRANCH_WIDTH),
                                  nn.ReLU(),
                                  nn.Linear(BRANCH_WIDTH, target_channels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(..., C + 2)`` features (bands, then x, y) -> ``(..., c)`` values.

        The same function as ``head(colour(bands) + spatial(xy))``, with the two
        branches computed together: their first layers as one block-diagonal
        ``(C + 2) -> 64`` layer, their 2048-wide layers, biases and sum as one
        ``65 -> 2048`` product, and the head's first ReLU in place: fewer passes over
        the 2048-wide activations, which cost about as much as the products.
        """
        colour_in, colour_out = _linears(self.colour)
        spatial_in, spatial_out = _linears(self.spatial)
        pixels = features.reshape(-1, features.shape[-1])     # 2-D: no views in autograd
        hidden = F.relu(F.linear(pixels, torch.block_diag(colour_in.weight, spatial_in.weight),
                                 torch.cat([colour_in.bias, spatial_in.bias])))
        # both 2048-wide layers, their biases and the sum: one product (a column of ones
        # carries the bias, so no separate pass writes it over the widest activation)
        ones = hidden.new_ones(hidden.shape[0], 1)
        weight = torch.cat([colour_out.weight, spatial_out.weight,
                            (colour_out.bias + spatial_out.bias)[:, None]], dim=1)
        merged = torch.cat([hidden, ones], dim=1) @ weight.T
        return self.head(merged).view(*features.shape[:-1], -1)

    def parameter_groups(self, weight_decay: tuple[float, float, float]) -> list[dict]:
        """Adam groups with the published per-branch weight decay (spatial, colour, head)."""
        spatial, colour, head = weight_decay
        return [{"params": list(self.spatial.parameters()), "weight_decay": spatial},
                {"params": list(self.colour.parameters()), "weight_decay": colour},
                {"params": list(self.head.parameters()), "weight_decay": head}]


def pixel_features(guide: torch.Tensor) -> torch.Tensor:
    """P2P's inputs for every pixel of ``guide (1, C, H, W)`` in [0, 1].

    Returns ``(H, W, C + 2)`` float32: bands standardised over the image (zero mean,
    unit standard deviation; constant bands become 0), then x and y in about
    [-0.5, 0.5] with the same spacing on both axes.
    """
    bands = guide[0].double()
    mean = bands.mean(dim=(1, 2), keepdim=True)
    std = bands.std(dim=(1, 2), unbiased=False, keepdim=True)
    standard = (bands - mean) / torch.where(std > 0, std, torch.ones_like(std))
    height, width = guide.shape[-2:]
    step = 1.0 / max(1, max(height, width) - 1)
    y = (torch.arange(height, dtype=torch.float64, device=guide.device) - (height - 1) / 2) * step
    x = (torch.arange(width, dtype=torch.float64, device=guide.device) - (width - 1) / 2) * step
    grid_y, grid_x = torch.meshgrid(y, x, indexing="ij")
    return torch.cat([standard, grid_x[None], grid_y[None]]).permute(1, 2, 0).float()


def footprints(out_length: int, in_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each low-resolution pixel's footprint along one axis, as a window of HR pixels.

    Parameters
    ----------
    out_length:
        Low-resolution pixels ``h``.
    in_length:
        High-resolution pixels ``H`` (>= ``h``).

    Returns
    -------
    ``start (h,)`` long: the first high-resolution pixel of each footprint;
    ``weight (h, K)`` float32: the box-reduction weights of pixels ``start + k``
    (summing to 1; ``K`` is the widest footprint, windows are clamped into the
    image and padded with zero weights).
    """
    matrix = area_matrix(in_length, out_length)                          # (h, H)
    nonzero = matrix > 1e-12
    index = torch.arange(in_length)
    start = torch.where(nonzero, index, in_length).amin(dim=1)
    stop = torch.where(nonzero, index, -1).amax(dim=1) + 1
    span = int((stop - start).max())
    start = start.clamp(max=in_length - span)
    taps = start[:, None] + torch.arange(span)[None, :]
    return start, matrix.gather(1, taps).float()


def footprint_patches(features: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                      row_start: torch.Tensor, row_weight: torch.Tensor,
                      col_start: torch.Tensor, col_weight: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and weights of the footprints of low-resolution pixels.

    Parameters
    ----------
    features:
        ``(H, W, F)`` per-pixel inputs.
    rows, cols:
        ``(N,)`` long, low-resolution pixel coordinates.
    row_start, row_weight, col_start, col_weight:
        From :func:`footprints` for each axis.

    Returns
    -------
    ``patch (N, ky, kx, F)``, the footprints' inputs, and ``weight (N, ky, kx)``.
    """
    ky, kx = row_weight.shape[1], col_weight.shape[1]
    y = row_start[rows][:, None] + torch.arange(ky, device=rows.device)[None, :]  # (N, ky)
    x = col_start[cols][:, None] + torch.arange(kx, device=cols.device)[None, :]  # (N, kx)
    patch = features[y[:, :, None], x[:, None, :]]                       # (N, ky, kx, F)
    weight = row_weight[rows][:, :, None] * col_weight[cols][:, None, :]  # (N, ky, kx)
    return patch, weight


def weighted_means(net: nn.Module, patch: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``(N, c)``: the sum over each footprint of weight x prediction (see
    :func:`footprint_patches`)."""
    prediction = net(patch)                                              # (N, ky, kx, c)
    return (prediction * weight[..., None]).sum(dim=(1, 2))


def footprint_means(net: nn.Module, features: torch.Tensor, rows: torch.Tensor,
                    cols: torch.Tensor, row_start: torch.Tensor, row_weight: torch.Tensor,
                    col_start: torch.Tensor, col_weight: torch.Tensor) -> torch.Tensor:
    """The network's mean output over the footprints of low-resolution pixels.

    Parameters
    ----------
    features:
        ``(H, W, F)`` per-pixel inputs.
    rows, cols:
        ``(N,)`` long, low-resolution pixel coordinates of the batch.
    row_start, row_weight, col_start, col_weight:
        From :func:`footprints` for each axis.

    Returns
    -------
    ``(N, c)``: sum over the footprint of weight x prediction.
    """
    patch, weight = footprint_patches(features, rows, cols, row_start, row_weight,
                                      col_start, col_weight)
    return weighted_means(net, patch, weight)


def _fast_adam(device: torch.device) -> bool | None:
    """Adam's fused implementation (one kernel for all parameters instead of a dozen small
    operations per tensor: the same update) where PyTorch has it (``fused=``)."""
    return True if device.type in ("cpu", "cuda") else None


class P2P(Baseline):
    """de Lutio et al.'s pixel-to-pixel transformation with the published defaults.

    Parameters
    ----------
    iterations:
        Batches (Adam steps); published 32768. Reduce for tests and quick looks.
    batch_size:
        Low-resolution pixels per batch; published 32.
    learning_rate:
        Adam's step size; published 1e-3.
    weight_decay:
        ``(spatial, colour, head)`` L2 weight decay; published ``(1e-4, 1e-3, 1e-4)``.
    loss:
        ``"l1"`` (published) or ``"mse"``.
    seed:
        Seeds the initialisation and the batch order.
    device:
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.
    threads:
        CPU threads for PyTorch's operations while fitting and predicting (set with
        :func:`torch.set_num_threads` and restored afterwards); None keeps the current
        setting. A step is too small to gain much from several threads, and on a busy
        machine OpenMP's spinning threads make it several times slower: 1 is the
        safe choice there (see "Cost on CPU" above).
    """

    name = "p2p"

    def __init__(self, iterations: int = DEFAULT_ITERATIONS,
                 batch_size: int = DEFAULT_BATCH_SIZE,
                 learning_rate: float = DEFAULT_LEARNING_RATE,
                 weight_decay: tuple[float, float, float] = DEFAULT_WEIGHT_DECAY,
                 loss: str = "l1", seed: int = 0, device: str = "auto",
                 threads: int | None = None) -> None:
        super().__init__()
        if iterations < 1 or batch_size < 1 or learning_rate <= 0:
            raise ValueError("iterations and batch_size must be >= 1, learning_rate > 0")
        if loss not in ("l1", "mse"):
            raise ValueError(f"loss must be 'l1' or 'mse', got {loss!r}")
        if seed_problems(seed):
            raise ValueError(seed_problems(seed)[0])
        self.iterations = iterations
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        spatial, colour, head = weight_decay
        self.weight_decay = (float(spatial), float(colour), float(head))
        self.loss = loss
        self.seed = seed
        self.device = resolve_device(device)
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be None or >= 1, got {threads}")
        self.threads = threads
        self.net: PixTransformNet | None = None
        self.losses: list[float] = []
        self._standard: tuple[torch.Tensor, torch.Tensor] | None = None
        self._features: torch.Tensor | None = None

    def _fit(self, pair: PreparedPair) -> None:
        with torch_threads(self.threads):
            self._train(pair)

    def _train(self, pair: PreparedPair) -> None:
        """Standardise, gather every footprint, then the Adam steps on batches."""
        device = self.device
        target = pair.target[0].to(device)                                  # (c, h, w)
        valid = pair.valid[0, 0].to(device) > 0.5
        channels, h, w = target.shape
        height, width = pair.guide.shape[-2:]
        # standardise the target by its valid pixels, as P2P does
        values = target[:, valid]
        mean = values.mean(dim=1)
        std = values.std(dim=1, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))
        self._standard = (mean, std)
        standard = (target - mean[:, None, None]) / std[:, None, None]
        features = pixel_features(pair.guide.to(device))
        row_start, row_weight = (t.to(device) for t in footprints(h, height))
        col_start, col_weight = (t.to(device) for t in footprints(w, width))
        rows_all, cols_all = torch.nonzero(valid, as_tuple=True)
        # every valid pixel's footprint and target, gathered once (16 x (C + 2) values
        # per pixel at x4): a batch is then one row selection
        patches, weights = footprint_patches(features, rows_all, cols_all, row_start,
                                             row_weight, col_start, col_weight)
        targets = standard[:, rows_all, cols_all].T.contiguous()           # (N, c)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = PixTransformNet(pair.guide.shape[1], channels)
        net = net.to(device).train()
        optimizer = torch.optim.Adam(net.parameter_groups(self.weight_decay),
                                     lr=self.learning_rate, fused=_fast_adam(device))
        criterion = nn.L1Loss() if self.loss == "l1" else nn.MSELoss()
        order = torch.empty(0, dtype=torch.long)
        position = 0
        losses: list[torch.Tensor] = []
        for _ in range(self.iterations):
            if position >= order.numel():   # a new epoch: reshuffle the pixels
                order, position = torch.randperm(rows_all.numel(), generator=generator), 0
            chosen = order[position:position + self.batch_size].to(device)
            position += self.batch_size
            mean_prediction = weighted_means(net, patches[chosen], weights[chosen])
            loss = criterion(mean_prediction, targets[chosen])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        self.losses = torch.stack(losses).tolist() if losses else []
        self.net = net.eval()
        self._features = features

    @torch.no_grad()
    def _predict(self, pair: PreparedPair) -> torch.Tensor:
        with torch_threads(self.threads):
            return self._evaluate()

    def _evaluate(self) -> torch.Tensor:
        """The network on every pixel, in the target's units: ``(1, c, H, W)``."""
        assert self.net is not None and self._standard is not None
        features = self._features
        assert features is not None
        height, width = features.shape[:2]
        flat = features.reshape(height * width, -1)
        out = torch.cat([self.net(flat[i:i + PREDICT_CHUNK])
                         for i in range(0, flat.shape[0], PREDICT_CHUNK)])   # (H W, c)
        mean, std = self._standard
        out = out * std + mean
        return out.T.reshape(1, -1, height, width).cpu()

    def __repr__(self) -> str:
        return (f"P2P(iterations={self.iterations}, batch_size={self.batch_size}, "
                f"learning_rate={self.learning_rate}, weight_decay={self.weight_decay}, "
                f"loss={self.loss!r}, seed={self.seed})")
