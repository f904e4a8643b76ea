"""One dataclass holds every knob of a cmsr run; presets set them per modality.

Sizes are in pixels, learning rates per Adam step, angles in degrees.
``Config.preset("depth", max_iters=300)`` gives a preset with overrides;
``dataclasses.replace(config, seed=3)`` changes a copy.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Literal, get_args

from cmsr.method.resample import DEGRADATION_NAMES, DegradationKernel

Precision = Literal["auto", "bfloat16", "float32"]
Alignment = Literal["none", "affine", "affine+cpab", "full"]
AfterDrop = Literal["learn", "none"]
Device = Literal["auto", "cpu", "cuda"]
"""Device names; ``"cuda:N"`` picks one of several GPUs."""
PRECISIONS: tuple[str, ...] = get_args(Precision)
ALIGNMENTS: tuple[str, ...] = get_args(Alignment)
AFTER_DROP: tuple[str, ...] = get_args(AfterDrop)
DEVICES: tuple[str, ...] = get_args(Device)
SEED_LIMIT = 2**63
"""Seeds are integers in ``[0, SEED_LIMIT)``: torch's generators take at most 64 bits, and
runs add small offsets to the seed (one per stage, one for the self-check)."""
STREAM_FIELDS: tuple[str, ...] = ("stream_above", "stream_tile", "stream_halo",
                                  "train_max_pixels")
"""Settings used only when a large output is computed tile by tile (never in ``cmsr batch``
or ``cmsr eval``, whose stores leave them out of their keys)."""


@dataclass(frozen=True)
class Config:
    """Everything that decides what a cmsr run computes.

    Network (paper section 4.1)
        ``fe1_layers`` / ``fe1_channels``: Feature-Extractor 1 on the upsampled target
        (3x3 convolutions, ReLU after all but the last). ``fe2_layers`` /
        ``fe2_channels``: Feature-Extractor 2 on the guide (3x3 with ReLU, last 1x1).

    Training on the pair (section 3.2 and the supplementary)
        ``patch_size``: side of the supervision patch, in low-resolution target pixels.
        ``batch_size``: patches per step in the down-sampling scheme.
        ``alternating_scales``: probability of an up-sampling-scheme step (paper: 0.3).
        ``degradation``: how a patch is reduced to make training input: ``"cubic"``
        (MATLAB's antialiased bicubic, as ZSSR and CMSR), ``"box"`` (area average: a
        sensor pixel integrating its footprint), ``"cubic-aliased"`` /
        ``"linear-aliased"`` (interpolation at the low-resolution pixel centres, no
        antialiasing: ``cv2.resize``), or a ``(k, k)`` blur kernel in output pixels as
        nested tuples (:func:`cmsr.method.resample.blur_and_sample`). Also used by
        back-projection and the consistency fine-tuning.
        ``guide_dropout``: share of training examples whose guide branch is switched
        off, so that Feature-Extractor 1 alone is also a guide-free (ZSSR) network:
        the self-check's reference.
        ``flips``: random flips and 90-degree turns (exact, on every patch). With
        probability ``augment_probability`` a patch is also rotated by up to
        ``augment_rotation`` degrees, sheared by up to ``augment_shear`` degrees and zoomed
        by a factor in ``augment_zoom``.
        ``learning_rate`` -> divided by ``lr_decay`` each time the reconstruction error
        stops falling clearly (a line fitted to the last ``slope_window`` evaluations,
        made every ``eval_every`` steps); training stops when the rate goes below
        ``min_learning_rate`` or after ``max_iters`` steps; the rate is never lowered
        before step ``min_iters``.
        ``final_decay``: the last share of ``max_iters`` runs at most at
        ``learning_rate / lr_decay`` even if the slope rule has not fired yet (it
        seldom does before a cap of a few hundred steps).
        ``precision``: ``"bfloat16"`` autocast halves the time where the CPU or GPU
        computes bfloat16 natively, at a small cost, and is many times slower where it
        is emulated; ``"auto"`` (default) picks it only where it is native, else
        ``"float32"`` (:mod:`cmsr.method.precision`).

    Alignment (section 3.1)
        ``align``: which warp layers deform the guide before the patch sampler
        (``"none"``, ``"affine"``, ``"affine+cpab"``, ``"full"``). ``warp_lr_*``:
        each layer's learning rate as a multiple of the network's, counted in pixels
        of the stage's low-resolution target (Adam then moves the guide by about
        ``learning_rate * warp_lr`` target pixels per step; larger for badly
        displaced pairs). ``warp_release``: fractions of ``max_iters`` after which
        CPAB, then TPS start to train (coarse to fine; affine trains from the start).
        ``warp_regularization``: weight of the smoothness penalty. ``cpab_cells``,
        ``tps_points``: tessellation and control grid per side. ``freeze_warp``: apply
        the warp but never train it (for a warp loaded from a previous fit; a warp
        starting at the identity would stay the identity).
        ``align_levels``: before the first stage, a warp starting at the identity is
        fitted on that stage's pair reduced by 4, then by 2 (up to ``2**levels``),
        ``align_level_iters`` steps each with a throw-away network whose feature
        extractors are at most ``align_level_channels`` wide
        (:mod:`cmsr.method.coarse_alignment`): displacements of several pixels are out of
        reach at full size, where the network ignores a misaligned guide. 0: none.
        ``align_check_margin``: after those fits the warp is kept only if the guide, so
        warped, explains the target locally better than as given, by this share
        (:mod:`cmsr.method.alignment_check`, no network involved); otherwise the
        first stage starts again from the identity. Negative: no check.
        ``align_when_dropped``: what the stages do after the check dropped the coarse
        warp: ``"learn"`` a warp from the identity, layers released coarse to fine, or
        ``"none"``: the pair is taken as aligned and no warp is learned (the same to the
        bit as ``align="none"``).

    Starting from a previous fit (``CMSR.fit(init=...)``, ``warp_init=...``)
        A loaded warp has all its layers active from the first step (no coarse-to-fine
        release) and keeps training at the ``warp_lr_*`` rates unless ``freeze_warp``.
        Networks started from a previous model (``init``) train for at most
        ``warm_start_iters`` steps per stage (and never more than ``max_iters``),
        starting at ``warm_learning_rate`` (they are already close), with no
        ``min_iters`` warm-up before the first decay. Measured on the demo scene moved
        by 4 and 8 px between frames (depth preset, 400 cold steps): 200 warm steps at
        3e-4 gave RMSE 5.17 and 5.21 against 5.67 and 5.21 cold, in 40% of the time
        (1e-4: 5.25 and 5.33; 1e-3: 5.25 for 8 px).

    Fine-tuning at the target scale (:mod:`cmsr.method.consistency`)
        After the last stage, ``consistency_iters`` Adam steps at
        ``consistency_learning_rate`` train the last network on the pair at its own
        size: the output reduced by ``degradation`` must reproduce the measured target.
        Each step takes ``consistency_batch`` crops of ``consistency_patch`` target
        pixels. 0: off.

    Self-check (:mod:`cmsr.method.self_check`)
        ``self_check``: hold out ``self_check_fraction`` of the target's pixels from
        the first stage's loss, then rebuild them with and without the guide; the
        guide is used only if it wins by ``self_check_margin`` against the better of
        the guide-free network and bicubic (relative;
        ``self_check_margin_warped`` instead, when not None, if this fit's alignment
        check kept the coarse warp: a guide measurably off the target; a fit that starts
        from a saved warp or runs no check keeps ``self_check_margin``), else the
        guide-free network (needs ``guide_dropout`` > 0 to be trained as one), else
        bicubic. ``self_check_blend``: the guide's candidate is also a blend of the two
        networks (the guide branch's output scaled by 0.25, 0.5 or 0.75), whichever
        rebuilds the held-out pixels best. ``self_check_free_stages``: when the check
        chooses the guide-free network (or bicubic), the later gradual stages train
        that network alone on every example (as ZSSR does), not with the guide dropped
        from a share of them; ``self_check_free_share`` times ``max_iters`` more steps
        then train the first stage's guide-free network alone on every pixel (the
        held-out ones too); after a check that chose bicubic, on the pixels not held
        out, and the check is made again: the guide-free network is used if it now
        beats bicubic on the held-out pixels (:func:`cmsr.method.self_check.recheck_guide_free`).

    Inference (section 3.3)
        ``self_ensemble``: the median over the 8 flips/rotations.
        ``back_projection_iters``: iterative back-projection steps.
        ``clamp_to_local_range``: clip each output pixel to the range of the measured
        pixels around it (3x3), which stops overshoot and ringing beside structures
        thinner than two measured pixels. ``clip_to_input_range``: clip each band of the
        result to the range of its valid input pixels (the result never leaves what
        was measured; sharpening may otherwise overshoot it a little). Integer results
        are always clipped to what their dtype holds. ``guided_median_radius`` (0:
        off): after the clip, each output pixel becomes the weighted median of its
        ``(2 r + 1)**2`` neighbourhood, a neighbour weighted by how alike the (aligned)
        guide is there, ``exp(-d**2 / (2 guided_median_sigma**2))`` with ``d`` the
        guide distance in unit range (:mod:`cmsr.method.guided_median`): edges move
        onto the guide's; flat regions stay flat. Back-projection and the local-range
        clip (when on) then run once more. ``guide_shift_search`` (0: off; with the
        guided median): before the guided finishes, the guide (for them alone) moves by
        the whole-pixel offset within this many output pixels that lines its edges up
        best with the result's, when the guided median's result, reduced, then gives
        back the measurement better; each by 5% (:mod:`cmsr.method.guide_shift`).
        ``edge_sharpening`` (0: off, at most 1):
        after that, each pixel a result leaves in between the two sides of a step moves
        this share of the way to the nearer side (:mod:`cmsr.method.edge_sharpening`,
        for piecewise-constant targets: depth), then back-projection and the clip once
        more. ``block_partition`` (0: off, at most 1): after that, where the output is an
        integer multiple of the target, each measured pixel that straddles a step has
        the pixels it covers moved this share of the way to the split between the two
        sides its value implies (under a box degradation), ranked by the smoothed result
        plus ``block_partition_guide`` times the guide colour's side
        (:mod:`cmsr.method.block_partition`; 0: the guide is not read), then
        back-projection and the clip once more. ``gradual``: for scales above 2,
        enlarge in steps of at most 2, training once per step, each on the previous
        step's output.
        ``tile_size``: largest side, in output pixels, run through the network at once
        (memory is about ``tile_size**2 * fe_channels * 12`` bytes).

    Large outputs (:mod:`cmsr.method.streaming`, :mod:`cmsr.method.tiled_inference`)
        Outputs of more than ``stream_above`` pixels are computed and written tile by
        tile, ``stream_tile`` output pixels a side, each with the networks' receptive
        fields plus ``stream_halo`` target pixels of context (back-projection and the
        local-range clip). The fit then trains on the central part of the pair of at
        most ``train_max_pixels`` output pixels, without the learned alignment.
    """

    # network
    fe1_layers: int = 8
    fe1_channels: int = 64
    fe2_layers: int = 6
    fe2_channels: int = 64
    # training
    patch_size: int = 32
    batch_size: int = 16
    alternating_scales: float = 0.3
    degradation: DegradationKernel = "cubic"
    augment_probability: float = 0.5
    augment_rotation: float = 15.0
    augment_shear: float = 5.0
    augment_zoom: tuple[float, float] = (0.8, 1.0)
    flips: bool = True
    guide_dropout: float = 0.0
    learning_rate: float = 1e-3
    min_learning_rate: float = 9e-6
    lr_decay: float = 10.0
    final_decay: float = 0.0
    eval_every: int = 10
    slope_window: int = 12
    max_iters: int = 500
    min_iters: int = 200
    precision: Precision = "auto"
    # learnable alignment of the guide (affine -> CPAB -> TPS), see cmsr.method.warp
    align: Alignment = "full"
    warp_lr_affine: float = 10.0
    warp_lr_cpab: float = 5.0
    warp_lr_tps: float = 5.0
    warp_release: tuple[float, float] = (0.15, 0.3)
    warp_regularization: float = 1e-3
    cpab_cells: int = 4
    tps_points: int = 6
    freeze_warp: bool = False
    align_levels: int = 2
    align_level_iters: int = 150
    align_level_channels: int = 32
    align_check_margin: float = 0.05
    align_when_dropped: AfterDrop = "learn"
    # starting from a previous fit
    warm_start_iters: int = 200
    warm_learning_rate: float = 3e-4
    # fine-tuning at the target scale (cmsr.method.consistency)
    consistency_iters: int = 0
    consistency_learning_rate: float = 1e-4
    consistency_patch: int = 16
    consistency_batch: int = 4
    # does the guide help? (cmsr.method.self_check)
    self_check: bool = False
    self_check_fraction: float = 0.15
    self_check_margin: float = 0.02
    self_check_margin_warped: float | None = None
    self_check_blend: bool = False
    self_check_free_stages: bool = False
    self_check_free_share: float = 0.0
    # inference
    self_ensemble: bool = True
    back_projection_iters: int = 10
    clamp_to_local_range: bool = False
    clip_to_input_range: bool = False
    guided_median_radius: int = 0
    guided_median_sigma: float = 0.07
    guide_shift_search: int = 0
    edge_sharpening: float = 0.0
    block_partition: float = 0.0
    block_partition_guide: float = 0.2
    gradual: bool = True
    tile_size: int = 512
    # large outputs (cmsr.method.tiled_inference)
    stream_above: int = 4096 * 4096
    stream_tile: int = 1024
    stream_halo: int = 8
    train_max_pixels: int = 2048 * 2048
    # run: ``seed`` in [0, 2**63); ``device`` auto, cpu, cuda or cuda:N (checked to
    # exist when a model is made: cmsr.method.api.resolve_device); ``threads`` >= 1 or
    # None for torch's choice
    seed: int = 0
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("fe1_layers", "fe2_layers"):
            if getattr(self, name) < 2:
                problems.append(f"{name} must be >= 2")
        for name in ("fe1_channels", "fe2_channels", "batch_size", "max_iters",
                     "eval_every", "tile_size", "warm_start_iters", "consistency_patch",
                     "consistency_batch", "stream_above", "stream_tile",
                     "train_max_pixels"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.patch_size < 4:
            problems.append("patch_size must be >= 4")
        if self.slope_window < 3:
            problems.append("slope_window must be >= 3")
        if not 0.0 <= self.augment_probability <= 1.0:
            problems.append("augment_probability must be in [0, 1]")
        if not 0.0 <= self.final_decay < 1.0:
            problems.append("final_decay must be in [0, 1)")
        if not 0.0 <= self.guide_dropout < 1.0:
            problems.append("guide_dropout must be in [0, 1)")
        if not 0.0 <= self.alternating_scales <= 1.0:
            problems.append("alternating_scales must be in [0, 1]")
        problems += degradation_problems(self.degradation)
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be {' or '.join(map(repr, PRECISIONS))}")
        if not 0.0 < self.augment_zoom[0] <= self.augment_zoom[1]:
            problems.append("augment_zoom must be (low, high) with 0 < low <= high")
        if (min(self.learning_rate, self.min_learning_rate, self.warm_learning_rate) <= 0
                or self.lr_decay <= 1):
            problems.append("learning rates must be > 0 and lr_decay > 1")
        elif self.warm_learning_rate < self.min_learning_rate:
            problems.append("warm_learning_rate must be >= min_learning_rate")
        if self.align not in ALIGNMENTS:
            problems.append(f"align must be {', '.join(ALIGNMENTS[:-1])} or {ALIGNMENTS[-1]}")
        if self.align_when_dropped not in AFTER_DROP:
            problems.append(f"align_when_dropped must be {' or '.join(map(repr, AFTER_DROP))}")
        if min(self.warp_lr_affine, self.warp_lr_cpab, self.warp_lr_tps) < 0:
            problems.append("warp learning-rate multipliers must be >= 0")
        if not 0.0 <= self.warp_release[0] <= self.warp_release[1] <= 1.0:
            problems.append("warp_release must be (cpab, tps) fractions with cpab <= tps")
        if self.align_levels < 0 or min(self.align_level_iters, self.align_level_channels) < 1:
            problems.append("align_levels must be >= 0, align_level_iters and "
                            "align_level_channels >= 1")
        if self.cpab_cells < 1 or self.tps_points < 2:
            problems.append("cpab_cells must be >= 1 and tps_points >= 2")
        if self.consistency_iters < 0 or self.consistency_learning_rate <= 0:
            problems.append("consistency_iters must be >= 0, consistency_learning_rate > 0")
        if not 0.0 <= self.self_check_free_share <= 1.0:
            problems.append("self_check_free_share must be in [0, 1]")
        if not 0.0 < self.self_check_fraction < 0.5 or not 0.0 <= self.self_check_margin < 1:
            problems.append("self_check_fraction must be in (0, 0.5), self_check_margin in "
                            "[0, 1)")
        warped = self.self_check_margin_warped
        if warped is not None and not 0.0 <= warped < 1:
            problems.append("self_check_margin_warped must be in [0, 1)")
        if self.back_projection_iters < 0:
            problems.append("back_projection_iters must be >= 0")
        if self.guided_median_radius < 0 or self.guided_median_sigma <= 0:
            problems.append("guided_median_radius must be >= 0, guided_median_sigma > 0")
        if not _is_integer(self.guide_shift_search) or self.guide_shift_search < 0:
            problems.append("guide_shift_search must be an integer >= 0")
        if not 0.0 <= self.edge_sharpening <= 1.0:
            problems.append("edge_sharpening must be in [0, 1]")
        if not 0.0 <= self.block_partition <= 1.0:
            problems.append("block_partition must be in [0, 1]")
        if not self.block_partition_guide >= 0.0:
            problems.append("block_partition_guide must be >= 0")
        problems += seed_problems(self.seed)
        problems += device_problems(self.device)
        if self.threads is not None and (not _is_integer(self.threads) or self.threads < 1):
            problems.append(f"threads must be an integer >= 1 (or None for torch's choice), "
                            f"got {self.threads!r}")
        if self.stream_halo < 0:
            problems.append("stream_halo must be >= 0")
        if problems:
            raise ValueError("invalid config: " + "; ".join(problems))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Config:
        """The named preset (see :data:`PRESETS`) with ``overrides`` applied."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


