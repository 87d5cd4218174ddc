"""``load_galaxy_dataset``: a Galaxy Zoo catalogue plus cutouts -> a Hugging Face ``DatasetDict``.

Flow: :func:`hf_galaxy.data.catalogs.read_catalog` (canonical table) -> :func:`hf_galaxy.data.labels.make_labels`
(labels and vote vectors) -> deterministic stratified splits -> images decoded, converted to RGB and
optionally resized once, written to the ``datasets`` Arrow cache. Bad images (missing, zero-byte,
truncated, undecodable) are excluded and listed in a skip report instead of stopping the run.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from hf_galaxy.data.catalogs import InMemoryTable, read_catalog
from hf_galaxy.data.catalogs.base import CatalogError
from hf_galaxy.data.hub import (
    EMBEDDED_IMAGE,
    EMBEDDED_PREFIX,
    EMBEDDED_ROW,
    is_embedded,
    is_prepared,
    open_embedded,
)
from hf_galaxy.data.labels import Labels, make_labels

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
#: How a catalogue's own split column may spell each split.
_SPLIT_SPELLINGS = {"train": ("training",), "validation": ("val", "valid", "dev"), "test": ("testing",)}
_SPLIT_ALIASES = {alias: split for split, more in _SPLIT_SPELLINGS.items() for alias in (split, *more)}
_INFO_PREFIX = "hf-galaxy:"
#: shards of each streamed split (``IterableDataset.n_shards``): what nodes and DataLoader workers divide
STREAMING_SHARDS = 32
_FORMAT_VERSION = "1"  # bump when the prepared rows change, to invalidate old caches


class ImageError(ValueError):
    """An image could not be read or converted; ``reason`` is a short category for reports."""

    def __init__(self, message: str, reason: str = "unreadable image") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class LoadReport:
    """What :func:`load_galaxy_dataset` kept and dropped, and why."""

    source: str
    n_catalog: int
    split_sizes: dict[str, int] = field(default_factory=dict)
    dropped: list[dict[str, str]] = field(default_factory=list)
    path: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Number of dropped rows per stage and reason."""
        return dict(Counter(f"{d['stage']}: {d['reason']}" for d in self.dropped))

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)

    def summary(self) -> str:
        """Human-readable one-paragraph summary."""
        lines = [
            f"{self.source}: {self.n_catalog} catalogue rows -> "
            + ", ".join(f"{k} {v}" for k, v in self.split_sizes.items())
        ]
        for reason, k in sorted(self.counts.items(), key=lambda kv: -kv[1]):
            lines.append(f"  dropped {k}: {reason}")
        if self.path:
            lines.append(f"  skip report: {self.path}")
        return "\n".join(lines)


def _datasets():
    import datasets

    return datasets


#: The ``DatasetDict`` methods that return a new dict: their result keeps the load report and the dataset
#: facts (split sizes recounted, class balance recomputed where the ``label`` column is still there).
_FACT_KEEPING_METHODS = (
    "align_labels_with_mapping", "cast", "cast_column", "class_encode_column", "filter", "flatten",
    "flatten_indices", "map", "remove_columns", "rename_column", "rename_columns", "select_columns",
    "shuffle", "sort", "with_format", "with_transform",
)  # fmt: skip


def recount_facts(dsd: Any) -> None:
    """Bring ``dsd.galaxy_info`` up to date after its splits changed (``dsd["train"] = ...``): split sizes are
    recounted and the class balance left for :func:`describe` to recompute."""
    info = getattr(dsd, "galaxy_info", None)
    if info is None or not all(hasattr(ds, "__len__") for ds in dsd.values()):
        return
    info["split_sizes"] = {s: len(ds) for s, ds in dsd.items()}
    info.pop("class_balance", None)


def _keeping_facts(cls: type, method: Any) -> Any:
    import functools

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = method(self, *args, **kwargs)
        if out is self or not isinstance(out, dict):
            return out
        if not isinstance(out, cls):
            out = cls(out)
        out.report = getattr(self, "report", None)
        out.galaxy_info = dict(getattr(self, "galaxy_info", None) or {})
        recount_facts(out)
        return out

    return wrapper


def _dict_classes():
    datasets = _datasets()

    class GalaxyDatasetDict(datasets.DatasetDict):
        """A ``DatasetDict`` that also carries the :class:`LoadReport` (``report``) and the dataset facts
        (``galaxy_info``); ``map``, ``filter``, ``select_columns``... return one too, with both."""

        report: LoadReport
        galaxy_info: dict

    class GalaxyIterableDatasetDict(datasets.IterableDatasetDict):
        """An ``IterableDatasetDict`` (``streaming=True``) with the :class:`LoadReport` and the facts."""

        report: LoadReport
        galaxy_info: dict

    for cls, base in (
        (GalaxyDatasetDict, datasets.DatasetDict),
        (GalaxyIterableDatasetDict, datasets.IterableDatasetDict),
    ):
        for name in _FACT_KEEPING_METHODS:
            if hasattr(base, name):
                setattr(cls, name, _keeping_facts(cls, getattr(base, name)))
    return GalaxyDatasetDict, GalaxyIterableDatasetDict


_CLASSES: tuple | None = None


def __getattr__(name: str) -> Any:
    global _CLASSES
    if name in ("GalaxyDatasetDict", "GalaxyIterableDatasetDict"):
        if _CLASSES is None:
            _CLASSES = _dict_classes()
        return _CLASSES[0] if name == "GalaxyDatasetDict" else _CLASSES[1]
    raise AttributeError(name)


