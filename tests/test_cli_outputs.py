"""Output checks made before any work: figures never replace inputs or the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmsr.cli import main
from cmsr.cli.outputs import check_figures
from cmsr.errors import InputError
from cmsr.files import read_image, same_file, write_image


def test_same_file_sees_links(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"x")
    (tmp_path / "hard.png").hardlink_to(target)
    (tmp_path / "soft.png").symlink_to(target)
    assert same_file(target, tmp_path / "hard.png")
    assert same_file(target, tmp_path / "soft.png")
    assert same_file(target, tmp_path / "sub" / ".." / "a.png")
    assert not same_file(target, tmp_path / "b.png")


def test_a_figure_never_replaces_an_input(tmp_path: Path) -> None:
    guide = tmp_path / "comparison.png"
    guide.write_bytes(b"x")
    with pytest.raises(InputError, match="is also an input"):
        check_figures(tmp_path, overwrite=True, alignment=False, inputs=(guide,))


def test_a_figure_never_replaces_the_result(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="both the result"):
        check_figures(tmp_path, overwrite=True, alignment=False,
                      output=tmp_path / "loss_curve.png")


def test_cli_refuses_figures_over_the_target(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    target = (np.arange(64).reshape(8, 8) * 3).astype(np.uint8)
    write_image(tmp_path / "comparison.png", target)
    write_image(tmp_path / "guide.png", np.kron(target, np.ones((4, 4), np.uint8)))
    code = main(["sr", "--target", str(tmp_path / "comparison.png"), "--guide",
                 str(tmp_path / "guide.png"), "-o", str(tmp_path / "out.png"),
                 "--save-figures", str(tmp_path), "--overwrite", "--preset", "quick",
                 "--quiet"])
    assert code == 2 and "is also an input" in capsys.readouterr().err
    assert np.array_equal(read_image(tmp_path / "comparison.png"), target)
    assert not (tmp_path / "out.png").exists()
