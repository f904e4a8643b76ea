"""Evaluation: run methods on scenes under a protocol and score them against the truth.

One *run* is one (scene, method) under one :class:`cmsr.evaluation.protocols.EvalProtocol`. Each
finished run is kept in a store of finished runs (:class:`cmsr.files.runs.RunStore`,
``REPORT_DIR/runs/manifest.jsonl``, the same as a batch's) with its time and memory,
and its output beside it as ``.npy`` (written atomically), keyed by a hash of the
exact inputs and the method's settings (:func:`run_key`), so a stopped evaluation
resumes where it stopped and a changed input or setting is recomputed. Metrics are
computed from the stored output every time (cheap), so changing ``crop`` never
retrains anything. A cmsr run's record also keeps what its run-time self-check chose
(:func:`guide_choice`) and the held-out errors it chose from
(:func:`self_check_errors`), whether its alignment check kept the coarse warp
(:func:`alignment_choice`) and what its guide-shift search did
(:func:`guide_shift_choice`); none of them is part of the key.

Methods (:data:`METHODS`): ``cmsr`` and ``zssr`` train with the given
:class:`cmsr.Config`; ``p2p`` and ``mmsr`` use their published defaults with the
config's seed and device; ``cspsr`` applies a model trained by ``cmsr train`` (option
``model``); the rest are fixed filters. Per-method keyword options
(``{"mmsr": {"iterations": 300}}``) override those defaults.

With a protocol that reduces the guide (``reduce_guide``), learned models get the
low-resolution guide they were trained on and every other method its bicubic
enlargement (:meth:`EvaluationPair.guide_at_truth_size`): the same information.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from cmsr import __version__
from cmsr.errors import InputError, one_line
from cmsr.evaluation.baselines import BASELINES, ZSSR, make_baseline
from cmsr.evaluation.baselines.cspsr import CSPSR
from cmsr.evaluation.datasets import Scene
from cmsr.evaluation.metrics import Scores, data_range_for, score
from cmsr.evaluation.protocols import EvalProtocol, EvaluationPair, apply_protocol
from cmsr.evaluation.usage import track_usage
from cmsr.files import read_image, write_image
from cmsr.files.readers import select_bands
from cmsr.files.runs import RunStore, settings_key, sha256_file
from cmsr.method.alignment_check import AlignmentCheck
from cmsr.method.api import CMSR, resolve_device
from cmsr.method.config import STREAM_FIELDS, Config
from cmsr.method.guide_shift import GuideShift
from cmsr.method.normalize import array_to_tensor, tensor_to_array
from cmsr.method.precision import resolve_precision
from cmsr.method.resample import resize
from cmsr.method.self_check import SelfCheck
from cmsr.method.train import StepInfo

#: Every method ``cmsr eval`` knows, in the order tables show them: the baselines, cmsr,
#: then the learned model (which needs ``--option cspsr.model=MODEL.pt``).
METHODS: tuple[str, ...] = (*BASELINES, "cmsr", "cspsr")
#: Methods that apply a trained model file and take the guide as the protocol gives it.
LEARNED = ("cspsr",)
#: Methods whose result depends on the training :class:`Config`.
CONFIGURED = ("cmsr", "zssr")
#: Config fields that only matter to the learned warp (left out of a key without one).
WARP_FIELDS = ("align", "warp_lr_affine", "warp_lr_cpab", "warp_lr_tps", "warp_release",
               "warp_regularization", "cpab_cells", "tps_points", "freeze_warp",
               "align_levels", "align_level_iters", "align_level_channels",
               "align_check_margin", "align_when_dropped")
#: Config fields added since the store's version, with the default that computes what
#: runs stored before them did: left out of a key at that default, so those runs are
#: reused.
LATER_FIELDS: dict[str, Any] = {"align_when_dropped": "learn", "guide_shift_search": 0}
#: Learned baselines that take the config's seed and device but keep their own defaults.
SEEDED = ("p2p", "mmsr")
#: Bumped when a change invalidates stored runs.
STORE_VERSION = 1
#: What a cmsr run decided, as kept in its record and its :class:`RunResult` (never in
#: the key): :func:`guide_choice`, :func:`alignment_choice`, :func:`guide_shift_choice`,
#: :func:`self_check_errors`.
DECISIONS = ("guide_choice", "alignment", "guide_shift", "self_check_errors")


class Method(Protocol):
    """Anything with cmsr's interface: ``fit(target_lr, guide_hr) -> self``, ``predict()``."""

    def fit(self, target_lr: np.ndarray, guide_hr: np.ndarray) -> Method: ...

    def predict(self) -> np.ndarray: ...


