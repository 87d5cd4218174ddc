"""Helpers shared by the release readers: image lookup, column lookup, coordinates, vote masking."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hf_galaxy.data.catalogs.base import CatalogError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".fits", ".fits.gz", ".fit", ".tif", ".tiff")
"""Cut-out file types the readers look for, in order of preference when several exist."""


def split_image_name(name: str) -> tuple[str, str] | None:
    """``(stem, extension)`` of an image file name (``.fits.gz`` counts as one extension), else None."""
    lower = name.lower()
    for ext in sorted(IMAGE_EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)], lower[-len(ext) :]
    return None


def image_root(catalog_path: Path, image_dir: Path | None) -> Path:
    """The folder cut-outs are looked up in: ``image_dir``, else the catalogue's own folder (absolute)."""
    root = image_dir if image_dir is not None else catalog_path.parent
    return Path(os.path.abspath(root))


class ImageFinder:
    """Find ``<root>/<stem>.<ext>`` for the first existing extension, scanning each folder only once.

    When no file exists the ``.jpg`` path is returned anyway: the dataset builder reports missing files.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._listings: dict[Path, dict[str, str]] = {}

    def _listing(self, folder: Path) -> dict[str, str]:
        if folder not in self._listings:
            found: dict[str, tuple[int, str]] = {}
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        parts = split_image_name(entry.name)
                        if parts is None:
                            continue
                        rank = IMAGE_EXTENSIONS.index(parts[1])
                        if parts[0] not in found or rank < found[parts[0]][0]:
                            found[parts[0]] = (rank, entry.name)
            except (FileNotFoundError, NotADirectoryError):
                pass
            self._listings[folder] = {stem: name for stem, (_, name) in found.items()}
        return self._listings[folder]

    def find(self, stem: str, subfolders: Sequence[str] = ()) -> str:
        """Absolute path of the cut-out called ``stem`` in the root (or in one of ``subfolders`` of it)."""
        for folder in (self.root, *(self.root / s for s in subfolders)):
            name = self._listing(folder).get(stem)
            if name is not None:
                return str(folder / name)
        return str(self.root / f"{stem}.jpg")


def resolve_listed_path(value: object, root: Path) -> str | None:
    """Resolve a catalogue's image-path entry (``file_loc``, ``png_loc``): absolute, or relative to ``root``.

    A relative path that does not exist under ``root`` is also tried by its base name; an absolute path
    that does not exist (written on another machine) is also tried as ``root/<parent>/<name>`` and
    ``root/<name>``. When nothing exists the first guess is returned (the dataset builder reports it).
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    if not text:
        return None
    return _resolve_text(text, os.fspath(root))


def _resolve_text(text: str, root: str) -> str:
    """:func:`resolve_listed_path` of a non-empty string (plain ``os.path``: a survey-size column has millions)."""
    first = text if os.path.isabs(text) else os.path.normpath(os.path.join(root, text))
    if os.path.exists(first):
        return first
    name, parent = os.path.basename(text), os.path.basename(os.path.dirname(text))
    for candidate in (os.path.join(root, parent, name), os.path.join(root, name)):
        if os.path.exists(candidate):
            return candidate
    return first


def resolve_listed_paths(values: Iterable[object], root: Path) -> np.ndarray:
    """:func:`resolve_listed_path` of a whole column (an object array; each distinct entry resolved once)."""
    done: dict[str, str] = {}
    out = []
    root_s = os.fspath(root)
    for value in values:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append(None)
            continue
        text = str(value).strip()
        if not text:
            out.append(None)
        elif text in done:
            out.append(done[text])
        else:
            out.append(done.setdefault(text, _resolve_text(text, root_s)))
    return np.array(out, dtype=object)


def find_column(columns: Iterable[str], *candidates: str) -> str | None:
    """The first of ``candidates`` present in ``columns`` (exact match first, then case-insensitive)."""
    cols = list(columns)
    for c in candidates:
        if c in cols:
            return c
    lower = {c.lower(): c for c in cols}
    for c in candidates:
        if c.lower() in lower:
            return lower[c.lower()]
    return None


def numeric(series: pd.Series) -> pd.Series:
    """``series`` as float64; text that is not a number becomes NaN (never raises on bad cells)."""
    return pd.to_numeric(series, errors="coerce").astype("float64")


def mask_unanswered(values: pd.DataFrame, total: pd.Series | None) -> pd.DataFrame:
    """Set every answer of a question to NaN on rows where nobody answered it (``total`` is 0)."""
    if total is None:
        return values
    nobody = (numeric(total) <= 0).to_numpy(bool)  # NaN total: unknown, so the fractions are kept
    out = values.copy()
    out.loc[nobody, :] = np.nan
    return out


#: how far a catalogue's vote fraction may be from its count / total-votes (the releases round to 3 decimals)
FRACTION_TOLERANCE = 0.01


