"""Where does the guide help, and where does it not? Two diagnostics in one run.

**1. The guide's share (depth, NIR).** For each pair: cmsr and ZSSR (cmsr's own
training without the guide) with the same preset and seed, then

* RMSE of bicubic, ZSSR, cmsr, and cmsr with its guide branch switched off at
  inference (``cmsr - FE2``: what the guide adds to the trained network);
* RMSE on edge pixels (the truth's gradient in its top 10%, dilated by 2 px) and on
  the rest, for ZSSR and cmsr, and the share of pixels where cmsr is worse;
* the guide branch's share of the network's residual, RMS(FE2) / RMS(FE1 + FE2), in
  the last stage at the training scale (the stage's input reduced by its scale, the
  guide reduced to the input's size) and at inference (the stage's input enlarged,
  the guide at full size): the scale gap between the two.

**2. The degradation of real captures** (``thermal/unaligned``, the sensor's own
low-resolution image beside the full-resolution truth): RMSE between the capture and
the truth reduced by each candidate degradation (antialiased bicubic and box, as cmsr
assumes; bicubic and bilinear *without* antialiasing, i.e. interpolation at the
low-resolution pixel centres, as ``cv2.resize`` does; the best point sampling), and
the PSNR of bicubic enlargement of the capture.

Usage: ``python benchmarks/guide_diagnostic.py [--only share,degradation]
[--scenes 026,03_9,11_1,235] [--iters N]``. Writes ``results/guide_diagnostic.md``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from common import (
    RESULTS,
    add_config_overrides,
    config_overrides,
    data_root,
    machine_line,
    markdown_table,
)

from cmsr.evaluation.baselines.zssr import ZSSR
from cmsr.evaluation.datasets import find_scenes, select_scenes
from cmsr.evaluation.protocols import EvalProtocol, apply_protocol
from cmsr.files import read_image
from cmsr.method.api import CMSR
from cmsr.method.config import Config
from cmsr.method.resample import downsample, resize, upsample_bicubic

SHARE_SETS = {  # name: (folder, protocol, preset, default scenes)
    "middlebury13": ("depth/middlebury13", "avgpool", "depth", "026,03_9,11_1,235"),
    "epfl-nir": ("nir/epfl", "bicubic", "nir", "train_0003,train_0005"),
}


def grey(image: np.ndarray) -> np.ndarray:
    """``(H, W[, c])`` -> ``(H, W)`` float64 (first band)."""
    image = np.asarray(image, dtype=np.float64)
    return image[..., 0] if image.ndim == 3 else image


def rmse(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """Root-mean-square difference, over ``where`` when given."""
    diff = (grey(a) - grey(b)) ** 2
    return float(np.sqrt(diff[where].mean() if where is not None else diff.mean()))


def edge_pixels(truth: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the truth's gradient magnitude in its top 10%, dilated by 2 px."""
    t = grey(truth)
    gy, gx = np.gradient(t)
    magnitude = np.hypot(gx, gy)
    edges = magnitude > np.quantile(magnitude, 0.9)
    dilated = F.max_pool2d(torch.from_numpy(edges.astype(np.float32))[None, None], 5, 1, 2)
    return dilated[0, 0].numpy() > 0


@torch.no_grad()
def branch_shares(model: CMSR) -> tuple[float, float]:
    """RMS(FE2) / RMS(FE1 + FE2) of the last stage at the training scale and at inference."""
    pair = model.pair
    assert pair is not None
    net = model.networks[-1]
    stages = model._stages(pair)
    current = pair.target
    guide = model.aligned_guide()
    for stage_net, size in zip(model.networks[:-1], stages[:-1], strict=True):
        from cmsr.method.infer import predict
        current = predict(stage_net, current, model._stage_guide(guide, size),
                          config=model.config)
    shares = []
    h, w = current.shape[-2:]
    big = tuple(guide.shape[-2:])
    scale = (big[0] / h, big[1] / w)
    small = (max(2, round(h / scale[0])), max(2, round(w / scale[1])))
    train_up = upsample_bicubic(downsample(current, small, kernel=model.config.degradation),
                                (h, w))
    train_guide = downsample(guide, (h, w))
    for up, g in ((train_up, train_guide), (upsample_bicubic(current, big), guide)):
        fe1, fe2 = net.fe1(up), net.fe2(g)
        shares.append(float(fe2.pow(2).mean().sqrt() / (fe1 + fe2).pow(2).mean().sqrt()))
    return shares[0], shares[1]


def without_guide(model: CMSR) -> np.ndarray:
    """The fitted model's result with every stage's guide branch silenced."""
    saved = [net.fe2 for net in model.networks]
    try:
        for net in model.networks:
            net.fe2 = _Zero()
        return model.predict()
    finally:
        for net, fe2 in zip(model.networks, saved, strict=True):
            net.fe2 = fe2


class _Zero(torch.nn.Module):
    """A guide branch that adds nothing (the network's output keeps its shape)."""

    def forward(self, guide: torch.Tensor) -> torch.Tensor:
        return guide.new_zeros(())

    def __iter__(self):  # net.halo iterates the branch's layers
        return iter(())