def parse_methods(text: str) -> list[str]:
    """``"bicubic,cmsr"`` -> ``["bicubic", "cmsr"]``; unknown or repeated names are errors.

    Examples
    --------
    >>> parse_methods("cmsr, bicubic")
    ['cmsr', 'bicubic']
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise InputError(f"unknown method {', '.join(unknown) or '(none)'}; choose from "
                         f"{','.join(METHODS)}", source="--methods")
    if len(set(names)) != len(names):
        raise InputError("a method is named twice", source="--methods")
    return names


def parse_method_options(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["mmsr.iterations=300", "jbu.sigma_range=0.2"]`` -> per-method keyword options.

    Values are Python literals (numbers, strings, tuples, ``True``); anything else is
    taken as a string.

    Examples
    --------
    >>> parse_method_options(["mmsr.iterations=300"])
    {'mmsr': {'iterations': 300}}
    """
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise InputError(f"{item!r} is not METHOD.NAME=VALUE", source="--option")
        if method not in METHODS or method in CONFIGURED:
            raise InputError(f"{item!r}: options apply to {', '.join(BASELINES)} and "
                             f"{', '.join(LEARNED)} (cmsr and zssr take the training "
                             "options)", source="--option")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        options.setdefault(method, {})[name] = value
    for method, kwargs in options.items():
        make_method(method, Config(), {method: kwargs})  # fail now on a bad option
    return options


def make_method(name: str, config: Config, options: Mapping[str, Mapping[str, Any]]
                ) -> Method:
    """A fresh, unfitted method called ``name`` (see the module docstring)."""
    if name == "cmsr":
        return CMSR(config)
    if name == "zssr":
        return ZSSR(config)
    kwargs = dict(options.get(name, {}))
    if name == "cspsr":
        unknown = sorted(set(kwargs) - {"model"})
        if unknown:
            raise InputError(f"cspsr takes no option {', '.join(unknown)}; options: model",
                             source="--option")
        return CSPSR(**kwargs)
    if name in SEEDED:
        kwargs.setdefault("seed", config.seed)
        kwargs.setdefault("device", config.device)
    try:
        return make_baseline(name, **kwargs)
    except (TypeError, ValueError) as error:
        raise InputError(str(error), source="--option") from None


def method_settings(name: str, config: Config, options: Mapping[str, Mapping[str, Any]]
                    ) -> dict[str, Any]:
    """What a run of ``name`` depends on besides its inputs (part of the store key)."""
    if name in CONFIGURED:
        fields = dataclasses.asdict(config)
        # what the fit computes in here, not "auto": a store read on a machine that
        # resolves it otherwise must not reuse these runs
        fields["precision"] = resolve_precision(config.precision, resolve_device(config.device))
        for field in ("threads", *STREAM_FIELDS):
            fields.pop(field, None)
        for field, default in LATER_FIELDS.items():
            if fields.get(field) == default:
                fields.pop(field)
        if not config.guided_median_radius:  # the shift is for the guided median alone
            fields.pop("guide_shift_search", None)
        if config.align == "none" or name == "zssr":  # no warp: its knobs change nothing
            for field in WARP_FIELDS:
                fields.pop(field, None)
        if name == "zssr":  # no guide: guide dropout, the self-check and the shift are off
            for field in [f for f in fields if f in ("guide_dropout", "guide_shift_search")
                          or f.startswith("self_check")]:
                fields.pop(field)
        return {"config": fields}
    settings: dict[str, Any] = {"options": dict(options.get(name, {}))}
    if name in LEARNED:  # a retrained model under the same name is another method
        model = settings["options"].get("model")
        settings["model_sha256"] = sha256_file(Path(model)) if model else ""
    if name in SEEDED:
        settings.update(seed=config.seed, device=config.device)
    return settings


