"""The training precision: ``"auto"`` takes bfloat16 only where the device computes it
natively, since emulated bfloat16 is many times slower than float32 on a CPU."""

from __future__ import annotations

import pytest
import torch

import cmsr.method.precision as precision
from cmsr.cli import main
from cmsr.evaluation.evaluate import method_settings
from cmsr.files import write_image
from cmsr.method.api import CMSR
from cmsr.method.config import Config
from cmsr.method.precision import (
    autocast,
    bfloat16_is_native,
    describe_precision,
    resolve_precision,
)

CPU = torch.device("cpu")


@pytest.fixture(params=[True, False], ids=["native", "emulated"])
def native(request, monkeypatch) -> bool:
    monkeypatch.setattr(precision, "bfloat16_is_native", lambda device: request.param)
    return request.param


def test_auto_is_bfloat16_only_where_native(native):
    assert resolve_precision("auto", CPU) == ("bfloat16" if native else "float32")


def test_an_asked_precision_is_kept_whatever_the_device(native):
    assert resolve_precision("bfloat16", CPU) == "bfloat16"
    assert resolve_precision("float32", CPU) == "float32"


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="float16"):
        resolve_precision("float16", CPU)


def test_autocast_computes_in_the_resolved_precision(native):
    conv = torch.nn.Conv2d(2, 3, 3)
    x = torch.rand(1, 2, 8, 8)
    with autocast(CPU, "auto"):
        out = conv(x)
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    with autocast(CPU, "bfloat16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast(CPU, "float32"):
        assert conv(x).dtype == torch.float32


def test_the_cpu_check_is_onednn_verdict():
    assert bfloat16_is_native(CPU) == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@pytest.mark.parametrize(("capability", "expected"), [("AVX512", True), ("AVX2", False)])
def test_without_onednn_verdict_the_cpu_capability_decides(monkeypatch, capability, expected):
    def missing() -> bool:
        raise AttributeError("no such op")

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", missing)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert bfloat16_is_native(CPU) is expected


def test_other_devices_are_not_native():
    assert bfloat16_is_native(torch.device("meta")) is False


def test_auto_is_the_default_and_the_model_says_what_it_computes_in(native):
    assert Config().precision == "auto"
    assert all(Config.preset(name).precision == "auto"
               for name in ("thermal", "nir", "depth", "elevation", "temperature", "quick"))
    assert CMSR(Config()).precision == ("bfloat16" if native else "float32")
    assert CMSR(Config(precision="float32")).precision == "float32"


def test_a_bad_precision_in_the_config_is_a_problem():
    with pytest.raises(ValueError, match="precision"):
        Config(precision="half")  # type: ignore[arg-type]


def test_the_log_line_says_why(native):
    line = describe_precision("auto", CPU)
    assert line == ("training in bfloat16 autocast (auto: native on this cpu device)" if native
                    else "training in float32 (auto: this cpu device has no native bfloat16)")
    assert describe_precision("bfloat16", CPU) == "training in bfloat16 (as asked)"


def test_cmsr_sr_prints_the_precision_and_takes_the_option(tmp_path, capsys, native):
    guide = (torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0)).numpy() * 255
             ).astype("uint8")
    target = write_image(tmp_path / "t.png", guide[::4, ::4, 0].copy())
    guide_path = write_image(tmp_path / "g.png", guide)
    for option in ("auto", "float32"):
        out = tmp_path / f"o_{option}.png"
        assert main(["sr", "--target", str(target), "--guide", str(guide_path), "-o", str(out),
                     "--preset", "quick", "--iters", "2", "--precision", option]) == 0
        err = capsys.readouterr().err
        assert f"cmsr: {describe_precision(option, CPU)}" in err


def test_the_eval_store_keys_runs_by_the_precision_computed(native):
    auto = method_settings("cmsr", Config(precision="auto"), {})
    computed = "bfloat16" if native else "float32"
    other = "float32" if native else "bfloat16"
    assert auto == method_settings("cmsr", Config(precision=computed), {})
    assert auto != method_settings("cmsr", Config(precision=other), {})
