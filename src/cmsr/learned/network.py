"""The dual-branch cross-spectral super-resolution network (CSPSR's architecture).

Data flow (all features at the target's low resolution ``h x w``):

1. **Cross-view matching** (optional, :class:`cmsr.learned.matching.CrossViewMatching`):
   disparities from the low-resolution pair; the guide is warped into the target's
   view (a high-resolution guide with the field enlarged by the scale).
2. **Two branches**, each with a head of two 3x3 convolutions and a residual block:
   the *target branch* on the low-resolution target; the *guide branch* on the
   aligned guide -- at low resolution as it is, or at high resolution first folded
   into ``scale**2`` times more channels at low resolution (space-to-depth), so the
   same network takes either.
3. **T dynamic multi-modal fusion modules** (:class:`FusionBlock`): a dynamic
   convolution adapts the guide features with per-pixel kernels predicted from both
   branches; a cross-spectral feature transfer unit adds them to the target features
   weighted by learned spatial and channel confidences; two convolutions per branch
   (residual) make the next module's inputs.
4. **Reconstruction**: a 3x3 convolution and a pixel shuffle by the scale per branch,
   added to the bicubic enlargement of the branch's low-resolution input. The target
   branch gives the result; the guide branch an enlarged guide in the target's view,
   used by the consistency loss during training only.

The last convolution of every residual path and of the reconstructions starts at
zero, and the dynamic kernels start as the identity, so an untrained network returns
the bicubic enlargement of the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmsr.learned.config import ModelConfig
from cmsr.learned.matching import (
    CrossViewMatching,
    Disparities,
    upsample_disparity,
    warp_by_disparity,
)
from cmsr.method.model import conv_stack
from cmsr.method.resample import upsample_bicubic

__all__ = [
    "BranchHead",
    "ConfidenceTransfer",
    "CrossSpectralNet",
    "DynamicConvolution",
    "FusionBlock",
    "NetworkOutput",
    "parameter_count",
]


def _conv(in_channels: int, out_channels: int, kernel: int = 3, *, zero: bool = False
          ) -> nn.Conv2d:
    """A same-size convolution, He-initialised (or zero: starts as nothing)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
    if zero:
        nn.init.zeros_(conv.weight)
    else:
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    nn.init.zeros_(conv.get_parameter("bias"))
    return conv


class BranchHead(nn.Module):
    """Shallow features of one branch: two 3x3 convolutions and a residual block.

    ``(B, bands, h, w)`` -> ``(B, features, h, w)``.
    """

    def __init__(self, bands: int, features: int) -> None:
        super().__init__()
        self.first = nn.Sequential(_conv(bands, features), nn.ReLU(inplace=True),
                                   _conv(features, features))
        self.residual = conv_stack(features, features, features, 2, 3)

    def forward(self, image: Tensor) -> Tensor:
        features = self.first(image)
        return features + self.residual(features)


