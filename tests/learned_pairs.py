"""Tiny synthetic training sets for the learned-model tests (imported by test_learned_*)."""

from __future__ import annotations

import numpy as np
import torch

from cmsr.learned.config import ModelConfig, TrainingSettings
from cmsr.learned.training import TrainingPair
from cmsr.method.normalize import array_to_tensor, tensor_to_array
from cmsr.method.resample import downsample

TINY = {"blocks": 2, "features": 8, "matching_features": 4, "max_disparity": 2}


def tiny_config(variant: str = "full", resolution: str = "low") -> ModelConfig:
    """T = 2, C = 8."""
    return ModelConfig.build(variant=variant, guide_resolution=resolution, **TINY)


def quick_settings(**changes: object) -> TrainingSettings:
    """Small batches and patches, validation every 5 steps, no time limit to speak of."""
    base = TrainingSettings(minutes=60.0, batch_size=4, patch_size=8, learning_rate=2e-3,
                            warmup_steps=0, validation_every=5, validation_crop=16,
                            checkpoint_seconds=1e9)
    return base.replace(**changes)


def scene(size: int, seed: int) -> np.ndarray:
    """A smooth random scene ``(size, size)`` float64 in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 1, size // 4, size // 4, generator=generator, dtype=torch.float64)
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic",
                                           align_corners=False)
    return fine[0, 0].clamp(0, 1).numpy()


def reduce(image: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic reduction of ``(H, W[, c])`` by ``scale``, float32."""
    size = (image.shape[0] // scale, image.shape[1] // scale)
    return tensor_to_array(downsample(array_to_tensor(image, np.float64), size),
                           band_axis=image.ndim == 3)


def make_pairs(count: int = 3, *, low_size: int = 16, scale: int = 2, resolution: str = "low",
               target_bands: int = 1, disparity: int = 0) -> list[TrainingPair]:
    """``count`` pairs: an 8-bit target and a 3-band float guide (another 'modality' of the
    same scene, seen ``disparity`` output pixels to the side)."""
    pairs = []
    for index in range(count):
        full = scene(low_size * scale, index)
        truth = np.rint(255 * full).astype(np.uint8)
        if target_bands > 1:
            truth = np.stack([truth] * target_bands, axis=-1)
        moved = np.roll(full, -disparity, axis=1)
        guide_truth = np.stack([moved, moved**2, 1 - moved], axis=-1).astype(np.float32)
        guide = guide_truth if resolution == "high" else reduce(guide_truth, scale)
        pairs.append(TrainingPair(f"pair{index}", reduce(truth, scale), truth, guide,
                                  guide_truth))
    return pairs
