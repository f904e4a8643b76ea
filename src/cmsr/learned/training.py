"""Training a learned model over many pairs: patches, validation, a time budget, resume.

:func:`train_model` takes pairs already made by an evaluation protocol (the command
line makes them with :func:`cmsr.evaluation.evaluate.load_pair`, as ``cmsr eval``
does), holds some out for validation, and trains with Adam on random patches (with
vertical flips; horizontal flips and turns would change the stereo geometry) until
the time budget or the step limit runs out. Every ``validation_every`` steps the
validation pairs' central crops are super-resolved and the weights with the best
PSNR are kept; a checkpoint is written every ``checkpoint_seconds`` (and at the end,
and on Ctrl-C), from which :func:`train_model` continues when given it back.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmsr.errors import InputError, describe_shape
from cmsr.learned.config import ModelConfig, TrainingSettings
from cmsr.learned.loss import total_loss
from cmsr.learned.model_file import METHODS, ModelInfo, ValueRange, model_dict, save_checkpoint
from cmsr.learned.network import CrossSpectralNet
from cmsr.method.normalize import array_to_tensor, fill_invalid, valid_mask
from cmsr.method.resample import upsample_bicubic

__all__ = ["Progress", "TrainingPair", "TrainingResult", "psnr", "split_pairs", "train_model"]

#: Gradient norm clipping during training (keeps the first steps of deep models stable).
GRADIENT_CLIP = 1.0


@dataclass(frozen=True)
class TrainingPair:
    """One pair of a training set, as arrays in their own units.

    Attributes
    ----------
    name:
        The scene's name (for messages and the validation split).
    low:
        ``(h, w)`` or ``(h, w, c)`` the target's low-resolution input.
    truth:
        ``(h*s, w*s[, c])`` its ground truth.
    guide:
        The guide the model takes: ``(h, w[, C])`` for a low-resolution guide model,
        ``(h*s, w*s[, C])`` for a high-resolution one.
    guide_truth:
        ``(h*s, w*s[, C])`` the guide at full resolution in its own view (for the
        consistency loss).
    """

    name: str
    low: np.ndarray
    truth: np.ndarray
    guide: np.ndarray
    guide_truth: np.ndarray


@dataclass(frozen=True)
class Progress:
    """Where training stands, for a progress bar (``validation_psnr`` NaN until the first
    validation; ``bicubic_psnr`` the validation crops enlarged by bicubic)."""

    step: int
    max_steps: int | None
    seconds: float
    budget_seconds: float
    loss: float
    learning_rate: float
    validation_psnr: float = math.nan
    best_psnr: float = math.nan
    bicubic_psnr: float = math.nan


@dataclass
class TrainingResult:
    """A trained model: its network with the kept weights, and its description."""

    network: CrossSpectralNet
    info: ModelInfo
    steps: int
    seconds: float
    best_psnr: float
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class _Tensors:
    """A pair in the model's unit ranges, each ``(c, H, W)`` float32."""

    name: str
    low: torch.Tensor
    truth: torch.Tensor
    guide: torch.Tensor
    guide_truth: torch.Tensor


def psnr(result: torch.Tensor, truth: torch.Tensor) -> float:
    """PSNR in dB of unit-range images (peak 1).

    Examples
    --------
    >>> round(psnr(torch.zeros(4), torch.full((4,), 0.1)), 6)
    20.0
    """
    error = float(torch.mean((result.float() - truth.float()) ** 2))
    return math.inf if error == 0 else 10.0 * math.log10(1.0 / error)


