"""Tests for the learned baselines: ZSSR (cmsr minus guide), P2P and MMSR, in tiny runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmsr import Config
from cmsr.evaluation.baselines import MMSR, P2P, ZSSR, Bicubic
from cmsr.evaluation.baselines.mmsr import MMSRNet, Pointwise, local_attention
from cmsr.evaluation.baselines.p2p import (
    PixTransformNet,
    footprint_means,
    footprint_patches,
    footprints,
    pixel_features,
    weighted_means,
)
from cmsr.evaluation.baselines.zssr import GuideFreeNet
from cmsr.method.resample import area_matrix

ZSSR_CONFIG = Config.preset("quick", max_iters=6, eval_every=3, min_iters=3, device="cpu")


def _uint8(target: np.ndarray) -> np.ndarray:
    return np.rint(target * 200 + 20).astype(np.uint8)


# ---- ZSSR -------------------------------------------------------------------------

def test_guide_free_net_ignores_the_guide() -> None:
    torch.manual_seed(0)
    net = GuideFreeNet(1, 3, fe1_layers=3, fe1_channels=8)
    for parameter in net.fe1[-1].parameters():
        torch.nn.init.normal_(parameter)
    target_up = torch.rand(1, 1, 12, 12)
    one = net(target_up, torch.rand(1, 3, 12, 12))
    other = net(target_up, torch.zeros(1, 3, 12, 12))
    torch.testing.assert_close(one, other)
    assert not list(net.fe2.parameters())
    assert net.halo == 3


def test_zssr_never_aligns_the_guide_it_does_not_read(small_edge_pair) -> None:
    model = ZSSR(ZSSR_CONFIG.replace(align="full"))
    assert model.config.align == "none"
    model.fit(_uint8(small_edge_pair.target_lr), small_edge_pair.guide)
    assert model.model is not None and model.model.warp is None


def test_zssr_trains_on_every_pixel_without_a_self_check(small_edge_pair) -> None:
    model = ZSSR(ZSSR_CONFIG.replace(self_check=True, guide_dropout=0.3))
    assert not model.config.self_check and model.config.guide_dropout == 0.0
    model.fit(_uint8(small_edge_pair.target_lr), small_edge_pair.guide)
    assert model.model is not None and model.model.self_check is None


def test_zssr_with_the_depth_finishes_never_reads_the_guide(small_edge_pair) -> None:
    # the depth preset's guided median and block partition read the guide in cmsr; ZSSR
    # turns those readings off, so any guide of the same size gives the same result
    config = Config.preset("depth", max_iters=6, min_iters=6, fe1_channels=8, fe1_layers=3)
    model = ZSSR(config)
    assert model.config.guided_median_radius == 0
    assert model.config.block_partition == 0.5 and model.config.block_partition_guide == 0.0
    target = _uint8(small_edge_pair.target_lr)
    out = model.fit(target, small_edge_pair.guide).predict()
    scrambled = np.random.default_rng(0).permutation(small_edge_pair.guide.reshape(-1, 3))
    other = ZSSR(config).fit(target, scrambled.reshape(small_edge_pair.guide.shape)).predict()
    np.testing.assert_array_equal(out, other)


def test_zssr_shape_dtype_and_seed(small_edge_pair) -> None:
    target = _uint8(small_edge_pair.target_lr)
    model = ZSSR(ZSSR_CONFIG).fit(target, small_edge_pair.guide)
    out = model.predict()
    assert out.shape == small_edge_pair.truth.shape
    assert out.dtype == np.uint8
    assert model.model is not None
    assert all(isinstance(net, GuideFreeNet) for net in model.model.networks)
    again = ZSSR(ZSSR_CONFIG).fit(target, small_edge_pair.guide).predict()
    np.testing.assert_array_equal(out, again)


# ---- P2P --------------------------------------------------------------------------

def test_footprints_are_blocks_for_integer_scales() -> None:
    start, weight = footprints(4, 16)
    assert start.tolist() == [0, 4, 8, 12]
    torch.testing.assert_close(weight, torch.full((4, 4), 0.25))


def test_footprints_match_the_box_reduction_for_other_scales() -> None:
    start, weight = footprints(4, 10)
    dense = torch.zeros(4, 10, dtype=torch.float64)
    for row in range(4):
        dense[row, int(start[row]):int(start[row]) + weight.shape[1]] = weight[row].double()
    torch.testing.assert_close(dense, area_matrix(10, 4), rtol=0, atol=1e-6)


def test_pixel_features_are_standardised_colour_and_centred_coordinates() -> None:
    guide = torch.rand(1, 3, 6, 9)
    features = pixel_features(guide)
    assert features.shape == (6, 9, 5)
    torch.testing.assert_close(features[..., :3].mean(dim=(0, 1)), torch.zeros(3),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(features[0, :, 3], torch.linspace(-0.5, 0.5, 9))
    step = 1.0 / 8
    torch.testing.assert_close(features[:, 0, 4], (torch.arange(6.0) - 2.5) * step)


def test_pix_transform_net_equals_the_two_branch_formulation() -> None:
    torch.manual_seed(0)
    net = PixTransformNet(3, 2).double()
    features = torch.randn(6, 4, 4, 5, dtype=torch.float64, requires_grad=True)
    fused = net(features)
    reference = net.head[1:](torch.relu(net.colour(features[..., :3])
                                        + net.spatial(features[..., 3:])))
    torch.testing.assert_close(fused, reference)
    weights = torch.randn_like(fused)
    grads = torch.autograd.grad((fused * weights).sum(), [features, *net.parameters()])
    expected = torch.autograd.grad((reference * weights).sum(), [features, *net.parameters()])
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_gathered_footprints_give_the_footprint_means() -> None:
    torch.manual_seed(0)
    net = PixTransformNet(3)
    features = pixel_features(torch.rand(1, 3, 10, 12))
    row_start, row_weight = footprints(4, 10)
    col_start, col_weight = footprints(3, 12)
    rows, cols = torch.tensor([0, 3, 2, 1]), torch.tensor([2, 0, 1, 2])
    patch, weight = footprint_patches(features, rows, cols, row_start, row_weight,
                                      col_start, col_weight)
    chosen = torch.tensor([2, 0])
    torch.testing.assert_close(
        weighted_means(net, patch[chosen], weight[chosen]),
        footprint_means(net, features, rows[chosen], cols[chosen], row_start, row_weight,
                        col_start, col_weight))


def test_p2p_shape_dtype_and_seed(small_edge_pair) -> None:
    target = _uint8(small_edge_pair.target_lr)
    out = P2P(iterations=10, device="cpu").fit(target, small_edge_pair.guide).predict()
    assert out.shape == small_edge_pair.truth.shape
    assert out.dtype == np.uint8
    again = P2P(iterations=10, device="cpu").fit(target, small_edge_pair.guide).predict()
    np.testing.assert_array_equal(out, again)


def test_p2p_threads_are_set_for_the_fit_and_restored(small_edge_pair) -> None:
    target = _uint8(small_edge_pair.target_lr)
    torch.set_num_threads(2)
    seen = []
    model = P2P(iterations=2, device="cpu", threads=1)
    model._train = lambda pair: seen.append(torch.get_num_threads())  # type: ignore[method-assign]
    model.fit(target, small_edge_pair.guide)
    assert seen == [1]
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads"):
        P2P(threads=0)


def test_p2p_learns_the_box_consistency_and_the_edges(small_edge_pair, rmse, box_error) -> None:
    pair = small_edge_pair
    model = P2P(iterations=200, device="cpu").fit(pair.target_lr, pair.guide)
    out = model.predict()
    assert out.dtype == np.float32
    assert np.mean(model.losses[-20:]) < 0.1 * np.mean(model.losses[:5])
    assert box_error(out, pair.target_lr) < 0.04
    bicubic = Bicubic().fit(pair.target_lr, pair.guide).predict()
    assert rmse(out, pair.truth) < 0.5 * rmse(bicubic, pair.truth)


# ---- MMSR -------------------------------------------------------------------------

def _unfolded_attention(query: torch.Tensor, keys: torch.Tensor, size: int) -> torch.Tensor:
    """The published formulation: unfold the whole neighbourhood tensor at once."""
    batch, channels, height, width = keys.shape
    neighbours = F.unfold(keys, size, padding=size // 2).view(batch, channels, size * size,
                                                              height, width)
    weights = (neighbours * query[:, :, None]).sum(dim=1).softmax(dim=1)
    return (neighbours * weights[:, None]).sum(dim=2)


@pytest.mark.parametrize("size", [1, 3, 5, 7, 11])
def test_local_attention_equals_the_unfolded_formulation(size: int) -> None:
    # sizes up to 5 use 4-pixel tiles, larger ones 8-pixel tiles; 7 x 9 and 17 x 10
    # are not multiples of either, and 17 rows make several blocks of tile rows
    generator = torch.Generator().manual_seed(size)
    for shape in [(2, 6, 7, 9), (1, 3, 17, 10)]:
        query = torch.randn(shape, generator=generator, dtype=torch.float64)
        keys = torch.randn(shape, generator=generator, dtype=torch.float64)
        expected = _unfolded_attention(query, keys, size)
        torch.testing.assert_close(local_attention(query, keys, size), expected)
        torch.testing.assert_close(local_attention(query, keys, size, max_chunk_bytes=1),
                                   expected)
        channels_last = torch.channels_last
        torch.testing.assert_close(
            local_attention(query.contiguous(memory_format=channels_last),
                            keys.contiguous(memory_format=channels_last), size), expected)


@pytest.mark.parametrize(("size", "chunk"), [(3, 1 << 40), (3, 1), (7, 1 << 40), (7, 1)])
def test_local_attention_gradients(size: int, chunk: int) -> None:
    generator = torch.Generator().manual_seed(size)
    query = torch.randn(1, 3, 9, 5, generator=generator, dtype=torch.float64,
                        requires_grad=True)
    keys = torch.randn(1, 3, 9, 5, generator=generator, dtype=torch.float64,
                       requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda q, k: local_attention(q, k, size, max_chunk_bytes=chunk), (query, keys))


def test_local_attention_float32_matches_autograd_through_the_unfolded_formulation() -> None:
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(1, 16, 21, 19, generator=generator) * 2
    keys = torch.randn(1, 16, 21, 19, generator=generator) * 2
    grad = torch.randn(1, 16, 21, 19, generator=generator)
    results = []
    for function in (local_attention, _unfolded_attention):
        q, k = query.clone().requires_grad_(), keys.clone().requires_grad_()
        out = function(q, k, 11)
        out.backward(grad)
        results.append((out.detach(), q.grad, k.grad))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_local_attention_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="odd"):
        local_attention(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), 4)
    with pytest.raises(ValueError, match="shape"):
        local_attention(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4), 3)


def test_pointwise_equals_a_1x1_convolution() -> None:
    torch.manual_seed(0)
    pointwise = Pointwise(5, 3).double()
    reference = torch.nn.Conv2d(5, 3, 1).double()
    reference.load_state_dict(pointwise.state_dict())
    x = torch.randn(2, 5, 4, 6, dtype=torch.float64)
    for image in (x, x.contiguous(memory_format=torch.channels_last)):
        torch.testing.assert_close(pointwise(image), reference(image))
    assert torch.autograd.gradcheck(pointwise, (x.requires_grad_(),))


def test_mmsr_net_shapes_and_row_blocks() -> None:
    torch.manual_seed(0)
    net = MMSRNet(3, 2, source_neighbourhood=5, guide_neighbourhood=3)
    guide, source = torch.randn(1, 3, 10, 12), torch.randn(1, 2, 10, 12)
    whole = net(guide, source)
    assert whole.shape == (1, 2, 10, 12)
    net.modulation.max_chunk_bytes = 1
    torch.testing.assert_close(net(guide, source), whole)


def test_mmsr_net_channels_last_and_bfloat16() -> None:
    torch.manual_seed(0)
    net = MMSRNet(3, 1)
    guide, source = torch.randn(1, 3, 16, 16), torch.randn(1, 1, 16, 16)
    whole = net(guide, source)
    channels_last = torch.channels_last
    torch.testing.assert_close(
        net.to(memory_format=channels_last)(guide.contiguous(memory_format=channels_last),
                                            source.contiguous(memory_format=channels_last)),
        whole, rtol=1e-4, atol=1e-5)
    net.precision = "bfloat16"
    low = net(guide, source)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, whole, rtol=0.1, atol=0.05)
    with pytest.raises(ValueError, match="precision"):
        MMSR(precision="float16")


def test_mmsr_shape_dtype_and_seed(small_edge_pair) -> None:
    target = _uint8(small_edge_pair.target_lr)
    out = MMSR(iterations=3, device="cpu").fit(target, small_edge_pair.guide).predict()
    assert out.shape == small_edge_pair.truth.shape
    assert out.dtype == np.uint8
    again = MMSR(iterations=3, device="cpu").fit(target, small_edge_pair.guide).predict()
    np.testing.assert_array_equal(out, again)


def test_mmsr_learns_the_cycle_consistency(small_edge_pair, rmse, box_error) -> None:
    pair = small_edge_pair
    model = MMSR(iterations=60, device="cpu").fit(pair.target_lr, pair.guide)
    out = model.predict()
    assert out.dtype == np.float32
    assert model.losses[-1] < 0.2 * model.losses[0]
    assert box_error(out, pair.target_lr) < 0.06
    bicubic = Bicubic().fit(pair.target_lr, pair.guide).predict()
    assert rmse(out, pair.truth) < rmse(bicubic, pair.truth)
