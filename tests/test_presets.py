"""The presets: every one validates, and the raster presets say what they are for."""

from __future__ import annotations

import pytest

from cmsr import PRESETS, Config
from cmsr.cli import build_parser


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates_again_with_an_override(name):
    config = Config.preset(name, seed=3)
    assert config.seed == 3
    assert Config(**{f: getattr(config, f) for f in config.__dataclass_fields__}) == config


def test_raster_presets_exist_and_differ_as_documented():
    elevation, temperature = Config.preset("elevation"), Config.preset("temperature")
    # georeferenced grids already match: no learned alignment
    assert elevation.align == temperature.align == "none"
    assert elevation.guide_dropout > 0 and elevation.self_check
    assert temperature.guide_dropout > 0 and temperature.self_check
    assert elevation.clamp_to_local_range and elevation.alternating_scales == 0.0
    assert elevation.degradation == "box"


@pytest.mark.parametrize("name", ["elevation", "temperature"])
def test_raster_presets_are_cli_choices(name):
    args = build_parser().parse_args(["sr", "--target", "t.tif", "--guide", "g.tif", "-o", "o.tif",
                                      "--preset", name])
    assert args.preset == name
