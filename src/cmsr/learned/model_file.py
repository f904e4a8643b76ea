"""Self-describing learned-model files, and training checkpoints.

A model file is ``torch.save`` of a plain dict, read back with ``weights_only=True``
(tensors, numbers, strings, lists and dicts; no code runs) and written atomically::

    {"format": "cmsr-learned-model", "version": 1, "method": "cspsr",
     "cmsr": "0.4.0",                          # the cmsr that wrote it
     "architecture": {...},                    # ModelConfig fields
     "scale": 4, "target_bands": 3, "guide_bands": 1,
     "normalization": {"target": {"offset": 0.0, "span": 255.0, "dtype": "uint8"},
                       "guide": {"offset": 0.0, "span": 255.0}},
     "protocol": {...},                        # how the training pairs were made
     "training": {...},                        # steps, seconds, validation PSNR, scenes
     "state_dict": {...}}                      # CrossSpectralNet weights

:func:`load_model` checks every field (format, version, method, the writing cmsr not
newer than this one, architecture, scale, band counts, normalisation) and that the
weights fit the architecture exactly; any problem is one :class:`~cmsr.errors.InputError`
line naming the file. A checkpoint (:func:`save_checkpoint`, :func:`load_checkpoint`)
holds a model dict plus what training needs to continue (optimizer, step, clock,
random state, best weights so far).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmsr import __version__
from cmsr.errors import InputError
from cmsr.learned.config import ModelConfig
from cmsr.learned.network import CrossSpectralNet
from cmsr.method.checkpoint import read_state_file, write_state_file
from cmsr.method.normalize import Normalization

__all__ = [
    "CHECKPOINT_FORMAT",
    "METHODS",
    "MODEL_FORMAT",
    "VERSION",
    "ModelInfo",
    "ValueRange",
    "check_model_dict",
    "load_checkpoint",
    "load_model",
    "model_dict",
    "save_checkpoint",
    "save_model",
]

MODEL_FORMAT = "cmsr-learned-model"
CHECKPOINT_FORMAT = "cmsr-learned-checkpoint"
VERSION = 1
METHODS = ("cspsr",)
"""Learned methods a model file may hold."""

_MAX_BANDS = 16
_MAX_SCALE = 16
_KEYS = ("method", "cmsr", "architecture", "scale", "target_bands", "guide_bands",
         "normalization", "protocol", "training", "state_dict")
_CHECKPOINT_KEYS = ("model", "best_state", "best_score", "optimizer", "step", "seconds",
                    "generator", "split", "settings")


@dataclass(frozen=True)
class ValueRange:
    """A fixed normalisation ``unit = (value - offset) / span`` learned with the model.

    ``dtype``: the dtype of the training targets (results are written in it); empty
    for guides.
    """

    offset: float
    span: float
    dtype: str = ""

    def normalization(self, *, band_axis: bool = False, dtype: np.dtype | None = None
                      ) -> Normalization:
        """As a :class:`cmsr.method.normalize.Normalization` (results in ``dtype``, by
        default this range's dtype, else float32)."""
        chosen = np.dtype(dtype if dtype is not None else (self.dtype or "float32"))
        return Normalization(offset=self.offset, span=self.span, dtype=chosen,
                             band_axis=band_axis)

    @classmethod
    def of(cls, arrays: list[np.ndarray], dtype: np.dtype | None = None) -> ValueRange:
        """The range of images: an integer ``dtype``'s full range, else their finite
        minimum and maximum (span 1 if constant).

        Examples
        --------
        >>> ValueRange.of([np.zeros((2, 2), np.uint8)], np.dtype(np.uint8))
        ValueRange(offset=0.0, span=255.0, dtype='uint8')
        >>> ValueRange.of([np.array([[2.0, 6.0]])])
        ValueRange(offset=2.0, span=4.0, dtype='')
        """
        name = "" if dtype is None else np.dtype(dtype).name
        if dtype is not None and np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return cls(float(info.min), float(info.max) - float(info.min), name)
        if dtype is not None and np.dtype(dtype) == np.bool_:
            return cls(0.0, 1.0, name)
        low = min(float(np.nanmin(a)) for a in arrays)
        high = max(float(np.nanmax(a)) for a in arrays)
        return cls(low, high - low if high > low else 1.0, name)


@dataclass(frozen=True)
class ModelInfo:
    """Everything a model file says besides its weights.

    Attributes
    ----------
    method:
        ``"cspsr"``.
    config:
        The architecture.
    scale:
        Integer enlargement, 2..16.
    target_bands, guide_bands:
        Bands of the target (and result) and of the guide.
    target_range, guide_range:
        The fixed normalisations.
    protocol:
        How the training pairs were made (name, swap, reduce_guide, disparity).
    training:
        A summary of the training (steps, seconds, validation PSNR, scene names).
    cmsr_version:
        The cmsr that wrote the file.
    """

    method: str
    config: ModelConfig
    scale: int
    target_bands: int
    guide_bands: int
    target_range: ValueRange
    guide_range: ValueRange
    protocol: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    cmsr_version: str = __version__

    def build_network(self) -> CrossSpectralNet:
        """A fresh network of this architecture."""
        return CrossSpectralNet(self.config, self.target_bands, self.guide_bands, self.scale)

    def describe(self) -> str:
        """One line, e.g. ``cspsr full x4 (T=4, C=32), 3-band target, 1-band low-res
        guide``."""
        resolution = "low-res" if self.config.guide_resolution == "low" else "high-res"
        guide = (f"{self.guide_bands}-band {resolution} guide" if self.config.use_guide
                 else "no guide")
        return (f"{self.method} {self.config.variant} x{self.scale} (T={self.config.blocks}, "
                f"C={self.config.features}), {self.target_bands}-band target, {guide}")


def model_dict(network: CrossSpectralNet, info: ModelInfo,
               state_dict: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """The file dict of ``network`` (or of ``state_dict``, weights for it) with ``info``."""
    weights = network.state_dict() if state_dict is None else state_dict
    return {
        "format": MODEL_FORMAT, "version": VERSION, "method": info.method,
        "cmsr": info.cmsr_version, "architecture": asdict(info.config),
        "scale": info.scale, "target_bands": info.target_bands,
        "guide_bands": info.guide_bands,
        "normalization": {"target": asdict(info.target_range),
                          "guide": asdict(info.guide_range)},
        "protocol": dict(info.protocol), "training": dict(info.training),
        "state_dict": {k: v.detach().cpu().clone() for k, v in weights.items()},
    }


def _version_tuple(text: str) -> tuple[int, ...] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?\S*", text)
    if match is None:
        return None
    return tuple(int(part or 0) for part in match.groups())


def _check_header(state: Any, kind: str, what: str, source: str) -> None:
    if not isinstance(state, Mapping) or "format" not in state:
        raise InputError(f"is not {what}", source)
    if state["format"] != kind:
        known = {MODEL_FORMAT: "a cmsr learned model", CHECKPOINT_FORMAT:
                 "a cmsr training checkpoint", "cmsr-model": "a cmsr per-pair checkpoint",
                 "cmsr-warp": "a cmsr warp"}
        raise InputError(f"is {known.get(str(state['format']), 'an unknown file')}, not {what}",
                         source)
    if state.get("version") != VERSION:
        raise InputError(f"is {what} of format version {state.get('version')!r}; this cmsr "
                         f"reads version {VERSION}", source)


def _integer(state: Mapping[str, Any], key: str, low: int, high: int, source: str) -> int:
    value = state[key]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InputError(f"is a corrupt learned model ({key} {value!r} is not an integer in "
                         f"{low}..{high})", source)
    return value


def _value_range(entry: Any, name: str, source: str, *, with_dtype: bool) -> ValueRange:
    if not isinstance(entry, Mapping):
        raise InputError(f"is a corrupt learned model (no {name} normalisation)", source)
    try:
        offset, span = float(entry["offset"]), float(entry["span"])
        dtype = str(entry.get("dtype", ""))
        if with_dtype:
            np.dtype(dtype)
    except (KeyError, TypeError, ValueError):
        raise InputError(f"is a corrupt learned model (broken {name} normalisation)",
                         source) from None
    if not (math.isfinite(offset) and math.isfinite(span) and span > 0):
        raise InputError(f"is a corrupt learned model ({name} normalisation offset "
                         f"{offset:g}, span {span:g})", source)
    return ValueRange(offset, span, dtype)


def check_model_dict(state: Any, source: str = "model") -> tuple[CrossSpectralNet, ModelInfo]:
    """Validate a model dict and build its network (weights loaded, eval mode).

    Raises
    ------
    InputError
        One line naming ``source``: not a learned model, another format version or
        method, written by a newer cmsr, a field missing or out of range, weights
        that do not fit the architecture or are not finite.
    """
    what = "a cmsr learned model"
    _check_header(state, MODEL_FORMAT, what, source)
    for key in _KEYS:
        if key not in state:
            raise InputError(f"is not a complete learned model (no {key!r})", source)
    if state["method"] not in METHODS:
        raise InputError(f"holds a model of method {state['method']!r}; this cmsr knows "
                         f"{', '.join(METHODS)}", source)
    written_by = _version_tuple(str(state["cmsr"]))
    running = _version_tuple(__version__)
    if written_by is None:
        raise InputError(f"is a corrupt learned model (cmsr version {state['cmsr']!r})",
                         source)
    if running is not None and written_by > running:
        raise InputError(f"was written by cmsr {state['cmsr']}, newer than this cmsr "
                         f"{__version__}; update cmsr", source)
    architecture = state["architecture"]
    known = {item.name for item in fields(ModelConfig)}
    if not isinstance(architecture, Mapping) or set(architecture) - known:
        raise InputError("is a corrupt learned model (unknown architecture fields)", source)
    try:
        config = ModelConfig(**architecture)
    except (TypeError, ValueError) as error:
        raise InputError(f"is a corrupt learned model (architecture: {error})", source) \
            from None
    scale = _integer(state, "scale", 2, _MAX_SCALE, source)
    target_bands = _integer(state, "target_bands", 1, _MAX_BANDS, source)
    guide_bands = _integer(state, "guide_bands", 1, _MAX_BANDS, source)
    normalization = state["normalization"]
    if not isinstance(normalization, Mapping):
        raise InputError("is a corrupt learned model (normalisation)", source)
    target_range = _value_range(normalization.get("target"), "target", source, with_dtype=True)
    guide_range = _value_range(normalization.get("guide"), "guide", source, with_dtype=False)
    for key in ("protocol", "training"):
        if not isinstance(state[key], Mapping):
            raise InputError(f"is a corrupt learned model ({key})", source)
    info = ModelInfo(method=state["method"], config=config, scale=scale,
                     target_bands=target_bands, guide_bands=guide_bands,
                     target_range=target_range, guide_range=guide_range,
                     protocol=dict(state["protocol"]), training=dict(state["training"]),
                     cmsr_version=str(state["cmsr"]))
    network = info.build_network()
    try:
        network.load_state_dict(state["state_dict"])
    except (RuntimeError, TypeError, KeyError, AttributeError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        raise InputError(f"holds weights that do not fit its architecture ({first})",
                         source) from None
    if not all(torch.isfinite(t).all() for t in network.state_dict().values()
               if t.is_floating_point()):
        raise InputError("is a corrupt learned model (non-finite weights)", source)
    return network.eval(), info


def save_model(path: str | os.PathLike[str], network: CrossSpectralNet, info: ModelInfo, *,
               overwrite: bool = False,
               state_dict: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write a model file atomically (never replacing a file without ``overwrite``)."""
    state = model_dict(network, info, state_dict)
    check_model_dict(state, str(path))
    return write_state_file(path, state, overwrite=overwrite)


def load_model(path: str | os.PathLike[str]) -> tuple[CrossSpectralNet, ModelInfo]:
    """Read and check a model file: the network (eval mode) and its :class:`ModelInfo`.

    Raises
    ------
    InputError
        One line naming the file (see :func:`check_model_dict`; also missing,
        unreadable, foreign or damaged files).
    """
    state = read_state_file(path, "a cmsr learned model")
    return check_model_dict(state, str(path))


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Write a training checkpoint atomically, replacing the previous one.

    ``state`` holds ``model`` (a :func:`model_dict`), ``best_state`` (weights),
    ``best_score``, ``optimizer``, ``step``, ``seconds``, ``generator`` (a torch
    generator's state), ``split`` and ``settings``.
    """
    return write_state_file(path, {"format": CHECKPOINT_FORMAT, "version": VERSION,
                                   **state}, overwrite=True)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a training checkpoint (its model as :func:`load_model` does).

    Returns the dict with ``network`` and ``info`` added (the checked model).
    """
    source = str(path)
    what = "a cmsr training checkpoint"
    state = read_state_file(path, what)
    _check_header(state, CHECKPOINT_FORMAT, what, source)
    for key in _CHECKPOINT_KEYS:
        if key not in state:
            raise InputError(f"is not a complete training checkpoint (no {key!r})", source)
    network, info = check_model_dict(state["model"], source)
    checked = dict(state)
    checked["network"], checked["info"] = network, info
    return checked
