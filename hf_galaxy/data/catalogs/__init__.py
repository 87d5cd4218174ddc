"""Galaxy Zoo catalogue readers: one module per release, each returning a canonical :class:`Catalog`.

Adding a release means adding one module with ``FORMAT``, ``sniff(path, columns)`` and
``read(path, image_dir, **options)`` and listing it in ``_READERS``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from hf_galaxy.data.catalogs.base import (
    Catalog,
    CatalogError,
    DecisionTree,
    InMemoryTable,
    Question,
    read_table,
    require_columns,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "DecisionTree",
    "Question",
    "FORMATS",
    "InMemoryTable",
    "read_catalog",
    "read_table",
    "require_columns",
]

# Order matters for auto-detection: the most specific layouts first.
_READERS = ["gz1", "ortho", "gz2", "kaggle", "decals", "galaxy10", "imagefolder"]
FORMATS = tuple(_READERS)


def _module(fmt: str) -> ModuleType:
    return importlib.import_module(f"hf_galaxy.data.catalogs.{fmt}")


def _columns_of(path: Path) -> list[str]:
    """Column names of a table file without reading all of it (empty for folders and HDF5)."""
    if path.is_dir():
        return []
    name = path.name.lower()
    if name.endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(path, "r") as f:
            return list(f.keys())
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if name.endswith((".fits", ".fit", ".fits.gz", ".fit.gz")):
        from astropy.io import fits

        with fits.open(path) as hdul:
            for hdu in hdul[1:]:
                if getattr(hdu, "columns", None) is not None:
                    return list(hdu.columns.names)
        return []
    if name.endswith((".h5.gz", ".hdf5.gz")):
        raise CatalogError(f"{path}: gzipped HDF5 cannot be read directly; gunzip it first")
    import pandas as pd

    sep = "\t" if name.endswith(".tsv") else ","
    try:
        return [str(c).strip() for c in pd.read_csv(path, sep=sep, nrows=0).columns]
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CatalogError(f"{path}: not a readable CSV table ({exc.__class__.__name__}: {exc})") from exc


def detect_format(path: str | os.PathLike) -> str:
    """Name of the release whose layout ``path`` has; the error names the columns and formats tried."""
    p: Path | InMemoryTable = path if isinstance(path, InMemoryTable) else Path(path)
    if not p.exists():
        raise CatalogError(f"catalogue not found: {p}")
    columns = [str(c) for c in p.frame.columns] if isinstance(p, InMemoryTable) else _columns_of(p)
    columns = [c for c in columns if not c.startswith("hf_galaxy_")]  # a loader's bookkeeping, not the user's
    for fmt in _READERS:
        if _module(fmt).sniff(p, columns):
            return fmt
    shown = ", ".join(columns[:30]) + (" ..." if len(columns) > 30 else "")
    raise CatalogError(
        f"{p}: unknown catalogue layout. Columns found: [{shown}]. Formats tried: {', '.join(_READERS)}. "
        "Pass format=... to force one."
    )


def read_catalog(
    catalog: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    *,
    format: str = "auto",
    **options,
) -> Catalog:
    """Read any supported Galaxy Zoo catalogue (or image folder) into a canonical :class:`Catalog`.

    Args:
        catalog: a catalogue file (CSV, CSV.gz, Parquet, FITS, HDF5), an image folder, or an
            :class:`InMemoryTable` (a DataFrame in one of those layouts).
        image_dir: folder holding the cutouts named in the catalogue (default: an ``images/`` folder beside
            the catalogue if there is one, else the catalogue's own folder).
        format: one of :data:`FORMATS`, or ``"auto"`` to detect it from the columns.
        **options: reader-specific options (see each release module).
    """
    path: Any = catalog if isinstance(catalog, InMemoryTable) else Path(catalog)
    if format == "auto":
        format = detect_format(path)
    elif format not in _READERS:
        raise CatalogError(f"format={format!r} is not supported; choose one of: auto, {', '.join(_READERS)}")
    img = Path(image_dir) if image_dir is not None else None
    if img is None and path.is_file() and (path.parent / "images").is_dir():
        img = path.parent / "images"  # the usual layout: catalog.csv beside images/
    if img is not None and not img.is_dir():
        raise CatalogError(f"image_dir {img} is not a folder")
    return _module(format).read(path, img, **options)
