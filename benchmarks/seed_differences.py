"""Where cmsr and ZSSR part on the real thermal captures: their squared errors over the
seeds of ``seed_spread.py``, pixel by pixel.

Nothing is trained here: the outputs are the seed runs' stored outputs, read and checked
against their CSVs as in ``seed_ensembles.py``. For each pair, the per-pixel squared
error of each method is averaged over the seeds, and their difference (cmsr minus ZSSR)
is ranked by size. The table gives, per pair:

* cmsr − ZSSR in PSNR (dB), the mean over the seeds (as ``seed_spread.md``);
* the share of the summed difference that lies in the 1% of pixels where it is
  largest in size;
* cmsr − ZSSR again with those 1% of pixels left out of both (the other 99%);
* how many of those pixels are saturated in the 8-bit truth (≥ 250);
* the highest value in those pixels: the truth's, and each method's (the lowest and
  highest over the seeds).

So it says whether a pair's verdict is the whole image's or a few pixels'. A second
table splits the runs by what cmsr's self-check chose (the eval's ``guide_choice``) and
gives cmsr − ZSSR on the same seed over the other 99% of pixels.

Usage: ``python benchmarks/seed_differences.py [--seeds 0,1,...,8] [--share 0.01]``;
writes ``results/seed_differences.md``. Needs the seed runs' outputs (``runs/``).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import numpy as np
from common import RESULTS, data_root, machine_line, markdown_table
from eval_suite import entry_protocol
from seed_ensembles import load_fits, spread_named
from seed_spread import spread_csv
from self_check_transfer import eval_choices

from cmsr.evaluation.datasets import find_scenes, select_scenes
from cmsr.evaluation.evaluate import load_pair
from cmsr.evaluation.metrics import data_range_for, psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8")
    parser.add_argument("--share", type=float, default=0.01,
                        help="the share of pixels where the methods differ most (0.01)")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    start = time.perf_counter()
    cmsr_spread, zssr_spread = spread_named("thermal-cmsr"), spread_named("thermal-zssr")
    entry = cmsr_spread.suite_entry
    protocol = entry_protocol(cmsr_spread.suite_entry, 0)
    scenes = select_scenes(find_scenes(data_root() / entry.data), entry.scenes or None)
    pairs = {scene.name: load_pair(scene, protocol) for scene in scenes}
    cmsr_fits = load_fits(cmsr_spread, seeds, pairs, "psnr")
    zssr_fits = load_fits(zssr_spread, seeds, pairs, "psnr")
    header = ["pair", "cmsr - ZSSR (dB)", f"share of the difference in {args.share:.0%} of pixels",
              "cmsr - ZSSR without them (dB)", "of them saturated (truth >= 250)",
              "peak there: truth", "cmsr (over the seeds)", "ZSSR (over the seeds)"]
    choices = {seed: eval_choices(spread_csv(cmsr_spread, seed)) for seed in seeds}
    by_choice: dict[str, list[float]] = collections.defaultdict(list)
    rows, whole, rest = [], [], []
    for scene, pair in pairs.items():
        truth = pair.truth.astype(np.float64).reshape(*pair.truth.shape[:2], -1)  # (H, W, c)
        if pair.mask is not None:
            raise SystemExit(f"{scene}: masked pairs are not handled")
        peak = data_range_for(pair.truth)
        cmsr_errors = [(cmsr_fits.outputs[seed][scene].reshape(truth.shape) - truth) ** 2
                       for seed in seeds]
        zssr_errors = [(zssr_fits.outputs[seed][scene].reshape(truth.shape) - truth) ** 2
                       for seed in seeds]
        # (H, W): the seed-mean squared errors' difference, averaged over the bands
        difference = (np.mean(cmsr_errors, axis=0) - np.mean(zssr_errors, axis=0)).mean(axis=-1)
        count = max(1, round(args.share * difference.size))
        top = np.zeros(difference.size, dtype=bool)
        top[np.argsort(np.abs(difference).ravel())[::-1][:count]] = True
        top = top.reshape(difference.shape)
        # whole image: the scores load_fits checked against the CSVs
        gap = statistics.fmean(cmsr_fits.scores[seed][scene] - zssr_fits.scores[seed][scene]
                               for seed in seeds)
        gaps_rest = [psnr(cmsr_fits.outputs[seed][scene], pair.truth, data_range=peak, mask=~top)
                     - psnr(zssr_fits.outputs[seed][scene], pair.truth, data_range=peak,
                            mask=~top) for seed in seeds]
        gap_rest = statistics.fmean(gaps_rest)
        for seed, value in zip(seeds, gaps_rest, strict=True):
            by_choice[choices[seed].get(scene, "")].append(value)
        share = float(difference[top].sum() / difference.sum())
        saturated = int((truth[top].max(axis=-1) >= 250).sum())
        whole.append(gap)
        rest.append(gap_rest)
        peaks = {name: [float(fits.outputs[seed][scene].reshape(truth.shape)[top].max())
                        for seed in seeds]
                 for name, fits in (("cmsr", cmsr_fits), ("zssr", zssr_fits))}
        rows.append([scene, f"{gap:+.2f}", f"{share:.2f}", f"{gap_rest:+.2f}",
                     f"{saturated} of {count}", f"{truth[top].max():.0f}",
                     *[f"{min(values):.0f}-{max(values):.0f}" for values in peaks.values()]])
        print(" | ".join(rows[-1]), flush=True)
    rows.append(["mean", f"{statistics.fmean(whole):+.3f}", "", f"{statistics.fmean(rest):+.3f}",
                 "", "", "", ""])
    choice_rows = [[choice or "(not recorded)", str(len(gaps)), f"{statistics.fmean(gaps):+.3f}",
                    f"{sum(gap > 0 for gap in gaps)} of {len(gaps)}"]
                   for choice, gaps in sorted(by_choice.items())]
    choice_header = ["cmsr's self-check chose", "runs",
                     "cmsr - ZSSR without those pixels (dB)", "cmsr ahead"]
    markdown = "\n".join([
        "# Where cmsr and ZSSR part on the real thermal captures", "",
        f"{machine_line()}; `thermal/unaligned` real x8 (cubic-aliased), seeds "
        f"{', '.join(map(str, seeds))}; the seed runs' stored outputs (0.18), nothing "
        "trained here. A share above 1 means the other pixels lean the other way.", "",
        markdown_table(header, rows), "", "By the self-check's choice, run by run (the same "
        "seed of each method), over the pixels left when each pair's 1% are left out:", "",
        markdown_table(choice_header, choice_rows), "",
        f"{time.perf_counter() - start:.0f} s."])
    print()
    print(markdown)
    (RESULTS / "seed_differences.md").write_text(markdown + "\n")


if __name__ == "__main__":
    main()
