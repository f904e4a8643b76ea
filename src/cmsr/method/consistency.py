"""Fine-tuning at the target scale: the result, reduced, must give back the input.

The scale-transfer training (:mod:`cmsr.method.train`) teaches the network on the pair
reduced by the scale, where the guide is no sharper than the target. This step then
trains the last stage's network on the pair at its own size, with the loss MMSR and
P2P use: the output, reduced by the degradation (``config.degradation``) to the
measured target's size, must reproduce the measured target (L1 on valid pixels).
Back-projection becomes part of training, and the guide is seen at full resolution.

Training uses random crops lying on the low-resolution pixel grid (``patch`` target
pixels a side, ``patch * scale`` output pixels), so the reduction of an output crop
covers exactly the target crop it is compared with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from cmsr.method.config import Config
from cmsr.method.model import CMSRNet
from cmsr.method.precision import autocast
from cmsr.method.resample import downsample, upsample_bicubic
from cmsr.method.train import StepInfo, TrainRecord, masked_l1


def grid_crops(low_size: Sequence[int], high_size: Sequence[int], patch: int,
               count: int, generator: torch.Generator
               ) -> list[tuple[slice, slice, slice, slice]]:
    """``count`` random crops on the low-resolution grid and their high-resolution twins.

    Returns ``(low_rows, low_cols, high_rows, high_cols)`` slices; the high-resolution
    crop spans the same part of the scene (``round(index * scale)``), and crops are at
    most the image (a smaller image gives one whole-image crop per draw).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> crop = grid_crops((8, 8), (32, 32), 4, 1, g)[0]
    >>> (crop[2].stop - crop[2].start) == 4 * (crop[0].stop - crop[0].start)
    True
    """
    (h, w), (big_h, big_w) = low_size, high_size
    ph, pw = min(patch, h), min(patch, w)
    crops = []
    for _ in range(count):
        top = int(torch.randint(0, h - ph + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - pw + 1, (1,), generator=generator))
        y0, y1 = round(top * big_h / h), round((top + ph) * big_h / h)
        x0, x1 = round(left * big_w / w), round((left + pw) * big_w / w)
        crops.append((slice(top, top + ph), slice(left, left + pw), slice(y0, y1),
                      slice(x0, x1)))
    return crops


def fine_tune_consistency(net: CMSRNet, stage_input: torch.Tensor, guide: torch.Tensor,
                          measured: torch.Tensor, valid: torch.Tensor, *, config: Config,
                          generator: torch.Generator, use_guide: bool = True,
                          on_step: Callable[[StepInfo], None] | None = None
                          ) -> list[TrainRecord]:
    """Train ``net`` in place so that its output, reduced, reproduces ``measured``.

    Parameters
    ----------
    net:
        The last stage's network, already trained on the reduced pair.
    stage_input:
        ``(1, c, h', w')`` float32 unit range: what that network enlarges (the
        measured target itself, or the previous stage's result when gradual).
    guide:
        ``(1, C, H, W)`` float32 in [0, 1], the aligned guide at the output size.
    measured:
        ``(1, c, h, w)`` float32 unit range, the measured target (invalid filled).
    valid:
        ``(1, 1, h, w)`` float32, 1 at valid measured pixels.
    config:
        ``consistency_iters`` steps of ``consistency_batch`` crops of
        ``consistency_patch`` target pixels, Adam at ``consistency_learning_rate``;
        ``degradation`` is the reduction; ``precision`` the autocast.
    use_guide:
        False trains the guide-free network (the guide gives only the output size).

    Returns
    -------
    One :class:`TrainRecord` per ``config.eval_every`` steps (``reconstruction``:
    the mean consistency L1 over those steps).
    """
    size = tuple(guide.shape[-2:])
    low_size = tuple(measured.shape[-2:])
    enlarged = upsample_bicubic(stage_input, size)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.consistency_learning_rate)
    net.train()
    records: list[TrainRecord] = []
    start = time.perf_counter()
    running, count = 0.0, 0
    for step in range(1, config.consistency_iters + 1):
        crops = grid_crops(low_size, size, config.consistency_patch,
                           config.consistency_batch, generator)
        loss = enlarged.new_zeros(())
        for low_rows, low_cols, high_rows, high_cols in crops:
            with autocast(enlarged.device, config.precision):
                guide_crop = guide[..., high_rows, high_cols] if use_guide else None
                out = net(enlarged[..., high_rows, high_cols], guide_crop)
            target = measured[..., low_rows, low_cols]
            reduced = downsample(out.float(), tuple(target.shape[-2:]),
                                 kernel=config.degradation)
            loss = loss + masked_l1(reduced, target, valid[..., low_rows, low_cols])
        loss = loss / len(crops)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running, count = running + float(loss.detach()), count + 1
        if on_step is not None:
            on_step(StepInfo(step, config.consistency_iters, float(loss.detach()),
                             config.consistency_learning_rate, time.perf_counter() - start,
                             phase="consistency"))
        if step % config.eval_every == 0 or step == config.consistency_iters:
            records.append(TrainRecord(step, running / count, running / count,
                                       config.consistency_learning_rate,
                                       time.perf_counter() - start))
            running, count = 0.0, 0
    net.eval()
    return records
