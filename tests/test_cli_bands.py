"""Band choice (``--target-band``, ``--guide-bands``) in ``cmsr eval``, ``batch``, ``train``
and ``cmsr sr --model``; the pair read by ``load_pair`` and a batch's ``load_input``.

Tiny synthetic files: 3-band uint8 targets and 4-band uint8 guides (TIFF), each band
different, so that a wrong band gives other numbers. A chosen band is checked against a
run on single-band files holding just that band.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from test_cli_learned import TINY

from cmsr.batches.plan import BatchSettings, Job
from cmsr.batches.run import load_input
from cmsr.cli import main
from cmsr.errors import InputError
from cmsr.evaluation.datasets import Scene
from cmsr.evaluation.evaluate import load_pair
from cmsr.evaluation.protocols import EvalProtocol, reduced_guide
from cmsr.files import read_image, write_image
from cmsr.learned.inference import LearnedModel
from cmsr.learned.model_file import load_model
from cmsr.method.config import Config

SIZE = 32
GUIDE_BANDS = (3, 1)


def bands_of(index: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A scene's 3-band target ``(size, size, 3)`` and 4-band guide ``(size, size, 4)``,
    uint8 in 20..230, every band different."""
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.sin(5 * x + 3 * y + index) + 0.3 * rng.standard_normal((size, size))
    other = np.cos(7 * y - 2 * x + index)
    target = np.stack([base, -base, other], axis=-1)
    guide = np.stack([base, other, base * other, -other], axis=-1)
    return tuple(np.clip(125 + 80 * image, 20, 230).astype(np.uint8)  # type: ignore[return-value]
                 for image in (target, guide))


