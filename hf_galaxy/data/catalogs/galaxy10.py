"""Galaxy10 SDSS / DECaLS (``Galaxy10.h5``, ``Galaxy10_DECals.h5``) and Galaxy MNIST HDF5 files.

Galaxy10: datasets ``images`` (N, H, W, 3) and ``ans`` (class index), plus ``ra``, ``dec``,
``redshift`` and ``pxscale`` (arcsec/px, per image) in the DECaLS version. Galaxy MNIST
(``train_dataset.hdf5`` / ``test_dataset.hdf5``, gunzipped): ``images`` and ``labels``.

The images stay in the file: ``image_path`` is the HDF5 path and ``image_index`` the row, so the
reader never loads the (up to 2.5 GB) image array. Ids are ``galaxy10_<row>`` / ``galaxy_mnist_<row>``.
Option ``variant``: ``"auto"`` (default; DECaLS when ``ra``/``dec``/``pxscale`` exist or the images are
256 px), ``"sdss"`` or ``"decals"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hf_galaxy.data.catalogs._common import reject_options
from hf_galaxy.data.catalogs.base import Catalog, CatalogError

FORMAT = "galaxy10"

GALAXY10_SDSS_CLASSES = [
    "disk_face_on_no_spiral",
    "smooth_completely_round",
    "smooth_in_between_round",
    "smooth_cigar_shaped",
    "disk_edge_on_rounded_bulge",
    "disk_edge_on_boxy_bulge",
    "disk_edge_on_no_bulge",
    "disk_face_on_tight_spiral",
    "disk_face_on_medium_spiral",
    "disk_face_on_loose_spiral",
]
GALAXY10_DECALS_CLASSES = [
    "disturbed",
    "merging",
    "round_smooth",
    "in_between_round_smooth",
    "cigar_shaped_smooth",
    "barred_spiral",
    "unbarred_tight_spiral",
    "unbarred_loose_spiral",
    "edge_on_without_bulge",
    "edge_on_with_bulge",
]
GALAXY_MNIST_CLASSES = ["smooth_round", "smooth_cigar", "edge_on_disk", "unbarred_spiral"]

_H5_SUFFIXES = (".h5", ".hdf5")


def sniff(path: Path, columns: list[str]) -> bool:
    """True for an HDF5 file with ``images`` and ``ans`` (Galaxy10) or ``labels`` (Galaxy MNIST)."""
    if not path.name.lower().endswith(_H5_SUFFIXES):
        return False
    keys = set(columns)
    return "images" in keys and ("ans" in keys or "labels" in keys)


def read(path: Path, image_dir: Path | None, *, variant: str = "auto", **unknown: object) -> Catalog:
    """Read a Galaxy10 or Galaxy MNIST HDF5 file into the canonical table (``image_dir`` is unused)."""
    import h5py

    reject_options(FORMAT, unknown, ("variant",))
    if variant not in ("auto", "sdss", "decals"):
        raise CatalogError(f"galaxy10 reader: variant={variant!r} is not one of auto, sdss, decals")
    source = str(path)
    if path.name.lower().endswith(".gz"):
        raise CatalogError(f"{source}: gzipped HDF5 cannot be read directly; gunzip it first")
    if not path.is_file():
        raise CatalogError(f"{source}: HDF5 file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise CatalogError(f"{source}: not a readable HDF5 file ({err})") from None
    with f:
        keys = set(f.keys())
        if "images" not in keys or not ({"ans", "labels"} & keys):
            raise CatalogError(
                f"{source}: the Galaxy10 / Galaxy MNIST layout needs datasets 'images' and 'ans' (or "
                f"'labels'); datasets found: {', '.join(sorted(keys)) or 'none'}"
            )
        mnist = "ans" not in keys
        label_key = "labels" if mnist else "ans"
        images = f["images"]
        labels = np.asarray(f[label_key][()]).reshape(-1)
        n = images.shape[0]
        if labels.shape[0] != n:
            raise CatalogError(f"{source}: {n} images but {labels.shape[0]} entries in {label_key!r}")
        image_shape = tuple(int(s) for s in images.shape[1:])
        extra = {
            k: np.asarray(f[k][()]).reshape(-1) for k in ("ra", "dec", "redshift", "pxscale") if k in keys
        }
    for k, v in extra.items():
        if v.shape[0] != n:
            raise CatalogError(f"{source}: dataset {k!r} has {v.shape[0]} rows, 'images' has {n}")

    if mnist:
        release, prefix, names, tree_version = "Galaxy MNIST", "galaxy_mnist", GALAXY_MNIST_CLASSES, None
    else:
        decals = variant == "decals" or (
            variant == "auto" and (bool({"ra", "dec", "pxscale"} & extra.keys()) or image_shape[:1] == (256,))
        )
        release = "Galaxy10 DECaLS" if decals else "Galaxy10 SDSS"
        names = GALAXY10_DECALS_CLASSES if decals else GALAXY10_SDSS_CLASSES
        prefix, tree_version = "galaxy10", None
    bad = (labels < 0) | (labels >= len(names)) | (labels != np.round(labels))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise CatalogError(
            f"{source}: {label_key!r} must hold integers 0..{len(names) - 1} ({release}); row {row} has "
            f"{labels[row]!r}"
        )

    table = pd.DataFrame(
        {
            "id": [f"{prefix}_{i}" for i in range(n)],
            "image_path": str(path.absolute()),
            "image_index": np.arange(n, dtype=np.int64),
            label_key: labels.astype(np.int64),
        }
    )
    for k in ("ra", "dec", "redshift"):
        if k in extra:
            table[k] = extra[k].astype(np.float64)
    if "pxscale" in extra:
        table["pixel_scale"] = extra["pxscale"].astype(np.float64)
    meta: dict[str, object] = {"tree_version": tree_version, "image_shape": list(image_shape), "n_images": n}
    if mnist:
        # train_dataset.hdf5 / test_dataset.hdf5: one file is one split, recorded but not imposed.
        name = path.name.lower()
        meta["file_split"] = (
            "train" if name.startswith("train") else "test" if name.startswith("test") else None
        )
    return Catalog(
        table=table,
        release=release,
        source=source,
        label_columns=(label_key,),
        class_names={label_key: list(names)},
        meta=meta,
    )