# ----------------------------------------------------------------------------------------------- images
def _stretch_to_uint8(data: np.ndarray) -> np.ndarray:
    """Asinh stretch of one band (0.5-99.5 percentile interval) to uint8."""
    from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval

    finite = np.nan_to_num(data.astype(np.float64), nan=0.0)
    norm = ImageNormalize(finite, interval=PercentileInterval(99.5), stretch=AsinhStretch(0.1), clip=True)
    return (np.asarray(norm(finite)) * 255.0 + 0.5).astype(np.uint8)


def _fits_to_rgb(path: Path) -> Image.Image:
    from astropy.io import fits

    with fits.open(path) as hdul:
        data = next((h.data for h in hdul if getattr(h, "data", None) is not None and h.data.ndim >= 2), None)
        if data is None:
            raise ImageError(f"{path}: FITS file has no image HDU", "unreadable image")
        data = np.asarray(data, dtype=np.float64)
    if data.ndim == 3 and data.shape[0] in (3, 4) and data.shape[-1] not in (3, 4):
        data = np.moveaxis(data[:3], 0, -1)  # (band, y, x) -> (y, x, band)
    if data.ndim == 2:
        band = _stretch_to_uint8(data)
        arr = np.stack([band] * 3, axis=-1)
    elif data.ndim == 3 and data.shape[-1] >= 3:
        # Astronomical order is (i, r, g) -> (R, G, B) when three bands are given blue-to-red as (g, r, i).
        arr = np.stack([_stretch_to_uint8(data[..., k]) for k in (2, 1, 0)], axis=-1)
    else:
        raise ImageError(f"{path}: FITS image of shape {data.shape} is neither 2-D nor 3-band")
    return Image.fromarray(np.ascontiguousarray(arr[::-1]), "RGB")  # FITS rows run bottom-up


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB consistently.

    Grayscale is replicated to three channels; alpha is composited onto black (the sky); 16- and 32-bit
    integer images are scaled by their bit depth (65535 -> 255), float images by an asinh stretch.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = (np.asarray(img, dtype=np.float64) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
        return Image.fromarray(np.stack([arr] * 3, axis=-1), "RGB")
    if mode == "I":
        raw = np.asarray(img, dtype=np.float64)
        top = 65535.0 if raw.max(initial=0) <= 65535 else float(2**32 - 1)
        arr = (np.clip(raw, 0, top) / top * 255.0 + 0.5).astype(np.uint8)
        return Image.fromarray(np.stack([arr] * 3, axis=-1), "RGB")
    if mode == "F":
        arr = _stretch_to_uint8(np.asarray(img))
        return Image.fromarray(np.stack([arr] * 3, axis=-1), "RGB")
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return img.convert("RGB")


#: Pillow's decompression-bomb limit, the default ``max_image_pixels``: a larger image is a counted skip.
DEFAULT_MAX_IMAGE_PIXELS: int = int(Image.MAX_IMAGE_PIXELS or 0)


@contextlib.contextmanager
def _pil_open(
    path: str | os.PathLike | io.BytesIO, max_pixels: int | None, name: str = ""
) -> Iterator[Image.Image]:
    """``Image.open`` with hf-galaxy's pixel limit instead of Pillow's process-wide one: an image of more than
    ``max_pixels`` pixels (None: :data:`DEFAULT_MAX_IMAGE_PIXELS`; 0: no limit) raises :class:`ImageError`
    naming its size, before its pixels are decoded."""
    limit = DEFAULT_MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # Pillow's check is global; ours below is per call, and restored at once
    try:
        img = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    with img:
        w, h = img.size
        if limit and w * h > limit:
            raise ImageError(
                f"{name or path}: image of {w}x{h} = {w * h:,} pixels exceeds max_image_pixels={limit:,}",
                "image too large",
            )
        yield img


def open_image(
    path: str | os.PathLike, index: int | None = None, *, max_pixels: int | None = None
) -> Image.Image:
    """Open a cutout (JPEG/PNG/TIFF/FITS, or row ``index`` of an HDF5 ``images`` array) as 8-bit RGB.

    Raises :class:`ImageError` with the file and the reason for missing, empty, truncated, unreadable or
    too large (more than ``max_pixels`` pixels, see :func:`_pil_open`) files.
    """
    p = Path(path)
    name = p.name.lower()
    if index is not None and name.endswith((".h5", ".hdf5")):
        import h5py

        try:
            with h5py.File(p, "r") as f:
                arr = np.asarray(f["images"][int(index)])
        except FileNotFoundError:
            raise ImageError(f"{p}: missing image file", "missing image file") from None
        except (OSError, KeyError, IndexError, ValueError) as exc:
            raise ImageError(
                f"{p}[images][{index}]: unreadable HDF5 image ({exc})", "unreadable image"
            ) from exc
        if arr.dtype != np.uint8:
            arr = (
                _stretch_to_uint8(arr)
                if arr.ndim == 2
                else np.stack([_stretch_to_uint8(arr[..., k]) for k in range(arr.shape[-1])], axis=-1)
            )
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        return Image.fromarray(np.ascontiguousarray(arr[..., :3]), "RGB")
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"{p}: missing image file", "missing image file") from None
    if size == 0:
        raise ImageError(f"{p}: zero-byte image file", "zero-byte image file")
    if name.endswith((".fits", ".fit", ".fits.gz", ".fit.gz", ".fz")):
        try:
            return _fits_to_rgb(p)
        except ImageError:
            raise
        except Exception as exc:  # astropy raises many types for corrupt files
            raise ImageError(f"{p}: unreadable FITS file ({exc})") from exc
    try:
        with _pil_open(p, max_pixels) as img:
            img.load()
            return to_rgb(img)
    except OSError as exc:
        reason = "truncated image file" if "truncated" in str(exc).lower() else "unreadable image"
        raise ImageError(f"{p}: {reason} ({exc})", reason) from exc