def ortho_votes(
    df: pd.DataFrame, questions: Sequence[tuple[str, str, Any]], out: dict[str, object]
) -> tuple[set[str], list[str], dict[str, np.ndarray]]:
    """Read galaxy-datasets "ortho" vote columns into ``out``: for each ``(column base, canonical name,
    question)``, the counts ``<base>_<answer>`` (-> ``<name>_<answer>_count``), the fractions
    ``<base>_<answer>_fraction`` (or counts / ``<base>_total-votes`` when a question has no fractions; ->
    ``<name>_<answer>``, NaN where nobody answered) and the total (-> ``<name>_total-votes``).

    Returns the columns consumed, the questions whose fractions were computed from counts, and the rows to
    drop with their reason: a negative count, or fractions that differ from count / total by more than
    :data:`FRACTION_TOLERANCE`.
    """
    cols = set(df.columns)
    consumed: set[str] = set()
    computed: list[str] = []
    negative = np.zeros(len(df), dtype=bool)
    mismatch = np.zeros(len(df), dtype=bool)
    for base, name, q in questions:
        counts = [f"{base}_{a}" for a in q.answers]
        fracs = [f"{base}_{a}_fraction" for a in q.answers]
        total_col = f"{base}_total-votes"
        has_counts, has_fracs = all(c in cols for c in counts), all(c in cols for c in fracs)
        if not has_counts and not has_fracs:
            continue
        count = None
        if has_counts:
            count = pd.DataFrame({a: numeric(df[c]) for a, c in zip(q.answers, counts)})
            total = numeric(df[total_col]) if total_col in cols else count.sum(axis=1, min_count=1)
            negative |= (count < 0).any(axis=1).to_numpy()
            for a in q.answers:
                out[f"{name}_{a}_count"] = count[a].to_numpy()
        else:
            total = numeric(df[total_col]) if total_col in cols else None
        if has_fracs:
            values = pd.DataFrame({f"{name}_{a}": numeric(df[c]) for a, c in zip(q.answers, fracs)})
            if count is not None:
                mismatch |= fractions_disagree(count, values, total)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                values = count.div(total.where(total > 0), axis=0)
            values.columns = [f"{name}_{a}" for a in q.answers]
            computed.append(name)
        values = mask_unanswered(values, total)
        out.update({c: values[c].to_numpy() for c in values.columns})
        if total is not None:
            out[f"{name}_total-votes"] = total.to_numpy(dtype=float)
        consumed.update([*counts, *fracs, total_col])
    bad = {"vote count negative": negative, "fractions do not match the counts": mismatch & ~negative}
    return consumed, computed, bad


def fractions_disagree(counts: pd.DataFrame, fractions: pd.DataFrame, total: pd.Series) -> np.ndarray:
    """Rows whose fractions differ from ``counts / total`` by more than :data:`FRACTION_TOLERANCE` (rows
    nobody answered, or with a missing value, never disagree)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        implied = counts.to_numpy(dtype=float) / total.where(total > 0).to_numpy(dtype=float)[:, None]
    gap = np.abs(fractions.to_numpy(dtype=float) - implied)
    return np.nan_to_num(gap, nan=0.0).max(axis=1) > FRACTION_TOLERANCE


#: columns every reader carries through unchanged, row for row (a loader's own bookkeeping, e.g. which row of a
#: Hub dataset holds each galaxy's image)
PASS_THROUGH_PREFIX = "hf_galaxy_"


def pass_through(df: pd.DataFrame, out: dict[str, object]) -> None:
    """Copy ``df``'s :data:`PASS_THROUGH_PREFIX` columns into ``out`` (a reader's output columns, aligned
    with ``df``'s rows)."""
    for c in df.columns:
        if str(c).startswith(PASS_THROUGH_PREFIX):
            out[c] = df[c].to_numpy()


def drop_rows(
    out: dict[str, object], bad: dict[str, np.ndarray], ids: Sequence[str]
) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """``out`` (columns of equal length) without the rows flagged in ``bad`` (reason -> mask), and the
    ``(id, reason)`` of each dropped row."""
    dropped: list[tuple[str, str]] = []
    drop = np.zeros(len(ids), dtype=bool)
    for reason, mask in bad.items():
        for i in np.flatnonzero(mask & ~drop):
            dropped.append((str(ids[i]), reason))
        drop |= mask
    if not drop.any():
        return out, dropped
    keep = ~drop
    return {k: np.asarray(v)[keep] for k, v in out.items()}, dropped


_SEXAGESIMAL = r"^\s*([+-]?)(\d{1,3})[: ](\d{1,2})[: ](\d{1,2}(?:\.\d*)?)\s*$"


