"""How the low-resolution input (and the guide) is made for an evaluation.

A benchmark starts from an aligned pair at full resolution -- the target (the ground
truth) and the guide -- and a :class:`EvalProtocol` says how to make the run's input:

* ``"avgpool"`` -- the MMSR protocol: the target average-pooled by the scale
  (exact block means, :func:`cmsr.method.resample.downsample` with ``kernel="box"``);
* ``"bicubic"`` -- the CMSR / ZSSR protocol: MATLAB-style antialiased bicubic
  reduction (``kernel="cubic"``);
* ``"real"`` -- the scene's own low-resolution capture (``target_*_lr*``) is the
  input; the scale follows from the sizes.

On top of that, optionally: Gaussian noise on the input and on the guide (its
standard deviation a fraction of the data range), and a displacement of the guide
-- a global shift and rotation, a smooth random local warp, and a smooth horizontal
disparity as between the cameras of a stereo rig -- to test how a method copes with
misalignment. :func:`apply_protocol` does it all and returns an
:class:`EvaluationPair`; the displacement alone is in
:mod:`cmsr.evaluation.displacement`.

Two more switches make the setting of learned cross-spectral models (CSPSR):
``swap`` exchanges the roles of a scene's files (its guide becomes the ground truth
and its target the guide: on the EPFL folders, a visible target with a near-infrared
guide), and ``reduce_guide`` gives the guide at the input's low resolution, reduced
the same way as the target (after its displacement and noise).

Multi-band files: ``target_band`` and ``guide_bands`` choose bands (numbered from 1, as
GDAL) of the images *in their roles as used*, after ``swap``: the target band of the
image used as the target (the ground truth and a real low-resolution capture alike),
the guide bands of the image used as the guide. They are applied where the files are
read (:func:`cmsr.evaluation.evaluate.load_pair`); :func:`apply_protocol` gets the
chosen bands.

Randomness is reproducible: everything is drawn from ``seed``, with separate
streams for the input noise, the guide noise, the shift direction and the local
warp, so switching one of them on or off leaves the others unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from numbers import Integral, Real

import numpy as np

from cmsr.errors import InputError, describe_shape
from cmsr.evaluation.displacement import GUIDE_NOISE, INPUT_NOISE, displace, random_stream
from cmsr.evaluation.metrics import data_range_for
from cmsr.method.normalize import array_to_tensor, clip_to_dtype, tensor_to_array
from cmsr.method.resample import downsample, resize
from cmsr.method.validate import check_array, check_mask

KINDS: dict[str, str | None] = {"avgpool": "box", "bicubic": "cubic", "real": None}
"""Protocol kinds and the :mod:`cmsr.method.resample` kernel each reduces the target with."""

USUAL_SCALES: tuple[int, ...] = (2, 4, 8, 16)
"""The scales the command line offers (in Python any integer >= 2 works)."""

# name parts after "<kind>-x<scale>", in the order EvalProtocol.name writes them
_PARTS: dict[str, str] = {
    "noise": "input_noise",
    "gnoise": "guide_noise",
    "shift": "shift",
    "rot": "rotation",
    "warp": "local_warp",
    "disp": "disparity",
    "seed": "seed",
}
_SOURCE = "protocol"


def _number(value: float) -> str:
    """Shortest text that reads back as exactly ``value``, without exponent or sign."""
    return np.format_float_positional(float(value) + 0.0, trim="-")


def _is_band_number(value: object) -> bool:
    """Whether ``value`` is an integer >= 1 (not a bool)."""
    return isinstance(value, Integral) and not isinstance(value, bool) and int(value) >= 1


@dataclass(frozen=True)
class EvalProtocol:
    """How to make the low-resolution input and the guide of an evaluation.

    Attributes
    ----------
    kind:
        ``"avgpool"`` (exact average pooling, MMSR), ``"bicubic"`` (MATLAB-style
        antialiased bicubic, CMSR / ZSSR) or ``"real"`` (the scene's own
        low-resolution capture).
    scale:
        Integer reduction factor, >= 2 (2, 4, 8 and 16 are usual); ignored by
        ``"real"``, whose scale follows from the sizes.
    input_noise:
        Standard deviation of Gaussian noise added to the low-resolution input, as a
        fraction of the target's data range (see
        :func:`cmsr.evaluation.metrics.data_range_for`).
    guide_noise:
        The same for the guide (independent noise in every band).
    shift:
        Global displacement of the guide in high-resolution pixels (its length; the
        direction is drawn from ``seed``).
    rotation:
        Global rotation of the guide about its centre, in degrees, counter-clockwise
        as displayed (like :func:`numpy.rot90`).
    local_warp:
        Largest displacement of a smooth random local warp of the guide, in
        high-resolution pixels.
    disparity:
        Mean of a smooth random horizontal disparity of the guide, in
        high-resolution pixels (:func:`cmsr.evaluation.displacement.disparity_field`).
    seed:
        Seed (>= 0) of the noise and of the displacement's direction and field.
    swap:
        Exchange the scene's guide and target: the guide file is the ground truth,
        the target file the guide (not with ``"real"``; a scene's mask, which
        belongs to its target, is not used).
    reduce_guide:
        Give the guide at the input's size, reduced like the target (``"real"``:
        MATLAB bicubic to the capture's size).
    target_band:
        The band (from 1, as GDAL) of a multi-band target to use, of the image used as
        the target (after ``swap``): its ground truth and its real low-resolution
        capture; None: every band.
    guide_bands:
        The bands (from 1, in this order) of the image used as the guide (after
        ``swap``); None: every band.

    Examples
    --------
    >>> EvalProtocol("bicubic", 4, shift=6, rotation=2).name
    'bicubic-x4-shift6-rot2-seed0'
    """

    kind: str = "bicubic"
    scale: int = 4
    input_noise: float = 0.0
    guide_noise: float = 0.0
    shift: float = 0.0
    rotation: float = 0.0
    local_warp: float = 0.0
    seed: int = 0
    disparity: float = 0.0
    swap: bool = False
    reduce_guide: bool = False
    target_band: int | None = None
    guide_bands: tuple[int, ...] | None = None

    @property
    def displaced(self) -> bool:
        """Whether the guide is moved (any of shift, rotation, local warp, disparity
        nonzero)."""
        return bool(self.shift or self.rotation or self.local_warp or self.disparity)

    @property
    def name(self) -> str:
        """Short unique name, e.g. ``"avgpool-x4"``, ``"bicubic-x4-warp4-seed0"``.

        ``"<kind>-x<scale>"`` (just ``"real"`` for real captures), then ``swap`` and
        ``lowguide`` (``reduce_guide``) when set, then ``band<N>`` (``target_band``)
        and ``gbands<a>.<b>...`` (``guide_bands``, in their order) when chosen (a
        protocol without them keeps the name it always had), then the nonzero settings among
        ``noise``, ``gnoise`` (guide noise), ``shift``, ``rot``, ``warp`` and ``disp``
        in that order, then ``seed<seed>`` when the guide is displaced or the seed is
        not 0. Numbers are written in the shortest form that reads back
        exactly, so two valid protocols have the same name only when they are the same
        (``"real"``, whose name has no scale, ignores the scale).

        Examples
        --------
        >>> EvalProtocol("avgpool", 4).name
        'avgpool-x4'
        >>> EvalProtocol("bicubic", 4, input_noise=0.05).name
        'bicubic-x4-noise0.05'
        >>> EvalProtocol("real", local_warp=2.5, seed=3).name
        'real-warp2.5-seed3'
        >>> EvalProtocol("bicubic", 4, disparity=4, swap=True, reduce_guide=True).name
        'bicubic-x4-swap-lowguide-disp4-seed0'
        >>> EvalProtocol("bicubic", 4, swap=True, target_band=2, guide_bands=(4, 3, 2)).name
        'bicubic-x4-swap-band2-gbands4.3.2'
        """
        parts = [self.kind if self.kind == "real" else f"{self.kind}-x{self.scale}"]
        parts += [label for label, on in (("swap", self.swap), ("lowguide", self.reduce_guide))
                  if on]
        if self.target_band is not None:
            parts.append(f"band{int(self.target_band)}")
        if self.guide_bands is not None:
            parts.append("gbands" + ".".join(str(int(band)) for band in self.guide_bands))
        for label, field_name in _PARTS.items():
            value = getattr(self, field_name)
            if field_name == "seed":
                if self.displaced or value != 0:
                    parts.append(f"seed{int(value)}")
            elif value:
                parts.append(f"{label}{_number(value)}")
        return "-".join(parts)

    def validate(self) -> None:
        """Check the settings.

        Raises
        ------
        InputError
            Unknown kind; a scale that is not an integer >= 2 (for ``"avgpool"`` and
            ``"bicubic"``); a negative, infinite or NaN noise or displacement; a seed
            that is not an integer >= 0; a band number that is not an integer >= 1
            (``guide_bands``: a non-empty tuple of them).
        """
        if self.kind not in KINDS:
            raise InputError(
                f"unknown protocol kind {self.kind!r}; choose from {', '.join(KINDS)}",
                _SOURCE,
            )
        if self.kind != "real" and (
            not isinstance(self.scale, Integral) or isinstance(self.scale, bool)
            or self.scale < 2
        ):
            raise InputError(f"the scale must be an integer >= 2, got {self.scale!r}", _SOURCE)
        for name in ("swap", "reduce_guide"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be True or False, got {getattr(self, name)!r}",
                                 _SOURCE)
        if self.swap and self.kind == "real":
            raise InputError("swap needs ground truth for both images; protocol real uses "
                             "the target's own low-resolution capture", _SOURCE)
        if self.target_band is not None and not _is_band_number(self.target_band):
            raise InputError(f"target_band must be a band number from 1, got "
                             f"{self.target_band!r}", _SOURCE)
        if self.guide_bands is not None and not (
                isinstance(self.guide_bands, tuple) and self.guide_bands
                and all(_is_band_number(band) for band in self.guide_bands)):
            raise InputError(f"guide_bands must be a tuple of band numbers from 1, got "
                             f"{self.guide_bands!r}", _SOURCE)
        for item in fields(self):
            if item.name in ("kind", "scale", "seed", "swap", "reduce_guide", "target_band",
                             "guide_bands"):
                continue
            value = getattr(self, item.name)
            if (not isinstance(value, Real) or isinstance(value, bool)
                    or not math.isfinite(value) or value < 0):
                raise InputError(
                    f"{item.name} must be a finite number >= 0, got {value!r}", _SOURCE
                )
        if not isinstance(self.seed, Integral) or isinstance(self.seed, bool) or self.seed < 0:
            raise InputError(f"the seed must be an integer >= 0, got {self.seed!r}", _SOURCE)


@dataclass(frozen=True)
class EvaluationPair:
    """What an evaluation run gets, and what it is scored against.

    Attributes
    ----------
    low:
        ``(h, w)`` or ``(h, w, c)`` float32 low-resolution input in the target's
        units, noise included; clipped to the dtype's range when the target (the
        capture, for ``"real"``) is an integer type, otherwise not clipped.
    guide:
        ``(H, W)`` or ``(H, W, C)``: the guide as given (its dtype kept), or float32
        when noise or a displacement was applied (clipped to the range of an integer
        dtype).
    truth:
        ``(H, W)`` or ``(H, W, c)`` ground truth in its own units and dtype, cropped
        to a multiple of the scale for ``"avgpool"`` and ``"bicubic"``.
    mask:
        ``(H, W)`` bool, True at valid pixels of ``truth``; None when not given.
    protocol:
        The protocol that made it.
    guide_full:
        With ``reduce_guide``: the guide before its reduction (``(H, W[, C])``,
        displaced and noised like ``guide``), the ground truth of a learned model's
        guide branch; None otherwise.
    """

    low: np.ndarray
    guide: np.ndarray
    truth: np.ndarray
    mask: np.ndarray | None
    protocol: EvalProtocol
    guide_full: np.ndarray | None = None

    def guide_at_truth_size(self) -> np.ndarray:
        """The guide at the truth's size: ``guide`` itself, or with ``reduce_guide`` its
        bicubic enlargement (float32; what methods that need a full-size guide get, so
        that they see only what the low-resolution guide holds)."""
        if self.guide.shape[:2] == self.truth.shape[:2]:
            return self.guide
        enlarged = resize(array_to_tensor(self.guide, np.float64), self.truth.shape[:2],
                          kernel="cubic")
        return clip_to_dtype(tensor_to_array(enlarged, band_axis=self.guide.ndim == 3),
                             self.guide.dtype).astype(np.float32)


# --------------------------------------------------------------------------- helpers


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom rows and right columns so both sides are multiples of ``scale``.

    Examples
    --------
    >>> modcrop(np.zeros((322, 319, 3)), 4).shape
    (320, 316, 3)
    """
    height, width = image.shape[:2]
    return image[: height - height % scale, : width - width % scale]


