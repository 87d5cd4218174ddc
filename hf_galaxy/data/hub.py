"""Galaxy Zoo datasets whose images are inside the data: Hugging Face Hub datasets (``mwalmsley/gz2``,
``mwalmsley/gz_decals_5``, ...), local copies of such repos, parquet files with an image column, and
``datasets.Dataset``/``DatasetDict`` objects.

:func:`open_embedded` turns any of them into an :class:`EmbeddedSource`: the source splits (``datasets``
storage, images kept encoded) and a catalogue table of every other column, which the release readers read
like a file (:class:`~hf_galaxy.data.catalogs.InMemoryTable`). Each row names its image as
``embedded://SPLIT`` with its row number, and the dataset builder reads the bytes from the source.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hf_galaxy.data.catalogs.base import CatalogError

#: a Hub repo id: ``owner/name`` (letters, digits, ``-``, ``_``, ``.``)
#: ``image_path`` of a row whose image is stored in the source dataset: ``embedded://SPLIT`` (row ``image_index``)
EMBEDDED_PREFIX = "embedded://"
#: the catalogue-table columns that carry each row's image split and row through the release readers (the readers
#: pass ``hf_galaxy_*`` columns through: :data:`~hf_galaxy.data.catalogs._common.PASS_THROUGH_PREFIX`)
EMBEDDED_IMAGE, EMBEDDED_ROW = "hf_galaxy_embedded_image", "hf_galaxy_embedded_row"

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TABLE_SUFFIXES = (".csv", ".gz", ".tsv", ".txt", ".parquet", ".pq", ".fits", ".fit", ".h5", ".hdf5", ".json")


@dataclass
class EmbeddedSource:
    """A dataset with its images inside: the source splits and the column holding the images."""

    name: str
    splits: dict[str, Any]
    image_column: str
    #: Hub provenance when it came from the Hub: ``dataset_id``, ``config``, ``revision``
    hub: dict[str, Any] = field(default_factory=dict)
    #: whether the source's splits are kept (repos and DatasetDicts); a parquet file or a Dataset is split by seed
    own_splits: bool = True
    #: streamed: ``splits`` hold the vote columns only and ``image_streams`` the image column, both read lazily
    #: from the parquet files (only the columns asked for are fetched)
    image_streams: dict[str, Any] | None = None
    #: the facts a dataset published by hf-galaxy records in its card (``hf_galaxy`` in the YAML header)
    facts: dict[str, Any] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Every column but the images, all splits stacked, with ``split`` (the source split, when its splits are
        kept), :data:`EMBEDDED_IMAGE` (``embedded://SPLIT``) and :data:`EMBEDDED_ROW` (the row in that split)."""
        frames = []
        for split, ds in self.splits.items():
            if self.image_streams is not None:  # vote columns only, streamed in batches
                frame = pd.concat([pd.DataFrame(b) for b in ds.iter(batch_size=10_000)], ignore_index=True)
            else:
                frame = ds.remove_columns([self.image_column]).to_pandas()
            if self.own_splits:
                frame["split"] = split
            frame[EMBEDDED_IMAGE] = EMBEDDED_PREFIX + split
            frame[EMBEDDED_ROW] = range(len(frame))
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def image_bytes(self, split: str, index: int) -> bytes | None:
        """The encoded image of row ``index`` of ``split``."""
        return _encoded(self.splits[split][int(index)][self.image_column])

    def stream_images(self, split: str) -> Any:
        """The encoded images of ``split`` in row order (a streamed source only)."""
        if self.image_streams is None:
            raise ValueError(f"{self.name} is not streamed")
        for row in self.image_streams[split]:
            yield _encoded(row[self.image_column])

    def fingerprint(self) -> str:
        """Identifies the source's content (the ``datasets`` fingerprints of its splits)."""
        h = hashlib.sha256(self.image_column.encode())
        for split, ds in sorted(self.splits.items()):
            h.update(f"{split}:{getattr(ds, '_fingerprint', '')}:{len(ds)}".encode())
        return h.hexdigest()[:16]