def read_bands(path: Path, bands: tuple[int, ...] | None) -> np.ndarray:
    """``path`` read as a plain image (:func:`cmsr.files.read_image`, no georeferencing)
    with the bands numbered ``bands`` (from 1, as GDAL; None: every band), see
    :func:`cmsr.files.readers.select_bands`. A band the file lacks is a one-line
    :class:`InputError` naming the file."""
    return select_bands(read_image(path), bands, str(path))


def load_pair(scene: Scene, protocol: EvalProtocol) -> EvaluationPair:
    """Read a scene's files and make its low-resolution input as ``protocol`` says.

    With the ``real`` protocol a guide of another size than the truth is resized to
    the truth's size (bicubic), so every method predicts on the truth's pixel grid.
    With ``protocol.swap`` the scene's guide file is the truth and its target file the
    guide (its mask and low-resolution capture are not used). The protocol's
    ``target_band`` is taken from the file used as the truth and from the
    low-resolution capture, its ``guide_bands`` from the file used as the guide (so
    after the swap); files are read as plain images (a GeoTIFF's georeferencing and
    nodata are not used).
    """
    protocol.validate()
    target_bands = None if protocol.target_band is None else (protocol.target_band,)
    truth_file, guide_file = ((scene.guide, scene.target) if protocol.swap
                              else (scene.target, scene.guide))
    truth = read_bands(truth_file, target_bands)
    guide = read_bands(guide_file, protocol.guide_bands)
    low = mask = None
    if not protocol.swap:
        low = read_bands(scene.target_lr, target_bands) if scene.target_lr is not None else None
        mask = read_image(scene.mask) if scene.mask is not None else None
    if protocol.kind == "real" and guide.shape[:2] != truth.shape[:2]:
        tensor = array_to_tensor(guide.astype(np.float32))
        guide = tensor_to_array(resize(tensor, truth.shape[:2], kernel="cubic"))
    try:
        return apply_protocol(truth, guide, protocol, low=low, mask=mask)
    except InputError as error:
        if error.source is None:
            raise InputError(error.problem, source=str(scene.target.parent)) from None
        if error.source == "mask" and scene.mask is not None:  # name the file
            raise InputError(error.problem, source=str(scene.mask)) from None
        raise


def input_digest(pair: EvaluationPair) -> str:
    """sha256 over the exact arrays a method sees (input and guide) and the truth."""
    digest = hashlib.sha256()
    for array in (pair.low, pair.guide, pair.truth):
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class RunResult:
    """One scored run. Metrics are NaN for a failed run (``status == "failed"``).

    ``guide_choice`` is what cmsr's run-time self-check chose (:func:`guide_choice`):
    ``""`` for other methods, for a cmsr run without the check, and for a failed run.
    ``alignment`` is what its alignment check made of the coarse warp
    (:func:`alignment_choice`), ``""`` in the same cases and without coarse fits.
    ``guide_shift`` is what its guide-shift search did (:func:`guide_shift_choice`),
    ``""`` in the same cases, without the search, and for runs stored before it was kept.
    ``self_check_errors`` are the held-out errors the self-check chose from
    (:func:`self_check_errors`), ``""`` as ``guide_choice`` and for runs stored before
    0.18.
    """

    scene: str
    method: str
    protocol: str
    status: str
    rmse: float = math.nan
    mae: float = math.nan
    psnr: float = math.nan
    ssim: float = math.nan
    seconds: float = math.nan
    peak_rss_mb: float = math.nan
    cached: bool = False
    error: str = ""
    guide_choice: str = ""
    alignment: str = ""
    guide_shift: str = ""
    self_check_errors: str = ""

    FIELDS: ClassVar[tuple[str, ...]] = ("scene", "method", "protocol", "status", "rmse", "mae",
                               "psnr", "ssim", "seconds", "peak_rss_mb", "cached", "error",
                               *DECISIONS)

    def row(self) -> list[Any]:
        """The values in :attr:`FIELDS` order (for CSV)."""
        return [getattr(self, name) for name in self.FIELDS]


