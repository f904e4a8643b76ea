"""Make ``resize_octave.npz``: golden values for cmsr's MATLAB-style resize from GNU Octave.

Octave's ``imresize`` (package ``image`` 2.14, rewritten in 2022 to match MATLAB,
antialiased reduction included) is an implementation that shares nothing with
:mod:`cmsr.method.resample`. This script feeds it small integer-valued images and keeps
what it returns; ``tests/test_resample_golden.py`` compares cmsr with the stored arrays,
so the tests never need Octave.

Run once, from the repository root, where Octave is installed
(``apt-get install octave octave-image``)::

    .venv/bin/python tests/golden/make_resize_golden.py

Every case gives Octave the output size (``[rows cols]``), so the scale per axis is
``out / in``, as in :func:`cmsr.method.resample.resize`. Only integer reduction factors
are used: Octave does not renormalise the widened kernel's weights, which MATLAB does;
for integer factors (and for every enlargement) the cubic and linear weights sum to 1
anyway, so the two agree there and nowhere else is asked.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "resize_octave.npz"

#: name: (input (rows, cols), output (rows, cols), Octave method, antialiasing)
CASES: dict[str, tuple[tuple[int, int], tuple[int, int], str, bool]] = {
    "cubic_x2": ((8, 8), (16, 16), "bicubic", True),
    "cubic_x3_nonsquare": ((8, 10), (24, 30), "bicubic", True),
    "cubic_x4_nonsquare": ((8, 6), (32, 24), "bicubic", True),
    "cubic_x1.5": ((8, 6), (12, 9), "bicubic", True),
    "cubic_div2": ((16, 16), (8, 8), "bicubic", True),
    "cubic_div4_nonsquare": ((16, 12), (4, 3), "bicubic", True),
    "cubic_div3_nonsquare": ((12, 15), (4, 5), "bicubic", True),
    "cubic_x2_rows_div2_cols": ((8, 16), (16, 8), "bicubic", True),
    "cubic_div2_aliased": ((16, 12), (8, 6), "bicubic", False),
    "linear_x2": ((8, 8), (16, 16), "bilinear", True),
    "linear_div2": ((16, 12), (8, 6), "bilinear", True),
    "linear_div2_aliased": ((16, 12), (8, 6), "bilinear", False),
}


def octave(script: str) -> str:
    done = subprocess.run(["octave-cli", "--no-gui", "--quiet", "--eval", script],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 and "error:" in done.stdout + done.stderr.replace(
            "error: ignoring const execution_exception", ""):
        sys.exit(f"octave failed:\n{done.stderr}")
    return done.stdout


def main() -> None:
    rng = np.random.default_rng(13)
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        lines = ["pkg load image;"]
        for index, (name, (shape, size, method, antialias)) in enumerate(CASES.items()):
            image = rng.integers(0, 256, size=shape).astype(np.uint8)
            arrays[f"{name}/input"] = image
            np.savetxt(work / f"in{index}.txt", image, fmt="%d")
            lines.append(
                f"x = load('{work}/in{index}.txt'); "
                f"y = imresize(x, [{size[0]} {size[1]}], '{method}', "
                f"'Antialiasing', {str(antialias).lower()}); "
                f"f = fopen('{work}/out{index}.txt', 'w'); "
                f"fprintf(f, [repmat('%.17g ', 1, columns(y)) '\\n'], y.'); fclose(f);")
        lines.append("disp(version()); p = pkg('list', 'image'); disp(p{1}.version);")
        versions = octave("\n".join(lines)).split()
        for index, (name, (_, size, _, _)) in enumerate(CASES.items()):
            result = np.loadtxt(work / f"out{index}.txt", ndmin=2)
            if result.shape != size:
                sys.exit(f"{name}: Octave returned {result.shape}, expected {size}")
            arrays[f"{name}/output"] = result
    arrays["versions"] = np.array(f"GNU Octave {versions[0]}, image package {versions[1]}")
    np.savez_compressed(OUTPUT, **arrays)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes; {arrays['versions']})")


if __name__ == "__main__":
    main()
