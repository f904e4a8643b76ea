"""Saved state of a fit: the learned warp alone, or the whole model for warm starts.

Both files are ``torch.save`` of a plain dict and are read back with
``torch.load(weights_only=True)`` (tensors, numbers, strings and lists; no code runs),
written atomically (a temporary file renamed into place, never clobbering an
existing file without ``overwrite``).

Warp file (:func:`warp_state`, :func:`save_warp`, :func:`load_warp`), a few tens of kB::

    {"format": "cmsr-warp", "version": 1,
     "align": "full", "cpab_cells": 4, "tps_points": 4,   # the warp's structure
     "guide_size": [H, W],                                 # guide it was learned on
     "state_dict": {"layers.affine.delta": tensor, ...}}   # GuideWarp.state_dict()

Checkpoint (:func:`model_state`, :func:`save_checkpoint`, :func:`load_checkpoint`)::

    {"format": "cmsr-model", "version": 1,
     "network": {"fe1_layers": 8, "fe1_channels": 64, "fe2_layers": 6, "fe2_channels": 32},
     "target_channels": c, "guide_channels": C,
     "stage_sizes": [[h1, w1], ...],       # output size of each gradual stage
     "networks": [state_dict, ...],        # one CMSRNet per stage
     "warp": warp file dict or None}

A warp is defined in normalized image coordinates, so it applies to any guide with
the same field of view; a guide with another aspect ratio is refused.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from cmsr.errors import InputError
from cmsr.files import write_bytes
from cmsr.method.config import ALIGNMENTS, Config
from cmsr.method.model import CMSRNet
from cmsr.method.warp import GuideWarp

WARP_FORMAT = "cmsr-warp"
MODEL_FORMAT = "cmsr-model"
VERSION = 1
#: Aspect ratios (width / height) closer than this count as the same field of view.
ASPECT_TOLERANCE = 0.01
#: First bytes of a ``torch.save`` file (a zip archive).
ZIP_MAGIC = b"PK\x03\x04"
#: Largest CPAB tessellation / TPS control grid per side accepted from a file.
MAX_GRID = 32
NETWORK_FIELDS = ("fe1_layers", "fe1_channels", "fe2_layers", "fe2_channels")

StateSource = Mapping[str, Any] | str | os.PathLike[str]


# ------------------------------------------------------------------ structure
def warp_structure(config: Config) -> dict[str, Any]:
    """The config fields that decide a warp's parameters: align, cpab_cells, tps_points."""
    return {"align": config.align, "cpab_cells": config.cpab_cells,
            "tps_points": config.tps_points}


def build_warp(structure: Mapping[str, Any]) -> GuideWarp:
    """A :class:`GuideWarp` at the identity with the given structure (see
    :func:`warp_structure`); raises ``ValueError`` for ``align="none"``."""
    if structure["align"] == "none":
        raise ValueError("align='none' has no warp")
    cells, points = int(structure["cpab_cells"]), int(structure["tps_points"])
    # bicubic: the whole guide is resampled once at inference, and bilinear
    # interpolation at sub-pixel offsets blurs it (measured on EPFL x4 with the true
    # alignment of a 6 px + 2 degree move: RMSE 3.16 against 3.56)
    return GuideWarp(structure["align"], tessellation=(cells, cells),
                     control_points=(points, points), mode="bicubic")


def _describe(structure: Mapping[str, Any]) -> str:
    layers = structure["align"]
    parts = [f"align {layers}"]
    if layers in ("affine+cpab", "full"):
        parts.append(f"{structure['cpab_cells']} CPAB cells")
    if layers == "full":
        parts.append(f"{structure['tps_points']} TPS points")
    return ", ".join(parts)


