"""How much does a low-resolution NIR image tell about the visible image's detail?

Issue 14 asks the learned models for the paper's trend, Full > w/ NIR > Baseline, in
its setting: a visible target ×4 (bicubic protocol) with a *low-resolution* NIR guide
from another view. Our reduced models do not show it (the three lie within 0.05 dB).
Before building bigger models, this script asks whether the information is there at
all, with the simplest learner that can be trained exactly: linear regression.

For each low-resolution pixel, a linear map predicts the s×s block of detail the
bicubic enlargement misses (truth minus bicubic) from the 5×5 low-resolution
neighbourhood of the visible channel, and optionally from more. It is fitted by least
squares (a small ridge) on the training pairs, every visible channel as its own
sample, and scored on the test pairs (PSNR on the [0, 1] range, as ``cmsr eval``).
The feature sets:

* ``visible``: the 5×5 low-resolution visible neighbourhood alone (a linear
  single-image SR: the Baseline's information);
* ``+ NIR, disparity``: and the 5×5 neighbourhood of the low-resolution NIR as the
  models get it (moved by the protocol's disparity, unaligned);
* ``+ NIR, aligned``: the same NIR without the disparity (an oracle alignment: the
  most a perfect cross-view matching could give);
* ``+ NIR, full resolution``: the aligned NIR at full resolution (its 8×8 window over
  the block, less its mean): the CMSR setting, as a check that the regression finds
  cross-spectral detail where there is some.

If the aligned low-resolution NIR adds next to nothing over the visible image alone,
a learned model of any size trained on these pairs has little to find in it.

With ``--input-noise``, the low-resolution visible image also carries Gaussian noise
(the paper's visible images suffer "noise, high brightness, low light"; the issue's
protocol has none), to see whether the NIR pays where the visible image is degraded.

Usage: ``python benchmarks/cross_spectral_information.py [--scale 4]
[--disparity 4] [--input-noise 0.02 --output NAME]``; writes
``results/cross_spectral_information.md`` (or ``results/NAME.md``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from common import RESULTS, data_root, machine_line, markdown_table

from cmsr.evaluation.datasets import find_scenes
from cmsr.evaluation.evaluate import load_pair
from cmsr.evaluation.protocols import EvalProtocol, EvaluationPair
from cmsr.method.normalize import array_to_tensor, tensor_to_array
from cmsr.method.resample import upsample_bicubic

TEST = ("train_0003", "train_0005", "train_0007", "train_0008", "train_0013", "train_0014")
"""The learned models' test pairs (``benchmarks/learned_models.py``)."""
WINDOW = 5
"""Side of the low-resolution neighbourhood, pixels."""
RIDGE = 1e-3
"""Ridge weight, relative to the mean diagonal of the normal matrix."""

Features = Callable[[np.ndarray, "Inputs"], np.ndarray]


class Inputs:
    """One pair's arrays in [0, 1] float64: the low-resolution visible ``(h, w, c)``,
    its bicubic enlargement and the truth ``(H, W, c)``, the low-resolution NIR moved
    and aligned ``(h, w)``, and the aligned NIR at full resolution ``(H, W)``."""

    def __init__(self, moved: EvaluationPair, aligned: EvaluationPair, scale: int) -> None:
        self.scale = scale
        self.low = _unit(moved.low, moved.truth)
        self.truth = _unit(moved.truth, moved.truth)
        bicubic = upsample_bicubic(array_to_tensor(self.low.astype(np.float32)),
                                   self.truth.shape[:2])
        self.bicubic = np.asarray(tensor_to_array(bicubic, band_axis=True), np.float64)
        if aligned.guide_full is None:
            raise ValueError("the pairs need reduce_guide (the full-resolution guide)")
        self.nir_moved = _grey(_unit(moved.guide, moved.guide_full))
        self.nir_aligned = _grey(_unit(aligned.guide, aligned.guide_full))
        self.nir_full = _grey(_unit(aligned.guide_full, aligned.guide_full))