def run_key(digest: str, settings: Mapping[str, Any]) -> str:
    """The key of a run in the store: sha256 of the input digest (:func:`input_digest`),
    the method's settings (:func:`method_settings`), the store format and cmsr's version."""
    return settings_key({"inputs": digest, "settings": settings, "store": STORE_VERSION,
                         "cmsr": __version__})


def output_path(store: RunStore, protocol: str, scene: str, method: str) -> Path:
    """Where a run's output is kept: ``<store>/<protocol>/<scene>/<method>.npy``."""
    return store.folder / protocol / scene.replace("/", "__") / f"{method}.npy"


def _run_name(protocol: str, scene: str, method: str) -> str:
    return f"{protocol}/{scene}/{method}"


def _record_beside(output: Path, key: str) -> dict[str, Any] | None:
    """A run kept by cmsr before the shared store: a ``.json`` record beside its output,
    used while its key and the output's sha256 still match."""
    try:
        record = json.loads(output.with_suffix(".json").read_text())
        if record.get("key") == key and sha256_file(output) == record.get("output_sha256"):
            return record
    except (OSError, ValueError, AttributeError):
        pass
    return None


def stored_output(store: RunStore, protocol: str, scene: str, method: str, key: str
                  ) -> tuple[np.ndarray, dict[str, Any]] | None:
    """A finished run's output and its record, or None when absent, stale or damaged.

    The record's :data:`DECISIONS` (see :func:`keep_output`) are absent from records
    written before they were kept: read them with ``record.get(name, "")``.
    """
    output = output_path(store, protocol, scene, method)
    record = (store.finished(_run_name(protocol, scene, method), key, outputs=[output])
              or _record_beside(output, key))
    if record is None:
        return None
    try:
        return read_image(output), record
    except InputError:
        return None


def keep_output(store: RunStore, protocol: str, scene: str, method: str, key: str,
                output: np.ndarray, *, seconds: float, peak_rss_mb: float,
                **decisions: str) -> None:
    """Keep a finished run: its output (``.npy``, atomically), then the record that
    vouches for it, with its time, memory and ``decisions``, the :data:`DECISIONS` by
    name (each ``""`` when not given; in the record only, never in ``key``)."""
    unknown = set(decisions) - set(DECISIONS)
    if unknown:
        raise TypeError(f"not a decision: {', '.join(sorted(unknown))}")
    path = output_path(store, protocol, scene, method)
    write_image(path, output, overwrite=True)
    store.add(_run_name(protocol, scene, method),
              {"status": "ok", "key": key, "output": str(path),
               "output_sha256": sha256_file(path), "scene": scene, "method": method,
               "protocol": protocol, "seconds": seconds, "peak_rss_mb": peak_rss_mb,
               **{name: decisions.get(name, "") for name in DECISIONS}})


@dataclass(frozen=True)
class Event:
    """Progress of an evaluation, for a progress bar: a run starts, steps or ends."""

    kind: str  # "start", "step", "done"
    scene: str
    method: str
    step: int = 0
    result: RunResult | None = None


def guide_choice(check: SelfCheck | None) -> str:
    """What a cmsr run's self-check chose, in a few characters: its
    :attr:`SelfCheck.choice` (``"guided"``, ``"guide-free"``, ``"bicubic"``), a blend
    with its guide weight (``"blend 0.5"``); ``""`` without a check.

    Examples
    --------
    >>> guide_choice(SelfCheck(0.01, 0.012, 0.02, 100, "guided", 1.0))
    'guided'
    >>> guide_choice(SelfCheck(0.01, 0.012, 0.02, 100, "blend", 0.5, (0.011, 0.01, 0.012)))
    'blend 0.5'
    >>> guide_choice(None)
    ''
    """
    if check is None:
        return ""
    return f"blend {check.guide_weight:g}" if check.choice == "blend" else check.choice