def _square_resize(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square (cutouts are centred on the galaxy), then resize to ``size``²."""
    w, h = img.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img


def prepare_image(
    path: str, index: int | None, image_size: int | None, max_pixels: int | None = None
) -> dict[str, Any]:
    """Read, convert to RGB and optionally resize one cutout; returns the ``datasets.Image`` storage dict.

    JPEG sources stay JPEG (the original bytes when the file is already RGB and no resize is needed);
    other sources are stored as lossless PNG. ``max_pixels`` is :func:`open_image`'s size limit.
    """
    is_jpeg = index is None and Path(path).suffix.lower() in (".jpg", ".jpeg")
    source_mode = None
    if is_jpeg:
        # Let libjpeg decode at a reduced scale when the target is much smaller (DCT-domain downsampling).
        try:
            with _pil_open(path, max_pixels) as probe:
                source_mode = probe.mode
                if image_size is not None:
                    probe.draft("RGB", (image_size, image_size))
                probe.load()
                img = to_rgb(probe)
        except FileNotFoundError:
            raise ImageError(f"{path}: missing image file", "missing image file") from None
        except OSError:
            img = open_image(path, max_pixels=max_pixels)  # produces the precise error message
    else:
        img = open_image(path, index, max_pixels=max_pixels)
    if image_size is None and is_jpeg and source_mode == "RGB":
        with open(path, "rb") as f:
            return {"bytes": f.read(), "path": None}
    if image_size is not None:
        img = _square_resize(img, image_size)
    buf = io.BytesIO()
    if is_jpeg:
        img.save(buf, format="JPEG", quality=95)
    else:
        img.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def prepare_embedded_image(
    data: bytes | None, where: str, image_size: int | None, max_pixels: int | None = None
) -> dict[str, Any]:
    """:func:`prepare_image` of an image stored inside a dataset (its encoded bytes); ``where`` names it in
    errors. An RGB JPEG that needs no resize keeps its bytes."""
    if not data:
        raise ImageError(f"{where}: empty embedded image", "zero-byte image file")
    try:
        with _pil_open(io.BytesIO(data), max_pixels, name=where) as probe:
            fmt, mode = probe.format, probe.mode
            if image_size is not None and fmt == "JPEG":
                probe.draft("RGB", (image_size, image_size))
            probe.load()
            img = to_rgb(probe)
    except OSError as exc:
        reason = "truncated image file" if "truncated" in str(exc).lower() else "unreadable image"
        raise ImageError(f"{where}: {reason} ({exc})", reason) from exc
    if image_size is None and fmt == "JPEG" and mode == "RGB":
        return {"bytes": bytes(data), "path": None}
    if image_size is not None:
        img = _square_resize(img, image_size)
    buf = io.BytesIO()
    img.save(buf, format="JPEG" if fmt == "JPEG" else "PNG", **({"quality": 95} if fmt == "JPEG" else {}))
    return {"bytes": buf.getvalue(), "path": None}


@dataclass
class RowBlock:
    """The labelled catalogue rows of one split as columns: what the ``datasets`` generator reads.

    ``datasets`` pickles and hashes a generator's arguments to name its cache; numpy columns cost one buffer
    each, where a list of row dicts costs a Python object per value (most of the time to the first example
    of a survey-size catalogue). ``paths`` uses ``""`` and ``indices`` ``-1`` for "none"; ``ra``/``dec`` NaN
    for missing.
    """

    ids: np.ndarray
    labels: np.ndarray
    votes: np.ndarray
    paths: np.ndarray
    indices: np.ndarray
    counts: np.ndarray | None = None
    ra: np.ndarray | None = None
    dec: np.ndarray | None = None

    @classmethod
    def from_table(cls, table: pd.DataFrame, ids: np.ndarray, lab: Labels, has_radec: bool) -> RowBlock:
        """The block of a labelled catalogue table (``lab`` is its :class:`~hf_galaxy.data.labels.Labels`)."""
        n = len(table)
        if "image_path" in table.columns:
            raw = table["image_path"]
            paths = np.where(raw.isna().to_numpy(), "", raw.astype(str).to_numpy()).astype(str)
        else:
            paths = np.full(n, "", dtype=str)
        if "image_index" in table.columns:
            idx = pd.to_numeric(table["image_index"], errors="coerce").to_numpy(dtype=np.float64)
            indices = np.where(np.isnan(idx), -1, idx).astype(np.int64)
        else:
            indices = np.full(n, -1, dtype=np.int64)
        return cls(
            ids=np.asarray(ids, dtype=str),
            labels=np.asarray(lab.labels, dtype=np.int64),
            votes=np.asarray(lab.votes, dtype=np.float32),
            paths=paths,
            indices=indices,
            counts=None if lab.answer_counts is None else np.asarray(lab.answer_counts, dtype=np.int32),
            ra=pd.to_numeric(table["ra"], errors="coerce").to_numpy(np.float64) if has_radec else None,
            dec=pd.to_numeric(table["dec"], errors="coerce").to_numpy(np.float64) if has_radec else None,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> RowBlock:
        """The rows at ``index``, in that order."""
        return RowBlock(
            **{
                k: (None if v is None else v[index])
                for k, v in ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))
            }
        )

    def shards(self, n: int, *, contiguous: bool = False) -> list[RowBlock]:
        """``n`` shards: interleaved (row ``k`` goes to shard ``k % n``), or ``contiguous`` runs of rows (read
        one after the other they keep the rows' order)."""
        if contiguous:
            return [self.take(idx) for idx in np.array_split(np.arange(len(self)), n) if len(idx)]
        return [self.take(np.arange(i, len(self), n)) for i in range(n)]

    def row(self, k: int) -> dict[str, Any]:
        """Row ``k`` as the dict :func:`prepare_row_image` and the features expect."""
        out: dict[str, Any] = {
            "id": str(self.ids[k]),
            "label": int(self.labels[k]),
            "votes": self.votes[k].tolist(),
            "image_path": str(self.paths[k]) or None,
            "image_index": int(self.indices[k]) if self.indices[k] >= 0 else None,
        }
        if self.counts is not None:
            out["counts"] = self.counts[k].tolist()
        if self.ra is not None and self.dec is not None:
            ra, dec = float(self.ra[k]), float(self.dec[k])
            out["ra"] = None if math.isnan(ra) else ra
            out["dec"] = None if math.isnan(dec) else dec
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self.row(k) for k in range(len(self)))


def _generate_rows(
    rows: RowBlock | Sequence[dict],
    image_size: int | None,
    strict: bool,
    max_pixels: int | None = None,
    embedded: Any = None,
) -> Iterator[dict]:
    """Generator behind ``Dataset.from_generator``: one prepared example per catalogue row (images from
    files, or from ``embedded``, the source dataset).

    An image that cannot be prepared, for any reason, is a counted skip with its reason; with ``strict`` it
    raises :class:`ImageError` naming the row and the file.
    """
    for row in rows:
        yield _example(row, image_size, strict, max_pixels, embedded)


def _example(
    row: Mapping[str, Any],
    image_size: int | None,
    strict: bool,
    max_pixels: int | None,
    embedded: Any,
    data: bytes | None = None,
) -> dict[str, Any]:
    """One generated example: the row's columns, its prepared ``image`` (None when it cannot be) and the
    ``skip_reason`` (empty, or ``reason|detail``)."""
    out = {k: v for k, v in row.items() if k not in ("image_path", "image_index")}
    out["image"], error = prepare_row_image(
        row, image_size, max_pixels, strict=strict, embedded=embedded, data=data
    )
    out["skip_reason"] = "" if error is None else f"{error.reason}|{error}"
    return out


def prepare_row_image(
    row: Mapping[str, Any],
    image_size: int | None,
    max_pixels: int | None = None,
    *,
    strict: bool = False,
    embedded: Any = None,
    data: bytes | None = None,
) -> tuple[dict[str, Any] | None, ImageError | None]:
    """:func:`prepare_image` of one catalogue row (``id``, ``image_path``, ``image_index``) as ``(image, None)``,
    or ``(None, error)``: an image that cannot be prepared, for any reason, is a skip with its reason, never a
    failed load; with ``strict`` it raises :class:`ImageError` naming the row and the file. A row whose image
    lives in a dataset (``image_path`` ``embedded://SPLIT``) reads it from ``embedded``, an
    :class:`~hf_galaxy.data.hub.EmbeddedSource`, unless its encoded bytes are given as ``data`` (already read
    from a stream)."""
    path = row["image_path"]
    inside = embedded is not None and path is not None and str(path).startswith(EMBEDDED_PREFIX)
    split = str(path)[len(EMBEDDED_PREFIX) :] if inside else None
    where = f"{embedded.name}[{split}][{row['image_index']}] (id={row['id']})" if split is not None else path
    try:
        if path is None:
            raise ImageError(
                f"row id={row['id']}: no image file is named for this galaxy", "no image file named"
            )
        if split is not None:
            if data is None:
                data = embedded.image_bytes(split, int(row["image_index"]))
            return prepare_embedded_image(data, where, image_size, max_pixels), None
        return prepare_image(path, row.get("image_index"), image_size, max_pixels), None
    except Exception as exc:  # one bad image never fails the whole load
        if not isinstance(exc, ImageError):
            exc = ImageError(
                f"{where}: unexpected {type(exc).__name__} while preparing it ({exc})", "unexpected error"
            )
        if strict:
            raise ImageError(f"row id={row['id']}: {exc} (strict=True stops at the first problem)") from exc
        return None, exc


# ----------------------------------------------------------------------------------------------- splits
def _split_key(galaxy_id: str, seed: int) -> int:
    """A pseudo-random rank for ``galaxy_id`` that depends only on the id and the seed."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{galaxy_id}".encode(), digest_size=8).digest(), "big")


def assign_splits(
    labels: np.ndarray, ids: Sequence[str], seed: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> np.ndarray:
    """Deterministic stratified split: within each class, galaxies ranked by a hash of (seed, id), cut at
    ``fractions``.

    A galaxy's rank depends only on its id and the seed, not on the catalogue's row order or on the other
    rows, so another label scheme or a grown catalogue moves at most the galaxies next to a cut point.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(
            f"split fractions {tuple(fractions)} must be three non-negative numbers summing to 1"
        )
    out = np.empty(len(labels), dtype=object)
    keys = np.array([_split_key(str(i), seed) for i in ids], dtype=np.uint64)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[np.argsort(keys[members], kind="stable")]
        k = len(members)
        n_val = int(round(k * fractions[1]))
        n_test = int(round(k * fractions[2]))
        if k >= 3:  # every split sees every class that has at least three members
            n_val = max(n_val, 1) if fractions[1] > 0 else 0
            n_test = max(n_test, 1) if fractions[2] > 0 else 0
        n_train = k - n_val - n_test
        out[members[:n_train]] = "train"
        out[members[n_train : n_train + n_val]] = "validation"
        out[members[n_train + n_val :]] = "test"
    return out


# ----------------------------------------------------------------------------------------------- cache key
def _fingerprint(parts: Mapping[str, Any], rows: RowBlock) -> str:
    """Hash of the options, the prepared rows and every input file's size and mtime (each file once)."""
    h = hashlib.sha256()
    h.update(json.dumps(parts, sort_keys=True, default=str).encode())
    for f in dataclasses.fields(rows):
        value = getattr(rows, f.name)
        h.update(f.name.encode())
        if value is not None:
            h.update(str(value.dtype).encode() + str(value.shape).encode())
            h.update(np.ascontiguousarray(value).tobytes())
    for path in dict.fromkeys(rows.paths.tolist()):  # one HDF5 file serves many rows: stat it once
        if not path:
            continue
        try:
            st = os.stat(path)
            h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"{path}:missing".encode())
    return h.hexdigest()[:32]