def _unit(array: np.ndarray, like: np.ndarray | None) -> np.ndarray:
    """``array`` as float64 in [0, 1] by the integer range of ``like``'s dtype."""
    dtype = np.asarray(like).dtype
    top = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
    out = np.asarray(array, np.float64) / top
    return out if out.ndim == 3 else out[..., None]


def _grey(array: np.ndarray) -> np.ndarray:
    """``(h, w, k)`` -> ``(h, w)``, the mean over the bands."""
    return array.mean(axis=2)


def _neighbourhoods(image: np.ndarray) -> np.ndarray:
    """``(h, w)`` -> ``(h, w, WINDOW**2)``: each pixel's window (edges replicated)."""
    half = WINDOW // 2
    padded = np.pad(image, half, mode="edge")
    h, w = image.shape
    return np.stack([padded[i:i + h, j:j + w] for i in range(WINDOW) for j in range(WINDOW)],
                    axis=2)


def _blocks(image: np.ndarray, scale: int) -> np.ndarray:
    """``(h*s, w*s)`` -> ``(h, w, s*s)``: each low-resolution pixel's block."""
    h, w = image.shape[0] // scale, image.shape[1] // scale
    blocks = image[:h * scale, :w * scale].reshape(h, scale, w, scale)
    return blocks.transpose(0, 2, 1, 3).reshape(h, w, -1)


def _full_window(image: np.ndarray, scale: int) -> np.ndarray:
    """``(H, W)`` -> ``(h, w, (2s)**2)``: the 2s×2s full-resolution window centred on
    each block, less its mean."""
    half = scale // 2
    padded = np.pad(image, half, mode="edge")
    h, w = image.shape[0] // scale, image.shape[1] // scale
    side = 2 * scale
    windows = np.stack([padded[i:i + h * scale:scale, j:j + w * scale:scale]
                        for i in range(side) for j in range(side)], axis=2)
    return windows - windows.mean(axis=2, keepdims=True)


def visible(channel: np.ndarray, pair: Inputs) -> np.ndarray:
    """The visible channel's low-resolution neighbourhood, less the centre pixel."""
    windows = _neighbourhoods(channel)
    return windows - channel[..., None]


def nir_moved(channel: np.ndarray, pair: Inputs) -> np.ndarray:
    """``visible`` and the moved low-resolution NIR's neighbourhood."""
    nir = _neighbourhoods(pair.nir_moved)
    return np.concatenate([visible(channel, pair), nir - pair.nir_moved[..., None]], axis=2)


def nir_aligned(channel: np.ndarray, pair: Inputs) -> np.ndarray:
    """``visible`` and the aligned low-resolution NIR's neighbourhood."""
    nir = _neighbourhoods(pair.nir_aligned)
    return np.concatenate([visible(channel, pair), nir - pair.nir_aligned[..., None]], axis=2)


def nir_full(channel: np.ndarray, pair: Inputs) -> np.ndarray:
    """``visible`` and the aligned full-resolution NIR window over the block."""
    return np.concatenate([visible(channel, pair), _full_window(pair.nir_full, pair.scale)],
                          axis=2)


FEATURES: dict[str, Features] = {
    "visible (Baseline's information)": visible,
    "+ NIR, low resolution, disparity (as the models get it)": nir_moved,
    "+ NIR, low resolution, aligned (oracle matching)": nir_aligned,
    "+ NIR, full resolution, aligned (CMSR's setting)": nir_full,
}


def _samples(pair: Inputs, features: Features) -> tuple[np.ndarray, np.ndarray]:
    """Rows of features (with a constant) and of the detail each block misses."""
    xs, ys = [], []
    for c in range(pair.low.shape[2]):
        x = features(pair.low[..., c], pair)
        detail = _blocks(pair.truth[..., c] - pair.bicubic[..., c], pair.scale)
        h, w = detail.shape[:2]
        x = x[:h, :w].reshape(h * w, -1)
        xs.append(np.concatenate([x, np.ones((h * w, 1))], axis=1))
        ys.append(detail.reshape(h * w, -1))
    return np.concatenate(xs), np.concatenate(ys)


