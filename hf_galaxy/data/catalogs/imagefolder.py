"""An image folder whose sub-folders are the classes: ``<root>/<class>/<id>.<ext>``.

With ``<root>/train/``, ``<root>/validation/`` (or ``val/`` / ``valid/``) and ``<root>/test/``, each
holding class folders, the ``split`` column is filled from the top folder. Class names are the sorted
names of the class folders that hold images (ready label column ``class``); ids are the file stems
(a stem repeated in two folders is an error, or with ``ids="path"`` the relative paths without extension). Image extensions: jpg, jpeg, png, tif,
tiff, fits, fits.gz. Other files are ignored and counted in ``Catalog.meta``.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pandas as pd

from hf_galaxy.data.catalogs._common import reject_options, split_image_name
from hf_galaxy.data.catalogs.base import Catalog, CatalogError

FORMAT = "imagefolder"
RELEASE = "image folder"
SPLIT_FOLDERS = {"train": "train", "validation": "validation", "val": "validation", "valid": "validation",
                 "test": "test"}  # fmt: skip
"""Top-level folder names recognised as splits, and the canonical split each stands for."""


def sniff(path: Path, columns: list[str]) -> bool:
    """True for a directory."""
    return path.is_dir()


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read(path: Path, image_dir: Path | None = None, **options: object) -> Catalog:
    """Read an image folder into the canonical table (``image_dir`` is unused: the folder holds them).

    Option ``ids``: ``"stem"`` (default; a file stem found in two folders is an error, since one galaxy must
    not sit in two classes or splits) or ``"path"`` (ids are relative paths when stems repeat).
    """
    ids_from = options.pop("ids", "stem")
    reject_options(FORMAT, options, ("ids",))
    if ids_from not in ("stem", "path"):
        raise CatalogError(f"imagefolder option ids={ids_from!r}: expected 'stem' or 'path'")
    root = Path(os.path.abspath(path))
    if not root.is_dir():
        raise CatalogError(f"{root}: an image folder must be a directory")
    top = _subdirs(root)
    split_dirs = [d for d in top if d.name.lower() in SPLIT_FOLDERS]
    split_mode = bool(top) and len(split_dirs) == len(top) and all(_subdirs(d) for d in split_dirs)
    if split_mode:
        groups = [(SPLIT_FOLDERS[d.name.lower()], c) for d in split_dirs for c in _subdirs(d)]
        loose = [p for d in [root, *split_dirs] for p in d.iterdir() if p.is_file()]
    else:
        groups = [(None, c) for c in top]
        loose = [p for p in root.iterdir() if p.is_file()]

    rows: list[tuple[str | None, str, Path]] = []
    ignored: list[str] = [str(p.relative_to(root)) for p in loose]
    ignored_dirs: list[str] = []
    for split, class_dir in groups:
        for entry in sorted(class_dir.iterdir()):
            if entry.is_dir():
                ignored_dirs.append(str(entry.relative_to(root)))
            elif split_image_name(entry.name) is not None:
                rows.append((split, class_dir.name, entry))
            else:
                ignored.append(str(entry.relative_to(root)))

    if not rows:
        loose_images = [p for p in loose if split_image_name(p.name) is not None]
        if loose_images:
            raise CatalogError(
                f"{root}: {len(loose_images)} image(s) but no class sub-folders; an image folder needs "
                "<root>/<class>/<image> (optionally <root>/<train|validation|test>/<class>/<image>)"
            )
        raise CatalogError(
            f"{root}: no images found (looked for <root>/<class>/<id>.jpg|jpeg|png|tif|tiff|fits|fits.gz"
            f"{' under train/validation/test' if split_mode else ''}); an image folder must not be empty"
        )

    classes = sorted({c for _, c, _ in rows})
    empty = sorted({c.name for _, c in groups} - set(classes))
    index = {c: i for i, c in enumerate(classes)}
    stems = [split_image_name(p.name)[0] for _, _, p in rows]
    unique = len(set(stems)) == len(stems)
    if not unique and ids_from != "path":
        # The same galaxy in two class or split folders would leak between splits or carry two labels.
        where: dict[str, list[str]] = {}
        for (_, _, p), stem in zip(rows, stems):
            where.setdefault(stem, []).append(p.parent.relative_to(root).as_posix())
        repeated = {k: v for k, v in where.items() if len(v) > 1}
        shown = "; ".join(f"{k} in {', '.join(v)}" for k, v in list(repeated.items())[:10])
        raise CatalogError(
            f"{root}: {len(repeated)} galaxy id(s) (file stems) appear in more than one folder: {shown}. "
            "A galaxy must not be in two classes or splits; pass ids='path' if the files are distinct galaxies."
        )
    ids = (
        stems
        if unique
        else [str(p.relative_to(root).with_name(s).as_posix()) for (_, _, p), s in zip(rows, stems)]
    )
    table = pd.DataFrame(
        {
            "id": ids,
            "image_path": [str(p) for _, _, p in rows],
            "class": [index[c] for _, c, _ in rows],
        }
    )
    if split_mode:
        table["split"] = [s for s, _, _ in rows]
    meta: dict[str, object] = {
        "layout": "split/class" if split_mode else "class",
        "class_counts": dict(Counter(c for _, c, _ in rows)),
        "n_ignored_files": len(ignored),
        "ignored_files_examples": ignored[:10],
        "n_ignored_folders": len(ignored_dirs),
        "id_from": "file stem" if unique else "relative path without extension (file stems repeat)",
        "tree_version": None,
    }
    if empty:
        meta["empty_class_folders"] = empty
    if split_mode:
        meta["split_counts"] = dict(Counter(s for s, _, _ in rows))
    return Catalog(
        table=table,
        release=RELEASE,
        source=str(root),
        label_columns=("class",),
        class_names={"class": classes},
        meta=meta,
    )