def _features(class_names: list[str], has_radec: bool, n_answers: int | None = None):
    datasets = _datasets()
    feats = {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=class_names),
        "votes": datasets.List(datasets.Value("float32"), length=len(class_names)),
        "id": datasets.Value("string"),
    }
    if n_answers is not None:  # the tree scheme: the vote count of every answer of the tree
        feats["counts"] = datasets.List(datasets.Value("int32"), length=n_answers)
    if has_radec:
        feats["ra"] = datasets.Value("float64")
        feats["dec"] = datasets.Value("float64")
    feats["skip_reason"] = datasets.Value("string")
    return datasets.Features(feats)


def _prepared(source: Any, label_scheme: str, image_size: int | None) -> Any:
    """A dataset published by hf-galaxy, as it was prepared: its splits and its facts (from the dataset card)."""
    import datasets

    facts = dict(source.facts)
    if label_scheme != "plurality" and facts.get("label_scheme") not in (None, label_scheme):
        raise CatalogError(
            f"{source.name} was prepared with label_scheme={facts.get('label_scheme')!r}; it cannot be relabelled "
            f"as {label_scheme!r} (its catalogue columns are not in it)"
        )
    if image_size is not None and facts.get("image_size") not in (None, image_size):
        logger.warning("%s holds %s px images: image_size=%d is left to the image processor", source.name,
                       facts.get("image_size"), image_size)  # fmt: skip
    out = __getattr__("GalaxyDatasetDict")(
        {s: ds.cast_column(source.image_column, datasets.Image()) for s, ds in source.splits.items()}
    )
    out.galaxy_info = {**facts, "catalog": source.name}
    out.report = LoadReport(source=source.name, n_catalog=sum(len(d) for d in out.values()))
    recount_facts(out)
    for ds in out.values():
        ds.info.description = _INFO_PREFIX + json.dumps(out.galaxy_info, default=str)
    return out


