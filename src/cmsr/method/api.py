"""The Python face of cmsr: :class:`CMSR` (fit / predict) and :func:`super_resolve`.

Large results tile by tile: :mod:`cmsr.method.streaming`; GeoTIFF to GeoTIFF:
:mod:`cmsr.method.georeferenced`.

Arrays in and out are numpy, in the user's own units and dtype: the target
``(h, w)`` or ``(h, w, c)``, the guide ``(H, W)`` or ``(H, W, C)``, the result
``(H, W)`` or ``(H, W, c)`` with the target's dtype (integers rounded and clipped).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np
import torch

from cmsr.errors import InputError
from cmsr.method import checkpoint
from cmsr.method.alignment_check import AlignmentCheck, check_alignment
from cmsr.method.block_partition import block_scale, partition_blocks
from cmsr.method.checkpoint import StateSource
from cmsr.method.coarse_alignment import align_coarse_to_fine
from cmsr.method.config import Config, device_problems
from cmsr.method.consistency import fine_tune_consistency
from cmsr.method.edge_sharpening import sharpen_edges
from cmsr.method.guide_shift import GuideShift, best_guide_shift, shift_window
from cmsr.method.guided_median import guided_median
from cmsr.method.infer import (
    back_project,
    clamp_to_input_range,
    clamp_to_local_range,
    predict,
)
from cmsr.method.model import CMSRNet
from cmsr.method.normalize import (
    Normalization,
    fit_normalization,
    measured_target,
    normalize_guide,
    target_tensors,
)
from cmsr.method.precision import resolve_precision
from cmsr.method.resample import downsample, resize, scaled_size, upsample_bicubic
from cmsr.method.self_check import (
    SelfCheck,
    decide,
    held_out_errors,
    held_out_mask,
    recheck_guide_free,
)
from cmsr.method.threads import torch_threads
from cmsr.method.train import StepInfo, TrainRecord, train
from cmsr.method.validate import check_array, check_image, check_pair
from cmsr.method.warp import GuideWarp


def resolve_device(name: str, source: str = "device") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    Raises
    ------
    InputError
        The name is none of these, or this machine does not have that device (torch
        built without CUDA, no CUDA device, fewer than N + 1 of them); ``source`` names
        the setting in the message.
    """
    problems = device_problems(name)
    if problems:
        raise InputError(problems[0], source=source)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = ("this torch was built without CUDA" if not torch.backends.cuda.is_built()
                   else "no CUDA device was found")
            raise InputError(f"{name} is not available on this machine ({why}); use cpu "
                             "or auto", source=source)
        if device.index is not None and device.index >= count:
            raise InputError(f"{name} is not available on this machine (it has {count} "
                             f"CUDA device{'s' if count > 1 else ''}: cuda:0"
                             f"{f' to cuda:{count - 1}' if count > 1 else ''})",
                             source=source)
    return device


def gradual_scales(scale: float, step: float = 2.0) -> list[float]:
    """Intermediate scales, each at most ``step`` times the last, ending at ``scale``.

    Examples
    --------
    >>> gradual_scales(4.0)
    [2.0, 4.0]
    >>> gradual_scales(3.0)
    [1.7320508075688772, 3.0]
    """
    stages = max(1, math.ceil(math.log(scale) / math.log(step) - 1e-9))
    return [scale ** ((k + 1) / stages) for k in range(stages)]


def stage_sizes(coarse: tuple[int, int], final: tuple[int, int], *, gradual: bool
                ) -> list[tuple[int, int]]:
    """Output sizes of the gradual stages from a ``coarse`` target to ``final`` (one
    stage unless ``gradual`` and the scale is above 2).

    Examples
    --------
    >>> stage_sizes((10, 20), (40, 80), gradual=True)
    [(20, 40), (40, 80)]
    """
    scale = (final[0] / coarse[0], final[1] / coarse[1])
    if not gradual or max(scale) <= 2.0:
        return [final]
    steps = gradual_scales(max(scale))
    sizes = [scaled_size(coarse, (s * scale[0] / max(scale), s * scale[1] / max(scale)))
             for s in steps]
    sizes[-1] = final
    return sizes