def reduced_guide(guide: np.ndarray, size: tuple[int, int], kind: str) -> np.ndarray:
    """The guide reduced to ``size`` ``(h, w)`` as ``reduce_guide`` makes it under protocol
    ``kind``: with that kind's kernel (:data:`KINDS`; ``"real"``: MATLAB bicubic),
    clipped to the range of an integer dtype; ``(h, w[, C])`` float32.

    Examples
    --------
    >>> reduced_guide(np.arange(16, dtype=np.uint8).reshape(4, 4), (2, 2), "avgpool").tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    kernel = KINDS[kind] or "cubic"
    reduced = downsample(array_to_tensor(guide, np.float64), size,
                         kernel=kernel)  # type: ignore[arg-type]
    return clip_to_dtype(tensor_to_array(reduced, band_axis=guide.ndim == 3),
                         guide.dtype).astype(np.float32)


def _add_noise(image: np.ndarray, sigma: float, seed: int, stream: int) -> np.ndarray:
    noise = random_stream(seed, stream).standard_normal(image.shape)
    return (image.astype(np.float64) + sigma * noise).astype(np.float32)




def _check_real_sizes(low: np.ndarray, truth: np.ndarray) -> None:
    (h, w), (big_h, big_w) = low.shape[:2], truth.shape[:2]
    if h > big_h or w > big_w:
        raise InputError(
            f"the low-resolution capture ({describe_shape(low.shape[:2])}) is larger than the "
            f"target ({describe_shape(truth.shape[:2])})", "low"
        )
    # the same aspect, to within one low-resolution pixel
    if abs(big_h * w / big_w - h) > 1.0 or abs(big_w * h / big_h - w) > 1.0:
        raise InputError(
            f"the low-resolution capture ({describe_shape(low.shape[:2])}) does not have the "
            f"target's aspect ({describe_shape(truth.shape[:2])})", "low"
        )
    bands_low = 1 if low.ndim == 2 else low.shape[2]
    bands_truth = 1 if truth.ndim == 2 else truth.shape[2]
    if bands_low != bands_truth:
        raise InputError(
            f"the low-resolution capture has {bands_low} band(s), the target {bands_truth}",
            "low",
        )


def apply_protocol(
    truth: np.ndarray,
    guide: np.ndarray,
    protocol: EvalProtocol,
    *,
    low: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> EvaluationPair:
    """Make an evaluation's input from a full-resolution pair.

    Steps: for ``"avgpool"`` and ``"bicubic"``, crop truth, guide and mask at the
    bottom and right to a multiple of the scale and reduce the truth by the scale
    with :func:`cmsr.method.resample.downsample` (kernel ``"box"`` or ``"cubic"``); for
    ``"real"``, take ``low`` as the input and keep truth and guide as they are.
    Then add the input noise, displace the guide (shift and rotation, then local
    warp, then disparity, one bicubic resampling with border replication), add the
    guide noise, and with ``reduce_guide`` reduce the guide to the input's size.

    Parameters
    ----------
    truth:
        ``(H, W)`` or ``(H, W, c)`` target at full resolution, any real dtype.
    guide:
        ``(H, W)`` or ``(H, W, C)`` guide, the truth's size (any size for
        ``"real"``).
    protocol:
        What to do; validated first.
    low:
        The real low-resolution capture, required by ``"real"`` (ignored
        otherwise): the truth's aspect, to within one pixel, and band count.
    mask:
        ``(H, W)`` (or ``(H, W, k)``: valid where any band is nonzero), nonzero at
        valid truth pixels.

    Returns
    -------
    EvaluationPair

    Raises
    ------
    InputError
        Invalid protocol; arrays that are not images; a guide or mask whose size
        differs from the truth's (guides may differ for ``"real"``); a truth smaller
        than the scale; ``"real"`` without ``low`` or with a ``low`` that does not
        fit the truth.

    Examples
    --------
    >>> truth = np.arange(64, dtype=np.uint8).reshape(8, 8)
    >>> guide = np.zeros((8, 8, 3), np.uint8)
    >>> pair = apply_protocol(truth, guide, EvalProtocol("avgpool", 4))
    >>> pair.low.tolist()
    [[13.5, 17.5], [45.5, 49.5]]
    >>> pair.guide.dtype, pair.truth.shape
    (dtype('uint8'), (8, 8))
    """
    if not isinstance(protocol, EvalProtocol):
        raise InputError(f"expected an EvalProtocol, got {type(protocol).__name__}", _SOURCE)
    protocol.validate()
    truth = check_array(truth, "truth")
    guide = check_array(guide, "guide")
    height, width = truth.shape[:2]
    valid = None if mask is None else check_mask(mask, truth.shape)

    if protocol.kind == "real":
        if low is None:
            raise InputError("protocol real needs a target_*_lr* capture", "low")
        low_in = check_array(low, "low")
        _check_real_sizes(low_in, truth)
        source_dtype = low_in.dtype
        low_out = np.array(low_in, dtype=np.float32)
        truth_out, guide_out = truth.copy(), guide.copy()
    else:
        if guide.shape[:2] != truth.shape[:2]:
            raise InputError(
                f"the guide is {describe_shape(guide.shape[:2])} but the target is "
                f"{describe_shape(truth.shape[:2])}; "
                f"protocol {protocol.kind} needs a guide of the target's size "
                "(only 'real' accepts others)",
                "guide",
            )
        scale = int(protocol.scale)
        if height < scale or width < scale:
            raise InputError(
                f"the target ({width}x{height}) is smaller than the scale {scale}", "truth"
            )
        truth_out = modcrop(truth, scale).copy()
        guide_out = modcrop(guide, scale).copy()
        valid = None if valid is None else modcrop(valid, scale).copy()
        size = (truth_out.shape[0] // scale, truth_out.shape[1] // scale)
        kernel = KINDS[protocol.kind]
        reduced = downsample(array_to_tensor(truth_out, np.float64), size, kernel=kernel)  # type: ignore[arg-type]
        low_out = np.ascontiguousarray(tensor_to_array(reduced, band_axis=truth_out.ndim == 3))
        source_dtype = truth.dtype

    if protocol.input_noise:
        sigma = protocol.input_noise * data_range_for(truth)
        low_out = _add_noise(low_out, sigma, protocol.seed, INPUT_NOISE)
    low_out = clip_to_dtype(low_out, source_dtype)

    if protocol.displaced or protocol.guide_noise:
        moved = displace(guide_out, shift=protocol.shift, rotation=protocol.rotation,
                         local_warp=protocol.local_warp, seed=protocol.seed,
                         disparity=protocol.disparity)
        if protocol.guide_noise:
            sigma = protocol.guide_noise * data_range_for(guide_out)
            moved = _add_noise(moved, sigma, protocol.seed, GUIDE_NOISE)
        guide_out = clip_to_dtype(moved, guide_out.dtype)

    guide_full = None
    if protocol.reduce_guide:
        guide_full = guide_out
        guide_out = reduced_guide(guide_out, low_out.shape[:2], protocol.kind)

    return EvaluationPair(low=low_out, guide=guide_out, truth=truth_out, mask=valid,
                          protocol=protocol, guide_full=guide_full)