# ----------------------------------------------------------------------------------------------- main API
def load_galaxy_dataset(
    catalog: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    *,
    format: str = "auto",
    label_scheme: str = "plurality",
    label_column: str | None = None,
    question: str | None = None,
    threshold: float = 0.8,
    classes: Sequence[str] | Mapping[str, Sequence[str]] | str | None = None,
    seed: int = 0,
    image_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
    streaming: bool = False,
    strict: bool = False,
    max_image_pixels: int | None = None,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    min_share_asked: float = 0.5,
    tree_questions: str | Sequence[str] | None = None,
    name: str | None = None,
    revision: str | None = None,
    task: str = "image-classification",
    box_options: Mapping[str, Any] | None = None,
    **reader_options: Any,
):
    """Load a Galaxy Zoo catalogue (or an image folder) as a ``DatasetDict`` with train/validation/test.

    Args:
        catalog: catalogue file (any supported release; see :mod:`hf_galaxy.data.catalogs`) or image folder.
        image_dir: folder with the cutouts (default: the catalogue's own folder).
        format: release layout, or ``"auto"`` to detect it from the columns.
        label_scheme: ``plurality``, ``clean``, ``votes``, ``column`` or ``tree`` (the vote count of every
            answer of the decision tree, for whole-tree models; see :mod:`hf_galaxy.data.labels`).
        label_column: use a ready label column of the catalogue (e.g. ``"ring"``).
        question: decision-tree question to label by (GZ2, Kaggle, DECaLS), e.g. ``"has-spiral-arms"``.
        threshold: winning-fraction threshold of the ``clean`` scheme.
        classes: select/order classes, merge them (``{new: [old, ...]}``) or a preset name.
        seed: seed of the stratified split.
        image_size: resize (centre-cropped to square) once at preparation time.
        cache_dir: ``datasets`` cache folder (default: the HF datasets cache).
        num_proc: processes that prepare the images.
        streaming: return ``IterableDataset`` splits, prepared on the fly (no disk cache). Images that
            cannot be read are then skipped and logged as iteration reaches them, so ``report.split_sizes``
            are upper bounds and ``report.dropped`` holds only the catalogue and label stages.
        strict: raise at the first bad row or image instead of skipping and reporting it.
        max_image_pixels: an image with more pixels is a counted skip ("image too large", naming its size);
            default Pillow's decompression-bomb limit (about 89 million), 0 for no limit.
        split_fractions: train/validation/test fractions when the catalogue has no split column.
        min_share_asked: with ``question``, the minimum share of volunteers who reached the question.
        tree_questions: with ``label_scheme="tree"``: ``"complete"`` keeps only the questions the catalogue
            has every answer of (else such a question is an error), or the questions to keep.
        name: the config of a Hub dataset (``"tiny"``, ``"default"``), as in ``datasets.load_dataset``.
        revision: the branch, tag or commit of a Hub dataset.
        task: ``"image-classification"`` (default) or ``"detection"``: the transformers detection layout
            (``image_id``, ``image``, ``width``, ``height``, ``objects``) via :func:`hf_galaxy.to_detection`,
            with boxes from catalogue radii where the release has them, else from source extraction.
        box_options: with ``task="detection"``, options of :class:`hf_galaxy.data.detection.BoxConfig`.
        **reader_options: passed to the release reader (e.g. ``fraction="debiased"``, ``mapping=...``).

    Returns:
        A ``GalaxyDatasetDict`` (an ``IterableDatasetDict`` subclass when ``streaming``) whose ``report``
        attribute is a :class:`LoadReport` and whose ``galaxy_info`` holds the facts for model cards.
        Features: ``image``, ``label`` (ClassLabel), ``votes`` (float32, aligned with the class names),
        ``id`` and, when the catalogue has them, ``ra``/``dec``.
    """
    datasets = _datasets()
    if task not in ("image-classification", "detection"):
        raise ValueError(f"task={task!r}: expected 'image-classification' or 'detection'")
    if task == "detection" and streaming:
        raise ValueError(
            "task='detection' needs the prepared images: it cannot be combined with streaming=True"
        )
    if image_size is not None and (not isinstance(image_size, int) or image_size < 8):
        raise ValueError(f"image_size={image_size!r}: expected an integer >= 8 or None")
    if max_image_pixels is not None and (not isinstance(max_image_pixels, int) or max_image_pixels < 0):
        raise ValueError(
            f"max_image_pixels={max_image_pixels!r}: expected an integer >= 0 (0: no limit) or None"
        )
    embedded = None
    if is_embedded(catalog):  # a Hub dataset, a local copy of one, parquet with images, a Dataset object
        embedded = open_embedded(
            catalog, name=name, revision=revision, cache_dir=cache_dir, streaming=streaming
        )
        if is_prepared(embedded):  # hf-galaxy's own layout (publish_dataset): already labelled and split
            return _prepared(embedded, label_scheme, image_size)
        cat = read_catalog(InMemoryTable(embedded.table(), embedded.name), format=format, **reader_options)
        if EMBEDDED_IMAGE not in cat.table.columns:
            raise CatalogError(
                f"{embedded.name}: the {cat.release} reader cannot read images stored in a dataset"
            )
        cat.table = cat.table.assign(
            image_path=cat.table.pop(EMBEDDED_IMAGE), image_index=cat.table.pop(EMBEDDED_ROW)
        )
        catalog = embedded.name
    else:
        cat = read_catalog(catalog, image_dir, format=format, **reader_options)
    report = LoadReport(source=str(catalog), n_catalog=len(cat.table) + len(cat.dropped))
    if cat.dropped and strict:
        i, reason = cat.dropped[0]
        raise CatalogError(f"{catalog}: row id={i}: {reason} (strict=True stops at the first problem)")
    report.dropped.extend({"id": i, "stage": "catalogue", "reason": r} for i, r in cat.dropped)

    dup = cat.table["id"][cat.table["id"].duplicated(keep=False)]
    if len(dup):
        counts = dup.value_counts()
        shown = ", ".join(f"{k} (x{v})" for k, v in counts.head(10).items())
        raise CatalogError(
            f"{catalog}: duplicate galaxy ids ({len(counts)} ids): {shown}. Ids must be unique."
        )

    lab: Labels = make_labels(
        cat,
        label_scheme=label_scheme,
        label_column=label_column,
        question=question,
        threshold=threshold,
        classes=classes,
        min_share_asked=min_share_asked,
        strict=strict,
        tree_questions=tree_questions,
    )
    report.dropped.extend({"id": i, "stage": "labels", "reason": r} for i, r in lab.dropped)
    table = lab.table
    ids = table["id"].astype(str).to_numpy()

    if "split" in table.columns and table["split"].notna().any():
        raw = table["split"].astype("string").str.strip().str.lower()
        split = raw.map(_SPLIT_ALIASES)
        bad = split.isna()
        if bad.any():
            rows = [f"id={ids[i]} ({table['split'].iat[i]!r})" for i in np.flatnonzero(bad.to_numpy())[:10]]
            raise CatalogError(
                f"{catalog}: {int(bad.sum())} row(s) have a split that is not one of {sorted(_SPLIT_ALIASES)}: "
                f"{', '.join(rows)}. Fill the split column for every row, or drop it to split by seed."
            )
        split = split.to_numpy(dtype=object)
        missing = [s for s in ("validation", "test") if s not in split]
        if embedded is not None and missing and (split == "train").any():
            # a Hub dataset's own splits are kept; a missing validation (or test) split is made from train, by seed
            train = np.flatnonzero(split == "train")
            shares = [
                split_fractions[0],
                *(split_fractions[k] if s in missing else 0.0 for k, s in ((1, "validation"), (2, "test"))),
            ]
            carved = assign_splits(
                lab.labels[train], ids[train], seed, tuple(x / sum(shares) for x in shares)
            )
            for s in missing:
                split[train[carved == s]] = s
            logger.info(
                "%s has no %s split: %s of its %d train galaxies (seed %d)", catalog, " or ".join(missing),
                ", ".join(f"{int((carved == s).sum())} became {s}" for s in missing), len(train), seed,
            )  # fmt: skip
    else:
        split = assign_splits(lab.labels, ids, seed, split_fractions)

    has_radec = {"ra", "dec"} <= set(table.columns) and table[["ra", "dec"]].notna().any().all()
    if has_radec and table[["ra", "dec"]].isna().any(axis=1).any():
        logger.info(
            "%d galaxies have no ra/dec (stored as missing)",
            int(table[["ra", "dec"]].isna().any(axis=1).sum()),
        )
    block = RowBlock.from_table(table, ids, lab, has_radec)
    rows_by_split = {s: block.take(np.flatnonzero(split == s)) for s in SPLITS}

    features = _features(lab.class_names, has_radec, lab.tree.n_answers if lab.tree is not None else None)
    info = {
        "release": cat.release,
        "catalog": str(catalog),
        "label_scheme": lab.scheme,
        "threshold": lab.threshold,
        "question": lab.question,
        "class_names": lab.class_names,
        "image_size": image_size,
        "seed": seed,
        **({"tree": lab.tree.to_dict()} if lab.tree is not None else {}),
        **({k: v for k, v in embedded.hub.items() if v is not None} if embedded is not None else {}),
    }
    GalaxyDatasetDict, GalaxyIterableDatasetDict = (
        __getattr__("GalaxyDatasetDict"),
        __getattr__("GalaxyIterableDatasetDict"),
    )

    if streaming:
        out = GalaxyIterableDatasetDict()
        # skipped images are logged and left out by the generator itself: a filter() step would decode and
        # re-encode every image (a second, lossy JPEG compression)
        stream_features = datasets.Features({k: v for k, v in features.items() if k != "skip_reason"})
        for s, rows in rows_by_split.items():
            if not rows:
                continue
            if embedded is not None and embedded.image_streams is not None:  # the Hub files, read lazily
                generate, gen_rows = _generate_streamed_embedded, rows
            else:
                # contiguous shards: datasets.distributed.split_dataset_by_node gives each node whole shards, so
                # a node prepares only its own images (and one process reads them in the catalogue's order)
                generate = _generate_sharded
                gen_rows = rows.shards(min(len(rows), STREAMING_SHARDS), contiguous=True)
            out[s] = datasets.IterableDataset.from_generator(
                _without_skips,
                features=stream_features,
                gen_kwargs={"generate": generate, "rows": gen_rows, "image_size": image_size, "strict": strict,
                            "max_pixels": max_image_pixels, "embedded": embedded},
            )  # fmt: skip
            report.split_sizes[s] = len(rows)
        out.report = report
        out.galaxy_info = {**info, "split_sizes": dict(report.split_sizes), "n_dropped": report.n_dropped}
        logger.info("%s", report.summary())
        return out

    out = GalaxyDatasetDict()
    skipped: list[dict[str, str]] = []
    cache_files: list[str] = []
    for s, rows in rows_by_split.items():
        if not rows:
            continue
        parts = {**info, "split": s, "v": _FORMAT_VERSION, "strict": strict, "max_pixels": max_image_pixels}
        if embedded is not None:
            parts["embedded"] = embedded.fingerprint()
        fp = _fingerprint(parts, rows)
        n_proc = num_proc if num_proc and num_proc > 1 and len(rows) >= 2 * num_proc else None
        gen_rows: Any = rows
        if n_proc:  # datasets shards list-valued gen_kwargs across processes
            gen_rows = rows.shards(n_proc)
        try:
            ds = datasets.Dataset.from_generator(
                _generate_rows if not n_proc else _generate_sharded,
                features=features,
                cache_dir=str(cache_dir) if cache_dir is not None else None,
                gen_kwargs={
                    "rows": gen_rows,
                    "image_size": image_size,
                    "strict": strict,
                    "max_pixels": max_image_pixels,
                    "embedded": embedded,
                },
                num_proc=n_proc,
                fingerprint=fp,
                split=s,
            )
        except Exception as exc:  # datasets wraps generator errors; surface ours unchanged
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, ImageError):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise cause from None
            raise
        reasons = ds["skip_reason"]
        bad = [i for i, r in enumerate(reasons) if r]
        if bad:
            bad_ids = ds.select(bad)["id"]
            for i, j in zip(bad_ids, bad):
                reason, _, detail = reasons[j].partition("|")
                skipped.append({"id": i, "stage": "image", "reason": reason, "detail": detail})
            good = sorted(set(range(len(ds))) - set(bad))
            ds = ds.select(good)
        ds = ds.remove_columns("skip_reason")
        cache_files.extend(f["filename"] for f in ds.cache_files)
        out[s] = ds
    report.dropped.extend(skipped)
    for s, ds in out.items():
        report.split_sizes[s] = len(ds)
    if sum(report.split_sizes.values()) == 0:
        detail = "; ".join(f"{r}: {k}" for r, k in report.counts.items())
        raise CatalogError(f"{catalog}: no galaxies left after filtering ({detail})")
    if report.dropped and cache_files:
        report.path = _write_skip_report(report, Path(cache_files[0]).parent)
    for d in skipped[:20]:
        logger.warning("skipped id=%s: %s", d["id"], d["detail"])
    if len(skipped) > 20:
        logger.warning("... and %d more skipped images (see %s)", len(skipped) - 20, report.path)
    galaxy_info = {
        **info,
        "split_sizes": dict(report.split_sizes),
        "class_balance": {s: _class_balance(ds) for s, ds in out.items()},
        "n_dropped": report.n_dropped,
        "dropped_by_reason": report.counts,
    }
    for ds in out.values():
        ds.info.description = _INFO_PREFIX + json.dumps(galaxy_info)
    out.report = report
    out.galaxy_info = galaxy_info
    logger.info("%s", report.summary())
    if task == "detection":
        from hf_galaxy.data.detection import to_detection

        det = to_detection(out, catalog=cat, num_proc=num_proc, **dict(box_options or {}))
        result = GalaxyDatasetDict(det)
        result.report = report
        result.galaxy_info = {**galaxy_info, "task": "detection"}
        return result
    return out