def _split_sexagesimal(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ``[±]D:M:S`` parse: (signed value in the first field's unit, matched mask)."""
    parts = values.str.extract(_SEXAGESIMAL)
    matched = parts[1].notna().to_numpy(bool)
    d, m, sec = (pd.to_numeric(parts[i], errors="coerce").to_numpy(float, na_value=np.nan) for i in (1, 2, 3))
    sign = np.where(
        (parts[0] == "-").fillna(False).to_numpy(bool), -1.0, 1.0
    )  # from the text: "-00:12:34" is negative
    return sign * (d + m / 60.0 + sec / 3600.0), matched


def sexagesimal_to_degrees(ra: pd.Series, dec: pd.Series, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert RA (``HH:MM:SS.ss``, hours) and Dec (``±DD:MM:SS.s``, degrees) strings to degrees.

    ``H:M:S`` text is split in bulk (astropy's per-string parser takes ~75 us a value, minutes for
    GZ1's 893k rows); other spellings (``12h30m49.4s``) go through astropy's parser. The result is
    validated by :class:`astropy.coordinates.SkyCoord`. Missing values give NaN; an unparsable or
    out-of-range value raises :class:`CatalogError` naming its row.
    """
    from astropy import units as u
    from astropy.coordinates import Angle, SkyCoord

    ra_s = ra.astype("string").str.strip()
    dec_s = dec.astype("string").str.strip()
    present = (ra_s.notna() & dec_s.notna() & (ra_s != "") & (dec_s != "")).fillna(False).to_numpy(bool)
    ra_h, ra_ok = _split_sexagesimal(ra_s.fillna(""))
    dec_d, dec_ok = _split_sexagesimal(dec_s.fillna(""))
    ra_deg = (ra_h * u.hourangle).to_value(u.deg)
    dec_deg = dec_d.copy()
    for i in np.flatnonzero(present & ~(ra_ok & dec_ok)):
        try:
            ra_deg[i] = Angle(ra_s.iloc[i], unit=u.hourangle).deg
            dec_deg[i] = Angle(dec_s.iloc[i], unit=u.deg).deg
        except (ValueError, TypeError) as err:
            raise CatalogError(
                f"{source}: row {i}: cannot parse RA={ra_s.iloc[i]!r} (HH:MM:SS, hours) / "
                f"DEC={dec_s.iloc[i]!r} (±DD:MM:SS, degrees): {err}"
            ) from None
    ra_deg[~present] = np.nan
    dec_deg[~present] = np.nan
    bad = present & ((ra_deg < 0) | (ra_deg >= 360) | (np.abs(dec_deg) > 90) | np.isnan(ra_deg))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CatalogError(
            f"{source}: row {i}: RA={ra_s.iloc[i]!r} / DEC={dec_s.iloc[i]!r} is out of range "
            f"(RA 0-24 h, Dec -90..+90 deg); {int(bad.sum())} such row(s)"
        )
    if present.any():
        coords = SkyCoord(ra_deg[present] * u.deg, dec_deg[present] * u.deg, frame="icrs")
        ra_deg[present] = coords.ra.deg
        dec_deg[present] = coords.dec.deg
    return ra_deg, dec_deg


def looks_sexagesimal(series: pd.Series) -> bool:
    """True when the column holds text such as ``12:34:56.7`` rather than decimal numbers."""
    if pd.api.types.is_numeric_dtype(series):
        return False
    sample = series.dropna().astype(str).str.strip()
    sample = sample[sample != ""].head(50)
    return bool(len(sample)) and bool(sample.str.contains(r"[:hdms ]", regex=True).any())


def radec_degrees(
    df: pd.DataFrame, source: str, *pairs: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """RA and Dec in degrees from the columns of ``df`` named by ``pairs`` (``(ra, dec)`` name candidates,
    matched case-insensitively), and how they were read; None when no pair is present.

    A pair of decimal columns wins; otherwise the first pair present is read as sexagesimal text
    (:func:`sexagesimal_to_degrees`, RA in hours).
    """
    found = [(find_column(df.columns, r), find_column(df.columns, d)) for r, d in pairs]
    found = [(r, d) for r, d in found if r is not None and d is not None]
    if not found:
        return None
    for r, d in found:
        if not looks_sexagesimal(df[r]) and not looks_sexagesimal(df[d]):
            return numeric(df[r]).to_numpy(), numeric(df[d]).to_numpy(), f"{r}/{d} decimal degrees"
    r, d = found[0]
    ra, dec = sexagesimal_to_degrees(df[r], df[d], source)
    return ra, dec, f"{r}/{d} sexagesimal (RA in hours) converted to degrees"


def ids_as_strings(series: pd.Series, source: str, column: str) -> pd.Series:
    """Ids as stripped strings; an empty or missing id raises :class:`CatalogError` naming the row."""
    out = series.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v).strip())
    bad = out.isna() | (out == "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CatalogError(f"{source}: row {row}: empty {column!r} (galaxy id); {int(bad.sum())} such row(s)")
    return out.astype(object)


def count_duplicate_ids(ids: pd.Series) -> int:
    """Number of rows whose id repeats an earlier row (load_galaxy_dataset rejects them, naming the ids)."""
    return int(ids.duplicated().sum())


def reject_options(fmt: str, unknown: dict, valid: Sequence[str]) -> None:
    """Raise :class:`CatalogError` naming reader options that ``fmt`` does not take."""
    if unknown:
        raise CatalogError(
            f"the {fmt} reader got unknown option(s) {', '.join(sorted(unknown))}; "
            f"valid options: {', '.join(valid) if valid else 'none'}"
        )
