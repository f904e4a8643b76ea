"""The CMSR network: two feature extractors and a three-way residual sum (paper Fig. 2).

``output = up(target) + FE1(up(target)) + FE2(guide)``, where ``up`` is the bicubic
enlargement done before the network (see :mod:`cmsr.method.resample`). The last layer of each
extractor starts at zero, so an untrained network returns the bicubic result.
"""

from __future__ import annotations

import torch
from torch import nn

from cmsr.method.config import Config


def conv_stack(in_channels: int, width: int, out_channels: int, layers: int,
               last_kernel: int) -> nn.Sequential:
    """``layers`` convolutions, ReLU after all but the last; the last is zero-initialised.

    The first ``layers - 1`` are 3x3 ``in -> width -> ... -> width`` with He
    initialisation (keeps the signal's scale through the ReLUs); the last maps
    ``width -> out_channels`` with a ``last_kernel`` x ``last_kernel`` filter.
    Padding keeps the spatial size.
    """
    modules: list[nn.Module] = []
    channels = in_channels
    for _ in range(layers - 1):
        conv = nn.Conv2d(channels, width, 3, padding=1)
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        nn.init.zeros_(conv.get_parameter("bias"))
        modules += [conv, nn.ReLU(inplace=True)]
        channels = width
    last = nn.Conv2d(channels, out_channels, last_kernel, padding=last_kernel // 2)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.get_parameter("bias"))
    modules.append(last)
    return nn.Sequential(*modules)


class CMSRNet(nn.Module):
    """Super-resolution network of CMSR, fully convolutional.

    Parameters
    ----------
    target_channels:
        Bands of the target modality ``c`` (1 for thermal, NIR, depth).
    guide_channels:
        Bands of the guide ``C`` (3 for RGB, 4 for RGB-NIR, 1 for grey).
    fe1_layers, fe1_channels:
        Depth and width of Feature-Extractor 1 (paper: 8 and 64); kernel 3x3.
    fe2_layers, fe2_channels:
        Depth and width of Feature-Extractor 2 (paper: 4-8 and 4-128); 3x3 with ReLU,
        the last layer 1x1 without activation.
    """

    def __init__(self, target_channels: int, guide_channels: int, *, fe1_layers: int = 8,
                 fe1_channels: int = 64, fe2_layers: int = 6, fe2_channels: int = 64) -> None:
        super().__init__()
        self.target_channels = target_channels
        self.guide_channels = guide_channels
        self.fe1 = conv_stack(target_channels, fe1_channels, target_channels, fe1_layers, 3)
        self.fe2 = conv_stack(guide_channels, fe2_channels, target_channels, fe2_layers, 1)

    @classmethod
    def from_config(cls, config: Config, target_channels: int, guide_channels: int, *,
                    seed: int | None = None) -> CMSRNet:
        """The network ``config`` describes (its ``fe1_*`` / ``fe2_*`` fields), with
        weights drawn from ``seed`` (the global generator untouched) or, for None,
        from the global generator."""
        def build() -> CMSRNet:
            return cls(target_channels, guide_channels, fe1_layers=config.fe1_layers,
                       fe1_channels=config.fe1_channels, fe2_layers=config.fe2_layers,
                       fe2_channels=config.fe2_channels)

        if seed is None:
            return build()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build()

    @property
    def halo(self) -> int:
        """Receptive-field radius in pixels: tiles need this much overlap to be exact."""

        def radius(stack: nn.Sequential) -> int:
            return sum(m.kernel_size[0] // 2 for m in stack if isinstance(m, nn.Conv2d))

        return max(radius(self.fe1), radius(self.fe2))

    def forward(self, target_up: torch.Tensor, guide: torch.Tensor | None,
                guide_weight: torch.Tensor | None = None) -> torch.Tensor:
        """Super-resolve.

        Parameters
        ----------
        target_up:
            ``(B, c, H, W)`` float, the low-resolution target enlarged to the guide's
            size (bicubic), normalised to about [0, 1].
        guide:
            ``(B, C, H, W)`` float in [0, 1], aligned to the target; None: the
            guide-free network ``target_up + FE1(target_up)`` (the self-check's
            reference, see :mod:`cmsr.method.self_check`).
        guide_weight:
            ``(B, 1, 1, 1)`` float multiplying FE2's output per example (0 drops the
            guide for that example, and FE2 is not run on it: guide dropout in
            training); None: 1.

        Returns
        -------
        ``(B, c, H, W)`` float, same normalisation as ``target_up``.
        """
        out = target_up + self.fe1(target_up)
        if guide is None:
            return out
        if guide_weight is None:
            return out + self.fe2(guide)
        # Feature-Extractor 2 runs only on the examples whose weight is not 0 (guide
        # dropout): the others would add exactly 0 for their share of the branch's work
        kept = guide_weight.view(-1) != 0
        if bool(kept.all()):
            return out + self.fe2(guide) * guide_weight
        guided = torch.zeros_like(out)
        if bool(kept.any()):
            guided[kept] = (self.fe2(guide[kept]) * guide_weight[kept]).to(guided.dtype)
        return out + guided