def _generate_sharded(
    rows: Sequence[RowBlock],
    image_size: int | None,
    strict: bool,
    max_pixels: int | None = None,
    embedded: Any = None,
) -> Iterator[dict]:
    """Like :func:`_generate_rows` over a list of shards (one per worker process)."""
    for shard in rows:
        yield from _generate_rows(shard, image_size, strict, max_pixels, embedded)


def _generate_streamed_embedded(
    rows: RowBlock, image_size: int | None, strict: bool, max_pixels: int | None, embedded: Any
) -> Iterator[dict]:
    """:func:`_generate_rows` for a streamed Hub dataset: each source split's images are read once, in their
    order, and the rows of this split among them are prepared (so the examples come in the source's order)."""
    for split in dict.fromkeys(p[len(EMBEDDED_PREFIX) :] for p in rows.paths.tolist()):
        mine = np.flatnonzero(rows.paths == EMBEDDED_PREFIX + split)
        wanted = {int(rows.indices[k]): int(k) for k in mine}
        last = max(wanted)
        for index, data in enumerate(embedded.stream_images(split)):
            k = wanted.get(index)
            if k is not None:
                yield _example(rows.row(k), image_size, strict, max_pixels, embedded, data)
            if index >= last:
                break


def _without_skips(generate: Any, **kwargs: Any) -> Iterator[dict]:
    """The examples of ``generate(**kwargs)`` whose image could be prepared; the others are logged (streaming)."""
    for out in generate(**kwargs):
        reason = out.pop("skip_reason")
        if reason:
            logger.warning("skipped id=%s: %s", out["id"], reason.partition("|")[2])
            continue
        yield out


