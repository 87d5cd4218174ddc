"""Datasets with their images inside (Hub layout): ``Dataset``/``DatasetDict`` objects, parquet files with an image
column and local copies of Hub repos read through the release readers, with the same label schemes, skip report
and cache as catalogue files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hf_galaxy import load_galaxy_dataset
from hf_galaxy.data.catalogs import CatalogError
from hf_galaxy.data.catalogs.trees import GZ2_TREE


def _gz2_rows(n: int, seed: int = 0, corrupt: int | None = None) -> dict:
    """Rows in the mwalmsley/gz2 layout: image, id_str, ra, dec, ``{q}-gz2_{a}`` counts, totals, fractions."""
    rng = np.random.default_rng(seed)
    rows: dict = {"image": [], "id_str": [f"g{i:03d}" for i in range(n)], "ra": list(rng.uniform(0, 360, n)),
                  "dec": list(rng.uniform(-10, 60, n))}  # fmt: skip
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(buf, format="JPEG")
        rows["image"].append({"bytes": b"not an image" if i == corrupt else buf.getvalue(), "path": None})
    smooth = rng.integers(0, 2, n).astype(bool)  # half smooth, half featured
    for q in GZ2_TREE.questions:
        counts = rng.integers(0, 6, (n, len(q.answers))).astype(np.int32)
        if q.name == "smooth-or-featured":
            counts[:, 0] += np.where(smooth, 30, 0).astype(np.int32)
            counts[:, 1] += np.where(smooth, 0, 30).astype(np.int32)
        total = counts.sum(axis=1)
        for k, a in enumerate(q.answers):
            rows[f"{q.name}-gz2_{a}"] = counts[:, k]
            rows[f"{q.name}-gz2_{a}_fraction"] = (counts[:, k] / np.maximum(total, 1)).astype(np.float32)
        rows[f"{q.name}-gz2_total-votes"] = total.astype(np.int32)
    return rows


def _dataset_dict(n_train: int = 40, n_test: int = 10, corrupt: int | None = None):
    import datasets

    ds = datasets.Dataset.from_dict(_gz2_rows(n_train + n_test, corrupt=corrupt)).cast_column(
        "image", datasets.Image()
    )
    return datasets.DatasetDict(
        {"train": ds.select(range(n_train)), "test": ds.select(range(n_train, n_train + n_test))}
    )


def test_a_dataset_dict_keeps_its_splits_and_gets_a_validation_split_from_train(tmp_path, caplog):
    src = _dataset_dict()
    with caplog.at_level("INFO"):
        dsd = load_galaxy_dataset(src, image_size=32, cache_dir=tmp_path / "cache")
    assert "has no validation split: " in caplog.text
    sizes = dsd.galaxy_info["split_sizes"]
    assert sizes["test"] == 10 and sizes["train"] + sizes["validation"] == 40 and sizes["validation"] > 0
    assert set(dsd["test"]["id"]) == set(src["test"]["id_str"])  # the repo's own test split, untouched
    assert dsd.galaxy_info["release"] == "Galaxy Zoo 2" and dsd["train"].features["label"].names[:2] == [
        "smooth_or_featured_smooth", "smooth_or_featured_featured_or_disk"]  # fmt: skip
    row = dsd["test"][0]
    assert row["image"].size == (32, 32)
    source = src["test"][0]
    assert row["id"] == source["id_str"] and row["ra"] == pytest.approx(source["ra"])
    # the label follows the counts: the plurality of the root question's votes
    assert row["label"] == int(
        source["smooth-or-featured-gz2_featured-or-disk"] > source["smooth-or-featured-gz2_smooth"]
    )
    tree = load_galaxy_dataset(src, label_scheme="tree", image_size=32, cache_dir=tmp_path / "cache")
    counts = tree["test"][0]["counts"]
    assert counts[:3] == [
        source[f"smooth-or-featured-gz2_{a}"] for a in ("smooth", "featured-or-disk", "artifact")
    ]
    again = load_galaxy_dataset(src, image_size=32, cache_dir=tmp_path / "cache")
    assert again["train"].cache_files == dsd["train"].cache_files  # served from the cache


def test_a_parquet_file_with_images_is_split_by_seed_and_bad_images_are_counted(tmp_path):
    src = _dataset_dict(corrupt=3)
    path = tmp_path / "gz2.parquet"
    src["train"].to_parquet(str(path))
    dsd = load_galaxy_dataset(path, image_size=32, cache_dir=tmp_path / "cache")
    assert set(dsd) == {"train", "validation", "test"}
    assert sum(len(d) for d in dsd.values()) == 39  # one unreadable image, skipped and reported
    (skip,) = [d for d in dsd.report.dropped if d["stage"] == "image"]
    assert skip["id"] == "g003" and str(path) in skip["detail"] and "unreadable image" == skip["reason"]
    with pytest.raises(Exception, match=r"gz2.parquet\[train\]\[3\] \(id=g003\): unreadable image"):
        load_galaxy_dataset(path, image_size=32, strict=True, cache_dir=tmp_path / "cache2")


def test_bad_embedded_sources_name_what_they_found(tmp_path):
    import datasets

    no_image = datasets.Dataset.from_dict({"id_str": ["a"], "smooth-or-featured-gz2_smooth": [1]})
    with pytest.raises(
        CatalogError, match="no image column .*columns found: id_str, smooth-or-featured-gz2_smooth"
    ):
        load_galaxy_dataset(no_image)
    rows = _gz2_rows(4)
    no_votes = datasets.Dataset.from_dict({"image": rows["image"], "id_str": rows["id_str"]}).cast_column(
        "image", datasets.Image()
    )
    with pytest.raises(CatalogError, match=r"unknown catalogue layout. Columns found: \[id_str, split"):
        load_galaxy_dataset(datasets.DatasetDict({"train": no_votes}))