def self_check_errors(check: SelfCheck | None) -> str:
    """The held-out errors a cmsr run's self-check chose from (L1 in unit range, see
    :class:`SelfCheck`), and the guide-free network's when it was asked again; ``""``
    without a check.

    Examples
    --------
    >>> self_check_errors(SelfCheck(0.0175091, 0.0179679, 0.0177485, 736, "guided", 1.0))
    'guided 0.0175091, guide-free 0.0179679, bicubic 0.0177485'
    >>> self_check_errors(SelfCheck(0.03, 0.025, 0.02, 9, "guide-free", 0.0, rechecked=0.019))
    'guided 0.03, guide-free 0.025, bicubic 0.02, guide-free again 0.019'
    """
    if check is None:
        return ""
    again = "" if check.rechecked is None else f", guide-free again {check.rechecked:.6g}"
    return (f"guided {check.guided:.6g}, guide-free {check.guide_free:.6g}, "
            f"bicubic {check.bicubic:.6g}{again}")


def alignment_choice(check: AlignmentCheck | None) -> str:
    """What a cmsr run's alignment check made of the coarse warp: ``"kept"`` or
    ``"dropped"``; ``""`` without a check (no coarse fits, or the check off).

    >>> alignment_choice(AlignmentCheck(0.5, 0.4, True, 0.05))
    'kept'
    >>> alignment_choice(None)
    ''
    """
    return "" if check is None else check.decision


def guide_shift_choice(shift: GuideShift | None) -> str:
    """What a cmsr run's guide-shift search (:mod:`cmsr.method.guide_shift`) did:
    ``"moved (rows, columns)"`` (output pixels, positive down and right) or ``"not
    moved"``; ``""`` without a search (off, or a result that is bicubic's).

    >>> guide_shift_choice(GuideShift((1, 0)))
    'moved (1, 0)'
    >>> guide_shift_choice(GuideShift((0, 0))), guide_shift_choice(None)
    ('not moved', '')
    """
    if shift is None:
        return ""
    return f"moved {shift.offset}" if shift.moved else "not moved"


@dataclass(frozen=True)
class MethodRun:
    """A method's output ``(H, W[, c])`` float32, what cmsr's self-check chose
    (:func:`guide_choice`), what its alignment check did (:func:`alignment_choice`),
    what its guide-shift search did (:func:`guide_shift_choice`) and the self-check's
    errors (:func:`self_check_errors`); all ``""`` for every other method and without
    the checks."""

    output: np.ndarray
    guide_choice: str = ""
    alignment: str = ""
    guide_shift: str = ""
    self_check_errors: str = ""

    def decisions(self) -> dict[str, str]:
        """The :data:`DECISIONS` by name."""
        return {name: getattr(self, name) for name in DECISIONS}


def run_method(name: str, pair: EvaluationPair, config: Config,
               options: Mapping[str, Mapping[str, Any]],
               on_step: Callable[[StepInfo], None] | None = None,
               keep_aligned: Callable[[np.ndarray], None] | None = None) -> MethodRun:
    """Fit ``name`` on the pair's input and guide; its output ``(H, W[, c])`` float32
    and, for cmsr, what its checks and its guide-shift search decided.

    ``keep_aligned`` is called with the guide as deformed by a learned warp
    (``(H, W, C)`` float32 in [0, 1]), when the method learned one.
    """
    method = make_method(name, config, options)
    guide = pair.guide if name in LEARNED else pair.guide_at_truth_size()
    if isinstance(method, CMSR):
        method.fit(pair.low, guide, on_step=on_step)
        if method.warp is not None and keep_aligned is not None:
            keep_aligned(method.aligned_guide()[0].permute(1, 2, 0).cpu().numpy())
        choice = guide_choice(method.self_check)
        alignment = alignment_choice(method.alignment_check)
        output = np.asarray(method.predict(), dtype=np.float32)
        # the search runs in predict()
        return MethodRun(output, choice, alignment, guide_shift_choice(method.guide_shift),
                         self_check_errors(method.self_check))
    method.fit(pair.low, guide)
    return MethodRun(np.asarray(method.predict(), dtype=np.float32))


def score_run(output: np.ndarray, pair: EvaluationPair, crop: int) -> Scores:
    """RMSE and MAE in the truth's units, PSNR and SSIM on its data range, masked."""
    return score(output, pair.truth, data_range=data_range_for(pair.truth), mask=pair.mask,
                 crop=crop)


