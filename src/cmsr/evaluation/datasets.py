"""Where the image pairs are: scene folders and CSV manifests.

A *scene folder* holds one pair, named by prefix:

* ``guide_*`` -- the high-resolution guide (RGB or more bands). When a folder has
  several guides, the one whose stem does not end in ``_hr`` is used (RoadScene
  ships a ``guide_rgb_hr.jpg`` that is larger and scaled differently);
* ``target_*`` -- the target at full resolution, i.e. the ground truth;
* ``target_*_lr*`` -- optional: a real low-resolution capture of the target;
* ``mask_*`` -- optional: valid pixels of the target (nonzero = valid);
* anything else (``meta.json``, notes) is ignored, and so are files whose extension
  :func:`cmsr.files.read_image` does not read and hidden files.

:func:`find_scenes` collects the scene folders below a folder (or reads a manifest),
:func:`read_manifest` reads a CSV manifest and :func:`select_scenes` keeps the scenes
named by a comma-separated list of names or glob patterns. Nothing here reads pixel
data; problems raise :class:`~cmsr.errors.InputError` naming the folder or file.
"""

from __future__ import annotations

import csv
import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cmsr.errors import InputError
from cmsr.files import SUPPORTED_READ

__all__ = [
    "MANIFEST_COLUMNS",
    "REQUIRED_COLUMNS",
    "Scene",
    "find_scenes",
    "read_manifest",
    "scene_from_folder",
    "select_scenes",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("target", "guide")
"""Columns every manifest must have."""

MANIFEST_COLUMNS: tuple[str, ...] = ("target", "guide", "lr", "mask", "output", "name")
"""All columns a manifest may have, in the order they are documented."""

_PATH_COLUMNS = ("target", "guide", "lr", "mask")  # must exist


@dataclass(frozen=True)
class Scene:
    """One image pair and where it came from.

    Attributes
    ----------
    name:
        Unique id within its collection: the scene folder's path relative to the
        searched root, with ``/`` (e.g. ``"026"`` or ``"middlebury13/026"``); for a
        manifest row the ``name`` column or the target's file stem (with ``-<line>``
        appended when names clash).
    guide:
        The high-resolution guide.
    target:
        The target at full resolution (ground truth) in scene folders; in a manifest
        the ``target`` column (whatever the user wants super-resolved).
    target_lr:
        A real low-resolution capture of the target, if any.
    mask:
        Valid pixels of ``target`` (nonzero = valid), if any.
    output:
        Manifests only: where a batch run writes this row's result, relative to the
        batch's output folder.
    problem:
        Why the scene cannot run (a manifest row naming a file that does not exist,
        read with ``keep_missing``), as one line; None for a usable scene.
    """

    name: str
    guide: Path
    target: Path
    target_lr: Path | None = None
    mask: Path | None = None
    output: Path | None = None
    problem: str | None = None


# --------------------------------------------------------------------------- folders


def _image_files(folder: Path) -> list[Path]:
    """Readable, non-hidden image files directly in ``folder``, sorted by name."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise InputError(f"cannot list the folder: {exc.strerror or exc}", str(folder)) from None
    return [
        entry
        for entry in entries
        if not entry.name.startswith(".")
        and entry.suffix.lower() in SUPPORTED_READ
        and entry.is_file()
    ]


def _is_scene_folder(files: list[Path]) -> bool:
    return any(f.name.startswith(("guide_", "target_")) for f in files)


def _is_lr(stem: str) -> bool:
    return fnmatch.fnmatchcase(stem, "target_*_lr*")


def _one(files: list[Path], what: str, folder: Path, *, required: bool) -> Path | None:
    if len(files) > 1:
        names = ", ".join(f.name for f in files)
        raise InputError(f"ambiguous {what}: {names}", str(folder))
    if not files:
        if required:
            raise InputError(f"no {what} file in the scene folder", str(folder))
        return None
    return files[0]


def scene_from_folder(folder: Path | str, name: str | None = None) -> Scene:
    """The :class:`Scene` held by one scene folder.

    Parameters
    ----------
    folder:
        A folder with ``guide_*`` and ``target_*`` image files (see the module
        documentation for the rules).
    name:
        The scene's name; the folder's own name when None.

    Raises
    ------
    InputError
        The folder has no guide or no full-resolution target, or several files
        could be the guide, the target, the low-resolution capture or the mask.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "026"
    >>> folder.mkdir()
    >>> for file in ("guide_rgb.jpg", "guide_rgb_hr.jpg", "target_ir.png",
    ...              "target_ir_lr80x60.png", "meta.json"):
    ...     (folder / file).touch()
    >>> scene = scene_from_folder(folder)
    >>> scene.name, scene.guide.name, scene.target.name, scene.target_lr.name
    ('026', 'guide_rgb.jpg', 'target_ir.png', 'target_ir_lr80x60.png')
    """
    folder = Path(folder)
    files = _image_files(folder)
    guides = [f for f in files if f.name.startswith("guide_")]
    if len(guides) > 1:
        guides = [f for f in guides if not f.stem.endswith("_hr")]
        if not guides:
            names = ", ".join(f.name for f in files if f.name.startswith("guide_"))
            raise InputError(f"ambiguous guide (all end in _hr): {names}", str(folder))
    targets = [f for f in files if f.name.startswith("target_")]
    full = [f for f in targets if not _is_lr(f.stem)]
    low = [f for f in targets if _is_lr(f.stem)]
    masks = [f for f in files if f.name.startswith("mask_")]
    guide = _one(guides, "guide (guide_*)", folder, required=True)
    target = _one(full, "target (target_*)", folder, required=True)
    assert guide is not None and target is not None
    return Scene(
        name=folder.name if name is None else name,
        guide=guide,
        target=target,
        target_lr=_one(low, "low-resolution capture (target_*_lr*)", folder, required=False),
        mask=_one(masks, "mask (mask_*)", folder, required=False),
    )


def find_scenes(source: Path | str, *, keep_missing: bool = False) -> list[Scene]:
    """All scenes in a folder tree, or the rows of a CSV manifest.

    Parameters
    ----------
    source:
        A scene folder (one scene, named after the folder), a folder with scene
        folders anywhere below it (each named by its path relative to ``source``,
        with ``/``; the search does not descend into scene folders nor into hidden
        folders), or a ``.csv`` manifest (see :func:`read_manifest`).
    keep_missing:
        Manifests: keep rows naming missing files, with their :attr:`Scene.problem`
        (see :func:`read_manifest`).

    Returns
    -------
    list of Scene
        Sorted by name for folders; in row order for manifests.

    Raises
    ------
    InputError
        ``source`` does not exist, is a file but not a ``.csv`` manifest, holds no
        scene, or a scene folder lacks its guide or target or has ambiguous files.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for scene in ("depth/026", "depth/083", "nir/0001"):
    ...     (root / scene).mkdir(parents=True)
    ...     (root / scene / "guide_rgb.png").touch()
    ...     (root / scene / "target_depth.png").touch()
    >>> [scene.name for scene in find_scenes(root)]
    ['depth/026', 'depth/083', 'nir/0001']
    >>> [scene.name for scene in find_scenes(root / "depth")]
    ['026', '083']
    >>> find_scenes(root / "depth" / "026")[0].target.name
    'target_depth.png'
    """
    root = Path(source)
    if not root.exists():
        raise InputError("no such file or folder", str(source))
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise InputError("not a folder of scenes nor a .csv manifest", str(source))
        return read_manifest(root, keep_missing=keep_missing)
    if _is_scene_folder(_image_files(root)):
        return [scene_from_folder(root, name=root.resolve().name or str(root))]

    scenes: list[Scene] = []
    for folder, subfolders, _ in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        if here == root:
            continue
        if _is_scene_folder(_image_files(here)):
            subfolders[:] = []
            name = here.relative_to(root).as_posix()
            scenes.append(scene_from_folder(here, name=name))
    if not scenes:
        raise InputError(
            "no scene folders found (a scene folder holds guide_* and target_* images)",
            str(source),
        )
    return sorted(scenes, key=lambda scene: scene.name)


# --------------------------------------------------------------------------- manifests


def _check_relative(column: str, cell: str, path: Path, line: int) -> str:
    """``cell`` of ``column`` if it is a relative path without ``..`` (it names a place
    inside the batch's output folder), else an :class:`InputError` naming the line."""
    parts = PurePosixPath(cell.replace("\\", "/")).parts
    if cell.startswith(("/", "\\")) or ".." in parts or os.path.isabs(cell):
        raise InputError(f"line {line}: {column} {cell!r} must be a relative name without "
                         "'..'", str(path))
    return cell


def read_manifest(path: Path | str, *, keep_missing: bool = False) -> list[Scene]:
    """Read the scenes listed in a CSV manifest.

    The first row is a header naming the columns (any order; names are stripped of
    spaces and compared in lower case): ``target`` and ``guide`` are required, ``lr``
    (a real low-resolution capture), ``mask``, ``output`` (where a batch run writes
    the result, relative to its output folder) and ``name`` are optional. Each
    following row is one scene; cells are stripped of spaces, blank optional cells
    mean "none", fully blank rows are skipped. Relative input paths are relative to
    the manifest's folder; ``~`` is expanded. ``name`` and ``output`` must be
    relative, without ``..``: they name files inside the batch's output folder. A
    scene's name is its ``name`` cell, else its target's file stem; names that occur
    more than once get ``-<line>`` appended (the line number in the file).

    Parameters
    ----------
    path:
        The ``.csv`` file (UTF-8, an optional byte-order mark is ignored).
    keep_missing:
        Keep a row whose ``target``, ``guide``, ``lr`` or ``mask`` file does not exist,
        with the error it would raise as its :attr:`Scene.problem` (a batch records
        the row as failed and runs the others). Problems of the manifest itself are
        raised either way.

    Returns
    -------
    list of Scene
        In row order.

    Raises
    ------
    InputError
        The file is missing, unreadable or empty; a column is unknown, repeated or
        missing; a row has more cells than the header, an empty ``target`` or
        ``guide`` cell, a ``name`` or ``output`` that is absolute or has ``..``, or
        (unless ``keep_missing``) names an input file that does not exist. Messages
        name the manifest and the line.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for file in ("a_ir.png", "a_rgb.png", "b_ir.png", "b_rgb.png"):
    ...     (folder / file).touch()
    >>> _ = (folder / "pairs.csv").write_text(
    ...     "target,guide,output\\n"
    ...     "a_ir.png,a_rgb.png,out/a.png\\n"
    ...     "b_ir.png,b_rgb.png,\\n")
    >>> scenes = read_manifest(folder / "pairs.csv")
    >>> [(s.name, s.guide.name, s.output) for s in scenes]
    [('a_ir', 'a_rgb.png', PosixPath('out/a.png')), ('b_ir', 'b_rgb.png', None)]
    """
    file = Path(path)
    source = str(path)
    if not file.is_file():
        raise InputError("no such manifest file" if not file.exists() else "not a file",
                         source)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", source) from None
    except OSError as exc:
        raise InputError(f"cannot read the manifest: {exc.strerror or exc}", source) from None

    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise InputError("empty manifest: expected a header row with target,guide",
                             source)
        header_line = reader.line_num
        columns = [cell.strip().lower() for cell in header]
        unknown = [c for c in columns if c not in MANIFEST_COLUMNS]
        if unknown:
            raise InputError(
                f"line {header_line}: unknown column(s) {', '.join(map(repr, unknown))}; "
                f"columns are {', '.join(MANIFEST_COLUMNS)}",
                source,
            )
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise InputError(f"line {header_line}: repeated column(s) {', '.join(repeated)}",
                             source)
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise InputError(
                f"line {header_line}: missing required column(s) {', '.join(missing)}",
                source,
            )

        base = file.parent
        rows: list[tuple[int, dict[str, str]]] = []
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(columns):
                raise InputError(
                    f"line {line}: {len(cells)} cells but the header has {len(columns)}",
                    source,
                )
            values = {c: "" for c in columns}
            values.update({c: cell.strip() for c, cell in zip(columns, cells, strict=False)})
            rows.append((line, values))
    except csv.Error as exc:
        raise InputError(f"line {reader.line_num}: malformed CSV: {exc}", source) from None

    def resolve(cell: str) -> Path:
        candidate = Path(cell).expanduser()
        return candidate if candidate.is_absolute() else base / candidate

    entries: list[tuple[int, str, dict[str, Path | None], str | None]] = []
    for line, values in rows:
        paths: dict[str, Path | None] = {}
        problem: str | None = None
        for column in _PATH_COLUMNS:
            cell = values.get(column, "")
            if not cell:
                if column in REQUIRED_COLUMNS:
                    raise InputError(f"line {line}: empty {column} cell", source)
                paths[column] = None
                continue
            resolved = resolve(cell)
            if not resolved.is_file() and problem is None:
                what = "no such file" if not resolved.exists() else "not a file"
                refusal = InputError(f"line {line}: {column} {cell}: {what}", source)
                if not keep_missing:
                    raise refusal
                problem = str(refusal)
            paths[column] = resolved
        output = values.get("output", "")
        paths["output"] = Path(_check_relative("output", output, file, line)) if output else None
        target = paths["target"]
        assert target is not None
        name = _check_relative("name", values.get("name", "") or target.stem, file, line)
        entries.append((line, name, paths, problem))

    counts: dict[str, int] = {}
    for _, name, _, _ in entries:
        counts[name] = counts.get(name, 0) + 1
    used = {name for name, count in counts.items() if count == 1}
    scenes = []
    for line, name, paths, problem in entries:
        unique = name
        if counts[name] > 1:
            unique = f"{name}-{line}"
            while unique in used:
                unique = f"{unique}-{line}"
            used.add(unique)
        guide, target = paths["guide"], paths["target"]
        assert guide is not None and target is not None
        scenes.append(
            Scene(
                name=unique,
                guide=guide,
                target=target,
                target_lr=paths["lr"],
                mask=paths["mask"],
                output=paths["output"],
                problem=problem,
            )
        )
    if not scenes:
        raise InputError("the manifest lists no scenes (only a header)", source)
    return scenes


# --------------------------------------------------------------------------- selection


def select_scenes(scenes: list[Scene], names: str | None) -> list[Scene]:
    """Keep the scenes named by a comma-separated list of names or glob patterns.

    A pattern (``fnmatch`` syntax, case-sensitive: ``*``, ``?``, ``[...]``) matches
    a scene when it matches its whole name or the name's last ``/`` part, so
    ``"026"`` selects ``"middlebury13/026"``.

    Parameters
    ----------
    scenes:
        The scenes to choose from.
    names:
        E.g. ``"026,11_*"``; None keeps all scenes. Spaces around names are ignored.

    Returns
    -------
    list of Scene
        The selected scenes, in their original order, each once.

    Raises
    ------
    InputError
        ``names`` holds no name, or a pattern matches no scene.

    Examples
    --------
    >>> scenes = [Scene(n, Path("g.png"), Path("t.png")) for n in ("026", "11_1", "11_2")]
    >>> [s.name for s in select_scenes(scenes, "11_*")]
    ['11_1', '11_2']
    >>> [s.name for s in select_scenes(scenes, "11_2, 026")]
    ['026', '11_2']
    """
    if names is None:
        return list(scenes)
    patterns = [part.strip() for part in names.split(",") if part.strip()]
    if not patterns:
        raise InputError(f"no scene names given in {names!r}", "scenes")
    keep = [False] * len(scenes)
    for pattern in patterns:
        matched = False
        for index, scene in enumerate(scenes):
            leaf = scene.name.rsplit("/", 1)[-1]
            if fnmatch.fnmatchcase(scene.name, pattern) or fnmatch.fnmatchcase(leaf, pattern):
                keep[index] = matched = True
        if not matched:
            shown = ", ".join(scene.name for scene in scenes[:5])
            more = ", ..." if len(scenes) > 5 else ""
            raise InputError(
                f"{pattern!r} matches none of the {len(scenes)} scenes ({shown}{more})",
                "scenes",
            )
    return [scene for scene, chosen in zip(scenes, keep, strict=True) if chosen]
