"""``cmsr batch``: super-resolve every pair of a dataset, resumably, on local cores or Dask.

Writes into OUT_DIR one result per pair (``<scene>/result.png`` for scene folders,
the ``output`` column (a path inside OUT_DIR) or ``<name>.png`` for CSV manifests;
``.tif`` where PNG cannot hold the result), ``manifest.jsonl`` (what finished, with
content hashes: a rerun skips exactly those) and ``summary.csv`` (one row per pair).
Exit code 0 when every pair succeeded, 1 when some failed (a manifest row naming a
missing file is one of them), 2 for usage errors, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from cmsr.batches.backends import LOCAL_DASK, make_backend
from cmsr.batches.plan import MANIFEST_NAME, SUMMARY_NAME, BatchSettings, plan_jobs
from cmsr.batches.results import JobResult
from cmsr.batches.run import Triage, run_batch
from cmsr.cli.options import (
    add_pair_role_options,
    add_state_options,
    add_training_options,
    config_from_args,
    load_start_states,
)
from cmsr.cli.rasters import add_pair_band_options
from cmsr.errors import InputError
from cmsr.evaluation.datasets import find_scenes, select_scenes
from cmsr.evaluation.protocols import KINDS, USUAL_SCALES, EvalProtocol
from cmsr.learned.inference import LearnedModel
from cmsr.method.train import StepInfo

BATCH_EXAMPLES = f"""examples:
  cmsr batch data/thermal -o out/ --preset thermal
  cmsr batch pairs.csv -o out/ --workers 1 --threads 2
  cmsr batch data/middlebury13 -o out/ --preset depth --protocol avgpool --scale 4
  cmsr batch data/nir -o out/ --warm-start --init out-before/states/0001.pt
  cmsr batch data/rig -o out/ --align full --load-warp rig.pt --freeze-warp
  cmsr batch data/nir -o out/ --scheduler {LOCAL_DASK}
  cmsr batch data/nir -o out/ --scheduler tcp://10.0.0.5:8786
  cmsr batch data/rig -o out/ --model rig.pt        # a model from cmsr train: no fitting

Run the same command again to resume: pairs whose inputs, settings and output are
unchanged (by sha256, see OUT_DIR/{MANIFEST_NAME}) are skipped; failed ones are retried.
--overwrite lets the batch replace output files it did not write itself; it does not
recompute finished pairs (delete OUT_DIR/{MANIFEST_NAME} for that). --threads is the
torch threads of each worker.
"""

#: Exit code when some pair failed (the others are written).
EXIT_SOME_FAILED = 1
#: Exit code after Ctrl-C (what finished is kept).
EXIT_INTERRUPTED = 130


def add_batch_parser(commands: argparse._SubParsersAction) -> None:
    """Declare ``cmsr batch`` and its options."""
    parser = commands.add_parser(
        "batch", help="super-resolve every pair of a folder of scenes or a CSV manifest",
        description="Train on each pair and write its result; resumable, in parallel on "
                    "local cores or on a Dask cluster. In a scene folder the input is "
                    "target_*_lr* where present, else target_* when it is smaller than "
                    "the guide; a target_* as large as the guide is the ground truth, "
                    "reduced by --protocol/--scale to make the input, and results are "
                    "scored against it.",
        epilog=BATCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path,
                        help="a folder of scene folders (guide_*, target_*, optional "
                             "target_*_lr*, mask_*) or a CSV manifest "
                             "(target,guide[,lr,mask,output,name]; output: a path "
                             "inside OUT_DIR)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT_DIR",
                        help="folder for results, manifest.jsonl and summary.csv "
                             "(created; reused to resume)")
    add_training_options(parser, default_preset="thermal")
    parser.add_argument("--protocol", choices=[kind for kind, kernel in KINDS.items() if kernel],
                        default="bicubic",
                        help="how the input is made from a full-size target: average "
                             "pooling (MMSR) or MATLAB bicubic (CMSR) (default: bicubic)")
    parser.add_argument("--scale", type=int, choices=USUAL_SCALES, default=4,
                        help="reduction factor of --protocol (default: 4)")
    parser.add_argument("--scenes", default=None, metavar="NAMES",
                        help="comma-separated scene names or glob patterns (default: all)")
    parser.add_argument("--invalid", type=float, default=None, metavar="VALUE",
                        help="target value meaning 'no measurement' (e.g. 0 in depth maps)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes (default: cores / --threads, with --threads "
                             "defaulting to 1; 0 = run in this process)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help=f"run on Dask: a scheduler address (tcp://host:8786) or "
                             f"'{LOCAL_DASK}' for a cluster on this machine "
                             "(needs pip install 'cmsr[cluster]')")
    parser.add_argument("--warm-start", action="store_true",
                        help="start each pair from the previous pair's networks and warp "
                             "(pairs in name order, one after another in one worker; each "
                             "pair's state is saved as OUT_DIR/states/<scene>.pt)")
    add_state_options(parser)
    parser.add_argument("--model", type=Path, default=None, metavar="MODEL.pt",
                        help="apply a model made by cmsr train to every pair instead of "
                             "fitting on it (with a --reduce-guide model and without "
                             "--reduce-guide, a target as large as its guide is an input)")
    add_pair_role_options(parser)
    add_pair_band_options(parser)
    parser.set_defaults(run=run_batch_command)


class BatchProgress:
    """One bar over the pairs; the running pairs' training steps in its postfix."""

    #: Seconds between redraws for training steps alone.
    REDRAW_INTERVAL = 0.5

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.steps: dict[str, str] = {}
        self._drawn = 0.0

    def start(self, total: int, done: int) -> None:
        """Open the bar: ``total`` pairs, ``done`` of them finished in an earlier run."""
        self.bar = tqdm(total=total, initial=done, unit="pair", desc="cmsr batch",
                        disable=not self.enabled, dynamic_ncols=True, file=sys.stderr)

    def step(self, scene: str, info: StepInfo) -> None:
        """A running pair's training step."""
        stage = f" stage {info.stage + 1}/{info.stages}" if info.stages > 1 else ""
        self.steps[scene] = f"{scene}{stage} step {info.step}/{info.max_steps}"
        now = time.monotonic()
        if self.bar is not None and now - self._drawn >= self.REDRAW_INTERVAL:
            self._drawn = now
            self.bar.set_postfix_str(", ".join(self.steps.values()))

    def result(self, result: JobResult) -> None:
        """A pair finished (or failed)."""
        self.steps.pop(result.scene, None)
        if self.bar is None:
            return
        if result.status != "ok":
            self.bar.write(f"cmsr batch: {result.scene} failed: {result.error}",
                           file=sys.stderr)
        self.bar.set_postfix_str(", ".join(self.steps.values()), refresh=False)
        self.bar.update()

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