def _is_integer(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def seed_problems(seed: object) -> list[str]:
    """Why ``seed`` is not an integer in ``[0, SEED_LIMIT)`` (empty: fine).

    Examples
    --------
    >>> seed_problems(7), seed_problems(2**70)
    ([], ['seed must be an integer in [0, 2**63), got 1180591620717411303424'])
    """
    if _is_integer(seed) and 0 <= seed < SEED_LIMIT:  # type: ignore[operator]
        return []
    return [f"seed must be an integer in [0, 2**63), got {seed!r}"]


def device_problems(device: object) -> list[str]:
    """Why ``device`` is not a device name cmsr runs on: ``auto``, ``cpu``, ``cuda`` or
    ``cuda:N`` (empty: fine). Whether the machine has that device is
    :func:`cmsr.method.api.resolve_device`'s question.

    Examples
    --------
    >>> device_problems("cuda:1"), device_problems("mps")
    ([], ["'mps' is not a device cmsr runs on: choose auto, cpu, cuda or cuda:N"])
    """
    if isinstance(device, str) and (device in DEVICES or re.fullmatch(r"cuda:\d+", device)):
        return []
    return [f"{device!r} is not a device cmsr runs on: choose auto, cpu, cuda or cuda:N"]


def degradation_problems(degradation: object) -> list[str]:
    """Why ``degradation`` is not a known name or a usable 2-D kernel (empty: fine)."""
    if isinstance(degradation, str):
        if degradation in DEGRADATION_NAMES:
            return []
        return [f"degradation must be {', '.join(DEGRADATION_NAMES)} or a kernel"]
    try:
        rows = [[float(v) for v in row] for row in degradation]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return ["degradation kernel must be a 2-D array of numbers"]
    sizes = {len(row) for row in rows}
    values = [v for row in rows for v in row]
    if not rows or len(sizes) != 1 or not all(math.isfinite(v) for v in values):
        return ["degradation kernel must be a non-empty 2-D array of finite numbers"]
    if sum(values) <= 0:
        return ["degradation kernel must have a positive sum"]
    return []


PRESETS: dict[str, Config] = {
    # All three real presets drop the guide from 30% of the training examples and check
    # on held-out pixels whether it helps (cmsr.method.self_check). On Middlebury13 026, 03_9,
    # 11_1, 235 (x4, --align none, one seed) that gave mean RMSE 2.967 against 3.180
    # without; on EPFL train_0003 2.508 against 2.522. When the check chooses the
    # guide-free network, it trains on alone (60% of a stage's steps more, on every pixel,
    # then the later stages without the guide), as ZSSR does (0.7): on the real captures
    # of thermal/unaligned x8 (--kernel cubic-aliased, 8 pairs, 1 thread) mean PSNR 38.17
    # dB against 37.61 without (ZSSR 38.10, bicubic 37.46); flir_one 145236 45.22 against
    # 42.72, 145315 44.03 against 42.47 (later stages alone only: 42.77, 42.64).
    # Thermal: smooth, low-contrast radiometry; the guide's texture is mostly foreign.
    # Alternating scales off (0.6): on the real captures of thermal/unaligned x8
    # (--kernel cubic-aliased, 8 pairs, 1 thread) mean PSNR cmsr 37.61 dB against 37.56
    # with p = 0.3, ZSSR 38.10 against 37.65; on RoadScene x4 (2 pairs) cmsr 27.91 against
    # 27.82 (docs/research-log.md).
    # Where the alignment check keeps the coarse warp (the guide measurably off the
    # target: two cameras), the guide network must win the self-check by 20%, as on
    # depth (0.14): its gain at the training scale does not carry to the target scale
    # when the guide's residual offset, in output pixels, doubles there. On the real
    # captures of thermal/unaligned x8 (0.13, seeds 1 and 2) the check chose the guide
    # network on 5 pairs with a kept warp and cmsr lost to ZSSR on all 5 (145347 36.41
    # and 35.93 dB against 37.99 and 38.51).
    "thermal": Config(fe2_channels=32, alternating_scales=0.0, guide_dropout=0.3,
                      self_check=True, self_check_free_stages=True,
                      self_check_free_share=0.6, self_check_margin_warped=0.2),
    # NIR: close to the RGB's structure; a wider guide branch pays off. Alternating
    # scales off: on EPFL train_0003 x4 (300 steps per stage) RMSE 2.66 against 3.51.
    "nir": Config(fe2_channels=64, alternating_scales=0.0, guide_dropout=0.3,
                  self_check=True, self_check_free_stages=True, self_check_free_share=0.6),
    # Depth: piecewise-smooth with sharp edges; sensors integrate over a pixel footprint
    # (box degradation). Alternating scales off: on Middlebury x4 its up-sampling
    # scheme (bicubic-smooth supervision at the guide's scale) cost 7% RMSE. Results
    # clipped to the local range of the measurement: demo RMSE 6.68 against 8.26
    # (the ringing beside the pole), Middlebury13 026 2.175 against 2.221. Guide branch
    # 32 wide (0.8, for speed): on all 13 Middlebury13 pairs (x4, 1 thread) mean RMSE
    # 1.886 against 1.890 with 64 (better on 7 of 13), fits about 26% shorter.
    # Guided 3x3 median last, then back-projection and the clip again (0.9): on the 13
    # pairs' stored 0.8 results RMSE 1.799 against 1.886 (better on 12 of 13). No
    # learned alignment (0.9): on Middlebury13's aligned pairs the warp drifted by 5-9
    # px on average after the coarse fits (benchmarks/alignment_drift.py), and the
    # guided median needs the guide where it is; --align full for displaced pairs.
    # With --align full, a pair whose coarse warp the alignment check drops learns no
    # warp at all (0.11): on the 4 displaced Middlebury13 pairs of alignment_drift.py
    # (6 px, 2 degrees; x4, 1 thread) RMSE 1.935 against 2.016 relearning one from the
    # identity and 1.999 with --align none; the aligned pairs as with --align none.
    # Not for nir or thermal: on EPFL train_0003/0005 39.48 dB against 39.77, on
    # RoadScene (6 pairs) 29.17 against 29.27, the real thermal captures +0.03.
    # Edge sharpening 0.5 last (0.12; benchmarks/edge_sharpening.py on stored outputs):
    # chosen on Middlebury 2005 x4 (6 scenes it was not tried on before), RMSE 1.371
    # against 1.510 (6 of 6 better; 0.4: 1.378, 0.6: 1.373); on Middlebury13's 0.11
    # results 1.669 against 1.815 (12 of 13), ZSSR's 1.654 against 1.778.
    # The guide network only where it wins the self-check by 20% (0.13): on depth its
    # gain on the held-out pixels, at the training scale, does not carry to the target
    # scale. Middlebury13 x4, seed 0, both branches of each pair from the same first
    # stage (benchmarks/self_check_branches.py): where the guide won the check (10 of
    # 13 pairs, by 0.3-26%), the guided branch was better on 3 (by at most 1.3%), the
    # guide-free one on 7 (026 1.549 against 1.855); margin 0.02 1.669, 0.1 1.654,
    # 0.2 1.627 (ZSSR 1.654). On seed 2, not chosen on: 1.692 with 0.02, 1.660 with
    # 0.2; seed 1 (through cmsr eval) 1.714 and 1.712. Not for thermal: on RoadScene
    # the guided branch won on 6 of 6 pairs (0.2 would cost 0.19 dB). The guide still
    # acts through the guide dropout in training, the guided median and the edge
    # sharpening.
    # Block partition 0.5 last (0.14; benchmarks/block_partition.py on stored outputs):
    # chosen on Middlebury 2005 x4 (the 6 scenes edge sharpening was chosen on), RMSE
    # 1.131 against 1.371 after the sharpening (6 of 6 better; guide weight 0: 1.142;
    # strength 0.4: 1.144, 0.6: 1.136; the 3x3 step test instead of 5x5: 1.146); on
    # Middlebury13's 0.12 fits 1.508 against 1.669 (13 of 13).
    "depth": Config(degradation="box", fe2_channels=32, alternating_scales=0.0,
                    guide_dropout=0.3, self_check=True, clamp_to_local_range=True,
                    self_check_margin=0.2,
                    self_check_free_stages=True, self_check_free_share=0.6,
                    guided_median_radius=1, guide_shift_search=1,
                    align="none", align_when_dropped="none",
                    edge_sharpening=0.5, block_partition=0.5),
    # Elevation (DEMs, vegetation height; float metres): piecewise smooth like depth, so
    # the depth settings; no learned alignment (georeferenced grids already lie on each
    # other, and it saves the alignment fits). Box degradation (the sensor footprint):
    # on geo srtm_s2 30 m x2 (benchmarks/geo_sharpening.py, seed 0, a reduced 20 steps
    # per stage under CPU load) RMSE 0.462 m against 0.570 with cubic (whose self-check
    # fell back to bicubic, 0.570); guide dropout + self-check on/off 0.462 / 0.463.
    "elevation": Config(degradation="box", fe2_channels=64, alternating_scales=0.0,
                        guide_dropout=0.3, self_check=True, clamp_to_local_range=True,
                        align="none"),
    # Temperature (LST, brightness temperature in K or deg C): the thermal preset with
    # box degradation (the sensor footprint) and no learned alignment; it keeps the
    # paper's alternating scales (0.3): turning them off (thermal, 0.6) was measured on
    # thermal cameras, not on the geo rasters. On geo desirex
    # 100 m -> 200 m and back (T^4 aggregation; seed 0, a reduced 20 steps per stage
    # under CPU load) RMSE 1.377 K against 1.475 with cubic (self-check fell back to
    # bicubic, 1.475); guide dropout + self-check on/off 1.377 / 1.376, kept on as the
    # fallback when the guide does not help.
    "temperature": Config(degradation="box", fe2_channels=32, guide_dropout=0.3,
                          self_check=True, align="none"),
    # A few seconds on a CPU: for smoke tests and trying the tool out.
    "quick": Config(fe1_channels=16, fe2_channels=16, fe1_layers=4, fe2_layers=3,
                    batch_size=4, max_iters=40, min_iters=10, self_ensemble=False,
                    back_projection_iters=2, gradual=False, align_level_iters=30),
}
