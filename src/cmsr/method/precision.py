"""The training precision: bfloat16 autocast where the device computes bfloat16 natively.

bfloat16 autocast halves a fit's time on a CPU with bfloat16 matrix instructions
(AVX-512 BF16, AMX) or on a recent GPU. Without them oneDNN emulates it: on a 2-core AMD
EPYC with AVX2 only a training step took 10.6 to 12.3 times as long under bfloat16
autocast as in float32 (``benchmarks/precision_speed.py``). ``"auto"``, the default,
therefore picks bfloat16 only where it is native.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

ComputedPrecision = Literal["bfloat16", "float32"]


def bfloat16_is_native(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions natively (not emulated).

    A CPU: oneDNN's own verdict (AVX-512 with BF16, or AMX), read from torch; a torch
    without that check falls back to the CPU capability torch reports (AVX-512). A
    CUDA device: :func:`torch.cuda.is_bf16_supported`. Anything else: False.

    >>> isinstance(bfloat16_is_native(torch.device("cpu")), bool)
    True
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def resolve_precision(precision: str, device: torch.device) -> ComputedPrecision:
    """The precision a fit computes in: ``"auto"`` becomes ``"bfloat16"`` where the
    device computes it natively (:func:`bfloat16_is_native`), else ``"float32"``;
    ``"bfloat16"`` and ``"float32"`` stay as they are.

    >>> resolve_precision("float32", torch.device("cpu"))
    'float32'
    >>> resolve_precision("auto", torch.device("meta"))
    'float32'
    """
    if precision == "auto":
        return "bfloat16" if bfloat16_is_native(device) else "float32"
    if precision not in ("bfloat16", "float32"):
        raise ValueError(f"precision must be 'auto', 'bfloat16' or 'float32', got {precision!r}")
    return "bfloat16" if precision == "bfloat16" else "float32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` when ``precision`` resolves to bfloat16
    (:func:`resolve_precision`), or nothing for float32."""
    if resolve_precision(precision, device) == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe_precision(precision: str, device: torch.device) -> str:
    """One line on the precision a fit computes in and why, for the log.

    >>> describe_precision("float32", torch.device("cpu"))
    'training in float32 (as asked)'
    >>> describe_precision("auto", torch.device("meta"))
    'training in float32 (auto: this meta device has no native bfloat16)'
    """
    computed = resolve_precision(precision, device)
    if precision != "auto":
        return f"training in {computed} (as asked)"
    if computed == "bfloat16":
        return f"training in bfloat16 autocast (auto: native on this {device.type} device)"
    return f"training in float32 (auto: this {device.type} device has no native bfloat16)"