def fit(pairs: list[Inputs], features: Features) -> np.ndarray:
    """Least squares (ridge :data:`RIDGE`) over the pairs: ``(features + 1, s*s)``."""
    gram: np.ndarray | None = None
    cross: np.ndarray | None = None
    for pair in pairs:
        x, y = _samples(pair, features)
        gram = x.T @ x if gram is None else gram + x.T @ x
        cross = x.T @ y if cross is None else cross + x.T @ y
    assert gram is not None and cross is not None
    ridge = RIDGE * float(np.mean(np.diag(gram)))
    return np.linalg.solve(gram + ridge * np.eye(len(gram)), cross)


def predict(pair: Inputs, features: Features, weights: np.ndarray | None) -> np.ndarray:
    """The pair's result ``(H', W', c)`` in [0, 1] (bicubic when ``weights`` is None),
    cropped to whole blocks."""
    s = pair.scale
    h, w = pair.truth.shape[0] // s, pair.truth.shape[1] // s
    out = pair.bicubic[:h * s, :w * s].copy()
    if weights is None:
        return np.clip(out, 0.0, 1.0)
    x, _ = _samples(pair, features)
    for c in range(pair.low.shape[2]):
        rows = x[c * h * w:(c + 1) * h * w]
        detail = (rows @ weights).reshape(h, w, s, s).transpose(0, 2, 1, 3).reshape(h * s, w * s)
        out[..., c] += detail
    return np.clip(out, 0.0, 1.0)


def psnr(result: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB on the [0, 1] range."""
    error = float(np.mean((result - truth[:result.shape[0], :result.shape[1]]) ** 2))
    return 10.0 * np.log10(1.0 / error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--disparity", type=float, default=4.0,
                        help="mean disparity of the moved NIR, full-resolution pixels")
    parser.add_argument("--input-noise", type=float, default=0.0,
                        help="Gaussian noise on the low-resolution visible image, a share "
                             "of its range (the paper's degraded visible images; default 0: "
                             "the issue's protocol)")
    parser.add_argument("--output", default="cross_spectral_information",
                        help="name of the report in results/ (default %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    moved_protocol = EvalProtocol("bicubic", args.scale, disparity=args.disparity, swap=True,
                                  reduce_guide=True, input_noise=args.input_noise)
    aligned_protocol = EvalProtocol("bicubic", args.scale, swap=True, reduce_guide=True,
                                    input_noise=args.input_noise)
    train: list[Inputs] = []
    test: dict[str, Inputs] = {}
    for scene in find_scenes(data_root() / "nir" / "epfl"):
        pair = Inputs(load_pair(scene, moved_protocol), load_pair(scene, aligned_protocol),
                      args.scale)
        if scene.name in TEST:
            test[scene.name] = pair
        else:
            train.append(pair)
    bicubic = [psnr(predict(p, visible, None), p.truth) for p in test.values()]
    rows = [["bicubic", "-", *(f"{v:.2f}" for v in bicubic)]]
    means = {"bicubic": float(np.mean(bicubic))}
    for name, features in FEATURES.items():
        weights = fit(train, features)
        scores = [psnr(predict(p, features, weights), p.truth) for p in test.values()]
        means[name] = float(np.mean(scores))
        rows.append([name, str(weights.shape[0] - 1), *(f"{v:.2f}" for v in scores)])
    for row in rows:
        row.insert(2, f"{means[row[0]]:.3f}")
    table = markdown_table(["linear map from", "features", "mean PSNR (dB)", *test], rows)
    lines = [
        "# How much a low-resolution NIR tells about the visible detail (issue 14)", "",
        f"{machine_line()}; nir/epfl, visible target x{args.scale} (bicubic protocol), "
        f"fitted on {len(train)} pairs, tested on {len(test)}; NIR moved by a "
        f"{args.disparity:g} px mean disparity; noise on the visible input "
        f"{args.input_noise:g} of its range; a linear map per low-resolution pixel "
        f"({WINDOW}x{WINDOW} neighbourhoods, ridge {RIDGE:g}); "
        f"{time.perf_counter() - start:.0f} s.", "", table, "",
        "Method and reading: the module docstring of "
        "`benchmarks/cross_spectral_information.py`.", ""]
    text = "\n".join(lines)
    print(text)
    out = RESULTS / f"{args.output}.md"
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