@dataclass(frozen=True)
class PreparedPair:
    """A validated pair as tensors on the device.

    ``target``: ``(1, c, h, w)`` unit range, invalid pixels filled. ``valid``:
    ``(1, 1, h, w)`` float {0, 1}. ``guide``: ``(1, C, H, W)`` in [0, 1] at the output
    size. ``scale``: ``(H / h, W / w)``.
    """

    target: torch.Tensor
    valid: torch.Tensor
    guide: torch.Tensor
    scale: tuple[float, float]
    normalization: Normalization


def prepare_pair(target_lr: np.ndarray, guide_hr: np.ndarray, *, scale: float | None,
                 mask: np.ndarray | None, invalid_value: float | None, device: torch.device,
                 target_name: str = "target", guide_name: str = "guide") -> PreparedPair:
    """Validate, normalise and move a pair to ``device`` (see :class:`PreparedPair`)."""
    check_array(target_lr, target_name)  # an image at all, before its values are read
    masked, valid = measured_target(target_lr, mask, invalid_value)
    check_image(target_lr, target_name, allow_nan=True, valid=valid)
    check_image(guide_hr, guide_name, allow_nan=False)
    check_pair(masked, guide_hr, scale=scale, target_name=target_name, guide_name=guide_name)
    h, w = target_lr.shape[:2]
    out_size = guide_hr.shape[:2] if scale is None else scaled_size((h, w), (scale, scale))
    normalization = fit_normalization(target_lr, valid)
    target, valid_t = target_tensors(masked, valid, normalization, device)
    guide = normalize_guide(guide_hr).to(device)
    if tuple(guide.shape[-2:]) != tuple(out_size):
        guide = resize(guide, out_size).clamp(0.0, 1.0)
    scale_yx = (out_size[0] / h, out_size[1] / w)
    return PreparedPair(target, valid_t, guide, scale_yx, normalization)


def _relabel(on_step: Callable[[StepInfo], None] | None, stage: int, stages: int,
             phase: str = "train") -> Callable[[StepInfo], None] | None:
    """``on_step`` with each :class:`StepInfo` marked as ``stage`` of ``stages`` of
    ``phase``."""
    if on_step is None:
        return None
    return lambda info: on_step(dataclasses.replace(info, stage=stage, stages=stages,
                                                    phase=phase))


_Arguments = ParamSpec("_Arguments")
_Result = TypeVar("_Result")


def _in_config_threads(method: Callable[Concatenate[CMSR, _Arguments], _Result]
                       ) -> Callable[Concatenate[CMSR, _Arguments], _Result]:
    """Run a :class:`CMSR` method with ``self.config.threads`` torch threads (None:
    torch's own choice), restoring the previous count afterwards."""

    @functools.wraps(method)
    def wrapper(self: CMSR, /, *args: _Arguments.args, **kwargs: _Arguments.kwargs) -> _Result:
        with torch_threads(self.config.threads):
            return method(self, *args, **kwargs)

    return wrapper


def _name(source: StateSource | None, argument: str) -> str:
    """How errors name a state given as a file (its path) or a dict (the argument)."""
    return argument if source is None or isinstance(source, Mapping) else str(source)