def _encoded(value: Any) -> bytes | None:
    """The bytes of an undecoded ``datasets.Image`` value (read from its ``path`` when it has no bytes)."""
    if not isinstance(value, Mapping):
        return value
    data = value.get("bytes")
    if data is None and value.get("path"):
        with open(value["path"], "rb") as f:  # an image stored by path (a local dataset)
            return f.read()
    return data


def _image_column(features: Mapping[str, Any], where: str) -> str:
    import datasets

    found = [k for k, v in features.items() if isinstance(v, datasets.Image)]
    if not found and "image" in features:
        found = ["image"]
    if not found:
        raise CatalogError(
            f"{where}: no image column (a datasets Image feature); columns found: {', '.join(list(features)[:40])}"
        )
    return found[0]


def _as_splits(data: Any) -> dict[str, Any]:
    import datasets

    if isinstance(data, (datasets.Dataset, datasets.IterableDataset)):
        return {"train": data} if data.split is None else {str(data.split): data}
    if isinstance(data, Mapping):
        return {str(k): v for k, v in data.items()}
    raise CatalogError(f"expected a datasets.Dataset or DatasetDict, got {type(data).__name__}")


def _has_image_column(path: Path) -> bool:
    """Whether a parquet file holds images (a struct column with ``bytes``), rather than only a catalogue."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    for f in schema:
        if pa.types.is_struct(f.type) and "bytes" in [c.name for c in f.type]:
            return True
    return (
        b"huggingface" in (schema.metadata or {}) and b'"_type": "Image"' in schema.metadata[b"huggingface"]
    )


def is_embedded(catalog: Any) -> bool:
    """Whether ``catalog`` is a dataset with its images inside (see the module docstring), not a catalogue
    file or image folder."""
    import datasets

    if isinstance(catalog, (datasets.Dataset, datasets.DatasetDict)):
        return True
    if not isinstance(catalog, (str, os.PathLike)):
        return False
    path = Path(catalog).expanduser()
    if path.is_file():
        return path.suffix.lower() in (".parquet", ".pq") and _has_image_column(path)
    if path.is_dir():
        return (
            (path / "README.md").is_file()
            and any(path.rglob("*.parquet"))
            or (any(path.glob("*/*.parquet")) and not any(path.glob("*/*.jpg")))
        )
    # not a file here, and shaped like owner/name without a catalogue's file extension: a Hub dataset id
    return bool(_REPO_ID.match(str(catalog))) and path.suffix.lower() not in _TABLE_SUFFIXES


#: the dataset-card YAML key holding the facts of a dataset published by hf-galaxy
CARD_FACTS_KEY = "hf_galaxy"


def is_prepared(source: EmbeddedSource) -> bool:
    """Whether ``source`` is in hf-galaxy's own prepared layout (``label`` ClassLabel, ``votes``, ``id``), as
    :func:`~hf_galaxy.hub.publish_dataset` publishes it."""
    import datasets

    if source.image_streams is not None:
        return False
    features = next(iter(source.splits.values())).features
    return isinstance(features.get("label"), datasets.ClassLabel) and {"votes", "id"} <= set(features)


def _card_facts(catalog: Any, revision: str | None) -> dict[str, Any]:
    """The ``hf_galaxy`` facts of a dataset card: a local repo copy's README.md, or the Hub repo's (from the
    cache when offline); empty when there is none."""
    from huggingface_hub import DatasetCard

    path = Path(str(catalog)).expanduser()
    try:
        if path.is_dir():
            readme = path / "README.md"
            text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
        elif path.exists():
            return {}
        else:
            from huggingface_hub import hf_hub_download

            try:
                local = hf_hub_download(str(catalog), "README.md", repo_type="dataset", revision=revision)
            except Exception:  # offline: the copy datasets cached, if any
                local = hf_hub_download(
                    str(catalog), "README.md", repo_type="dataset", revision=revision, local_files_only=True
                )
            text = Path(local).read_text(encoding="utf-8")
        facts = DatasetCard(text).data.to_dict().get(CARD_FACTS_KEY) if text else None
    except Exception:  # a card we cannot read: no facts (the data still loads)
        return {}
    return dict(facts) if isinstance(facts, Mapping) else {}


def open_embedded(
    catalog: Any,
    *,
    name: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    streaming: bool = False,
) -> EmbeddedSource:
    """The :class:`EmbeddedSource` of a Hub dataset id (``name``: its config, ``revision``: branch, tag or
    commit), a local copy of such a repo, a parquet file with an image column, or a ``Dataset``/``DatasetDict``.
    With ``streaming`` a Hub id, repo copy or parquet file is read lazily: the vote columns first, the images
    when they are iterated.

    A Hub id that cannot be had (offline and not cached, unknown repo or config) is a one-line
    :class:`~hf_galaxy.data.catalogs.CatalogError` saying how to get it.
    """
    import datasets

    own_splits = True
    if isinstance(catalog, (datasets.Dataset, datasets.DatasetDict)):
        splits, where, hub = _as_splits(catalog), "the given dataset", {}
        own_splits = isinstance(catalog, datasets.DatasetDict)
    else:
        text = str(catalog)
        path = Path(text).expanduser()
        kwargs: dict[str, Any] = {"cache_dir": str(cache_dir) if cache_dir is not None else None}
        if path.is_file():
            source, kwargs["data_files"], where, hub = "parquet", str(path), str(path), {}
            own_splits = False
        elif path.is_dir():
            source, where, hub = str(path), str(path), {}
            kwargs["name"] = name
        else:
            source, where = text, f"Hub dataset {text}" + (f" ({name})" if name else "")
            hub = {"dataset_id": text, "config": name, "revision": revision}
            kwargs.update(name=name, revision=revision)
        try:
            if streaming:
                return _open_streamed(source, kwargs, where, hub, own_splits)
            splits = _as_splits(datasets.load_dataset(source, **kwargs))
        except (FileNotFoundError, ConnectionError, ValueError, OSError) as err:
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            how = (
                f"; while offline it must be in the Hugging Face cache: run datasets.load_dataset({text!r}"
                + (f", name={name!r}" if name else "")
                + ") once with network access (or set HF_HUB_OFFLINE=0)"
                if hub
                else ""
            )
            local = "" if not hub else f"; if {text} is meant as a local path, it does not exist"
            raise CatalogError(f"{where}: could not be loaded ({detail}){how}{local}") from err
    if not splits:
        raise CatalogError(f"{where}: the dataset has no splits")
    first = next(iter(splits.values()))
    column = _image_column(first.features, where)
    for split, ds in splits.items():
        if isinstance(ds.features.get(column), datasets.Image):
            splits[split] = ds.cast_column(column, datasets.Image(decode=False))
    source = EmbeddedSource(name=where, splits=splits, image_column=column, hub=hub, own_splits=own_splits)
    if is_prepared(source):
        if isinstance(catalog, (datasets.Dataset, datasets.DatasetDict)):
            from hf_galaxy.data.dataset import describe

            source.facts = {k: v for k, v in describe(_as_splits(catalog)).items() if k != "split_sizes"}
        else:
            source.facts = _card_facts(catalog, revision)
    return source


def _open_streamed(
    source: str, kwargs: dict[str, Any], where: str, hub: dict[str, Any], own_splits: bool
) -> EmbeddedSource:
    """:func:`open_embedded` with ``streaming``: two lazy readers of the same files, one of the vote columns
    and one of the image column."""
    import datasets

    kwargs = {k: v for k, v in kwargs.items() if k != "cache_dir" and v is not None}
    probe = datasets.load_dataset(source, streaming=True, **kwargs)
    first = next(iter(probe.values())) if isinstance(probe, datasets.IterableDatasetDict) else probe
    features = first.features
    if features is None:  # no recorded features: read them off the first example's columns
        features = datasets.Features({k: datasets.Value("string") for k in next(iter(first))})
    column = _image_column(features, where)
    others = [c for c in features if c != column]
    votes = _as_splits(datasets.load_dataset(source, streaming=True, columns=others, **kwargs))
    images = _as_splits(datasets.load_dataset(source, streaming=True, columns=[column], **kwargs))
    images = {k: v.cast_column(column, datasets.Image(decode=False)) for k, v in images.items()}
    return EmbeddedSource(
        name=where, splits=votes, image_column=column, hub=hub, own_splits=own_splits, image_streams=images
    )
