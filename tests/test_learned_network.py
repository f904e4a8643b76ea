"""Tests for cmsr.learned.network: shapes, the untrained network, gradient flow."""

from __future__ import annotations

import pytest
import torch

from cmsr.learned.config import VARIANTS, ModelConfig
from cmsr.learned.network import CrossSpectralNet, DynamicConvolution, parameter_count
from cmsr.method.resample import upsample_bicubic

TINY = {"blocks": 2, "features": 8, "matching_features": 4, "max_disparity": 2}


def tiny(variant: str = "full", resolution: str = "low") -> ModelConfig:
    return ModelConfig.build(variant=variant, guide_resolution=resolution, **TINY)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("resolution", ["low", "high"])
def test_shapes_of_every_variant(variant: str, resolution: str) -> None:
    net = CrossSpectralNet(tiny(variant, resolution), 3, 1, 2)
    target = torch.rand(2, 3, 16, 16)
    guide = torch.rand(2, 1, *((16, 16) if resolution == "low" else (32, 32)))
    out = net(target, guide, guide_output=True)
    assert out.target.shape == (2, 3, 32, 32)
    if variant == "baseline":
        assert out.guide is None and out.disparities is None
    else:
        assert out.guide is not None and out.guide.shape == (2, 1, 32, 32)
        assert out.aligned_low is not None and out.aligned_low.shape == (2, 1, 16, 16)
    if variant == "full":
        assert out.disparities is not None
        assert out.disparities.left.shape == out.disparities.right.shape == (2, 1, 16, 16)


def test_an_untrained_network_is_bicubic() -> None:
    net = CrossSpectralNet(tiny(), 1, 3, 4).eval()
    target = torch.rand(1, 1, 12, 10)
    out = net(target, torch.rand(1, 3, 12, 10))
    assert torch.allclose(out.target, upsample_bicubic(target, (48, 40)), atol=1e-6)


def test_the_wrong_guide_size_is_refused() -> None:
    net = CrossSpectralNet(tiny(resolution="high"), 1, 1, 2)
    with pytest.raises(ValueError, match="guide"):
        net(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="needs a guide"):
        net(torch.rand(1, 1, 8, 8), None)


@pytest.mark.parametrize("resolution", ["low", "high"])
def test_gradients_reach_every_parameter(resolution: str) -> None:
    torch.manual_seed(0)
    net = CrossSpectralNet(tiny("full", resolution), 2, 3, 2)
    with torch.no_grad():  # move the zero-initialised layers off zero
        for parameter in net.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    target = torch.rand(2, 2, 16, 16)
    guide = torch.rand(2, 3, *((16, 16) if resolution == "low" else (32, 32)))
    out = net(target, guide, guide_output=True)
    assert out.guide is not None and out.disparities is not None
    loss = (out.target.square().mean() + out.guide.square().mean()
            + out.disparities.left.square().mean() + out.disparities.right.square().mean())
    loss.backward()
    missing = [name for name, p in net.named_parameters()
               if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert missing == []


def test_dynamic_convolution_starts_as_the_identity() -> None:
    layer = DynamicConvolution(4, 3)
    guide = torch.rand(1, 4, 9, 7)
    assert torch.allclose(layer(torch.rand(1, 4, 9, 7), guide), guide)


def test_parameter_counts_grow_with_the_parts() -> None:
    counts = {v: parameter_count(CrossSpectralNet(tiny(v), 3, 1, 4)) for v in VARIANTS}
    assert counts["baseline"] < counts["with-guide"] < counts["full"]
    paper = parameter_count(CrossSpectralNet(ModelConfig(), 3, 1, 4))
    assert paper > 10 * parameter_count(CrossSpectralNet(ModelConfig.build(size="reduced"),
                                                         3, 1, 4))


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="dynamic_kernel"):
        ModelConfig(dynamic_kernel=4)
    with pytest.raises(ValueError, match="guide_resolution"):
        ModelConfig(guide_resolution="medium")
    with pytest.raises(ValueError, match="variant"):
        ModelConfig.build(variant="nope")
    assert ModelConfig(use_matching=False, use_dynamic=False, use_confidence=False
                       ).variant == "with-guide"
    assert ModelConfig(use_dynamic=False).variant == "custom"
