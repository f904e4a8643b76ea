"""Tests for cmsr.method.warp.affine."""

from __future__ import annotations

import math

import torch
from torch.func import functional_call

from cmsr.method.warp.affine import AffineWarp, affine_matrix, apply_affine
from cmsr.method.warp.grid import identity_grid, sample


def test_identity_at_init() -> None:
    warp = AffineWarp()
    points = torch.rand(5, 7, 2) * 2 - 1
    assert torch.equal(warp(points), points)
    assert torch.equal(warp.matrix(), torch.eye(2, 3))
    assert warp.regularization().item() == 0.0


def test_affine_matrix_rotation_and_shift() -> None:
    m = affine_matrix(90.0, shift_xy=(0.1, -0.2), dtype=torch.float64)
    out = apply_affine(m, torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64))
    expected = torch.tensor([[0.1, 0.8], [-0.9, -0.2]], dtype=torch.float64)
    assert torch.allclose(out, expected, atol=1e-12)


def test_affine_matrix_scale_shear_aspect() -> None:
    m = affine_matrix(scale=(2.0, 3.0), shear=0.5, dtype=torch.float64)
    assert torch.allclose(m, torch.tensor([[2.0, 1.5, 0.0], [0.0, 3.0, 0.0]], dtype=torch.float64))
    # with aspect = W / H the rotation is rigid in pixels: lengths in pixels are kept
    width, height = 8.0, 4.0
    m = affine_matrix(30.0, aspect=width / height, dtype=torch.float64)
    p = torch.tensor([0.5, 0.25], dtype=torch.float64)
    q = apply_affine(m, p)
    to_px = torch.tensor([width / 2, height / 2], dtype=torch.float64)
    assert math.isclose((p * to_px).norm().item(), (q * to_px).norm().item(), rel_tol=1e-12)


def test_set_matrix_maps_points_as_expected() -> None:
    warp = AffineWarp()
    m = torch.tensor([[0.9, -0.1, 0.05], [0.2, 1.1, -0.3]])
    warp.set_matrix(m)
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-0.5, 0.5]])
    expected = points @ m[:, :2].T + m[:, 2]
    assert torch.allclose(warp(points), expected, atol=1e-6)
    assert torch.allclose(warp(points[None]), expected[None], atol=1e-6)  # any leading shape


def test_gradcheck_parameters_and_points() -> None:
    warp = AffineWarp().double()
    warp.set_matrix(affine_matrix(5.0, 1.1, 0.1, (0.1, 0.0), dtype=torch.float64))
    points = (torch.rand(4, 2, dtype=torch.float64) * 2 - 1).requires_grad_()

    def of_delta(delta: torch.Tensor) -> torch.Tensor:
        return functional_call(warp, {"delta": delta}, (points.detach(),))

    assert torch.autograd.gradcheck(of_delta, (warp.delta.detach().clone().requires_grad_(),))
    assert torch.autograd.gradcheck(warp, (points,))


def _synthetic_image(size: int) -> torch.Tensor:
    """Smooth blobs plus a soft diagonal edge and a soft disc, (1, 1, size, size) in [0, 1]."""
    grid = identity_grid(size, size, dtype=torch.float64)[0]
    x, y = grid[..., 0], grid[..., 1]
    image = torch.zeros_like(x)
    for cx, cy, s, a in [(-0.4, -0.3, 0.25, 1.0), (0.35, 0.2, 0.3, 0.8), (0.0, 0.5, 0.2, -0.6)]:
        image = image + a * torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s**2))
    image = image + 0.5 * torch.sigmoid((x + 0.6 * y - 0.1) / 0.06)
    image = image + 0.4 * torch.sigmoid((0.3 - ((x - 0.3) ** 2 + (y + 0.45) ** 2).sqrt()) / 0.05)
    image = (image - image.min()) / (image.max() - image.min())
    return image[None, None].float()


def test_optimisation_recovers_shift_and_rotation() -> None:
    # measured: 0.001 deg, 0.0005 px, 2e-5 (200 Adam steps); tolerances leave margin
    size = 48
    shift_px = (3.0, -3.0)
    angle_deg = 2.0
    true = affine_matrix(angle_deg, shift_xy=tuple(2.0 * s / size for s in shift_px))
    image = _synthetic_image(size)
    grid = identity_grid(size, size)
    target = sample(image, apply_affine(true, grid))

    warp = AffineWarp()
    steps = 200
    optimizer = torch.optim.Adam(warp.parameters(), lr=0.02)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (sample(image, warp(grid)) - target).abs().mean()
        loss.backward()
        optimizer.step()
        schedule.step()

    m = warp.matrix().detach().double()
    angle_err = abs(math.degrees(math.atan2(m[1, 0].item(), m[0, 0].item())) - angle_deg)
    shift_err_px = ((m[:, 2] - true[:, 2].double()) * size / 2).abs().max().item()
    linear_err = (m[:, :2] - true[:, :2].double()).abs().max().item()
    assert angle_err < 0.05, f"rotation error {angle_err:.3f} deg"
    assert shift_err_px < 0.05, f"shift error {shift_err_px:.3f} px"
    assert linear_err < 1e-3, f"linear part error {linear_err:.4f}"