def _class_balance(ds) -> dict[str, int]:
    names = ds.features["label"].names
    c = Counter(ds["label"])
    return {n: int(c.get(i, 0)) for i, n in enumerate(names)}


def _write_skip_report(report: LoadReport, folder: Path) -> str:
    """Write the dropped rows as CSV next to the Arrow cache; returns the path."""
    digest = hashlib.sha256(json.dumps(report.dropped, sort_keys=True).encode()).hexdigest()[:12]
    path = folder / f"skip_report-{digest}.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "stage", "reason", "detail"], restval="")
        w.writeheader()
        w.writerows(report.dropped)
    return str(path)


def label_names(dataset: Any) -> list[str] | None:
    """The class names of a dataset's ``label`` ClassLabel column, in id order (None when it has none)."""
    features = getattr(dataset, "features", None)
    label = features.get("label") if features is not None and hasattr(features, "get") else None
    names = getattr(label, "names", None)
    return [str(n) for n in names] if names else None


def describe(dsd) -> dict:
    """Dataset facts for model cards (release, scheme, class names, split sizes, class balance).

    Works on what :func:`load_galaxy_dataset` returns, on such a dataset after ``save_to_disk`` /
    ``load_from_disk``, and (with fewer keys) on any ``DatasetDict`` with a ``label`` ClassLabel.
    """
    info = dict(getattr(dsd, "galaxy_info", {}) or {})
    if not info:
        for ds in dsd.values():
            desc = getattr(getattr(ds, "info", None), "description", "") or ""
            if desc.startswith(_INFO_PREFIX):
                info = json.loads(desc[len(_INFO_PREFIX) :])
                break
    if "split_sizes" not in info:
        info["split_sizes"] = {s: len(ds) for s, ds in dsd.items() if hasattr(ds, "__len__")}
    if "class_names" not in info:
        first = next(iter(dsd.values()))
        label = first.features.get("label") if first.features else None
        info["class_names"] = list(getattr(label, "names", []) or [])
    if "class_balance" not in info and info.get("class_names"):
        info["class_balance"] = {s: _class_balance(ds) for s, ds in dsd.items() if hasattr(ds, "__len__")}
    info.setdefault("n_dropped", 0)
    return info