def same_structure(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two warp structures have the same parameters (unused fields ignored)."""
    if a["align"] != b["align"]:
        return False
    if a["align"] in ("affine+cpab", "full") and int(a["cpab_cells"]) != int(b["cpab_cells"]):
        return False
    return a["align"] != "full" or int(a["tps_points"]) == int(b["tps_points"])


# ------------------------------------------------------------------ warp
def warp_state(warp: GuideWarp, config: Config, guide_size: Sequence[int]) -> dict[str, Any]:
    """The warp file dict for ``warp`` (built from ``config``), learned on a guide of
    ``guide_size = (H, W)``; tensors are copied to the CPU."""
    return {"format": WARP_FORMAT, "version": VERSION, **warp_structure(config),
            "guide_size": [int(guide_size[0]), int(guide_size[1])],
            "state_dict": {k: v.detach().cpu().clone() for k, v in warp.state_dict().items()}}


def check_warp_state(state: Any, source: str = "warp") -> dict[str, Any]:
    """Validate a warp file dict; return it. Raises :class:`InputError` (one line)."""
    _check_header(state, WARP_FORMAT, "a cmsr warp", source)
    for key in ("align", "cpab_cells", "tps_points", "guide_size", "state_dict"):
        if key not in state:
            raise InputError(f"is not a complete cmsr warp (no {key!r})", source)
    if state["align"] == "none" or state["align"] not in ALIGNMENTS:
        raise InputError(f"is a cmsr warp with an unknown align {state['align']!r}", source)
    for key, low in (("cpab_cells", 1), ("tps_points", 2)):
        value = state[key]
        if not isinstance(value, int) or not low <= value <= MAX_GRID:
            raise InputError(f"is a cmsr warp with a broken {key} ({value!r})", source)
    size = state["guide_size"]
    if (not isinstance(size, list | tuple) or len(size) != 2
            or not all(isinstance(n, int) and n > 0 for n in size)):
        raise InputError("is a cmsr warp with a broken guide size", source)
    try:
        expected = build_warp(state)
        expected.load_state_dict(state["state_dict"])
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise InputError(f"is a corrupt cmsr warp ({_first_line(error)})", source) from None
    if not all(torch.isfinite(p).all() for p in expected.parameters()):
        raise InputError("is a corrupt cmsr warp (non-finite parameters)", source)
    return dict(state)


def apply_warp_state(warp: GuideWarp, state: Mapping[str, Any], config: Config,
                     guide_size: Sequence[int], source: str = "warp") -> None:
    """Load a checked warp ``state`` into ``warp`` (built from ``config``) for a guide of
    ``guide_size``; :class:`InputError` if the structure or the aspect ratio differ."""
    check_warp_fits(state, config, source)
    problem = aspect_problem(state, guide_size)
    if problem:
        raise InputError(problem, source)
    warp.load_state_dict(state["state_dict"])


def aspect_problem(state: Mapping[str, Any], guide_size: Sequence[int]) -> str:
    """Why the warp ``state`` does not apply to a guide of ``guide_size`` ``(H, W)``
    (another field of view: aspect ratios more than :data:`ASPECT_TOLERANCE` apart);
    ``""`` when it does."""
    learned = state["guide_size"]
    aspect, now = learned[1] / learned[0], guide_size[1] / guide_size[0]
    if abs(aspect / now - 1.0) > ASPECT_TOLERANCE:
        return (f"was learned on a {learned[1]}x{learned[0]} guide; this guide is "
                f"{guide_size[1]}x{guide_size[0]} (another aspect ratio)")
    return ""


def save_warp(path: str | os.PathLike[str], state: Mapping[str, Any], *,
              overwrite: bool = False) -> Path:
    """Write a warp file dict (see :func:`warp_state`) atomically; returns the path."""
    return _save(Path(path), check_warp_state(state, str(path)), overwrite)


def load_warp(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a warp file; :class:`InputError` if it is not one."""
    return check_warp_state(_load(Path(path), "a cmsr warp"), str(path))


def as_warp_state(source: StateSource) -> dict[str, Any]:
    """A checked warp dict from a dict, a warp file or a checkpoint (its warp)."""
    if isinstance(source, Mapping):
        name, state = "warp_init", source
    else:
        name, state = str(source), _load(Path(source), "a cmsr warp")
    if isinstance(state, Mapping) and state.get("format") == MODEL_FORMAT:
        if state.get("warp") is None:
            raise InputError("is a cmsr checkpoint without a warp (align none)", name)
        state = state["warp"]
    return check_warp_state(state, name)


# ------------------------------------------------------------------ model
def model_state(networks: list[CMSRNet], stage_sizes: list[tuple[int, int]], config: Config,
                warp: dict[str, Any] | None) -> dict[str, Any]:
    """The checkpoint dict for fitted ``networks`` (one per stage, output sizes
    ``stage_sizes``) and a warp file dict (or None)."""
    first = networks[0]
    return {"format": MODEL_FORMAT, "version": VERSION,
            "network": {name: getattr(config, name) for name in NETWORK_FIELDS},
            "target_channels": first.target_channels, "guide_channels": first.guide_channels,
            "stage_sizes": [[int(h), int(w)] for h, w in stage_sizes],
            "networks": [{k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                         for net in networks],
            "warp": warp}


def check_model_state(state: Any, source: str = "init") -> dict[str, Any]:
    """Validate a checkpoint dict; return it. Raises :class:`InputError` (one line)."""
    _check_header(state, MODEL_FORMAT, "a cmsr checkpoint", source)
    for key in ("network", "target_channels", "guide_channels", "stage_sizes", "networks",
                "warp"):
        if key not in state:
            raise InputError(f"is not a complete cmsr checkpoint (no {key!r})", source)
    networks, sizes = state["networks"], state["stage_sizes"]
    if not isinstance(networks, list) or not networks or not isinstance(sizes, list) \
            or len(sizes) != len(networks):
        raise InputError("is a corrupt cmsr checkpoint (stages)", source)
    try:
        shape = {name: int(state["network"][name]) for name in NETWORK_FIELDS}
        for weights in networks:
            CMSRNet(int(state["target_channels"]), int(state["guide_channels"]),
                    **shape).load_state_dict(weights)
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise InputError(f"is a corrupt cmsr checkpoint ({_first_line(error)})", source) \
            from None
    if state["warp"] is not None:
        check_warp_state(state["warp"], source)
    return dict(state)


def check_model_fits(state: Mapping[str, Any], config: Config, target_channels: int,
                     guide_channels: int, stages: int, source: str = "init") -> None:
    """:class:`InputError` unless the checkpoint's networks can start this run."""
    check_network_shape(state, config, source)
    if (state["target_channels"], state["guide_channels"]) != (target_channels, guide_channels):
        raise InputError(f"was fitted to a {state['target_channels']}-band target and a "
                         f"{state['guide_channels']}-band guide; this pair has "
                         f"{target_channels} and {guide_channels}", source)
    if len(state["networks"]) != stages:
        raise InputError(f"has {len(state['networks'])} gradual stage(s); this pair needs "
                         f"{stages} (same scale and --gradual setting needed)", source)


def check_network_shape(state: Mapping[str, Any], config: Config, source: str = "init"
                        ) -> None:
    """:class:`InputError` unless the checkpoint's network shape is ``config``'s."""
    def describe(shape: Mapping[str, Any]) -> str:
        return (f"feature extractors of {shape['fe1_layers']} x {shape['fe1_channels']} and "
                f"{shape['fe2_layers']} x {shape['fe2_channels']} (layers x channels)")

    wanted = {name: getattr(config, name) for name in NETWORK_FIELDS}
    if {k: int(v) for k, v in state["network"].items()} != wanted:
        raise InputError(f"holds networks with {describe(state['network'])}; this run's "
                         f"have {describe(wanted)}: use the same preset", source)


def check_warp_fits(state: Mapping[str, Any], config: Config, source: str = "warp") -> None:
    """:class:`InputError` unless the warp ``state`` has ``config``'s structure."""
    if config.align == "none":
        raise InputError(f"holds a warp learned with align {state['align']}; this run has "
                         "align none", source)
    if not same_structure(state, warp_structure(config)):
        raise InputError(f"was learned with {_describe(state)}; this run uses "
                         f"{_describe(warp_structure(config))}", source)


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any], *,
                    overwrite: bool = False) -> Path:
    """Write a checkpoint dict (see :func:`model_state`) atomically; returns the path."""
    return _save(Path(path), check_model_state(state, str(path)), overwrite)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a checkpoint; :class:`InputError` if it is not one."""
    return check_model_state(_load(Path(path), "a cmsr checkpoint"), str(path))


def as_model_state(source: StateSource) -> dict[str, Any]:
    """A checked checkpoint dict from a dict or a checkpoint file."""
    if isinstance(source, Mapping):
        return check_model_state(source, "init")
    return load_checkpoint(source)


# ------------------------------------------------------------------ files
def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= 120 else line[:117] + "..."


def _check_header(state: Any, kind: str, what: str, source: str) -> None:
    if not isinstance(state, Mapping) or "format" not in state:
        raise InputError(f"is not {what}", source)
    if state["format"] != kind:
        other = {WARP_FORMAT: "a cmsr warp", MODEL_FORMAT: "a cmsr checkpoint"}
        raise InputError(f"is {other.get(state['format'], 'an unknown file')}, not {what}",
                         source)
    if state.get("version") != VERSION:
        raise InputError(f"is {what} of format version {state.get('version')!r}; this cmsr "
                         f"reads version {VERSION}", source)


def _save(path: Path, state: Mapping[str, Any], overwrite: bool) -> Path:
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    return write_bytes(path, buffer.getvalue(), overwrite=overwrite)


def _load(path: Path, what: str) -> Any:
    source = str(path)
    if not path.exists():
        raise InputError("does not exist", source)
    if path.is_dir():
        raise InputError(f"is a directory, not {what}", source)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(ZIP_MAGIC))
        if magic != ZIP_MAGIC:
            raise InputError(f"is not {what} (not a file saved by cmsr)", source)
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        raise InputError(f"cannot be read: {error.strerror or error}", source) from None
    except InputError:
        raise
    except Exception:  # unpacking raises many types; all mean damaged or foreign
        raise InputError(f"is not {what} or is damaged (cannot be unpacked)", source) \
            from None


def read_state_file(path: str | os.PathLike[str], what: str) -> Any:
    """The dict a cmsr ``.pt`` file holds, read without running code (weights only).

    ``what`` names the expected content in messages (e.g. ``"a cmsr learned model"``);
    a missing, foreign or damaged file raises a one-line :class:`InputError` naming it.
    Other modules' state files (learned models) share this reader.
    """
    return _load(Path(path), what)


def write_state_file(path: str | os.PathLike[str], state: Mapping[str, Any], *,
                     overwrite: bool = False) -> Path:
    """Write a state dict with ``torch.save``, atomically; returns the path."""
    return _save(Path(path), state, overwrite)