def evaluate(scenes: Sequence[Scene], methods: Sequence[str], protocol: EvalProtocol,
             store: RunStore, *, config: Config,
             options: Mapping[str, Mapping[str, Any]] | None = None, crop: int = 0,
             recompute: bool = False, on_event: Callable[[Event], None] | None = None,
             keep_outputs: Callable[[Scene, EvaluationPair, dict[str, np.ndarray]], None]
             | None = None,
             keep_alignment: Callable[[Scene, EvaluationPair, np.ndarray], None] | None = None
             ) -> list[RunResult]:
    """Run every method on every scene (scene by scene) and score it.

    Parameters
    ----------
    scenes, methods:
        What to run; ``methods`` are names from :data:`METHODS`.
    protocol:
        How the input is made (and the guide displaced or noised).
    store:
        Where finished runs are kept and found again.
    config, options:
        Training settings for cmsr/zssr; keyword options per baseline.
    crop:
        Border pixels left out of every metric.
    recompute:
        Ignore stored runs (and replace them).
    on_event:
        Called when a run starts, at each cmsr training step, and when it ends.
    keep_outputs:
        Called once per scene with the pair and ``{method: output}`` of the runs that
        succeeded (e.g. to draw a comparison grid).
    keep_alignment:
        Called with the pair and the deformed guide ``(H, W, C)`` float32 in [0, 1]
        after each cmsr run computed here (not a stored one) that learned a warp.

    Returns
    -------
    list[RunResult]
        One per (scene, method), scene-major, each cmsr run with what its self-check
        chose (``guide_choice``; a stored run's as recorded, ``""`` from a record
        written before choices were kept). A failure (bad file, an exception in a
        method) is recorded with its message and the evaluation goes on;
        ``KeyboardInterrupt`` stops it, with every finished run already stored.
    """
    options = options or {}
    results: list[RunResult] = []
    notify = on_event or (lambda event: None)
    for scene in scenes:
        try:
            pair = load_pair(scene, protocol)
        except InputError as error:
            for method in methods:
                result = RunResult(scene.name, method, protocol.name, "failed",
                                   error=str(error))
                results.append(result)
                notify(Event("done", scene.name, method, result=result))
            continue
        digest = input_digest(pair)
        outputs: dict[str, np.ndarray] = {}
        for method in methods:
            notify(Event("start", scene.name, method))
            key = run_key(digest, method_settings(method, config, options))
            found = None if recompute else stored_output(store, protocol.name, scene.name,
                                                         method, key)
            if found is not None:
                output, record = found
                seconds, peak, cached = record["seconds"], record["peak_rss_mb"], True
                # older records lack some of them
                decisions = {name: str(record.get(name) or "") for name in DECISIONS}
            else:
                def step(info: StepInfo, scene: str = scene.name, method: str = method
                         ) -> None:
                    notify(Event("step", scene, method, step=info.step))

                aligned = None if keep_alignment is None else (
                    lambda guide, scene=scene, pair=pair: keep_alignment(scene, pair, guide))
                try:
                    with track_usage() as usage:
                        run = run_method(method, pair, config, options, on_step=step,
                                         keep_aligned=aligned)
                except Exception as error:  # recorded; the evaluation goes on
                    result = RunResult(scene.name, method, protocol.name, "failed",
                                       error=one_line(error))
                    results.append(result)
                    notify(Event("done", scene.name, method, result=result))
                    continue
                output, decisions = run.output, run.decisions()
                seconds, peak, cached = usage.seconds, usage.peak_rss_mb, False
                keep_output(store, protocol.name, scene.name, method, key, output,
                            seconds=seconds, peak_rss_mb=peak, **decisions)
            outputs[method] = output
            result = RunResult(scene.name, method, protocol.name, "ok",
                               **score_run(output, pair, crop), seconds=seconds,
                               peak_rss_mb=peak, cached=cached, **decisions)
            results.append(result)
            notify(Event("done", scene.name, method, result=result))
        if keep_outputs is not None and outputs:
            keep_outputs(scene, pair, outputs)
    return results