class CMSR:
    """Single-pair cross-modality super-resolution.

    Parameters
    ----------
    config:
        Every setting; ``Config.preset("thermal")`` etc. Default: ``Config()``.
        :meth:`fit` and :meth:`predict` run with ``config.threads`` torch threads
        (None: torch's own count) and restore the previous count.

    After :meth:`fit`, ``self_check`` (a :class:`cmsr.method.self_check.SelfCheck` or
    None) says whether the guide is used, and ``alignment_check`` (a
    :class:`cmsr.method.alignment_check.AlignmentCheck` or None: no coarse fits) whether
    the alignment fitted on the reduced pair was kept; ``init_warp_skipped`` is why the
    warp of an ``init`` checkpoint was not used (another aspect ratio), ``""`` otherwise.

    Examples
    --------
    >>> from cmsr import CMSR, Config
    >>> model = CMSR(Config.preset("quick")).fit(target_lr, guide_hr)   # doctest: +SKIP
    >>> high = model.predict()                                          # doctest: +SKIP

    Many pairs of one rig: learn the alignment once, or warm-start everything.

    >>> config = Config.preset("thermal", align="full")                 # doctest: +SKIP
    >>> first = CMSR(config).fit(target_1, guide_1)                     # doctest: +SKIP
    >>> first.save_warp("rig.pt")                                       # doctest: +SKIP
    >>> second = CMSR(config).fit(target_2, guide_2, warp_init="rig.pt")  # doctest: +SKIP
    >>> third = CMSR(config).fit(target_3, guide_3, init=first.state())  # doctest: +SKIP
    """

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.device = resolve_device(self.config.device)
        #: what the fits compute in: ``config.precision`` with ``"auto"`` resolved for
        #: this device (:func:`cmsr.method.precision.resolve_precision`)
        self.precision = resolve_precision(self.config.precision, self.device)
        self.networks: list[CMSRNet] = []
        self.warp: GuideWarp | None = None
        self.records: list[list[TrainRecord]] = []
        self.alignment_records: list[list[TrainRecord]] = []
        self.consistency_records: list[TrainRecord] = []
        self.guide_free_records: list[TrainRecord] = []
        self.self_check: SelfCheck | None = None
        self.alignment_check: AlignmentCheck | None = None
        #: the guided finishes' guide offset, found by predict_tensor (None before, or
        #: when the config searches none)
        self.guide_shift: GuideShift | None = None
        self.init_warp_skipped = ""
        self.pair: PreparedPair | None = None

    def _new_network(self, target_channels: int, guide_channels: int, seed: int) -> CMSRNet:
        net = CMSRNet.from_config(self.config, target_channels, guide_channels, seed=seed)
        return net.to(self.device)

    def _stages(self, pair: PreparedPair) -> list[tuple[int, int]]:
        """Output sizes of the training stages (one unless ``config.gradual``)."""
        return stage_sizes((int(pair.target.shape[-2]), int(pair.target.shape[-1])),
                           (int(pair.guide.shape[-2]), int(pair.guide.shape[-1])),
                           gradual=self.config.gradual)

    def _new_warp(self) -> GuideWarp | None:
        """The learnable alignment of the guide, at the identity; None for ``align="none"``."""
        if self.config.align == "none":
            return None
        return checkpoint.build_warp(checkpoint.warp_structure(self.config)).to(self.device)

    def _stage_config(self, index: int) -> Config:
        """The inference settings of stage ``index``: back-projection only onto the
        measurement, i.e. in the first stage, whose input is the measured target, and
        not onto a later stage's input (an earlier stage's estimate).

        The whole result is back-projected onto the measurement once more at the end
        (:meth:`predict_tensor`). On Middlebury13 x4 (7 pairs, the depth preset) also
        back-projecting onto the first stage's estimate cost 1.1% RMSE
        (``benchmarks/inference_variants.py``).
        """
        if index == 0:
            return self.config
        return self.config.replace(back_projection_iters=0)

    def _self_check_margin(self) -> float:
        """The self-check's margin: ``self_check_margin_warped`` when set and the
        alignment check kept the coarse warp, else ``self_check_margin``."""
        warped = self.config.self_check_margin_warped
        if warped is not None and self.alignment_check is not None and self.alignment_check.kept:
            return warped
        return self.config.self_check_margin

    @staticmethod
    def _stage_guide(guide: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``guide (1, C, H, W)`` reduced to ``size`` (unchanged when already that size)."""
        if size == tuple(guide.shape[-2:]):
            return guide
        return downsample(guide, size).clamp(0.0, 1.0)

    @torch.no_grad()
    def aligned_guide(self) -> torch.Tensor:
        """The fitted pair's guide deformed by the learned warp, ``(1, C, H, W)`` in [0, 1]."""
        if self.pair is None:
            raise RuntimeError("call fit() first")
        if self.warp is None:
            return self.pair.guide
        return self.warp(self.pair.guide).clamp(0.0, 1.0)

    @_in_config_threads
    def fit(self, target_lr: np.ndarray, guide_hr: np.ndarray, *, scale: float | None = None,
            mask: np.ndarray | None = None, invalid_value: float | None = None,
            on_step: Callable[[StepInfo], None] | None = None,
            target_name: str = "target", guide_name: str = "guide",
            init: StateSource | None = None, warp_init: StateSource | None = None) -> CMSR:
        """Train on the pair.

        Parameters
        ----------
        target_lr:
            ``(h, w)`` or ``(h, w, c)``, any real dtype, own units; NaN = invalid.
        guide_hr:
            ``(H, W)`` or ``(H, W, C)``, any real dtype.
        scale:
            Force this scale (the guide is resized to ``target size * scale``);
            default: guide size / target size, per axis.
        mask:
            ``(h, w)`` bool, True for valid target pixels.
        invalid_value:
            A target value meaning "no measurement" (e.g. 0 in depth maps).
        on_step:
            Called after each training step with a :class:`cmsr.method.train.StepInfo`.
        init:
            Warm start from a previous fit: a :meth:`state` dict or a checkpoint file
            (:meth:`save_checkpoint`) made with the same network shape, band counts
            and number of gradual stages. Each stage's network starts from the saved
            one and trains for at most ``config.warm_start_iters`` steps from
            ``config.warm_learning_rate``; the saved warp (if any) is loaded as with
            ``warp_init``, unless it was learned on a guide of another aspect ratio
            (frames of another size in a chain): then the warp starts afresh, and
            :attr:`init_warp_skipped` says why.
        warp_init:
            Start the alignment from a learned warp: a warp file (:meth:`save_warp`), a
            checkpoint (its warp) or a :meth:`warp_state` dict, learned with the same
            ``align``, ``cpab_cells`` and ``tps_points`` on a guide of the same aspect
            ratio. All its layers act from the first step; it keeps training unless
            ``config.freeze_warp``. Overrides the warp of ``init``.

        Raises
        ------
        InputError
            Bad images, or an ``init`` / ``warp_init`` that is unreadable or does not fit.
        """
        start = checkpoint.as_model_state(init) if init is not None else None
        warp_start = checkpoint.as_warp_state(warp_init) if warp_init is not None else None
        pair = prepare_pair(target_lr, guide_hr, scale=scale, mask=mask,
                            invalid_value=invalid_value, device=self.device,
                            target_name=target_name, guide_name=guide_name)
        self.init_warp_skipped = ""
        if warp_start is None and start is not None and start["warp"] is not None:
            # another field of view: the networks still apply, the warp does not
            self.init_warp_skipped = checkpoint.aspect_problem(
                start["warp"], tuple(pair.guide.shape[-2:]))
            warp_start = None if self.init_warp_skipped else start["warp"]
        stages = self._stages(pair)
        if start is not None:
            checkpoint.check_model_fits(start, self.config, pair.target.shape[1],
                                        pair.guide.shape[1], len(stages), _name(init, "init"))
        self.pair, self.networks, self.records = pair, [], []
        self.warp = self._new_warp()
        if warp_start is not None:
            source = _name(warp_init, "warp_init") if warp_init is not None else _name(
                init, "init")
            checkpoint.check_warp_fits(warp_start, self.config, source)
            assert self.warp is not None
            checkpoint.apply_warp_state(self.warp, warp_start, self.config,
                                        tuple(pair.guide.shape[-2:]), source)
        if self.warp is not None and self.config.freeze_warp:
            self.warp.freeze(self.warp.layers.keys())
        stage_config = self.config
        if start is not None:
            stage_config = self.config.replace(
                max_iters=min(self.config.warm_start_iters, self.config.max_iters),
                min_iters=0, learning_rate=self.config.warm_learning_rate)
        generator = torch.Generator().manual_seed(self.config.seed)
        current, current_valid = pair.target, pair.valid
        # a warp starting at the identity is first fitted on reduced copies of the pair
        fresh_warp = (self.warp is not None and warp_start is None
                      and not self.config.freeze_warp)
        levels: list[list[TrainRecord]] = []
        self.alignment_check = None
        if fresh_warp and self.config.align_levels > 0:
            assert self.warp is not None
            size = stages[0]
            stage_guide = self._stage_guide(pair.guide, size)
            levels = align_coarse_to_fine(
                self.warp, current, stage_guide, current_valid,
                scale=(size[0] / current.shape[-2], size[1] / current.shape[-1]),
                config=self.config,
                on_level=lambda index, count: _relabel(on_step, index, count, "align"))
            if levels and self.config.align_check_margin >= 0:
                self.alignment_check = check_alignment(
                    current, stage_guide, self._stage_guide(self.aligned_guide(), size),
                    margin=self.config.align_check_margin, valid=current_valid)
                if not self.alignment_check.kept:  # the identity, or no warp at all
                    self.warp = (None if self.config.align_when_dropped == "none"
                                 else self._new_warp())
        self.alignment_records = levels
        # the warp's layers are released coarse to fine in the first stage unless the
        # coarse fits left a warp to build on
        coarse_warp = bool(levels) and (self.alignment_check is None
                                        or self.alignment_check.kept)
        self.self_check = None
        self.guide_shift = None
        self.guide_free_records = []
        held_out = None
        if self.config.self_check:
            check_generator = torch.Generator().manual_seed(self.config.seed + 7919)
            held_out = held_out_mask(tuple(current.shape[-2:]), self.config.self_check_fraction,
                                     max(4, self.config.patch_size // 4),
                                     check_generator).to(self.device) * current_valid
        for index, size in enumerate(stages):
            guide = self._stage_guide(pair.guide, size)
            stage_scale = (size[0] / current.shape[-2], size[1] / current.shape[-1])
            net = self._new_network(current.shape[1], guide.shape[1], self.config.seed + index)
            if start is not None:
                net.load_state_dict(start["networks"][index])
            # coarse to fine only for a warp that starts at the identity, in the first
            # training it takes part in
            release = fresh_warp and index == 0 and not coarse_warp
            train_valid = current_valid
            if index == 0 and held_out is not None:
                train_valid = current_valid * (1.0 - held_out)
            # after a check that chose the guide-free network, later stages train it alone
            use_guide = not (index > 0 and self.config.self_check_free_stages
                             and self.self_check is not None
                             and self.self_check.guide_weight == 0)
            self.records.append(train(net, current, guide, scale=stage_scale,
                                      config=stage_config, generator=generator,
                                      valid=train_valid, warp=self.warp,
                                      release_warp=release, use_guide=use_guide,
                                      on_step=_relabel(on_step, index, len(stages))))
            self.networks.append(net)
            checking = index == 0 and held_out is not None
            if checking or index + 1 < len(stages):
                aligned = self._stage_guide(self.aligned_guide(), size)
            if checking:
                assert held_out is not None
                errors = held_out_errors(net, current, aligned, held_out, stage_scale,
                                         self.config)
                guided, free, bicubic, blended = errors
                self.self_check = decide(guided, free, bicubic, int(held_out.sum()),
                                         self._self_check_margin(), blended,
                                         blend=self.config.self_check_blend)
                free_iters = round(self.config.self_check_free_share * stage_config.max_iters)
                if free_iters > 0 and self.guide_weight == 0:
                    refine = stage_config.replace(
                        max_iters=free_iters, min_iters=min(stage_config.min_iters, free_iters))
                    # a guide-free network that lost to bicubic trains alone on the
                    # pixels not held out, then is asked again; one that won, on all
                    recheck = self.self_check.choice == "bicubic"
                    self.guide_free_records = train(
                        net, current, guide, scale=stage_scale, config=refine,
                        generator=generator, valid=train_valid if recheck else current_valid,
                        use_guide=False,
                        on_step=_relabel(on_step, index, len(stages), "guide-free"))
                    if recheck:
                        self.self_check = recheck_guide_free(
                            self.self_check, net, current, aligned, held_out, stage_scale,
                            self.config)
            if index + 1 < len(stages):
                current = predict(net, current, aligned, config=self._stage_config(index),
                                  valid=current_valid, guide_weight=self.guide_weight)
                current_valid = torch.ones_like(current[:, :1])
        self.consistency_records = []
        if self.config.consistency_iters > 0:
            aligned = self._stage_guide(self.aligned_guide(), stages[-1])
            self.consistency_records = fine_tune_consistency(
                self.networks[-1], current, aligned, pair.target, pair.valid,
                config=self.config, generator=generator, use_guide=self.uses_guide,
                on_step=_relabel(on_step, len(stages) - 1, len(stages), "consistency"))
        return self

    # ------------------------------------------------------------------ saved state
    def _check_fitted(self) -> PreparedPair:
        if self.pair is None or not self.networks:
            raise RuntimeError("call fit() first")
        return self.pair

    def warp_state(self) -> dict[str, Any]:
        """The learned warp as a plain dict (see :mod:`cmsr.method.checkpoint`), for
        ``fit(warp_init=...)``; the identity when the alignment check dropped the coarse
        warp and none was learned after it (``align_when_dropped="none"``: the pair
        counts as aligned). ``RuntimeError`` before :meth:`fit` or with ``align="none"``."""
        pair = self._check_fitted()
        warp = self.warp
        if warp is None and self.alignment_check is not None:
            warp = self._new_warp()
        if warp is None:
            raise RuntimeError("no warp was learned (align='none')")
        return checkpoint.warp_state(warp, self.config, tuple(pair.guide.shape[-2:]))

    def save_warp(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write :meth:`warp_state` to ``path`` atomically (a few tens of kB).

        Raises :class:`InputError` if ``path`` exists and not ``overwrite``, or cannot
        be written.
        """
        return checkpoint.save_warp(path, self.warp_state(), overwrite=overwrite)

    def state(self) -> dict[str, Any]:
        """Everything needed to warm-start another fit: the network of every stage,
        the warp and their shapes, as a plain dict of CPU tensors (see
        :mod:`cmsr.method.checkpoint`); pass it as ``fit(init=...)``."""
        pair = self._check_fitted()
        warp = self.warp_state() if self.warp is not None else None
        return checkpoint.model_state(self.networks, self._stages(pair), self.config, warp)

    def save_checkpoint(self, path: str | os.PathLike[str], *, overwrite: bool = False
                        ) -> Path:
        """Write :meth:`state` to ``path`` atomically; read it with
        :func:`cmsr.method.checkpoint.load_checkpoint` or pass the path as ``fit(init=...)``."""
        return checkpoint.save_checkpoint(path, self.state(), overwrite=overwrite)

    @_in_config_threads
    def predict_tensor(self) -> torch.Tensor:
        """The result for the fitted pair, ``(1, c, H, W)`` float32 in unit range."""
        if self.pair is None or not self.networks:
            raise RuntimeError("call fit() before predict()")
        pair = self.pair
        if self.self_check is not None and self.self_check.choice == "bicubic":
            current = upsample_bicubic(pair.target, tuple(pair.guide.shape[-2:]))
        else:
            current = self._predict_networks(pair)
        if self.config.clip_to_input_range:
            current = clamp_to_input_range(current, pair.target, pair.valid)
        return current

    def _predict_networks(self, pair: PreparedPair) -> torch.Tensor:
        """The fitted networks' result, stage after stage, then the finishes,
        ``(1, c, H, W)`` unit range."""
        current = self._network_result(pair)
        size = (int(current.shape[-2]), int(current.shape[-1]))
        guide = self._stage_guide(self.aligned_guide(), size)
        shift = self._search_guide_shift(current, pair, guide)
        if shift is not None:
            self.guide_shift = shift
            guide = shift_window(guide, shift.offset)
        if self.config.guided_median_radius:
            current = guided_median(current, guide, radius=self.config.guided_median_radius,
                                    sigma=self.config.guided_median_sigma)
            current = self._back_project_and_clip(current, pair)
        if self.config.edge_sharpening:
            current = sharpen_edges(current, strength=self.config.edge_sharpening)
            current = self._back_project_and_clip(current, pair)
        if self.config.block_partition and block_scale(current, pair.target) is not None:
            current = partition_blocks(current, pair.target,
                                       guide=guide if self.config.block_partition_guide else None,
                                       valid=pair.valid, strength=self.config.block_partition,
                                       guide_weight=self.config.block_partition_guide)
            current = self._back_project_and_clip(current, pair)
        return current

    def _network_result(self, pair: PreparedPair) -> torch.Tensor:
        """The networks' result before the finishes: every stage, back-projection onto
        the measurement and the local clip, ``(1, c, H, W)`` unit range."""
        current, current_valid = pair.target, pair.valid
        aligned = self.aligned_guide()
        for index, (net, size) in enumerate(zip(self.networks, self._stages(pair),
                                                strict=True)):
            guide = self._stage_guide(aligned, size)
            current = predict(net, current, guide, config=self._stage_config(index),
                              valid=current_valid, guide_weight=self.guide_weight)
            current_valid = torch.ones_like(current[:, :1])
        if len(self.networks) > 1:
            current = back_project(current, pair.target,
                                   iterations=self.config.back_projection_iters,
                                   kernel=self.config.degradation, valid=pair.valid)
        if self.config.clamp_to_local_range:
            current = clamp_to_local_range(current, pair.target)
        return current

    def _search_guide_shift(self, estimate: torch.Tensor, pair: PreparedPair,
                            guide: torch.Tensor) -> GuideShift | None:
        """:func:`cmsr.method.guide_shift.best_guide_shift` of ``estimate`` (the networks'
        result) with the config's settings; None when the config searches none."""
        if not (self.config.guided_median_radius and self.config.guide_shift_search):
            return None
        return best_guide_shift(estimate, pair.target, guide,
                                reach=self.config.guide_shift_search,
                                radius=self.config.guided_median_radius,
                                sigma=self.config.guided_median_sigma,
                                kernel=self.config.degradation, valid=pair.valid)

    @torch.no_grad()
    def decide_guide_shift(self) -> GuideShift | None:
        """The guide's whole-pixel offset for the guided finishes on the fitted pair, as
        :meth:`predict_tensor` finds it (:mod:`cmsr.method.guide_shift`), without the
        finishes; also kept as :attr:`guide_shift`. None when the config searches none
        or the self-check chose bicubic (no finishes run).

        For :func:`cmsr.method.streaming.super_resolve_tiled`, which finishes tile by
        tile with the offset found on the part it trained on.
        """
        pair = self._check_fitted()
        searches = self.config.guided_median_radius and self.config.guide_shift_search
        if not searches or (self.self_check is not None and self.self_check.choice == "bicubic"):
            return None
        current = self._network_result(pair)
        size = (int(current.shape[-2]), int(current.shape[-1]))
        shift = self._search_guide_shift(current, pair,
                                         self._stage_guide(self.aligned_guide(), size))
        self.guide_shift = shift
        return shift

    def _back_project_and_clip(self, current: torch.Tensor, pair: PreparedPair) -> torch.Tensor:
        """After a finish that moves pixels: back-projection onto the measured target and
        the local-range clip (when on) once more."""
        current = back_project(current, pair.target, iterations=self.config.back_projection_iters,
                               kernel=self.config.degradation, valid=pair.valid)
        if self.config.clamp_to_local_range:
            current = clamp_to_local_range(current, pair.target)
        return current

    def predict(self) -> np.ndarray:
        """The super-resolved target, ``(H, W)`` or ``(H, W, c)`` in its units and dtype."""
        result = self.predict_tensor()
        assert self.pair is not None
        return self.pair.normalization.from_unit(result)

    @property
    def guide_weight(self) -> float:
        """The weight of the guide branch in the result: 1 without a self-check, else
        its choice (0 when it chose the guide-free network or bicubic)."""
        return 1.0 if self.self_check is None else self.self_check.guide_weight

    @property
    def uses_guide(self) -> bool:
        """Whether the result uses the guide (False when the self-check chose otherwise)."""
        return self.guide_weight > 0

    @property
    def training_steps(self) -> int:
        """Steps the gradual stages took (the guide-free training after the self-check
        included; the alignment levels and the consistency fine-tuning not)."""
        stages = [*self.records, self.guide_free_records]
        return sum(records[-1].step for records in stages if records)

    @property
    def history(self) -> list[TrainRecord]:
        """All training records, stages one after another."""
        return [record for stage in self.records for record in stage]


def super_resolve(target_lr: np.ndarray, guide_hr: np.ndarray, scale: float | None = None,
                  config: Config | None = None, *, mask: np.ndarray | None = None,
                  invalid_value: float | None = None) -> np.ndarray:
    """Super-resolve ``target_lr`` with ``guide_hr`` in one call.

    Parameters
    ----------
    target_lr:
        ``(h, w)`` or ``(h, w, c)`` in its own units and dtype; NaN marks invalid pixels.
    guide_hr:
        ``(H, W)`` or ``(H, W, C)`` high-resolution guide, any real dtype.
    scale:
        Output = target size x scale; default: the guide's size.
    config:
        Settings; default ``Config()``.

    Returns
    -------
    ``(H, W)`` or ``(H, W, c)`` array with the target's dtype and units.

    Examples
    --------
    >>> import numpy as np, cmsr
    >>> rng = np.random.default_rng(0)
    >>> guide = rng.random((32, 32, 3))
    >>> target = guide[::4, ::4, 0].astype(np.float32)
    >>> cmsr.super_resolve(target, guide, config=cmsr.Config.preset("quick")).shape
    (32, 32)
    """
    model = CMSR(config).fit(target_lr, guide_hr, scale=scale, mask=mask,
                             invalid_value=invalid_value)
    return model.predict()