class DynamicConvolution(nn.Module):
    """Adapts guide features with a ``k x k`` kernel per pixel, predicted from both branches.

    The kernel map ``(B, k*k, h, w)`` comes from a 3x3 convolution of the concatenated
    target and guide features; each pixel's kernel filters every channel of the guide
    features around it (borders repeated). It starts as the identity.
    """

    def __init__(self, features: int, kernel: int = 3) -> None:
        super().__init__()
        self.kernel = kernel
        self.predict = _conv(2 * features, kernel * kernel, zero=True)
        with torch.no_grad():
            self.predict.get_parameter("bias")[kernel * kernel // 2] = 1.0

    def forward(self, target: Tensor, guide: Tensor) -> Tensor:
        """``(B, C, h, w)`` target and guide features -> ``(B, C, h, w)`` adapted guide
        features."""
        kernels = self.predict(torch.cat((target, guide), dim=1))
        radius = self.kernel // 2
        height, width = guide.shape[-2:]
        padded = F.pad(guide, (radius, radius, radius, radius), mode="replicate")
        out = kernels[:, :1] * padded[..., :height, :width]
        for index in range(1, self.kernel * self.kernel):
            dy, dx = divmod(index, self.kernel)
            out = torch.addcmul(out, kernels[:, index:index + 1],
                                padded[..., dy:dy + height, dx:dx + width])
        return out


class ConfidenceTransfer(nn.Module):
    """Cross-spectral feature transfer (CSFT) weighted by learned confidences.

    With target features ``t`` and adapted guide features ``g`` (both ``(B, C, h, w)``):
    ``w_s1 = sigmoid(conv3x3(t))`` marks where the target needs help;
    both are batch-normalised (``bn(t)``, ``bn(g)``) to put the modalities on one scale;
    ``w_c = sigmoid(conv1x1(global mean of [bn(g), bn(t)]))`` is split into channel
    weights ``w_c1`` (target) and ``w_c2`` (guide); ``w_s2 = sigmoid(conv3x3([bn(g),
    bn(t)]))`` marks where the guide features can be trusted (not occluded, well
    matched). The result is ``w_c1 * t + w_s1 * w_s2 * w_c2 * bn(g)``, ``(B, C, h, w)``.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.need = _conv(features, 1)
        self.norm_target = nn.BatchNorm2d(features)
        self.norm_guide = nn.BatchNorm2d(features)
        self.channels = nn.Conv2d(2 * features, 2 * features, 1)
        self.trust = _conv(2 * features, 1)

    def forward(self, target: Tensor, guide: Tensor) -> Tensor:
        need = torch.sigmoid(self.need(target))
        both = torch.cat((self.norm_guide(guide), self.norm_target(target)), dim=1)
        weights = torch.sigmoid(self.channels(both.mean(dim=(2, 3), keepdim=True)))
        for_target, for_guide = weights.chunk(2, dim=1)
        trust = torch.sigmoid(self.trust(both))
        guide_normalised = both[:, : guide.shape[1]]
        return torch.addcmul(for_target * target, need * trust, for_guide * guide_normalised)


class FusionBlock(nn.Module):
    """One dynamic multi-modal fusion (DMF) module, or a plain residual module for the
    target alone.

    ``forward(t, g) -> (t', g')`` on ``(B, C, h, w)`` features: the guide features are
    adapted (dynamic convolution, if on), transferred into the target features
    (confidence-weighted CSFT, or a plain sum), and each branch's next features are
    its input plus two 3x3 convolutions of the fused (target) or adapted (guide)
    features. Without a guide: ``t' = t + convs(t)`` and ``g`` stays None.
    """

    def __init__(self, features: int, *, use_guide: bool, use_dynamic: bool,
                 use_confidence: bool, kernel: int = 3) -> None:
        super().__init__()
        self.target_convs = conv_stack(features, features, features, 2, 3)
        self.dynamic = (DynamicConvolution(features, kernel)
                        if use_guide and use_dynamic else None)
        self.transfer = ConfidenceTransfer(features) if use_guide and use_confidence else None
        self.guide_convs = conv_stack(features, features, features, 2, 3) if use_guide else None

    def forward(self, target: Tensor, guide: Tensor | None
                ) -> tuple[Tensor, Tensor | None]:
        if guide is None or self.guide_convs is None:
            return target + self.target_convs(target), None
        adapted = guide if self.dynamic is None else self.dynamic(target, guide)
        fused = (target + adapted if self.transfer is None
                 else self.transfer(target, adapted))
        return target + self.target_convs(fused), guide + self.guide_convs(adapted)


@dataclass(frozen=True)
class NetworkOutput:
    """What :class:`CrossSpectralNet` returns.

    Attributes
    ----------
    target:
        ``(B, c, h*s, w*s)`` the super-resolved target, unit range (may overshoot a
        little).
    guide:
        ``(B, C, h*s, w*s)`` the guide branch's enlarged guide in the target's view,
        or None (no guide branch, or not asked for).
    disparities:
        The CVM's fields ``(B, 1, h, w)`` in low-resolution pixels, or None without CVM.
    aligned_low:
        ``(B, C, h, w)`` the guide at low resolution in the target's view (for the
        matching loss), or None without a guide.
    """

    target: Tensor
    guide: Tensor | None = None
    disparities: Disparities | None = None
    aligned_low: Tensor | None = None


class CrossSpectralNet(nn.Module):
    """The whole network (see the module docstring).

    Parameters
    ----------
    config:
        The architecture.
    target_bands, guide_bands:
        Bands of the target (and of the result) and of the guide, 1..16.
    scale:
        Integer enlargement, >= 2.
    """

    def __init__(self, config: ModelConfig, target_bands: int, guide_bands: int, scale: int
                 ) -> None:
        super().__init__()
        if not isinstance(scale, int) or scale < 2:
            raise ValueError(f"scale must be an integer >= 2, got {scale!r}")
        self.config = config
        self.target_bands = target_bands
        self.guide_bands = guide_bands
        self.scale = scale
        features = config.features
        self.target_head = BranchHead(target_bands, features)
        self.target_out = _conv(features, target_bands * scale * scale, zero=True)
        self.matching: CrossViewMatching | None = None
        self.guide_head: BranchHead | None = None
        self.guide_out: nn.Conv2d | None = None
        if config.use_guide:
            if config.use_matching:
                self.matching = CrossViewMatching(target_bands, guide_bands,
                                                  features=config.matching_features,
                                                  max_disparity=config.max_disparity)
            folded = guide_bands * (scale * scale if config.guide_resolution == "high" else 1)
            self.guide_head = BranchHead(folded, features)
            self.guide_out = _conv(features, guide_bands * scale * scale, zero=True)
        self.blocks = nn.ModuleList(
            FusionBlock(features, use_guide=config.use_guide, use_dynamic=config.use_dynamic,
                        use_confidence=config.use_confidence, kernel=config.dynamic_kernel)
            for _ in range(config.blocks))

    @property
    def guide_is_high(self) -> bool:
        """Whether the guide comes at the output resolution."""
        return self.config.guide_resolution == "high"

    def forward(self, target: Tensor, guide: Tensor | None = None, *,
                guide_output: bool = False) -> NetworkOutput:
        """Super-resolve ``target`` with ``guide``.

        Parameters
        ----------
        target:
            ``(B, c, h, w)`` float32 in unit range.
        guide:
            ``(B, C, h, w)`` (guide resolution ``"low"``) or ``(B, C, h*s, w*s)``
            (``"high"``) float32 in [0, 1]; ignored (may be None) without a guide
            branch.
        guide_output:
            Also reconstruct the guide branch's enlarged guide (training).

        Returns
        -------
        NetworkOutput
        """
        scale = self.scale
        height, width = target.shape[-2:]
        enlarged = upsample_bicubic(target, (height * scale, width * scale))
        features = self.target_head(target)
        if self.guide_head is None:
            for block in self.blocks:
                features, _ = block(features, None)
            return NetworkOutput(enlarged + F.pixel_shuffle(self.target_out(features), scale))
        if guide is None:
            raise ValueError("this network needs a guide")
        expected = (height * scale, width * scale) if self.guide_is_high else (height, width)
        if tuple(guide.shape[-2:]) != expected or guide.shape[1] != self.guide_bands:
            raise ValueError(f"expected a guide of {self.guide_bands} bands and size "
                             f"{expected}, got {tuple(guide.shape[1:])}")
        guide_low = F.avg_pool2d(guide, scale) if self.guide_is_high else guide
        disparities = None
        if self.matching is not None:
            disparities = self.matching(target, guide_low)
            guide_low, _ = warp_by_disparity(guide_low, disparities.left)
            if self.guide_is_high:
                guide, _ = warp_by_disparity(guide, upsample_disparity(disparities.left,
                                                                        scale))
        folded = F.pixel_unshuffle(guide, scale) if self.guide_is_high else guide_low
        guide_features: Tensor | None = self.guide_head(folded)
        for block in self.blocks:
            features, guide_features = block(features, guide_features)
        result = enlarged + F.pixel_shuffle(self.target_out(features), scale)
        guide_high = None
        if guide_output and guide_features is not None and self.guide_out is not None:
            guide_high = (upsample_bicubic(guide_low, (height * scale, width * scale))
                          + F.pixel_shuffle(self.guide_out(guide_features), scale))
        return NetworkOutput(result, guide_high, disparities, guide_low)


def parameter_count(module: nn.Module) -> int:
    """Number of learnable parameters of ``module``.

    Examples
    --------
    >>> parameter_count(nn.Conv2d(1, 2, 3))
    20
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
