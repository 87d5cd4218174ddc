"""load_galaxy_dataset on 2,000 synthetic GZ1 galaxies: the per-class counts each scheme implies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hf_galaxy import load_galaxy_dataset
from hf_galaxy.data.synthetic import make_galaxy_zoo

GZ1 = ["elliptical", "clockwise_spiral", "anticlockwise_spiral", "edge_on", "star_or_unknown", "merger"]
P_COLUMNS = ["P_EL", "P_CW", "P_ACW", "P_EDGE", "P_DK", "P_MG"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return make_galaxy_zoo(
        tmp_path_factory.mktemp("zoo") / "gz1", 2000, seed=3, image_size=32, show_progress=False
    )


def expected_counts(catalog: Path, scheme: str, threshold: float = 0.8) -> dict[str, int]:
    """Per-class counts computed directly from the CSV with pandas, independently of hf_galaxy."""
    df = pd.read_csv(catalog)
    frac = df[P_COLUMNS].to_numpy(float)
    winner = frac.argmax(axis=1)
    keep = np.ones(len(df), bool) if scheme != "clean" else frac.max(axis=1) >= threshold
    c = Counter(winner[keep].tolist())
    return {name: c.get(i, 0) for i, name in enumerate(GZ1)}


def counts_of(dsd) -> dict[str, int]:
    total = Counter()
    for split in dsd.values():
        total.update(split["label"])
    return {name: total.get(i, 0) for i, name in enumerate(GZ1)}


@pytest.mark.parametrize("scheme", ["plurality", "clean", "votes"])
def test_six_gz1_classes_with_the_counts_each_scheme_implies(zoo, tmp_path, scheme) -> None:
    dsd = load_galaxy_dataset(
        zoo.catalog_path, zoo.image_dir, label_scheme=scheme, cache_dir=tmp_path / "cache"
    )
    assert dsd["train"].features["label"].names == GZ1
    expected = expected_counts(zoo.catalog_path, scheme)
    assert counts_of(dsd) == expected
    assert all(v > 0 for v in expected.values())
    n = sum(expected.values())
    assert dsd.report.n_dropped == 2000 - n
    if scheme == "clean":
        assert 0 < n < 2000  # the synthetic votes are noisy: clean and plurality give different sets
        assert all(max(v) >= 0.8 - 2e-3 for split in dsd.values() for v in split["votes"])
    # stratified split: every class in every split, roughly 80/10/10
    for split, frac in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        assert set(dsd[split]["label"]) == set(range(6))
        assert abs(len(dsd[split]) - frac * n) <= 6


def test_plurality_mostly_recovers_the_true_class(zoo, tmp_path) -> None:
    dsd = load_galaxy_dataset(zoo.catalog_path, zoo.image_dir, cache_dir=tmp_path / "cache")
    truth = pd.read_csv(zoo.truth_path, dtype={"OBJID": str}).set_index("OBJID")["true_class"]
    rows = [
        (r["id"], GZ1[r["label"]]) for split in dsd.values() for r in split.select_columns(["id", "label"])
    ]
    agree = np.mean([truth[i] == c for i, c in rows])
    assert agree > 0.75


def test_detection_task_gives_the_transformers_detection_layout(tmp_path) -> None:
    import json

    from hf_galaxy.data.detection import box_iou

    small = make_galaxy_zoo(tmp_path / "det", 30, seed=5, image_size=128, show_progress=False)
    dsd = load_galaxy_dataset(small.catalog_path, small.image_dir, task="detection", cache_dir=tmp_path / "c")
    train = dsd["train"]
    assert {"image_id", "image", "width", "height", "objects"} <= set(train.column_names)
    categories = train.features["objects"]["category"].feature.names
    assert categories[:6] == GZ1
    truth = json.loads(small.boxes_path.read_text())
    hits = total = 0
    for split in dsd.values():
        for row in split:
            target = next(b for b in truth[row["id"]] if b["target"])
            ious = [box_iou(bb, target["bbox"]) for bb in row["objects"]["bbox"]]
            hits += max(ious, default=0.0) >= 0.7
            total += 1
            assert row["width"] == row["height"] == 128
    assert total == 30 and hits / total >= 0.8
    assert dsd.galaxy_info["task"] == "detection"