def settings_from_args(args: argparse.Namespace) -> BatchSettings:
    """The batch settings the options describe; reads --init and --load-warp now."""
    if args.save_figures is not None:
        raise InputError("cmsr batch writes no figures", source="--save-figures")
    for option, value in (("--save-checkpoint", args.save_checkpoint),
                          ("--save-warp", args.save_warp)):
        if value is not None:
            raise InputError("cmsr batch keeps each pair's networks and warp as "
                             "OUT_DIR/states/<scene>.pt with --warm-start", source=option)
    # fail now, not per pair; a remote cluster's workers may have a device this machine lacks
    here = args.scheduler in (None, LOCAL_DASK)
    config, _, _ = load_start_states(args, config_from_args(args, device_here=here))
    protocol = EvalProtocol(kind=args.protocol, scale=args.scale, seed=args.seed,
                            disparity=args.disparity, swap=args.swap,
                            reduce_guide=args.reduce_guide, target_band=args.target_band,
                            guide_bands=args.guide_bands)
    protocol.validate()
    inputs_at_guide_size = False
    if args.model is not None:
        for option, value in (("--warm-start", args.warm_start), ("--init", args.init),
                              ("--load-warp", args.load_warp)):
            if value:
                raise InputError("belongs to fitting on each pair; --model applies a "
                                 "trained model", source=option)
        model = LearnedModel.load(args.model)  # a bad file fails now, not per pair
        inputs_at_guide_size = model.guide_is_low and not args.reduce_guide
    return BatchSettings(config=config, protocol=protocol, invalid=args.invalid,
                         warm_start=args.warm_start, init=args.init,
                         warp_init=args.load_warp, overwrite=args.overwrite,
                         model=args.model, inputs_at_guide_size=inputs_at_guide_size)


def run_batch_command(args: argparse.Namespace) -> int:
    """``cmsr batch``: see the module docstring."""
    settings = settings_from_args(args)
    out_dir: Path = args.output
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a folder", source=str(out_dir))
    # a manifest row naming a missing file is recorded as failed; the other rows run
    scenes = select_scenes(find_scenes(args.data, keep_missing=True), args.scenes)
    from_manifest = args.data.is_file()
    jobs = plan_jobs(scenes, out_dir, settings, from_manifest=from_manifest)
    out_dir.mkdir(parents=True, exist_ok=True)
    chains = 1 if settings.warm_start else len(jobs)
    backend, where = make_backend(args.scheduler, workers=args.workers, threads=args.threads,
                                  chains=chains)
    progress = BatchProgress(enabled=not args.quiet)

    def on_triage(plan: Triage) -> None:
        todo = sum(len(chain.jobs) for chain in plan.chains)
        if not args.quiet:
            chain = "; warm start: one chain, run in order" if settings.warm_start else ""
            print(f"cmsr batch: {len(jobs)} pairs, {len(plan.skipped)} done before, "
                  f"{todo} to run {where}{chain}", file=sys.stderr)
        progress.start(len(jobs), len(plan.skipped))

    try:
        results = run_batch(jobs, out_dir, backend, settings=settings,
                            on_result=progress.result, on_step=progress.step,
                            on_triage=on_triage)
    except KeyboardInterrupt:
        progress.close()
        print(f"cmsr batch: interrupted; finished pairs are kept (see "
              f"{out_dir / SUMMARY_NAME}); run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    progress.close()
    counts = {status: sum(r.status == status for r in results)
              for status in ("ok", "skipped", "failed", "conflict")}
    conflicts = (f", {counts['conflict']} kept because their outputs were changed since "
                 f"(--overwrite replaces them)" if counts["conflict"] else "")
    print(f"cmsr batch: {counts['ok']} ok, {counts['skipped']} skipped (done before), "
          f"{counts['failed']} failed{conflicts} of {len(results)} pairs; summary "
          f"{out_dir / SUMMARY_NAME}", file=sys.stderr)
    return EXIT_SOME_FAILED if counts["failed"] or counts["conflict"] else 0
