"""Tests for cmsr.method.model: identity at start, architecture, gradients and receptive field."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cmsr.method.config import Config
from cmsr.method.model import CMSRNet, conv_stack


def _net(config: Config, target_channels=1, guide_channels=3, seed=0) -> CMSRNet:
    torch.manual_seed(seed)
    return CMSRNet(target_channels, guide_channels, fe1_layers=config.fe1_layers,
                   fe1_channels=config.fe1_channels, fe2_layers=config.fe2_layers,
                   fe2_channels=config.fe2_channels)


def _randomise_last_layers(net: CMSRNet, seed=1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for stack in (net.fe1, net.fe2):
            last = stack[-1]
            last.weight.copy_(0.1 * torch.randn(last.weight.shape, generator=generator))
            last.bias.copy_(0.1 * torch.randn(last.bias.shape, generator=generator))


def _inputs(shape_target, shape_guide, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape_target, generator=generator),
            torch.rand(shape_guide, generator=generator))


QUICK = Config.preset("quick")


@pytest.mark.parametrize(("c", "big_c"), [(1, 3), (2, 4), (1, 1), (3, 3)])
def test_untrained_network_returns_target_up_exactly(c, big_c):
    net = _net(QUICK, c, big_c)
    target_up, guide = _inputs((2, c, 13, 9), (2, big_c, 13, 9))
    with torch.no_grad():
        out = net(target_up, guide)
    assert torch.equal(out, target_up)


@pytest.mark.parametrize(("c", "big_c", "size"), [(1, 3, (11, 17)), (2, 4, (16, 7)),
                                                  (3, 1, (5, 6))])
def test_output_shape_non_square_multichannel(c, big_c, size):
    net = _net(QUICK, c, big_c)
    _randomise_last_layers(net)
    target_up, guide = _inputs((3, c, *size), (3, big_c, *size))
    with torch.no_grad():
        out = net(target_up, guide)
    assert out.shape == (3, c, *size)
    assert out.dtype == torch.float32
    assert not torch.equal(out, target_up)


def _convs(stack: nn.Sequential) -> list[nn.Conv2d]:
    return [m for m in stack if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("config", [Config(), Config.preset("quick"), Config.preset("thermal"),
                                    Config(fe1_layers=2, fe2_layers=2, fe1_channels=5,
                                           fe2_channels=7)])
def test_layer_counts_kernels_and_widths_match_config(config):
    net = _net(config, target_channels=2, guide_channels=4)
    fe1, fe2 = _convs(net.fe1), _convs(net.fe2)
    assert len(fe1) == config.fe1_layers
    assert len(fe2) == config.fe2_layers
    assert all(conv.kernel_size == (3, 3) and conv.padding == (1, 1) for conv in fe1)
    assert all(conv.kernel_size == (3, 3) for conv in fe2[:-1])
    assert fe2[-1].kernel_size == (1, 1) and fe2[-1].padding == (0, 0)
    assert [conv.in_channels for conv in fe1] == [2] + [config.fe1_channels] * (len(fe1) - 1)
    assert [conv.out_channels for conv in fe1] == [config.fe1_channels] * (len(fe1) - 1) + [2]
    assert [conv.in_channels for conv in fe2] == [4] + [config.fe2_channels] * (len(fe2) - 1)
    assert [conv.out_channels for conv in fe2] == [config.fe2_channels] * (len(fe2) - 1) + [2]


@pytest.mark.parametrize("stack_name", ["fe1", "fe2"])
def test_relu_after_every_conv_but_the_last(stack_name):
    stack = getattr(_net(QUICK), stack_name)
    modules = list(stack)
    assert isinstance(modules[-1], nn.Conv2d)  # no activation at the end
    for index, module in enumerate(modules[:-1]):
        if isinstance(module, nn.Conv2d):
            assert isinstance(modules[index + 1], nn.ReLU)
    relus = sum(isinstance(m, nn.ReLU) for m in modules)
    assert relus == len(_convs(stack)) - 1


def test_conv_stack_last_layer_zero_and_others_not():
    stack = conv_stack(3, 8, 2, 4, 1)
    convs = _convs(stack)
    assert not convs[-1].weight.any() and not convs[-1].bias.any()
    for conv in convs[:-1]:
        assert conv.weight.std() > 0
        assert not conv.bias.any()


def test_he_initialisation_scale():
    torch.manual_seed(0)
    stack = conv_stack(64, 64, 1, 3, 3)
    weight = _convs(stack)[1].weight
    fan_in = 64 * 9
    assert abs(float(weight.detach().std()) - (2.0 / fan_in) ** 0.5) < 0.1 * (2.0 / fan_in) ** 0.5


def test_gradients_reach_every_parameter_after_one_training_step():
    net = _net(QUICK, 2, 3)
    target_up, guide = _inputs((2, 2, 12, 12), (2, 3, 12, 12))
    supervision = torch.rand(2, 2, 12, 12, generator=torch.Generator().manual_seed(5))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    loss = (net(target_up, guide) - supervision).abs().mean()
    loss.backward()
    # at the start only the zero-initialised last layers can receive a gradient
    for stack in (net.fe1, net.fe2):
        assert stack[-1].weight.grad.abs().sum() > 0
    optimizer.step()
    optimizer.zero_grad()

    loss = (net(target_up, guide) - supervision).abs().mean()
    loss.backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def _changed_region(net: CMSRNet, which: str, size=23) -> torch.Tensor:
    target_up, guide = _inputs((1, net.target_channels, size, size),
                               (1, net.guide_channels, size, size), seed=2)
    centre = size // 2
    with torch.no_grad():
        before = net(target_up, guide)
        if which == "target":
            target_up[..., centre, centre] += 1.0
        else:
            guide[..., centre, centre] += 1.0
        after = net(target_up, guide)
    changed = (after - before).abs().amax(dim=(0, 1)) > 0
    ys, xs = torch.nonzero(changed, as_tuple=True)
    return torch.maximum((ys - centre).abs(), (xs - centre).abs())  # Chebyshev distances


@pytest.mark.parametrize(("fe1_layers", "fe2_layers"), [(4, 3), (3, 5), (2, 2), (6, 6)])
@pytest.mark.parametrize("which", ["target", "guide"])
def test_halo_bounds_the_receptive_field(fe1_layers, fe2_layers, which):
    config = Config(fe1_layers=fe1_layers, fe2_layers=fe2_layers, fe1_channels=8,
                    fe2_channels=8)
    net = _net(config)
    _randomise_last_layers(net)
    distances = _changed_region(net, which)
    assert distances.numel() > 0
    assert int(distances.max()) <= net.halo


@pytest.mark.parametrize(("fe1_layers", "fe2_layers", "halo"), [(4, 3, 4), (3, 5, 4), (8, 6, 8),
                                                                (2, 2, 2)])
def test_halo_is_the_deeper_extractor_radius(fe1_layers, fe2_layers, halo):
    config = Config(fe1_layers=fe1_layers, fe2_layers=fe2_layers, fe1_channels=8,
                    fe2_channels=8)
    net = _net(config)
    assert net.halo == halo
    _randomise_last_layers(net)
    # the bound is reached: a perturbation of the deeper branch's input travels halo pixels
    which = "target" if fe1_layers >= fe2_layers else "guide"
    assert int(_changed_region(net, which).max()) == halo


@pytest.mark.parametrize("kept", [(1, 0, 1, 0), (0, 0, 0, 0), (1, 1, 1, 1)])
def test_guide_weight_zero_skips_fe2_and_changes_nothing(kept):
    """Examples whose guide weight is 0 do not run Feature-Extractor 2 (guide dropout
    costs no guide-branch work), and the output and every gradient are those of running
    it on the whole batch and multiplying by the weight."""
    net = _net(QUICK, 1, 3)
    _randomise_last_layers(net)
    target_up, guide = _inputs((4, 1, 10, 10), (4, 3, 10, 10))
    weight = torch.tensor(kept, dtype=torch.float32).view(-1, 1, 1, 1)
    supervision = torch.rand(4, 1, 10, 10, generator=torch.Generator().manual_seed(3))

    seen: list[int] = []
    hook = net.fe2.register_forward_hook(lambda module, args, out: seen.append(out.shape[0]))
    loss = (net(target_up, guide, weight) - supervision).abs().mean()
    loss.backward()
    hook.remove()
    assert seen == ([int(sum(kept))] if any(kept) else [])
    # with every weight 0 the guide branch gets no gradient at all (None), i.e. zeros
    grads = {name: torch.zeros_like(p) if p.grad is None else p.grad.clone()
             for name, p in net.named_parameters()}

    net.zero_grad()
    reference = target_up + net.fe1(target_up) + net.fe2(guide) * weight
    (reference - supervision).abs().mean().backward()
    assert torch.equal(net(target_up, guide, weight), reference)
    for name, parameter in net.named_parameters():
        assert torch.allclose(grads[name], parameter.grad, rtol=1e-6, atol=1e-7), name