def write_scene(folder: Path, target: np.ndarray, guide: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    write_image(folder / "target_t.tif", target)
    write_image(folder / "guide_g.tif", guide)
    return folder


def write_data(root: Path, count: int = 3, *, band: int | None = None,
               guide_bands: tuple[int, ...] | None = None) -> Path:
    """``count`` scenes of :func:`bands_of`; with ``band`` / ``guide_bands``, files holding
    only those bands (what a run with the band options must see)."""
    for index in range(count):
        target, guide = bands_of(index)
        if band is not None:
            target = target[..., band - 1]
        if guide_bands is not None:
            guide = guide[..., [b - 1 for b in guide_bands]]
        write_scene(root / f"scene{index}", target, guide)
    return root


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cmsr: error: "), lines
    return lines[0]


def summary(out: Path) -> dict[str, dict[str, str]]:
    with (out / "summary.csv").open(newline="") as fh:
        return {row["scene"]: row for row in csv.DictReader(fh)}


# --------------------------------------------------------------------------- reading pairs


def test_load_pair_takes_the_bands_of_the_files_in_their_roles(tmp_path: Path) -> None:
    target, guide = bands_of(0)
    lr = target[::2, ::2]
    folder = write_scene(tmp_path / "s", target, guide)
    write_image(folder / "target_t_lr.tif", lr)
    scene = Scene("s", folder / "guide_g.tif", folder / "target_t.tif",
                  target_lr=folder / "target_t_lr.tif")
    pair = load_pair(scene, EvalProtocol("bicubic", 2, target_band=2, guide_bands=(3, 1)))
    assert np.array_equal(pair.truth, target[..., 1])
    assert np.array_equal(pair.guide, guide[..., [2, 0]])
    plain = load_pair(scene, EvalProtocol("bicubic", 2))
    assert not np.allclose(pair.low, plain.low[..., 0])  # not band 1
    assert np.allclose(pair.low, plain.low[..., 1])  # the reduction of band 2
    # a real capture gives the same band as its truth
    real = load_pair(scene, EvalProtocol("real", target_band=3))
    assert np.array_equal(real.low, lr[..., 2]) and np.array_equal(real.truth, target[..., 2])
    # after --swap the target band is the guide file's, the guide bands the target file's
    swapped = load_pair(scene, EvalProtocol("bicubic", 2, swap=True, target_band=4,
                                            guide_bands=(2,)))
    assert np.array_equal(swapped.truth, guide[..., 3])
    assert np.array_equal(swapped.guide, target[..., 1])
    with pytest.raises(InputError, match=r"target_t\.tif: has no band 4 \(it has 3 bands"):
        load_pair(scene, EvalProtocol("bicubic", 2, target_band=4))
    with pytest.raises(InputError, match=r"target_t_lr\.tif: has no band 2 \(it has 1 band"):
        write_image(folder / "target_t_lr.tif", lr[..., 0], overwrite=True)
        load_pair(scene, EvalProtocol("real", target_band=2))


def test_batch_input_takes_the_bands_for_captures_and_small_targets(tmp_path: Path) -> None:
    target, guide = bands_of(1)
    folder = write_scene(tmp_path / "s", target, guide)
    write_image(folder / "target_t_lr.tif", target[::4, ::4])
    small = write_scene(tmp_path / "small", target[::4, ::4], guide)
    settings = BatchSettings(config=Config.preset("quick"),
                             protocol=EvalProtocol("bicubic", 4, target_band=3,
                                                   guide_bands=(4,)))
    real = load_input(Job(Scene("s", folder / "guide_g.tif", folder / "target_t.tif",
                                target_lr=folder / "target_t_lr.tif"), tmp_path / "o.png",
                          settings, tmp_path))
    assert np.array_equal(real.low, target[::4, ::4, 2])
    assert real.truth is not None and np.array_equal(real.truth, target[..., 2])
    assert np.array_equal(real.guide, guide[..., 3])
    lone = load_input(Job(Scene("small", small / "guide_g.tif", small / "target_t.tif"),
                          tmp_path / "p.png", settings, tmp_path))
    assert lone.truth is None and np.array_equal(lone.low, target[::4, ::4, 2])
    assert np.array_equal(lone.guide, guide[..., 3])


# --------------------------------------------------------------------------- cmsr eval


def test_eval_uses_the_chosen_bands_and_names_the_protocol_by_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    methods = ["--methods", "bicubic,guided-filter", "--scale", "2", "--quiet"]
    multi = write_data(tmp_path / "multi", 2)
    single = write_data(tmp_path / "single", 2, band=2, guide_bands=GUIDE_BANDS)
    report = tmp_path / "report"
    assert main(["eval", str(multi), "-o", str(report), "--target-band", "2",
                 "--guide-bands", "3,1", *methods]) == 0
    assert main(["eval", str(single), "-o", str(tmp_path / "ref"), *methods]) == 0
    assert main(["eval", str(multi), "-o", str(report), "--target-band", "3",
                 "--guide-bands", "3,1", *methods]) == 0
    chosen = report / "runs" / "bicubic-x2-band2-gbands3.1"
    assert (report / "bicubic-x2-band2-gbands3.1.csv").is_file()
    for method in ("bicubic", "guided-filter"):
        got = read_image(chosen / "scene0" / f"{method}.npy")
        want = read_image(tmp_path / "ref" / "runs" / "bicubic-x2" / "scene0" / f"{method}.npy")
        other = read_image(report / "runs" / "bicubic-x2-band3-gbands3.1" / "scene0"
                           / f"{method}.npy")
        assert got.shape == (SIZE, SIZE) and np.array_equal(got, want)
        assert not np.allclose(got, other)  # band 3 is another run, kept apart
    rows = list(csv.DictReader((report / "bicubic-x2-band3-gbands3.1.csv").open()))
    assert all(r["status"] == "ok" and r["cached"] == "False" for r in rows)

    # a band the files lack fails each scene with the file named; the exit code is 1
    capsys.readouterr()
    assert main(["eval", str(multi), "-o", str(report), "--target-band", "5",
                 *methods]) == 1
    rows = list(csv.DictReader((report / "bicubic-x2-band5.csv").open()))
    assert all(r["status"] == "failed" for r in rows)
    assert "target_t.tif: has no band 5 (it has 3 bands, numbered from 1)" in rows[0]["error"]
    with pytest.raises(SystemExit) as refused:  # by the parser: bands are numbered from 1
        main(["eval", str(multi), "-o", str(report), "--guide-bands", "1,0", *methods])
    assert refused.value.code == 2
    assert "expected band numbers from 1" in capsys.readouterr().err


# --------------------------------------------------------------------------- cmsr train


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny x2 models trained on band 2 of 3-band targets with guide bands 3,1: one with a
    full-size guide, one with a low-resolution guide (--reduce-guide); and the data."""
    root = tmp_path_factory.mktemp("bands")
    data = write_data(root / "data")
    made = {"data": data}
    for name, extra in (("high", []), ("low", ["--reduce-guide"])):
        made[name] = root / f"{name}.pt"
        assert main(["train", str(data), "-o", str(made[name]), "--method", "cspsr",
                     "--scale", "2", "--target-band", "2", "--guide-bands", "3,1",
                     "--max-steps", "3", *extra, *TINY]) == 0
    return made


def test_train_learns_from_the_chosen_bands(models: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, info = load_model(models["high"])
    assert (info.target_bands, info.guide_bands) == (1, 2)
    assert info.protocol["name"] == "bicubic-x2-band2-gbands3.1"
    assert info.protocol["target_band"] == 2 and info.protocol["guide_bands"] == [3, 1]
    assert load_model(models["low"])[1].protocol["name"] == "bicubic-x2-lowguide-band2-gbands3.1"
    capsys.readouterr()
    assert main(["train", str(models["data"]), "-o", str(tmp_path / "m.pt"), "--method",
                 "cspsr", "--scale", "2", "--guide-bands", "2,5", "--max-steps", "1",
                 *TINY]) == 2
    line = error_line(capsys)
    assert "guide_g.tif: has no band 5 (it has 4 bands, numbered from 1)" in line
    assert not (tmp_path / "m.pt").exists()


# --------------------------------------------------------------------------- cmsr batch


def test_batch_uses_the_bands_records_a_pair_without_them_and_goes_on(
        models: dict[str, Path], tmp_path: Path) -> None:
    data = write_data(tmp_path / "multi", 3)
    target, guide = bands_of(7)
    write_scene(data / "scene9", target[..., :1], guide)  # one band: no band 2
    model = ["--model", str(models["high"]), "--scale", "2", "--workers", "0", "--quiet"]
    out = tmp_path / "out"
    assert main(["batch", str(data), "-o", str(out), "--target-band", "2",
                 "--guide-bands", "3,1", *model]) == 1
    rows = summary(out)
    assert [rows[f"scene{i}"]["status"] for i in (0, 1, 2, 9)] == ["ok", "ok", "ok", "failed"]
    assert "target_t.tif: has no band 2 (it has 1 band, numbered from 1)" in \
        rows["scene9"]["error"]
    single = write_data(tmp_path / "single", 3, band=2, guide_bands=GUIDE_BANDS)
    assert main(["batch", str(single), "-o", str(tmp_path / "ref"), *model]) == 0
    got = read_image(out / "scene0" / "result.png")
    assert got.shape == (SIZE, SIZE) and got.dtype == np.uint8
    assert np.array_equal(got, read_image(tmp_path / "ref" / "scene0" / "result.png"))
    # another band is another setting: recomputed, not skipped as finished
    assert main(["batch", str(data), "-o", str(out), "--target-band", "3",
                 "--guide-bands", "3,1", "--scenes", "scene0", "--overwrite", *model]) == 0
    assert summary(out)["scene0"]["status"] == "ok"
    assert not np.array_equal(read_image(out / "scene0" / "result.png"), got)


# --------------------------------------------------------------------------- cmsr sr --model


@pytest.mark.filterwarnings("ignore:Dataset has no geotransform")  # the TIFF without CRS
def test_sr_model_takes_the_bands_and_the_nodata_mask_of_plain_files(
        models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = bands_of(3, size=16)[0]
    big_guide = bands_of(3, size=32)[1]
    write_image(tmp_path / "t.tif", target)
    write_image(tmp_path / "g.tif", big_guide)
    write_image(tmp_path / "t2.tif", target[..., 1])
    write_image(tmp_path / "g31.tif", big_guide[..., [2, 0]])
    base = ["sr", "--model", str(models["high"]), "--quiet"]
    assert main([*base, "--target", str(tmp_path / "t.tif"), "--guide", str(tmp_path / "g.tif"),
                 "--target-band", "2", "--guide-bands", "3,1", "-o", str(tmp_path / "o.tif")]) == 0
    assert main([*base, "--target", str(tmp_path / "t2.tif"), "--guide",
                 str(tmp_path / "g31.tif"), "-o", str(tmp_path / "ref.tif")]) == 0
    result = read_image(tmp_path / "o.tif")
    assert result.shape == (32, 32) and result.dtype == np.uint8
    assert np.array_equal(result, read_image(tmp_path / "ref.tif"))
    capsys.readouterr()
    assert main([*base, "--target", str(tmp_path / "t.tif"), "--guide", str(tmp_path / "g.tif"),
                 "--target-band", "4", "-o", str(tmp_path / "x.tif")]) == 2
    assert "t.tif: has no band 4 (it has 3 bands, numbered from 1)" in error_line(capsys)
    assert main([*base, "--target", str(tmp_path / "t.tif"), "--guide", str(tmp_path / "g.tif"),
                 "--target-band", "2", "-o", str(tmp_path / "x.tif")]) == 2
    assert "trained on 2-band guides" in error_line(capsys)  # all 4 bands of the guide
    assert main([*base, "--target", str(tmp_path / "t.tif"), "--guide", str(tmp_path / "g.tif"),
                 "--threads", "0", "-o", str(tmp_path / "x.tif")]) == 2
    assert "threads" in error_line(capsys)
    assert not (tmp_path / "x.tif").exists()

    # a TIFF declaring nodata (no CRS): its nodata pixels are the model's invalid pixels
    rasterio = pytest.importorskip("rasterio")
    band = target[..., 1].copy()
    band[5, 6] = 1
    with rasterio.open(tmp_path / "n.tif", "w", driver="GTiff", width=16, height=16, count=1,
                       dtype="uint8", nodata=1) as dataset:
        dataset.write(band[None])
    assert main([*base, "--target", str(tmp_path / "n.tif"), "--guide",
                 str(tmp_path / "g31.tif"), "-o", str(tmp_path / "n_out.tif")]) == 0
    model = LearnedModel.load(models["high"])
    valid = band != 1
    expected = model.predict(band, big_guide[..., [2, 0]], mask=valid)
    assert np.array_equal(read_image(tmp_path / "n_out.tif"), expected)
    assert not np.array_equal(expected, model.predict(band, big_guide[..., [2, 0]]))


def test_sr_model_with_a_low_resolution_guide_reduces_a_full_size_plain_guide(
        models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = bands_of(5, size=16)[0][..., 1]
    guide = bands_of(5, size=32)[1][..., [2, 0]]
    write_image(tmp_path / "t.png", target)
    write_image(tmp_path / "g.tif", guide)
    low_guide = reduced_guide(guide, (16, 16), "bicubic")
    write_image(tmp_path / "g_low.tif", low_guide.astype(np.float32))
    base = ["sr", "--model", str(models["low"]), "--target", str(tmp_path / "t.png")]
    assert main([*base, "--guide", str(tmp_path / "g.tif"), "-o", str(tmp_path / "o.png")]) == 0
    assert "the guide reduced to the target's 16x16 pixels" in capsys.readouterr().err
    model = LearnedModel.load(models["low"])
    expected = np.clip(np.rint(model.predict(target, low_guide)), 0, 255)
    assert np.array_equal(read_image(tmp_path / "o.png"), expected)
    # a guide already at the target's size is taken as it is
    assert main([*base, "--guide", str(tmp_path / "g_low.tif"), "-o",
                 str(tmp_path / "o_low.png"), "--quiet"]) == 0
    assert np.array_equal(read_image(tmp_path / "o_low.png"), expected)
    # any other size is refused in one line
    write_image(tmp_path / "g24.tif", guide[:24, :24])
    capsys.readouterr()
    assert main([*base, "--guide", str(tmp_path / "g24.tif"), "-o", str(tmp_path / "x.png"),
                 "--quiet"]) == 2
    assert "takes a guide at the target's low resolution" in error_line(capsys)
    assert not (tmp_path / "x.png").exists()


def _geotiff(path: Path, data: np.ndarray, pixel: float, nodata: float | None = None) -> Path:
    """``data`` ``(H, W[, C])`` as a GeoTIFF in UTM 30N with its corner at a fixed point."""
    rasterio = pytest.importorskip("rasterio")
    from affine import Affine

    stack = data[None] if data.ndim == 2 else np.moveaxis(data, -1, 0)
    with rasterio.open(path, "w", driver="GTiff", width=stack.shape[2], height=stack.shape[1],
                       count=stack.shape[0], dtype=stack.dtype.name, crs="EPSG:32630",
                       transform=Affine(pixel, 0.0, 440000.0, 0.0, -pixel, 4500000.0),
                       nodata=nodata) as dataset:
        dataset.write(stack)
    return path


def test_sr_model_on_a_geotiff_pair_takes_the_bands_and_writes_on_the_guide_grid(
        models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rasterio = pytest.importorskip("rasterio")
    target, guide = bands_of(4, size=16)[0], bands_of(4, size=32)[1]
    target[5, 6] = 1  # nodata in every band
    t = _geotiff(tmp_path / "t.tif", target, 20.0, nodata=1)
    g = _geotiff(tmp_path / "g.tif", guide, 10.0)
    t2 = _geotiff(tmp_path / "t2.tif", target[..., 1], 20.0, nodata=1)
    g31 = _geotiff(tmp_path / "g31.tif", guide[..., [2, 0]], 10.0)
    results = {}
    for name in ("high", "low"):
        base = ["sr", "--model", str(models[name]), "--quiet"]
        out, ref = tmp_path / f"{name}.tif", tmp_path / f"{name}_ref.tif"
        assert main([*base, "--target", str(t), "--guide", str(g), "--target-band", "2",
                     "--guide-bands", "3,1", "-o", str(out)]) == 0
        assert main([*base, "--target", str(t2), "--guide", str(g31), "-o", str(ref)]) == 0
        with rasterio.open(out) as dataset, rasterio.open(ref) as reference:
            assert dataset.crs.to_string() == "EPSG:32630" and dataset.count == 1
            assert tuple(dataset.transform)[:6] == (10.0, 0.0, 440000.0, 0.0, -10.0, 4500000.0)
            assert dataset.dtypes[0] == "uint8" and dataset.nodata == 1
            values = dataset.read(1)
            assert np.array_equal(values, reference.read(1))
        assert values.shape == (32, 32) and (values[10:12, 12:14] == 1).all()
        assert (values[:10] != 1).all()
        results[name] = values
    # the low-resolution-guide model got the guide reduced to the target's size
    model = LearnedModel.load(models["low"])
    band = np.where(target[..., 1] == 1, np.nan, target[..., 1].astype(np.float64))
    expected = model.predict(band, reduced_guide(guide[..., [2, 0]], (16, 16), "bicubic"))
    expected = np.clip(np.rint(expected), 0, 255)
    inside = np.ones((32, 32), bool)
    inside[10:12, 12:14] = False
    assert np.array_equal(results["low"][inside], expected[inside])

    base = ["sr", "--model", str(models["high"]), "--target", str(t), "--target-band", "2",
            "--guide-bands", "3,1", "--quiet"]
    capsys.readouterr()
    assert main([*base, "--guide", str(g), "--target-band", "9", "-o",
                 str(tmp_path / "x.tif")]) == 2
    assert "t.tif: has no band 9 (it has 3 bands, numbered from 1)" in error_line(capsys)
    fine = _geotiff(tmp_path / "fine.tif", bands_of(4, size=64)[1], 5.0)  # x4, not x2
    assert main([*base, "--guide", str(fine), "-o", str(tmp_path / "x.tif")]) == 2
    line = error_line(capsys)
    assert "high.pt: enlarges x2, but the grids" in line and "give x4" in line
    wide = _geotiff(tmp_path / "wide.tif", target.astype(np.uint16) * 200, 20.0)
    assert main([*base[:4], str(wide), *base[5:], "--guide", str(g), "-o",
                 str(tmp_path / "x.tif")]) == 2
    assert "trained on uint8 targets" in error_line(capsys)
    assert not (tmp_path / "x.tif").exists()
