"""Tests for cmsr.evaluation.datasets: scene folders, CSV manifests and scene selection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cmsr.errors import InputError
from cmsr.evaluation.datasets import (
    Scene,
    find_scenes,
    read_manifest,
    scene_from_folder,
    select_scenes,
)

DATA = Path(os.environ.get("CMSR_DATA", "/work/shared/data"))


def _scene(folder: Path, *files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_bytes(b"x")
    return folder


# --------------------------------------------------------------------------- folders


def test_find_scenes_nested_tree(tmp_path):
    _scene(tmp_path / "depth" / "026", "guide_rgb.png", "target_disparity.png", "meta.json")
    _scene(tmp_path / "depth" / "01_1", "guide_rgb.png", "target_disparity.png",
           "mask_valid.png")
    _scene(tmp_path / "thermal" / "road" / "FLIR_6", "guide_rgb.jpg", "guide_rgb_hr.jpg",
           "target_ir.jpg")
    _scene(tmp_path / "thermal" / "unaligned" / "cats", "guide_rgb.png", "target_thermal.png",
           "target_thermal_lr80x60.png")
    (tmp_path / "empty").mkdir()
    _scene(tmp_path / ".hidden" / "x", "guide_rgb.png", "target_x.png")
    (tmp_path / "README.md").write_text("hello")

    scenes = find_scenes(tmp_path)
    assert [s.name for s in scenes] == [
        "depth/01_1", "depth/026", "thermal/road/FLIR_6", "thermal/unaligned/cats",
    ]
    by_name = {s.name: s for s in scenes}
    assert by_name["depth/01_1"].mask == tmp_path / "depth/01_1/mask_valid.png"
    assert by_name["depth/026"].mask is None
    assert by_name["depth/026"].target_lr is None
    assert by_name["depth/026"].output is None
    assert by_name["thermal/road/FLIR_6"].guide.name == "guide_rgb.jpg"
    cats = by_name["thermal/unaligned/cats"]
    assert cats.target.name == "target_thermal.png"
    assert cats.target_lr is not None and cats.target_lr.name == "target_thermal_lr80x60.png"

    # a sub-tree, and a scene folder itself
    assert [s.name for s in find_scenes(tmp_path / "depth")] == ["01_1", "026"]
    (single,) = find_scenes(str(tmp_path / "depth" / "026"))
    assert single.name == "026"
    assert single.guide == tmp_path / "depth/026/guide_rgb.png"


def test_find_scenes_does_not_descend_into_scene_folders(tmp_path):
    _scene(tmp_path / "a", "guide_rgb.png", "target_ir.png")
    _scene(tmp_path / "a" / "inner", "guide_rgb.png", "target_ir.png")
    assert [s.name for s in find_scenes(tmp_path)] == ["a"]


def test_scene_folder_ignores_non_image_and_hidden_files(tmp_path):
    folder = _scene(tmp_path / "s", "guide_rgb.png", "target_ir.tif", "target_notes.txt",
                    ".target_old.png", "mask_.json")
    scene = scene_from_folder(folder)
    assert scene.target.name == "target_ir.tif"
    assert scene.mask is None


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (("guide_rgb.png",), "no target"),
        (("target_ir.png", "meta.json"), "no guide"),
        (("guide_rgb.png", "guide_nir.png", "target_ir.png"), "ambiguous guide"),
        (("guide_rgb_hr.png", "guide_nir_hr.png", "target_ir.png"), "ambiguous guide"),
        (("guide_rgb.png", "target_ir.png", "target_ir.tif"), "ambiguous target"),
        (("guide_rgb.png", "target_ir.png", "target_ir_lr80x60.png", "target_ir_lr40x30.png"),
         "ambiguous low-resolution"),
        (("guide_rgb.png", "target_ir.png", "mask_a.png", "mask_b.png"), "ambiguous mask"),
        (("guide_rgb.png", "target_ir_lr80x60.png"), "no target"),
    ],
)
def test_bad_scene_folder_names_the_folder(tmp_path, files, message):
    folder = _scene(tmp_path / "sets" / "bad", *files)
    _scene(tmp_path / "sets" / "good", "guide_rgb.png", "target_ir.png")
    with pytest.raises(InputError, match=message) as info:
        find_scenes(tmp_path)
    assert info.value.source == str(folder)


def test_only_hr_guide_is_used_when_alone(tmp_path):
    folder = _scene(tmp_path / "s", "guide_rgb_hr.png", "target_ir.png")
    assert scene_from_folder(folder).guide.name == "guide_rgb_hr.png"


def test_find_scenes_errors(tmp_path):
    with pytest.raises(InputError, match="no such file") as info:
        find_scenes(tmp_path / "missing")
    assert info.value.source == str(tmp_path / "missing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InputError, match="no scene folders"):
        find_scenes(tmp_path / "empty")
    (tmp_path / "image.png").write_bytes(b"x")
    with pytest.raises(InputError, match="manifest"):
        find_scenes(tmp_path / "image.png")


# --------------------------------------------------------------------------- manifests


def _files(folder: Path, *names: str) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_read_manifest_paths_names_and_blanks(tmp_path):
    _files(tmp_path, "a/ir.png", "a/rgb.png", "b/ir.png", "b/rgb.png", "b/ir_lr.png",
           "b/mask.png", "c/x_ir.png")
    absolute = tmp_path / "c" / "x_ir.png"
    manifest = tmp_path / "pairs.csv"
    manifest.write_text(
        " Guide , target ,lr,mask,output,name\n"
        "a/rgb.png,a/ir.png,,,out/a.png,\n"
        "\n"
        f"b/rgb.png, b/ir.png ,b/ir_lr.png,b/mask.png,,scene-b\n"
        f"a/rgb.png,{absolute},,,,\n"
    )
    scenes = find_scenes(manifest)
    assert scenes == read_manifest(str(manifest))
    a, b, c = scenes
    assert a == Scene(name="ir", guide=tmp_path / "a/rgb.png", target=tmp_path / "a/ir.png",
                      output=Path("out/a.png"))  # inside the batch's output folder
    assert b == Scene(name="scene-b", guide=tmp_path / "b/rgb.png",
                      target=tmp_path / "b/ir.png", target_lr=tmp_path / "b/ir_lr.png",
                      mask=tmp_path / "b/mask.png")
    assert c.name == "x_ir"
    assert c.target == absolute


def test_read_manifest_makes_clashing_names_unique_with_the_line(tmp_path):
    _files(tmp_path, "1/target_ir.png", "2/target_ir.png", "3/other.png", "g.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "target,guide,name\n"
        "1/target_ir.png,g.png,\n"
        "3/other.png,g.png,\n"
        "2/target_ir.png,g.png,\n"
        "3/other.png,g.png,target_ir-4\n"
    )
    names = [s.name for s in read_manifest(manifest)]
    assert names == ["target_ir-2", "other", "target_ir-4-4", "target_ir-4"]
    assert len(set(names)) == len(names)


def test_read_manifest_accepts_byte_order_mark_and_quotes(tmp_path):
    _files(tmp_path, "my ir, 1.png", "rgb.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text('\ufefftarget,guide\n"my ir, 1.png",rgb.png\n', encoding="utf-8")
    (scene,) = read_manifest(manifest)
    assert scene.target.name == "my ir, 1.png"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty manifest"),
        ("target,guide,colour\nt.png,g.png,red\n", r"line 1: unknown column\(s\) 'colour'"),
        ("target,lr\nt.png,\n", r"line 1: missing required column\(s\) guide"),
        ("target,guide,target\nt.png,g.png,t.png\n", "line 1: repeated column"),
        ("target,guide\nt.png,g.png\n,g.png\n", "line 3: empty target cell"),
        ("target,guide\n\nt.png, \n", "line 3: empty guide cell"),
        ("target,guide\nt.png,g.png\nt.png,missing.png\n", "line 3: guide missing.png: no such"),
        ("target,guide,lr\nt.png,g.png,lr.png\n", "line 2: lr lr.png: no such file"),
        ("target,guide,mask\nt.png,g.png,sub\n", "line 2: mask sub: not a file"),
        ("target,guide\nt.png,g.png,extra\n", "line 2: 3 cells but the header has 2"),
        ("target,guide,name\nt.png,g.png,../up\n", "line 2: name '../up'"),
        ("target,guide,output\nt.png,g.png,a/../../up.png\n",
         "line 2: output 'a/../../up.png' must be a relative name without '..'"),
        ("target,guide,output\nt.png,g.png,/tmp/up.png\n", "line 2: output '/tmp/up.png'"),
        ("target,guide,output\nt.png,g.png,..\\up.png\n", r"line 2: output '\.\.\\\\up"),
        ("target,guide\n", "no scenes"),
    ],
)
def test_read_manifest_errors_name_file_and_line(tmp_path, text, message):
    _files(tmp_path, "t.png", "g.png")
    (tmp_path / "sub").mkdir()
    manifest = tmp_path / "bad.csv"
    manifest.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_manifest(manifest)
    assert info.value.source == str(manifest)


def test_read_manifest_can_keep_rows_naming_missing_files(tmp_path):
    _files(tmp_path, "t.png", "g.png")
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("target,guide,mask\nt.png,g.png,\ngone.png,g.png,\n"
                        "t.png,g.png,nomask.png\n")
    with pytest.raises(InputError, match=r"line 3: target gone\.png: no such file"):
        read_manifest(manifest)
    good, gone, nomask = find_scenes(manifest, keep_missing=True)
    assert good.problem is None
    assert gone.problem == f"{manifest}: line 3: target gone.png: no such file"
    assert gone.name == "gone" and gone.target == tmp_path / "gone.png"
    assert nomask.problem == f"{manifest}: line 4: mask nomask.png: no such file"
    assert nomask.name == "t-4" and good.name == "t-2"
    # problems of the manifest itself are refused all the same
    manifest.write_text("target,guide,output\ngone.png,g.png,../x.png\n")
    with pytest.raises(InputError, match=r"output '\.\./x\.png'"):
        read_manifest(manifest, keep_missing=True)


def test_read_manifest_missing_or_not_utf8(tmp_path):
    with pytest.raises(InputError, match="no such manifest"):
        read_manifest(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"target,guide\n\xff\xfe.png,g.png\n")
    with pytest.raises(InputError, match="UTF-8"):
        read_manifest(bad)


# --------------------------------------------------------------------------- selection


def _named(*names: str) -> list[Scene]:
    return [Scene(name, Path(f"{name}/g.png"), Path(f"{name}/t.png")) for name in names]


def test_select_scenes_names_patterns_and_order():
    scenes = _named("depth/026", "depth/11_1", "depth/11_2", "nir/026x", "nir/5")
    assert select_scenes(scenes, None) == scenes
    picked = select_scenes(scenes, " nir/5, 026,11_*,depth/11_1")
    assert [s.name for s in picked] == ["depth/026", "depth/11_1", "depth/11_2", "nir/5"]
    assert [s.name for s in select_scenes(scenes, "nir/*")] == ["nir/026x", "nir/5"]
    assert [s.name for s in select_scenes(scenes, "026?")] == ["nir/026x"]


@pytest.mark.parametrize("names", ["", " , ", "026,nothing*", "DEPTH/026"])
def test_select_scenes_errors(names):
    with pytest.raises(InputError):
        select_scenes(_named("depth/026"), names)


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not DATA.is_dir(), reason=f"no shared data at {DATA}")
def test_shared_data_layout():
    # the image-pair sets; geo/ holds GeoTIFF scenes with several candidate guides per
    # folder, which the raster work (not scene folders) reads
    scenes = [scene for folder in ("depth", "multispectral", "nir", "thermal")
              if (DATA / folder).is_dir()
              for scene in find_scenes(DATA / folder)]
    # named relative to each searched folder: as from the data root, folder first
    names = [f"{s.guide.parent.relative_to(DATA).parts[0]}/{s.name}" for s in scenes]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for scene in scenes:
        assert scene.guide.is_file() and scene.target.is_file()
        assert scene.guide.name.startswith("guide_") and not scene.guide.stem.endswith("_hr")
        assert "_lr" not in scene.target.stem

    road = [s for s in scenes if s.name.startswith("roadscene/")]
    if road:
        assert all(s.guide.name == "guide_rgb.jpg" for s in road)
    unaligned = [s for s in scenes if s.name.startswith("unaligned/")]
    if unaligned:
        for scene in unaligned:
            assert scene.target.name == "target_thermal.png"
            assert scene.target_lr is not None
            assert scene.target_lr.name.startswith("target_thermal_lr80x6")
        assert any(s.target_lr.name == "target_thermal_lr80x60.png" for s in unaligned)

    middlebury = DATA / "depth" / "middlebury13"
    if middlebury.is_dir():
        local = find_scenes(middlebury)
        assert all("/" not in s.name for s in local)
        assert select_scenes(local, "026")[0].target.parent.name == "026"
