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
gradients). Here the modulation is computed per tile of pixels with batched matrix
products, with its memory bounded for any image size
(:mod:`cmsr.evaluation.baselines.local_attention`). On the CPU the network runs
channels-last (oneDNN's fast layout for the 3x3 convolutions, and the modulation's)
and the 1x1 convolutions are plain matrix products (:class:`Pointwise`). Results
equal the published formulation up to float rounding (tests compare with it, in
float64 and in float32).

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

import torch
import torch.nn.functional as F
from torch import nn

from cmsr.evaluation.baselines.base import Baseline
from cmsr.evaluation.baselines.local_attention import DEFAULT_CHUNK_BYTES, local_attention
from cmsr.method.api import PreparedPair, resolve_device
from cmsr.method.config import seed_problems
from cmsr.method.resample import downsample

WIDTH = 64
DEFAULT_ITERATIONS = 1000
DEFAULT_LEARNING_RATE = 2e-3
LR_DECAY = 0.9998
LR_DECAY_EVERY = 5
DEFAULT_WEIGHT_DECAY = (5e-4, 0.0, 0.0, 0.0)  # guide, source, modulation, prediction
DEFAULT_SOURCE_NEIGHBOURHOOD = 11
DEFAULT_GUIDE_NEIGHBOURHOOD = 5
PRECISIONS = ("float32", "bfloat16")


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
        if seed_problems(seed):
            raise ValueError(seed_problems(seed)[0])
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
        # Module.to takes memory_format, which torch's type hints leave out
        net = net.to(self.device, memory_format=self._layout()).train()  # type: ignore[call-overload]
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
