"""The canonical catalogue table that every Galaxy Zoo reader returns.

Every reader in :mod:`hf_galaxy.data.catalogs` turns one release's table into a :class:`Catalog`, so
everything downstream (labels, dataset building, detection) is release-agnostic.

Canonical columns of ``Catalog.table`` (one row per galaxy):

``id`` (str)
    The galaxy id as a string (SDSS objIDs overflow float64, so they are never parsed as floats).
``image_path`` (str or None)
    Absolute path of the cutout (JPEG/PNG/TIFF/FITS), or of the HDF5 file for Galaxy10-style sets.
``image_index`` (int, optional)
    Row of the ``images`` array inside an HDF5 ``image_path``.
``{question}_{answer}`` (float)
    Vote fraction of ``answer`` among the volunteers who answered ``question`` (conditional, so the
    answers of one question sum to ~1); NaN where nobody answered. The questions and answers are those
    of ``Catalog.tree``.
``{question}_total-votes`` (float, optional)
    Number of volunteers who answered the question.
``ra``, ``dec`` (float, degrees, optional); ``radius_arcsec``, ``petro_th50``, ``petro_th90``,
``pixel_scale`` (arcsec/px), ``nvotes``, ``redshift`` (optional)
``split`` (str, optional)
    ``train`` / ``validation`` / ``test`` when the catalogue carries its own split.
Ready label columns (``Catalog.label_columns``)
    Columns that already hold a class (``ring`` in the DECaLS ring sample, ``ans`` in Galaxy10, the
    sub-folder name of an image folder). ``Catalog.class_names[col]`` names their integer values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


class CatalogError(ValueError):
    """A catalogue could not be read or does not have the layout that was asked for."""


@dataclass(frozen=True)
class Question:
    """One decision-tree question: its answers and the (question, answer) that leads to it."""

    name: str
    answers: tuple[str, ...]
    parent: tuple[str, str] | None = None
    text: str = ""

    def columns(self) -> list[str]:
        """Names of this question's vote-fraction columns in the canonical table."""
        return [f"{self.name}_{a}" for a in self.answers]


@dataclass(frozen=True)
class DecisionTree:
    """A Galaxy Zoo decision tree (GZ1 is a tree with one question)."""

    name: str
    questions: tuple[Question, ...]
    aliases: dict[str, str] = field(default_factory=dict)

    def question(self, name: str) -> Question:
        """Look a question up by name or alias; the error lists the valid names."""
        key = self.aliases.get(name, name)
        for q in self.questions:
            if q.name == key:
                return q
        names = ", ".join(q.name for q in self.questions)
        raise CatalogError(f"question {name!r} is not in the {self.name} decision tree; questions: {names}")

    @property
    def root(self) -> Question:
        """The first question, answered by every volunteer."""
        return self.questions[0]

    def restrict(self, columns: Sequence[str]) -> DecisionTree:
        """The sub-tree of questions whose every answer column is present in ``columns``."""
        cols = set(columns)
        kept = tuple(q for q in self.questions if all(c in cols for c in q.columns()))
        return DecisionTree(self.name, kept, dict(self.aliases))


@dataclass
class Catalog:
    """A Galaxy Zoo catalogue in canonical form (see the module docstring for the columns)."""

    table: pd.DataFrame
    release: str
    source: str
    tree: DecisionTree | None = None
    label_columns: tuple[str, ...] = ()
    class_names: dict[str, list[str]] = field(default_factory=dict)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table)

    def vote_columns(self) -> list[str]:
        """All vote-fraction columns of the tree, in tree order."""
        if self.tree is None:
            return []
        return [c for q in self.tree.questions for c in q.columns()]


class InMemoryTable(os.PathLike):
    """A catalogue that is already a DataFrame (the vote columns of a Hub dataset or a ``datasets.Dataset``),
    passed to the release readers where a file path would go: :func:`read_table` returns (a copy of) the
    frame, and ``name`` is what messages call it. It has no folder, so no cut-out is looked up beside it."""

    def __init__(self, frame: pd.DataFrame, name: str) -> None:
        self.frame = frame
        self.name = name
        self.parent = Path(os.devnull)  # no folder of cut-outs beside an in-memory table
        self.suffix = ""

    def __fspath__(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name

    def is_dir(self) -> bool:
        return False

    def is_file(self) -> bool:
        return False

    def exists(self) -> bool:
        return True


def read_table(path: str | os.PathLike, id_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV (optionally gzipped), Parquet or FITS table, keeping ``id_columns`` as strings.

    Object ids overflow float64, so they are read as text; other columns get pandas' inference. An
    :class:`InMemoryTable` gives a copy of its frame.
    """
    df = path.frame.copy() if isinstance(path, InMemoryTable) else _read_file(Path(path), id_columns)
    df.columns = [str(c).strip() for c in df.columns]
    for c in id_columns:
        for col in df.columns:
            if col.lower() == c.lower():
                df[col] = df[col].map(_id_to_str)
    return df


def _read_file(path: Path, id_columns: Sequence[str]) -> pd.DataFrame:
    """:func:`read_table` of a file, before the column names and ids are normalised."""
    if not path.exists():
        raise CatalogError(f"catalogue file not found: {path}")
    name = path.name.lower()
    if name.endswith((".fits", ".fit", ".fits.gz", ".fit.gz")):
        from astropy.table import Table

        table = Table.read(path)
        df = table.to_pandas()
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].map(lambda v: v.decode().strip() if isinstance(v, bytes) else v)
    elif name.endswith((".parquet", ".pq")):
        df = pd.read_parquet(path)
    elif name.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
        sep = "\t" if name.endswith(".tsv") else ","
        header = pd.read_csv(path, sep=sep, nrows=0, skipinitialspace=True).columns
        dtypes = {
            c: str
            for c in header
            if c.strip() in set(id_columns) or c.strip().lower() in {i.lower() for i in id_columns}
        }
        df = pd.read_csv(path, sep=sep, dtype=dtypes, skipinitialspace=True)
    else:
        raise CatalogError(
            f"{path}: unsupported catalogue file type; expected .csv, .csv.gz, .parquet or .fits"
        )
    return df


def _id_to_str(v: object) -> str | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, bytes):
        v = v.decode()
    return str(v).strip()


def require_columns(df: pd.DataFrame, columns: Sequence[str], source: str, release: str) -> None:
    """Raise :class:`CatalogError` naming every required column missing from ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CatalogError(
            f"{source}: the {release} layout needs column(s) {', '.join(missing)}, which are missing; "
            f"columns found: {', '.join(map(str, df.columns[:40]))}{' ...' if len(df.columns) > 40 else ''}"
        )
