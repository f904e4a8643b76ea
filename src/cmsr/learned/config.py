"""The settings of a learned cross-spectral model: its architecture and its training.

Learned models are a second method beside cmsr's per-pair fit, with their own two
frozen dataclasses (cmsr's :class:`cmsr.Config` describes a per-pair fit and is not
used here):

* :class:`ModelConfig` -- the architecture (CSPSR, "Learning Cross-Spectral Prior for
  Image Super-Resolution"): ``blocks`` (the paper's T) dynamic multi-modal fusion
  modules of ``features`` (C) channels, cross-view matching, dynamic convolution and
  confidence-weighted transfer, each of which can be switched off for ablations.
  :data:`VARIANTS` names the paper's ablation rows; :data:`SIZES` the paper's size and
  a reduced one that trains on two CPU cores.
* :class:`TrainingSettings` -- how a model is trained over many pairs: time budget,
  patches, learning rate, loss weights, validation and checkpoints.

Both validate themselves on construction (``ValueError`` with every problem).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GUIDE_RESOLUTIONS",
    "LOSSES",
    "SIZES",
    "VARIANTS",
    "ModelConfig",
    "TrainingSettings",
]

GUIDE_RESOLUTIONS = ("low", "high")
"""``"low"``: the guide comes at the target's low resolution (the paper's setting);
``"high"``: at the output resolution (cmsr's direction: an RGB photo guiding NIR or
thermal)."""

LOSSES = ("mse", "l1")
"""Reconstruction losses on the target's result: the paper's MSE, or L1."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the dual-branch cross-spectral network.

    Attributes
    ----------
    blocks:
        T, the number of dynamic multi-modal fusion (DMF) modules (paper: 15).
    features:
        C, the feature channels of both branches (paper: 64).
    dynamic_kernel:
        Side k of the per-pixel kernels of the dynamic convolution (odd).
    use_guide:
        False builds the paper's *Baseline*: the target branch alone.
    use_matching:
        Cross-view matching (CVM): predict a horizontal disparity from the
        low-resolution pair and warp the guide into the target's view.
    use_dynamic:
        Adapt the guide features with the dynamic convolution in every DMF module.
    use_confidence:
        Cross-spectral feature transfer (CSFT) weighted by learned spatial and channel
        confidences; when False the adapted guide features are simply added.
    max_disparity:
        Largest disparity the CVM considers, in low-resolution pixels, either sign
        (its cost volume has ``2 * max_disparity + 1`` planes).
    matching_features:
        Channels of the CVM's matching features.
    guide_resolution:
        ``"low"`` or ``"high"`` (see :data:`GUIDE_RESOLUTIONS`).
    """

    blocks: int = 15
    features: int = 64
    dynamic_kernel: int = 3
    use_guide: bool = True
    use_matching: bool = True
    use_dynamic: bool = True
    use_confidence: bool = True
    max_disparity: int = 4
    matching_features: int = 16
    guide_resolution: str = "low"

    def __post_init__(self) -> None:
        problems = []
        for name in ("blocks", "features", "matching_features"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be an integer >= 1, got {value!r}")
        kernel = self.dynamic_kernel
        if not isinstance(kernel, int) or isinstance(kernel, bool) or kernel < 1 \
                or kernel % 2 == 0:
            problems.append(f"dynamic_kernel must be an odd integer >= 1, got {kernel!r}")
        disparity = self.max_disparity
        if not isinstance(disparity, int) or isinstance(disparity, bool) or disparity < 0:
            problems.append(f"max_disparity must be an integer >= 0, got {disparity!r}")
        for name in ("use_guide", "use_matching", "use_dynamic", "use_confidence"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be True or False")
        if self.guide_resolution not in GUIDE_RESOLUTIONS:
            problems.append(f"guide_resolution must be one of {', '.join(GUIDE_RESOLUTIONS)}, "
                            f"got {self.guide_resolution!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def matching(self) -> bool:
        """Whether the network has a CVM (it needs the guide)."""
        return self.use_guide and self.use_matching

    @property
    def variant(self) -> str:
        """The name in :data:`VARIANTS` this config matches, else ``"custom"``."""
        for name, switches in VARIANTS.items():
            if all(getattr(self, key) == value for key, value in switches.items()):
                return name
        return "custom"

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def build(cls, *, variant: str = "full", size: str = "paper", **overrides: Any
              ) -> ModelConfig:
        """The config of a named variant and size, with ``overrides``.

        Examples
        --------
        >>> config = ModelConfig.build(variant="with-guide", size="reduced")
        >>> config.blocks, config.features, config.use_matching, config.variant
        (4, 32, False, 'with-guide')
        """
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
        return cls(**{**SIZES[size], **VARIANTS[variant], **overrides})


VARIANTS: dict[str, dict[str, bool]] = {
    "baseline": {"use_guide": False, "use_matching": False, "use_dynamic": False,
                 "use_confidence": False},
    "with-guide": {"use_guide": True, "use_matching": False, "use_dynamic": False,
                   "use_confidence": False},
    "full": {"use_guide": True, "use_matching": True, "use_dynamic": True,
             "use_confidence": True},
}
"""The ablation rows of the paper's Table 4 this package builds: ``baseline`` (the
target branch alone), ``with-guide`` ("w/ NIR": both branches, the guide features
added to the target's, no CVM, no dynamic convolution, no confidences) and ``full``."""

SIZES: dict[str, dict[str, int]] = {
    "paper": {"blocks": 15, "features": 64},
    "reduced": {"blocks": 4, "features": 32},
}
"""Network sizes: the paper's (T = 15, C = 64) and a reduced one that trains on two CPU
cores within half an hour and runs a 1024x680 frame in well under a second."""


@dataclass(frozen=True)
class TrainingSettings:
    """How a learned model is trained over many pairs.

    Attributes
    ----------
    minutes:
        Time budget of the whole training, in minutes (summed over resumed runs);
        training stops at the first step boundary after it.
    max_steps:
        Stop after this many steps as well (None: the time budget alone).
    seed:
        Seed of the weights, the validation split and the patches.
    batch_size:
        Patches per step.
    patch_size:
        Side of a patch in low-resolution pixels (the output patch is ``scale`` times
        larger); smaller pairs make it smaller.
    learning_rate:
        Adam's top rate; it rises linearly over ``warmup_steps`` steps (Adam's first
        steps move every weight by about the rate, which would throw an untrained
        network far from its bicubic start) and then follows a half cosine to
        ``final_rate_fraction`` of itself over the budget (steps or time, whichever
        runs out first).
    warmup_steps:
        Steps of the linear warm-up (0: none).
    final_rate_fraction:
        The last learning rate as a fraction of the first.
    loss:
        Reconstruction loss on the target's result (:data:`LOSSES`).
    consistency_weight:
        lambda_1, the weight of the cross-spectral spatial consistency loss on the
        guide branch's results (paper: 0.1).
    matching_weight:
        Weight of the matching loss that teaches the CVM (the paper started from a
        pretrained disparity network; here the CVM learns from the pairs): one
        minus the squared local normalised cross-correlation of the target and the
        warped guide at low resolution.
    validation_fraction:
        Share of the pairs held out for validation, in [0, 0.9]; with two or more
        pairs and a nonzero share at least one is held out.
    validation_every:
        Steps between validations (and at the end); the model kept is the one with
        the best validation PSNR (the last one without validation pairs).
    validation_crop:
        Side of the central crop of each validation pair, in low-resolution pixels.
    checkpoint_seconds:
        Seconds between checkpoints (and at the end, and when stopped by Ctrl-C).
    """

    minutes: float = 30.0
    max_steps: int | None = None
    seed: int = 0
    batch_size: int = 8
    patch_size: int = 32
    learning_rate: float = 2e-4
    warmup_steps: int = 100
    final_rate_fraction: float = 0.05
    loss: str = "mse"
    consistency_weight: float = 0.1
    matching_weight: float = 0.1
    validation_fraction: float = 0.1
    validation_every: int = 200
    validation_crop: int = 96
    checkpoint_seconds: float = 120.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("minutes", "learning_rate", "checkpoint_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) \
                    or not math.isfinite(value) or value <= 0:
                problems.append(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("consistency_weight", "matching_weight", "final_rate_fraction"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) \
                    or not math.isfinite(value) or value < 0:
                problems.append(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("batch_size", "validation_every", "validation_crop"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            problems.append(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if not isinstance(self.patch_size, int) or self.patch_size < 4:
            problems.append(f"patch_size must be an integer >= 4, got {self.patch_size!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int)
                                           or self.max_steps < 1):
            problems.append(f"max_steps must be None or an integer >= 1, got "
                            f"{self.max_steps!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            problems.append(f"seed must be an integer >= 0, got {self.seed!r}")
        fraction = self.validation_fraction
        if not isinstance(fraction, int | float) or not 0 <= fraction <= 0.9:
            problems.append(f"validation_fraction must be in [0, 0.9], got {fraction!r}")
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def budget_seconds(self) -> float:
        """The time budget in seconds."""
        return 60.0 * float(self.minutes)

    def replace(self, **changes: Any) -> TrainingSettings:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)
