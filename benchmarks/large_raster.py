"""A large GeoTIFF through ``cmsr sr``: wall time, peak memory, tiles, output size.

Builds a guide of ``--tiles`` x ``--tiles`` copies of the 480x480 Sentinel-2 guide of
``geo/srtm_s2/aberystwyth`` (mirrored alternately, so edges continue; 21 copies give
10080x10080 pixels of 10 m) and a matching coarse target at 40 m (the 30 m SRTM of the
same scene resampled to 120x120 per copy, so the scale is exactly x4), written window
by window into a temporary folder outside the repository. Then runs ``cmsr sr`` on the
pair in a child process with a cheap setting (preset quick, no self-ensemble, no
learned alignment) and reports the child's wall time and peak RSS
(``resource.getrusage(RUSAGE_CHILDREN)``) to ``benchmarks/results/large_raster.md``.

    CMSR_DATA=/work/shared/data python benchmarks/large_raster.py --tiles 21
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, data_root, machine_line

from cmsr.method.resample import resize

SCENE = Path("geo") / "srtm_s2" / "aberystwyth"
GUIDE = "guide_s2_b2_b3_b4_b8_10m.tif"
TARGET = "target_srtm_30m_osgb.tif"


def _mirrored(block: np.ndarray, row: int, col: int) -> np.ndarray:
    """``block`` ``(C, H, W)`` flipped vertically on odd rows, horizontally on odd columns."""
    out = block[:, ::-1] if row % 2 else block
    return np.ascontiguousarray(out[:, :, ::-1] if col % 2 else out)


def build_pair(folder: Path, tiles: int) -> tuple[Path, Path]:
    """Write the mosaicked guide and target GeoTIFFs into ``folder``."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    source = data_root() / SCENE
    with rasterio.open(source / GUIDE) as guide_file:
        guide = guide_file.read()
        crs, transform = guide_file.crs, guide_file.transform
    with rasterio.open(source / TARGET) as target_file:
        srtm = target_file.read(1).astype(np.float32)
    side = guide.shape[1] // 4  # 480 px of 10 m -> 120 px of 40 m
    coarse = resize(torch.from_numpy(srtm)[None, None], (side, side), kernel="linear")
    target = coarse[0].numpy()
    left, top = transform.c, transform.f
    outputs = []
    for name, block, pixel in (("guide.tif", guide, 10.0), ("target.tif", target, 40.0)):
        size = block.shape[1] * tiles
        path = folder / name
        profile = {"driver": "GTiff", "width": size, "height": size, "count": block.shape[0],
                   "dtype": block.dtype.name, "crs": crs,
                   "transform": Affine(pixel, 0.0, left, 0.0, -pixel, top),
                   "tiled": True, "blockxsize": 512, "blockysize": 512,
                   "compress": "deflate", "BIGTIFF": "IF_SAFER"}
        with rasterio.open(path, "w", **profile) as out:
            n = block.shape[1]
            for row in range(tiles):
                for col in range(tiles):
                    out.write(_mirrored(block, row, col), window=Window(col * n, row * n, n, n))
        outputs.append(path)
    return outputs[0], outputs[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles", type=int, default=21,
                        help="copies of the 480x480 guide per side (21: 10080x10080)")
    parser.add_argument("--iters", type=int, default=40, help="training steps (preset quick)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cmsr-large-") as name:
        folder = Path(name)
        start = time.perf_counter()
        guide, target = build_pair(folder, args.tiles)
        built = time.perf_counter() - start
        output = folder / "result.tif"
        command = [sys.executable, "-m", "cmsr", "sr", "--target", str(target), "--guide",
                   str(guide), "-o", str(output), "--preset", "quick", "--iters",
                   str(args.iters), "--no-ensemble", "--align", "none", "--threads",
                   str(args.threads)]
        start = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        log = run.stderr.replace("\r", "\n")
        if run.returncode != 0:
            print(log, file=sys.stderr)
            return 1
        import rasterio

        with rasterio.open(output) as result:
            shape, dtype, blocks = (result.height, result.width), result.dtypes[0], \
                result.block_shapes[0]
            sample = result.read(1, window=((0, 512), (0, 512)))
        size_mb = output.stat().st_size / 1e6
        wrote = [line for line in log.splitlines() if line.startswith("cmsr: wrote")]
        lines = [
            "# A large GeoTIFF through cmsr sr",
            "",
            f"Machine: {machine_line()} (the child ran with --threads {args.threads}, under "
            "`nice`, beside other work on the 2 cores).",
            "",
            f"- Guide: {args.tiles}x{args.tiles} mirrored copies of the 480x480 Sentinel-2 "
            f"guide of `{SCENE}` (4 bands uint16, 10 m): {shape[1]}x{shape[0]} pixels; "
            f"target: the scene's 30 m SRTM resampled to 40 m and mosaicked the same way "
            f"({shape[1] // 4}x{shape[0] // 4}), x4. Built in {built:.0f} s.",
            f"- Command: `cmsr sr --preset quick --iters {args.iters} --no-ensemble --align "
            f"none --threads {args.threads}` (default --stream-above 4096*4096, tiles of "
            "1024 output pixels).",
            f"- Wall time of `cmsr sr`: {wall:.0f} s; peak RSS of the child process: "
            f"{peak_mb:.0f} MB.",
            f"- Output: {shape[1]}x{shape[0]} {dtype}, blocks {blocks[1]}x{blocks[0]}, "
            f"DEFLATE, {size_mb:.0f} MB on disk; first block mean {float(sample.mean()):.1f}.",
            f"- cmsr's own line: `{wrote[-1] if wrote else '(none)'}`",
        ]
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "large_raster.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        if args.keep:
            print(f"kept in {folder}")
            input("press Enter to remove it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