def share_rows(set_name: str, scenes: str | None, iters: int | None, seed: int,
               overrides: dict) -> list[list[str]]:
    folder, protocol, preset, default = SHARE_SETS[set_name]
    chosen = select_scenes(find_scenes(data_root() / folder), scenes or default)
    rows = []
    for scene in chosen:
        truth = read_image(scene.target)
        pair = apply_protocol(truth, read_image(scene.guide), EvalProtocol(protocol, 4))
        config = Config.preset(preset, seed=seed, **overrides)
        if iters:
            config = config.replace(max_iters=iters, min_iters=min(config.min_iters, iters))
        start = time.perf_counter()
        model = CMSR(config).fit(pair.low, pair.guide)
        cmsr_out = model.predict()
        seconds = time.perf_counter() - start
        zssr_out = ZSSR(config).fit(pair.low, pair.guide).predict()
        bicubic = resize(torch.from_numpy(grey(pair.low))[None, None],
                         grey(pair.truth).shape)[0, 0].numpy()
        edges = edge_pixels(pair.truth)
        worse = np.abs(grey(cmsr_out) - grey(pair.truth)) > np.abs(
            grey(zssr_out) - grey(pair.truth)) + 0.5
        train_share, infer_share = branch_shares(model)
        rows.append([set_name, scene.name, f"{rmse(bicubic, pair.truth):.3f}",
                     f"{rmse(zssr_out, pair.truth):.3f}", f"{rmse(cmsr_out, pair.truth):.3f}",
                     f"{rmse(without_guide(model), pair.truth):.3f}",
                     f"{rmse(zssr_out, pair.truth, edges):.3f}",
                     f"{rmse(cmsr_out, pair.truth, edges):.3f}",
                     f"{rmse(zssr_out, pair.truth, ~edges):.3f}",
                     f"{rmse(cmsr_out, pair.truth, ~edges):.3f}",
                     f"{100 * worse.mean():.1f}", f"{train_share:.2f}", f"{infer_share:.2f}",
                     f"{seconds:.0f}"])
        print(" | ".join(rows[-1]), flush=True)
    return rows


SHARE_HEADER = ["set", "scene", "bicubic", "zssr", "cmsr", "cmsr - FE2", "zssr edges",
                "cmsr edges", "zssr flat", "cmsr flat", "% px cmsr worse by >0.5",
                "FE2 share (train scale)", "FE2 share (inference)", "cmsr s"]


def degradation_rows() -> list[list[str]]:
    rows = []
    for scene in find_scenes(data_root() / "thermal/unaligned"):
        if scene.target_lr is None:
            continue
        truth, low = grey(read_image(scene.target)), grey(read_image(scene.target_lr))
        h, w = low.shape
        tensor = torch.from_numpy(truth)[None, None]
        errors = {}
        for name, kernel, antialias in (("cubic", "cubic", True), ("box", "box", True),
                                        ("cubic, no AA", "cubic", False),
                                        ("linear, no AA", "linear", False)):
            reduced = resize(tensor, (h, w), kernel=kernel, antialias=antialias)
            errors[name] = rmse(reduced[0, 0].numpy(), low)
        sy, sx = truth.shape[0] // h, truth.shape[1] // w
        errors["best point sample"] = min(
            rmse(truth[py::sy, px::sx][:h, :w], low) for py in range(sy) for px in range(sx))
        bicubic = resize(torch.from_numpy(low)[None, None], truth.shape)[0, 0].numpy()
        psnr = 10 * np.log10(255.0**2 / np.mean((bicubic - truth) ** 2))
        rows.append([scene.name, f"{w}x{h} -> {truth.shape[1]}x{truth.shape[0]}",
                     *(f"{v:.2f}" for v in errors.values()), f"{psnr:.2f}"])
        print(" | ".join(rows[-1]), flush=True)
    return rows


DEGRADATION_HEADER = ["scene", "size", "cubic (AA)", "box (AA)", "cubic, no AA",
                      "linear, no AA", "best point sample", "bicubic PSNR"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="share,degradation")
    parser.add_argument("--sets", default="middlebury13")
    parser.add_argument("--scenes", default=None)
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    add_config_overrides(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = config_overrides(args.set)
    parts = [f"# Where the guide helps\n\n{machine_line()}\n"]
    if "share" in args.only:
        rows = [row for name in args.sets.split(",")
                for row in share_rows(name, args.scenes, args.iters, args.seed, overrides)]
        parts.append("## The guide's share (x4)\n\n" + markdown_table(SHARE_HEADER, rows))
    if "degradation" in args.only:
        parts.append("## Real captures against the truth reduced (thermal/unaligned), RMSE "
                     "in grey levels\n\n" + markdown_table(DEGRADATION_HEADER,
                                                           degradation_rows()))
    text = "\n\n".join(parts)
    (RESULTS / "guide_diagnostic.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