def dataset_facts(dsd: Any, task: str = "classification") -> dict[str, Any]:
    """The facts a model card records about a training ``DatasetDict``; never raises.

    :func:`describe` (release, label scheme, split sizes, class balance...), and for ``task="detection"``
    the detection facts on top (categories, box source, mosaics): ``class_balance`` becomes the boxes per
    category and split, the loader's per-galaxy balance is kept as ``galaxy_class_balance``. A plain
    ``DatasetDict`` that :func:`describe` cannot read gives what can be read, with a logged notice.
    """
    try:
        facts = dict(describe(dsd))
    except Exception as err:  # describe degrades for plain DatasetDicts; never fail a run over card facts
        logger.warning("could not describe the dataset for the model card: %s", err)
        facts = {}
    if task != "detection":
        return facts
    from hf_galaxy.data.detection import detection_card_facts, detection_info

    if "class_balance" in facts:
        facts["galaxy_class_balance"] = facts.pop("class_balance")
    det = detection_card_facts(dsd)
    for key in ("categories", "object_counts", "detection_splits"):
        facts.setdefault(key, det[key])
    facts["class_balance"] = facts["object_counts"]
    facts["split_sizes"] = {k: len(v) for k, v in dsd.items()}
    facts["detection"] = detection_info(dsd["train"])
    facts.setdefault("mosaics", {})
    return facts
