"""load_galaxy_dataset on real Galaxy Zoo images (tests/fixtures/real, see its PROVENANCE.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hf_galaxy import load_galaxy_dataset

REAL = Path(__file__).parent / "fixtures" / "real"


def test_decals_ring_catalogue_gives_the_volunteer_ring_labels(tmp_path) -> None:
    cat = REAL / "rings" / "catalog.csv"
    truth = pd.read_csv(cat).set_index("id_str")["ring"].to_dict()
    dsd = load_galaxy_dataset(cat, label_column="ring", cache_dir=tmp_path / "cache", image_size=64)
    names = dsd["train"].features["label"].names
    assert names == ["not_ring", "ring"]
    seen = {}
    for split in dsd.values():
        for row in split:
            seen[row["id"]] = names[row["label"]]
            assert row["image"].size == (64, 64)
    assert seen == {k: ("ring" if v == 1 else "not_ring") for k, v in truth.items()}
    assert dsd.report.n_dropped == 0
    # Without label_column, the ready column is still found: the ring sample has no complete vote question.
    auto = load_galaxy_dataset(cat, cache_dir=tmp_path / "cache", image_size=64)
    assert auto["train"].features["label"].names == names


def test_image_folder_of_real_kaggle_images(tmp_path) -> None:
    root = REAL / "gz2_kaggle"
    dsd = load_galaxy_dataset(root, cache_dir=tmp_path / "cache")
    names = dsd["train"].features["label"].names
    assert names == ["non_spiral", "spiral"]
    expected = {p.stem: p.parent.name for p in root.glob("*/*.jpg")}
    got = {row["id"]: names[row["label"]] for split in dsd.values() for row in split}
    assert got == expected
    # originals are kept byte for byte (no resize asked): 424x424 SDSS JPEGs
    first = dsd["train"][0]["image"]
    assert first.size == (424, 424) and first.format == "JPEG"
