"""Shared fixtures for the baseline tests: one thread, and a small edge-aligned pair."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from cmsr.method.resample import downsample

SCALE = 4
# colour of each target level in the guide: edges of the target are colour edges
COLOURS = {0.0: (0.2, 0.3, 0.8), 0.25: (0.7, 0.2, 0.6), 0.5: (0.1, 0.8, 0.3),
           1.0: (0.9, 0.7, 0.1)}


@dataclass(frozen=True)
class EdgePair:
    """``target_lr (n, n)`` float32 in [0, 1] (box reduction of ``truth``),
    ``guide (4n, 4n, 3)`` float64 in [0, 1], ``truth (4n, 4n)`` float64 in [0, 1]."""

    target_lr: np.ndarray
    guide: np.ndarray
    truth: np.ndarray


def make_edge_pair(n: int = 16, seed: int = 0) -> EdgePair:
    """A piecewise-constant target whose edges (off the 4-pixel grid) are colour edges."""
    rng = np.random.default_rng(seed)
    size = n * SCALE
    y, x = np.mgrid[:size, :size].astype(np.float64)
    truth = np.zeros((size, size))
    truth[(x + 0.6 * y) > 0.8 * size] = 1.0
    truth[(x - 0.3 * size) ** 2 + (y - 0.35 * size) ** 2 < (0.18 * size) ** 2] = 0.5
    truth[(y > 0.7 * size) & (x < 0.4 * size)] = 0.25
    guide = np.zeros((size, size, 3))
    for level, colour in COLOURS.items():
        guide[truth == level] = colour
    guide = np.clip(guide + 0.01 * rng.standard_normal(guide.shape), 0.0, 1.0)
    target = downsample(torch.from_numpy(truth)[None, None], (n, n), kernel="box")
    return EdgePair(target[0, 0].numpy().astype(np.float32), guide, truth)


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square difference in float64."""
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def _box_error(result: np.ndarray, target_lr: np.ndarray) -> float:
    """Mean |box reduction of ``result`` - ``target_lr``|: the consistency P2P/MMSR train for."""
    reduced = downsample(torch.from_numpy(np.asarray(result, np.float64))[None, None],
                         target_lr.shape[:2], kernel="box")[0, 0].numpy()
    return float(np.mean(np.abs(reduced - target_lr)))


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    # tiny tensors on a shared 2-core machine: thread start-up would dominate
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def edge_pair() -> EdgePair:
    """16 x 16 target, 64 x 64 guide."""
    return make_edge_pair(16)


@pytest.fixture(scope="session")
def small_edge_pair() -> EdgePair:
    """8 x 8 target, 32 x 32 guide (for the costly learned methods)."""
    return make_edge_pair(8)


@pytest.fixture(scope="session")
def rmse() -> Callable[[np.ndarray, np.ndarray], float]:
    """Root-mean-square difference of two arrays."""
    return _rmse


@pytest.fixture(scope="session")
def box_error() -> Callable[[np.ndarray, np.ndarray], float]:
    """Mean absolute error of a result's box reduction against the low-resolution target."""
    return _box_error