def split_pairs(names: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Training and validation names: ``round(fraction * n)`` held out (at least one with
    two or more pairs and ``fraction > 0``; never all), drawn with ``seed``.

    Examples
    --------
    >>> train, held = split_pairs(["a", "b", "c", "d"], 0.25, seed=0)
    >>> len(train), len(held), sorted(train + held)
    (3, 1, ['a', 'b', 'c', 'd'])
    """
    count = len(names)
    held = round(fraction * count)
    if fraction > 0 and count >= 2:
        held = max(held, 1)
    held = min(held, count - 1)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    validation = sorted(order[:held])
    return ([n for i, n in enumerate(names) if i not in validation],
            [names[i] for i in validation])


def _bands(array: np.ndarray) -> int:
    return 1 if array.ndim == 2 else array.shape[2]


def _check_pairs(pairs: Sequence[TrainingPair], config: ModelConfig, scale: int) -> None:
    """One-line :class:`InputError` for an unusable training set."""
    if not pairs:
        raise InputError("no training pairs", "train")
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        raise InputError("two training pairs have the same name", "train")
    first = pairs[0]
    for pair in pairs:
        (h, w), truth = pair.low.shape[:2], pair.truth.shape[:2]
        if truth != (h * scale, w * scale):
            raise InputError(f"the truth is {describe_shape(truth)}, not {scale} times the "
                             f"{describe_shape((h, w))} input", pair.name)
        need = (h, w) if config.guide_resolution == "low" else truth
        if pair.guide.shape[:2] != need:
            raise InputError(f"the guide is {describe_shape(pair.guide.shape[:2])}; the "
                             f"model takes {describe_shape(need)}", pair.name)
        if pair.guide_truth.shape[:2] != truth:
            raise InputError("the full-resolution guide is not the truth's size", pair.name)
        if min(h, w) < 4:
            raise InputError(f"the input ({describe_shape((h, w))}) is too small to train on",
                             pair.name)
        for role, array, reference in (("target", pair.low, first.low),
                                       ("guide", pair.guide, first.guide)):
            if _bands(array) != _bands(reference):
                raise InputError(f"the {role} has {_bands(array)} band(s), the first pair's "
                                 f"{_bands(reference)}", pair.name)


def _unit(array: np.ndarray, value_range: ValueRange) -> torch.Tensor:
    """``(H, W[, c])`` in its units -> ``(c, H, W)`` float32 in the range's units, with
    invalid pixels filled."""
    values = np.asarray(array, dtype=np.float64)
    valid = valid_mask(values)
    tensor = array_to_tensor((np.nan_to_num(values) - value_range.offset) / value_range.span)
    if not valid.all():
        tensor = fill_invalid(tensor, torch.from_numpy(valid)[None, None])
    return tensor[0]


def _target_dtype(pairs: Sequence[TrainingPair]) -> np.dtype | None:
    dtypes = {p.truth.dtype for p in pairs}
    return dtypes.pop() if len(dtypes) == 1 else None


class _Trainer:
    """The state of one training run (see :func:`train_model`)."""

    def __init__(self, pairs: Sequence[TrainingPair], config: ModelConfig,
                 settings: TrainingSettings, scale: int, protocol: Mapping[str, Any],
                 resume: Mapping[str, Any] | None) -> None:
        self.settings = settings
        self.scale = scale
        names = [p.name for p in pairs]
        if resume is not None:
            info: ModelInfo = resume["info"]
            split = resume["split"]
            missing = sorted((set(split["train"]) | set(split["validation"])) - set(names))
            if missing:
                raise InputError(f"the checkpoint was trained on pairs that are not in the "
                                 f"data: {', '.join(missing[:5])}", "--resume")
            train_names, validation_names = list(split["train"]), list(split["validation"])
            target_range, guide_range = info.target_range, info.guide_range
        else:
            train_names, validation_names = split_pairs(names, settings.validation_fraction,
                                                        settings.seed)
            training = [p for p in pairs if p.name in train_names]
            dtype = _target_dtype(training)
            target_range = ValueRange.of([p.truth for p in training], dtype)
            guide_range = ValueRange.of([p.guide_truth for p in training])
        by_name = {p.name: p for p in pairs}

        def tensors(name: str) -> _Tensors:
            pair = by_name[name]
            return _Tensors(name, _unit(pair.low, target_range), _unit(pair.truth, target_range),
                            _unit(pair.guide, guide_range), _unit(pair.guide_truth, guide_range))

        self.train_set = [tensors(n) for n in train_names]
        self.validation_set = [tensors(n) for n in validation_names]
        self.split = {"train": train_names, "validation": validation_names}
        first = pairs[0]
        self.info = ModelInfo(
            method=METHODS[0], config=config, scale=scale, target_bands=_bands(first.low),
            guide_bands=_bands(first.guide), target_range=target_range,
            guide_range=guide_range, protocol=dict(protocol))
        torch.manual_seed(settings.seed)
        self.network = self.info.build_network()
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=settings.learning_rate)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.step = 0
        self.seconds = 0.0
        self.best_score = -math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, float]] = []
        if resume is not None:
            self.network.load_state_dict(resume["network"].state_dict())
            try:
                self.optimizer.load_state_dict(resume["optimizer"])
                self.generator.set_state(resume["generator"])
                if resume["best_state"] is not None:
                    self.info.build_network().load_state_dict(resume["best_state"])
            except (RuntimeError, ValueError, KeyError, TypeError) as error:
                first_line = (str(error).splitlines() or [""])[0][:100]
                raise InputError(f"is a damaged training checkpoint ({first_line})",
                                 "--resume") from None
            self.step = int(resume["step"])
            self.seconds = float(resume["seconds"])
            self.best_score = float(resume["best_score"])
            self.best_state = resume["best_state"]
            self.history = list(resume.get("history", []))
        smallest = min(min(t.low.shape[-2:]) for t in self.train_set)
        self.patch = min(settings.patch_size, smallest)
        areas = torch.tensor([float(t.low.shape[-1] * t.low.shape[-2]) for t in self.train_set])
        self.weights = areas / areas.sum()
        self.bicubic_psnr = self._validate(bicubic=True) if self.validation_set else math.nan

    # ------------------------------------------------------------------ pieces
    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random patches: low ``(B, c, p, p)``, truth ``(B, c, p*s, p*s)``, guide (low or
        high), guide truth ``(B, C, p*s, p*s)``."""
        scale, patch = self.scale, self.patch
        high_guide = self.info.config.guide_resolution == "high"
        parts: list[list[torch.Tensor]] = [[], [], [], []]
        picks = torch.multinomial(self.weights, self.settings.batch_size, replacement=True,
                                  generator=self.generator).tolist()
        for index in picks:
            pair = self.train_set[index]
            height, width = pair.low.shape[-2:]
            top = int(torch.randint(0, height - patch + 1, (1,), generator=self.generator))
            left = int(torch.randint(0, width - patch + 1, (1,), generator=self.generator))
            flip = bool(torch.randint(0, 2, (1,), generator=self.generator))
            t0, l0, size = top * scale, left * scale, patch * scale
            crops = [pair.low[:, top:top + patch, left:left + patch],
                     pair.truth[:, t0:t0 + size, l0:l0 + size],
                     (pair.guide[:, t0:t0 + size, l0:l0 + size] if high_guide
                      else pair.guide[:, top:top + patch, left:left + patch]),
                     pair.guide_truth[:, t0:t0 + size, l0:l0 + size]]
            for collected, crop in zip(parts, crops, strict=True):
                collected.append(crop.flip(-2) if flip else crop)
        low, truth, guide, guide_truth = (torch.stack(p) for p in parts)
        return low, truth, guide, guide_truth

    def learning_rate(self) -> float:
        """The rate of the next step: a linear warm-up, then half a cosine from the base
        rate to ``final_rate_fraction`` of it over the budget."""
        settings = self.settings
        progress = self.seconds / settings.budget_seconds
        if settings.max_steps is not None:
            progress = max(progress, self.step / settings.max_steps)
        fraction = settings.final_rate_fraction
        factor = fraction + (1 - fraction) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if settings.warmup_steps:
            factor *= min(1.0, (self.step + 1) / settings.warmup_steps)
        return settings.learning_rate * factor

    def train_step(self) -> float:
        settings = self.settings
        self.network.train()
        low, truth, guide, guide_truth = self.batch()
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        wants_guide = self.info.config.use_guide and settings.consistency_weight > 0
        output = self.network(low, guide, guide_output=wants_guide)
        terms = total_loss(output, target_low=low, truth=truth, guide_truth=guide_truth,
                           scale=self.scale, kind=settings.loss,
                           consistency_weight=settings.consistency_weight,
                           matching_weight=settings.matching_weight)
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), GRADIENT_CLIP)
        self.optimizer.step()
        self.step += 1
        return float(terms.total.detach())

    def _crops(self, pair: _Tensors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The central validation crop: low, guide and truth, each with a batch axis."""
        scale = self.scale
        height, width = pair.low.shape[-2:]
        side_y = min(self.settings.validation_crop, height)
        side_x = min(self.settings.validation_crop, width)
        top, left = (height - side_y) // 2, (width - side_x) // 2
        low = pair.low[:, top:top + side_y, left:left + side_x]
        t0, l0 = top * scale, left * scale
        truth = pair.truth[:, t0:t0 + side_y * scale, l0:l0 + side_x * scale]
        if self.info.config.guide_resolution == "high":
            guide = pair.guide[:, t0:t0 + side_y * scale, l0:l0 + side_x * scale]
        else:
            guide = pair.guide[:, top:top + side_y, left:left + side_x]
        return low[None], guide[None], truth[None]

    def _validate(self, *, bicubic: bool = False) -> float:
        """Mean PSNR of the validation crops (of their bicubic enlargement if ``bicubic``)."""
        self.network.eval()
        scores = []
        with torch.inference_mode():
            for pair in self.validation_set:
                low, guide, truth = self._crops(pair)
                if bicubic:
                    result = upsample_bicubic(low, truth.shape[-2:])
                else:
                    result = self.network(low, guide).target
                scores.append(psnr(result.clamp(0, 1), truth))
        return float(np.mean(scores))

    def validate(self, loss: float) -> float:
        """Validate, keep the weights if they are the best so far; the PSNR (NaN without
        validation pairs)."""
        score = self._validate() if self.validation_set else math.nan
        if not self.validation_set or score > self.best_score:
            self.best_score = score if self.validation_set else self.best_score
            self.best_state = {k: v.detach().clone()
                               for k, v in self.network.state_dict().items()}
        self.history.append({"step": float(self.step), "seconds": self.seconds, "loss": loss,
                             "validation_psnr": score})
        return score

    def checkpoint(self, path: Path) -> None:
        save_checkpoint(path, {
            "model": model_dict(self.network, self.info), "best_state": self.best_state,
            "best_score": self.best_score, "optimizer": self.optimizer.state_dict(),
            "step": self.step, "seconds": self.seconds,
            "generator": self.generator.get_state(), "split": self.split,
            "settings": dataclasses.asdict(self.settings), "history": self.history})


def train_model(pairs: Sequence[TrainingPair], *, config: ModelConfig,
                settings: TrainingSettings, scale: int,
                protocol: Mapping[str, Any] | None = None, checkpoint: Path | None = None,
                resume: Mapping[str, Any] | None = None,
                on_progress: Callable[[Progress], None] | None = None,
                clock: Callable[[], float] = time.monotonic) -> TrainingResult:
    """Train a learned model on ``pairs``.

    Parameters
    ----------
    pairs:
        The training set (validation pairs are taken from it).
    config:
        The architecture; with ``resume`` it must be the checkpoint's.
    settings:
        Budget, patches, rates, loss weights, validation (see
        :class:`cmsr.learned.config.TrainingSettings`); with ``resume`` the budget
        counts the time already spent.
    scale:
        Integer enlargement; ``truth`` is ``scale`` times ``low`` in every pair.
    protocol:
        How the pairs were made (stored in the model file).
    checkpoint:
        Where to write checkpoints (None: nowhere).
    resume:
        A checkpoint from :func:`cmsr.learned.model_file.load_checkpoint` to continue.
    on_progress:
        Called after every step and validation.
    clock:
        Seconds, monotonic (tests pass a fake one).

    Returns
    -------
    TrainingResult
        The network with the best validation weights (the last ones without
        validation pairs), in eval mode, and its :class:`ModelInfo` with a training
        summary.

    Raises
    ------
    InputError
        Unusable pairs (sizes, band counts), or a checkpoint that does not fit them.
    """
    if resume is not None:
        info: ModelInfo = resume["info"]
        if info.config != config or info.scale != scale:
            raise InputError(f"the checkpoint holds a {info.describe()} model; this run asks "
                             f"for {config.variant} x{scale} (T={config.blocks}, "
                             f"C={config.features})", "--resume")
    _check_pairs(pairs, config, scale)
    trainer = _Trainer(pairs, config, settings, scale, protocol or {}, resume)
    budget = settings.budget_seconds
    started, spent_before = clock(), trainer.seconds
    last_checkpoint = started
    losses: list[float] = []
    score = trainer.history[-1]["validation_psnr"] if trainer.history else math.nan

    def report(loss: float) -> None:
        if on_progress is not None:
            on_progress(Progress(trainer.step, settings.max_steps, trainer.seconds, budget,
                                 loss, trainer.learning_rate(), score,
                                 trainer.best_score if trainer.validation_set else math.nan,
                                 trainer.bicubic_psnr))

    try:
        while trainer.seconds < budget and (settings.max_steps is None
                                            or trainer.step < settings.max_steps):
            losses.append(trainer.train_step())
            trainer.seconds = spent_before + clock() - started
            if trainer.step % settings.validation_every == 0:
                score = trainer.validate(float(np.mean(losses)))
                losses = []
            report(losses[-1] if losses else trainer.history[-1]["loss"])
            if checkpoint is not None and clock() - last_checkpoint >= settings.checkpoint_seconds:
                trainer.checkpoint(checkpoint)
                last_checkpoint = clock()
        if losses or trainer.best_state is None:
            score = trainer.validate(float(np.mean(losses)) if losses else math.nan)
            report(trainer.history[-1]["loss"])
    except KeyboardInterrupt:
        trainer.seconds = spent_before + clock() - started
        if checkpoint is not None:
            trainer.checkpoint(checkpoint)
        raise
    trainer.seconds = spent_before + clock() - started
    if checkpoint is not None:
        trainer.checkpoint(checkpoint)
    network = trainer.info.build_network()
    assert trainer.best_state is not None
    network.load_state_dict(trainer.best_state)
    summary = {"steps": trainer.step, "seconds": round(trainer.seconds, 1),
               "validation_psnr": trainer.best_score if trainer.validation_set else None,
               "validation_bicubic_psnr": (trainer.bicubic_psnr if trainer.validation_set
                                           else None),
               "train_pairs": trainer.split["train"],
               "validation_pairs": trainer.split["validation"],
               "settings": dataclasses.asdict(settings)}
    info = dataclasses.replace(trainer.info, training=summary)
    return TrainingResult(network.eval(), info, trainer.step, trainer.seconds,
                          trainer.best_score if trainer.validation_set else math.nan,
                          trainer.history)
