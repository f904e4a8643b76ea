"""Applying a learned model to one pair: no fitting, one forward pass (tiled when large).

:class:`LearnedModel` checks the pair against the model file (band counts, scale, the
guide's resolution, the target's dtype), normalises both images with the model's
fixed ranges, runs the network and returns the result in the target's units and
dtype, like :meth:`cmsr.CMSR.predict`.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from cmsr.errors import InputError, describe_shape
from cmsr.learned.model_file import ModelInfo, load_model
from cmsr.learned.network import CrossSpectralNet
from cmsr.method.normalize import array_to_tensor, fill_invalid, result_dtype, valid_mask
from cmsr.method.resample import resize
from cmsr.method.validate import check_image, check_mask

__all__ = ["DEFAULT_HALO", "DEFAULT_TILE", "LearnedModel"]

DEFAULT_TILE = 384
"""Side of an inference tile in low-resolution pixels; smaller images run whole."""
DEFAULT_HALO = 32
"""Low-resolution pixels of context around each tile (cut off the tile's result)."""
#: A guide this many pixels off the size the model needs is resized to it; more is an error.
SIZE_SLACK = 2


class LearnedModel:
    """A trained network with its model file's description, ready to apply.

    Parameters
    ----------
    network:
        The network (put in eval mode).
    info:
        What the model file says (scale, bands, normalisation, ...).
    source:
        The model file's name, for messages.
    tile, halo:
        Tiling of large images, in low-resolution pixels: images with more than
        ``tile**2`` pixels run in tiles of ``tile x tile`` with ``halo`` pixels of
        context each side. Tiles are not exactly the whole-image result: the
        transfer's channel weights average over what the network sees.
    """

    def __init__(self, network: CrossSpectralNet, info: ModelInfo, *, source: str = "model",
                 tile: int = DEFAULT_TILE, halo: int = DEFAULT_HALO) -> None:
        if tile < 8 or halo < 0:
            raise ValueError(f"tile must be >= 8 and halo >= 0, got {tile}, {halo}")
        self.network = network.eval()
        self.info = info
        self.source = source
        self.tile = tile
        self.halo = halo

    @classmethod
    def load(cls, path: str | os.PathLike[str], **options: int) -> LearnedModel:
        """Read a model file (see :func:`cmsr.learned.model_file.load_model`)."""
        network, info = load_model(path)
        return cls(network, info, source=str(path), **options)

    @property
    def scale(self) -> int:
        """The model's integer enlargement."""
        return self.info.scale

    @property
    def guide_is_low(self) -> bool:
        """Whether the model takes the guide at the target's resolution."""
        return self.info.config.guide_resolution == "low"

    # ------------------------------------------------------------------ checks
    def _check_bands(self, image: np.ndarray, expected: int, role: str, name: str) -> None:
        bands = 1 if image.ndim == 2 else image.shape[2]
        if bands != expected:
            raise InputError(f"was trained on {expected}-band {role}s; {name} has {bands} "
                             f"band(s)", self.source)

    def guide_size(self, target_shape: tuple[int, ...]) -> tuple[int, int]:
        """The guide size the model takes for a target of ``target_shape``."""
        height, width = target_shape[:2]
        if self.guide_is_low:
            return height, width
        return height * self.scale, width * self.scale

    def check_pair(self, target_lr: np.ndarray, guide: np.ndarray, *,
                   target_name: str = "target", guide_name: str = "guide") -> None:
        """Raise a one-line :class:`InputError` unless the model can take this pair.

        The images are checked as for cmsr (shape, finite, not constant); then the
        band counts, the guide's size (the target's size for a model trained with a
        low-resolution guide, ``scale`` times it otherwise, each within
        :data:`SIZE_SLACK` pixels) and an integer target's dtype against the model's.
        """
        check_image(target_lr, target_name, allow_nan=True)
        check_image(guide, guide_name, allow_nan=False)
        self._check_bands(target_lr, self.info.target_bands, "target", target_name)
        if self.info.config.use_guide:
            self._check_bands(guide, self.info.guide_bands, "guide", guide_name)
            need = self.guide_size(target_lr.shape)
            have = guide.shape[:2]
            if abs(have[0] - need[0]) > SIZE_SLACK or abs(have[1] - need[1]) > SIZE_SLACK:
                kind = ("at the target's low resolution (trained with --reduce-guide)"
                        if self.guide_is_low else f"{self.scale} times the target's size")
                raise InputError(
                    f"takes a guide {kind}: {describe_shape(need)} for the "
                    f"{describe_shape(target_lr.shape[:2])} target {target_name}; "
                    f"{guide_name} is {describe_shape(have)}", self.source)
        self.check_dtype(np.asarray(target_lr).dtype, target_name)

    def check_dtype(self, dtype: np.dtype, target_name: str) -> None:
        """Raise a one-line :class:`InputError` when ``dtype``, an integer target's, is not
        the integer dtype the model was trained on (e.g. the stored dtype of a GeoTIFF
        target read as float)."""
        trained = self.info.target_range.dtype
        if trained and np.issubdtype(np.dtype(trained), np.integer) \
                and np.issubdtype(dtype, np.integer) and dtype != np.dtype(trained):
            raise InputError(f"was trained on {trained} targets; {target_name} is {dtype.name} "
                             "(values on another scale)", self.source)

    # ------------------------------------------------------------------ running
    def prepare(self, target_lr: np.ndarray, guide: np.ndarray) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
        """The pair as the network's inputs: ``(1, c, h, w)`` and ``(1, C, h', w')`` float32
        in the model's unit ranges (invalid target pixels filled from their neighbours,
        the guide resized to exactly the size the model takes)."""
        valid = valid_mask(target_lr)
        target_range = self.info.target_range
        values = np.nan_to_num(np.asarray(target_lr, dtype=np.float64), nan=0.0)
        target = array_to_tensor((values - target_range.offset) / target_range.span)
        if not valid.all():
            target = fill_invalid(target, torch.from_numpy(valid)[None, None])
        if not self.info.config.use_guide:  # the network never reads it
            return target, torch.zeros(1, self.info.guide_bands, *self.guide_size(
                target_lr.shape))
        guide_range = self.info.guide_range
        guide_t = array_to_tensor((np.asarray(guide, dtype=np.float64) - guide_range.offset)
                                  / guide_range.span)
        size = self.guide_size(target_lr.shape)
        if tuple(guide_t.shape[-2:]) != size:
            guide_t = resize(guide_t, size)
        return target, guide_t

    def run(self, target: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """The network on prepared inputs, tiled when large: ``(1, c, h*s, w*s)`` float32."""
        height, width = target.shape[-2:]
        with torch.inference_mode():
            if height * width <= self.tile * self.tile:
                return self.network(target, guide).target
            scale = self.scale
            step = 1 if self.guide_is_low else scale
            out = torch.empty(1, target.shape[1], height * scale, width * scale)
            for top in range(0, height, self.tile):
                for left in range(0, width, self.tile):
                    bottom, right = min(top + self.tile, height), min(left + self.tile, width)
                    y0, x0 = max(0, top - self.halo), max(0, left - self.halo)
                    y1, x1 = min(height, bottom + self.halo), min(width, right + self.halo)
                    part = self.network(target[..., y0:y1, x0:x1],
                                        guide[..., y0 * step:y1 * step, x0 * step:x1 * step]
                                        ).target
                    dy, dx = (top - y0) * scale, (left - x0) * scale
                    out[..., top * scale:bottom * scale, left * scale:right * scale] = \
                        part[..., dy:dy + (bottom - top) * scale, dx:dx + (right - left) * scale]
            return out

    def predict(self, target_lr: np.ndarray, guide: np.ndarray, *,
                target_name: str = "target", guide_name: str = "guide",
                mask: np.ndarray | None = None, invalid_value: float | None = None
                ) -> np.ndarray:
        """Super-resolve one pair.

        Parameters
        ----------
        target_lr:
            ``(h, w)`` or ``(h, w, c)`` in its own units, any real dtype; NaN = invalid.
        guide:
            ``(h', w')`` or ``(h', w', C)``: at the target's size or ``scale`` times it,
            as the model was trained (see :meth:`check_pair`).
        target_name, guide_name:
            Names for messages (file names).
        mask:
            ``(h, w)`` (or ``(h, w, k)``: valid where any band is nonzero), nonzero at
            valid target pixels.
        invalid_value:
            A target value meaning "no measurement". Invalid pixels (these, NaN and
            those outside ``mask``) are filled from their valid neighbours before the
            network sees the target.

        Returns
        -------
        numpy.ndarray
            ``(h*s, w*s)`` or ``(h*s, w*s, c)`` in the target's units and dtype (integers
            rounded and clipped, other floats float32, float64 kept).
        """
        dtype = np.asarray(target_lr).dtype
        valid = valid_mask(target_lr, invalid_value)
        if mask is not None:
            valid &= check_mask(mask, valid.shape)
        if not valid.all():
            target_lr = np.where(valid[..., None] if target_lr.ndim == 3 else valid,
                                 np.asarray(target_lr, dtype=np.float64), np.nan)
        self.check_pair(target_lr, guide, target_name=target_name, guide_name=guide_name)
        if not valid.all() and np.issubdtype(dtype, np.integer):
            self.check_dtype(dtype, target_name)
        target, guide_t = self.prepare(target_lr, guide)
        result = self.run(target, guide_t)
        normalization = self.info.target_range.normalization(
            band_axis=target_lr.ndim == 3, dtype=result_dtype(dtype))
        return normalization.from_unit(result)

