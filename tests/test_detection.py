"""Detection sets: boxes (catalogue radius, segmentation, truth check), mosaics, bad input, COCO export/import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hf_galaxy.data.detection import (
    EXTRA_CATEGORIES,
    BoxConfig,
    DetectionError,
    box_iou,
    catalog_radius_px,
    categories_of,
    detection_info,
    export_coco,
    galaxy_objects,
    load_coco,
    make_mosaics,
    radius_box,
    sanitize_objects,
    segment_objects,
    to_detection,
    validate_coco,
)

REAL = Path(__file__).parent / "fixtures" / "real"
GZ1 = ["elliptical", "clockwise_spiral", "anticlockwise_spiral", "edge_on", "star_or_unknown", "merger"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    from hf_galaxy.data.synthetic import make_galaxy_zoo

    return make_galaxy_zoo(tmp_path_factory.mktemp("zoo"), 36, seed=5, image_size=64, show_progress=False)


@pytest.fixture(scope="module")
def cls_data(zoo, tmp_path_factory):
    from hf_galaxy.data.dataset import load_galaxy_dataset

    return load_galaxy_dataset(zoo.catalog_path, zoo.image_dir, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def det(cls_data):
    return to_detection(cls_data)


def _blob(size=64, centre=None, sigma=5.0, amp=200.0, extra=()):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = centre or ((size - 1) / 2, (size - 1) / 2)
    img = 10 + np.random.default_rng(0).normal(0, 2, (size, size)).astype(np.float32)
    img += amp * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    for ex, ey, es in extra:
        img += amp * np.exp(-((xx - ex) ** 2 + (yy - ey) ** 2) / (2 * es**2))
    arr = np.clip(img, 0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([arr] * 3, axis=2))


# ------------------------------------------------------------------------------------------ boxes
def test_radius_box_is_centred_and_clipped():
    assert radius_box(100, 100, 10, k=1.5) == (35.0, 35.0, 30.0, 30.0)
    x, y, w, h = radius_box(100, 80, 60)
    assert (x, y, w, h) == (0.0, 0.0, 100.0, 80.0)
    with pytest.raises(DetectionError, match="radius"):
        radius_box(100, 100, 0)


def test_catalog_radius_decals_scale_and_resize():
    # th90/th50 <= 2: s = 0.02 th90, so R90 spans 50 px of the 424 px cutout
    row = {"petro_th50": 3.0, "petro_th90": 5.0}
    assert catalog_radius_px(row, 424) == pytest.approx(50.0)
    assert catalog_radius_px(row, 212) == pytest.approx(25.0)  # images resized to half
    assert catalog_radius_px(row, 424, radius="r50") == pytest.approx(30.0)
    # th90/th50 > 2: s = 0.04 th50, so R50 spans 25 px
    assert catalog_radius_px({"petro_th50": 5.0, "petro_th90": 12.0}, 424, radius="r50") == pytest.approx(
        25.0
    )
    # small galaxies: the 0.1 arcsec/px floor
    assert catalog_radius_px({"petro_th50": 2.0, "petro_th90": 6.0}, 424, radius="r50") == pytest.approx(20.0)
    # the reader's pixel_scale column wins; wrong_size_warning and missing radii give None
    assert catalog_radius_px({"petro_th90": 4.0, "pixel_scale": 0.2}, 424) == pytest.approx(20.0)
    assert catalog_radius_px({"petro_th50": 3.0, "petro_th90": 5.0, "wrong_size_warning": True}, 424) is None
    assert catalog_radius_px({"ra": 1.0}, 424) is None


def test_catalog_box_used_when_row_has_radius_else_segmentation():
    img = _blob(64, sigma=4)
    objs = galaxy_objects(
        img, "elliptical", {"id": "a", "petro_th50": 3.0, "petro_th90": 5.0}, BoxConfig(extra_objects=False)
    )
    assert len(objs) == 1 and objs[0].source == "catalog"
    assert objs[0].bbox == pytest.approx(
        (32 - 50 * 64 / 424, 32 - 50 * 64 / 424, 100 * 64 / 424, 100 * 64 / 424)
    )
    seg = galaxy_objects(img, "elliptical", {"id": "b"}, BoxConfig(extra_objects=False))
    assert seg[0].source == "segmentation" and seg[0].bbox[2] < 40
    with pytest.raises(DetectionError, match="id=b"):
        galaxy_objects(img, "elliptical", {"id": "b"}, BoxConfig(source="catalog"))


def test_segmentation_centre_galaxy_and_deblended_neighbour():
    img = _blob(128, sigma=6, extra=[(100, 20, 1.0)])
    objs = segment_objects(img, "edge_on")
    target = [o for o in objs if o.target]
    assert len(target) == 1 and target[0].category == "edge_on"
    x, y, w, h = target[0].bbox
    assert x < 63.5 < x + w and y < 63.5 < y + h
    extras = [o for o in objs if not o.target]
    assert len(extras) == 1 and extras[0].category == "star"
    ex, ey, ew, eh = extras[0].bbox
    assert ex <= 100 <= ex + ew and ey <= 20 <= ey + eh


def test_empty_image_has_no_objects():
    blank = Image.fromarray(np.full((32, 32, 3), 5, dtype=np.uint8))
    assert segment_objects(blank, "elliptical") == []


def test_truth_check_on_synthetic_cutouts(tmp_path):
    """Extracted galaxy boxes match the true boxes with IoU >= 0.7 for at least 90% of galaxies."""
    from hf_galaxy.data.synthetic import make_galaxy_zoo

    zoo = make_galaxy_zoo(tmp_path, 120, seed=11, image_size=128, show_progress=False)
    truth = json.loads(Path(zoo.boxes_path).read_text())
    ious = []
    for objid, objects in truth.items():
        target = next(o for o in objects if o["target"])
        found = segment_objects(Image.open(Path(zoo.image_dir) / f"{objid}.jpg"), target["category"])
        box = next((o.bbox for o in found if o.target), None)
        ious.append(box_iou(box, target["bbox"]) if box is not None else 0.0)
    ious = np.asarray(ious)
    frac = float((ious >= 0.7).mean())
    print(
        f"synthetic truth check: {frac:.1%} of {len(ious)} galaxies with IoU >= 0.7 (median {np.median(ious):.3f})"
    )
    assert frac >= 0.9


def test_box_iou():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 1, 1], [5, 5, 1, 1]) == 0.0


# ------------------------------------------------------------------------------------------ HF layout
def test_to_detection_layout(det, cls_data):
    ds = det["train"]
    assert set(ds.column_names) == {"image_id", "image", "width", "height", "objects", "id"}
    assert categories_of(det) == GZ1 + list(EXTRA_CATEGORIES)
    row = ds[0]
    assert set(row["objects"]) == {"id", "area", "bbox", "category"}
    for box, area in zip(row["objects"]["bbox"], row["objects"]["area"]):
        assert len(box) == 4 and box[2] > 0 and box[3] > 0
        assert 0 <= box[0] and box[0] + box[2] <= row["width"] and box[1] + box[3] <= row["height"]
        assert area == pytest.approx(box[2] * box[3])
    assert len(set(ds["image_id"])) == len(ds)
    info = detection_info(ds)
    assert info["n_images"] == len(ds) and info["target_source"]["segmentation"] >= len(ds) - 1
    # the galaxy's category is its vote-derived label (rows keep their order and ids)
    assert ds["id"] == cls_data["train"]["id"]
    matched = 0
    for objects, label in zip(ds["objects"], cls_data["train"]["label"]):
        galaxy = [c for c in objects["category"] if c < len(GZ1)]
        matched += galaxy == [label]
    assert matched >= len(ds) - 1


def test_to_detection_keep_or_drop_empty():
    import datasets

    feats = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=["a", "b"]),
            "id": datasets.Value("string"),
        }
    )
    blank = Image.fromarray(np.full((32, 32, 3), 5, dtype=np.uint8))
    ds = datasets.Dataset.from_dict(
        {"image": [_blob(32, sigma=3), blank], "label": [0, 1], "id": ["g", "e"]}, features=feats
    )
    kept = to_detection(ds)
    assert len(kept) == 2 and detection_info(kept)["empty_images"] == 1
    dropped = to_detection(ds, keep_empty=False)
    assert dropped["id"] == ["g"] and detection_info(dropped)["empty_images_dropped"] == 1
    with pytest.raises(DetectionError, match="catalog"):
        to_detection(ds, source="catalog")


# ------------------------------------------------------------------------------------------ bad input
def test_sanitize_clips_drops_and_counts():
    objs = {
        "id": [1, 2, 3, 4, 5],
        "category": [0, 1, 0, 1, 0],
        "bbox": [[-5, 10, 20, 10], [10, 10, 0, 5], [50, 50, 10, 10], [70, 0, 5, 5], [10, 10, -3, 4]],
    }
    clean, rep = sanitize_objects(objs, 64, 64, categories=["a", "b"])
    assert clean["id"] == [1, 3]
    assert clean["bbox"] == [[0.0, 10.0, 15.0, 10.0], [50.0, 50.0, 10.0, 10.0]]
    assert (rep.clipped, rep.dropped_outside, rep.dropped_nonpositive) == (1, 1, 2)
    dropped, rep2 = sanitize_objects(objs, 64, 64, categories=2, on_bad_box="drop")
    assert dropped["id"] == [3] and rep2.dropped_outside == 2
    with pytest.raises(DetectionError, match="category id 7"):
        sanitize_objects({"id": [9], "bbox": [[1, 1, 2, 2]], "category": [7]}, 8, 8, categories=["a", "b"])


def test_load_coco_bad_input(tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 30, "height": 20},
            {"id": 2, "file_name": "b.png", "width": 30, "height": 20},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [25, 5, 10, 10]},  # clipped to w=5
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [40, 5, 10, 10]},  # outside: dropped
            {"id": 3, "image_id": 2, "category_id": 5, "bbox": [1, 1, 0, 4]},  # non-positive: dropped
        ],
        "categories": [{"id": 3, "name": "spiral"}, {"id": 5, "name": "elliptical"}],
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(coco))
    ds = load_coco(path)
    assert len(ds) == 2 and categories_of(ds) == ["spiral", "elliptical"]
    assert ds[0]["objects"]["bbox"] == [[25.0, 5.0, 5.0, 10.0]] and ds[1]["objects"]["bbox"] == []
    info = detection_info(ds)
    assert (info["clipped"], info["dropped_outside"], info["dropped_nonpositive"], info["empty_images"]) == (
        1,
        1,
        1,
        1,
    )
    assert len(load_coco(path, keep_empty=False)) == 1
    coco["annotations"].append({"id": 4, "image_id": 1, "category_id": 9, "bbox": [1, 1, 2, 2]})
    path.write_text(json.dumps(coco))
    with pytest.raises(DetectionError, match="category_id 9"):
        load_coco(path)


# ------------------------------------------------------------------------------------------ mosaics
def test_mosaics_boxes_overlap_and_layout(det):
    ds = make_mosaics(
        det["train"],
        3,
        size=(96, 128),
        cutouts_per_field=(3, 5),
        scale=(0.25, 0.4),
        max_iou=0.05,
        seed=1,
        show_progress=False,
        image_id_offset=100,
    )
    assert len(ds) == 3 and ds["image_id"] == [100, 101, 102]
    assert categories_of(ds) == categories_of(det)
    for row in ds:
        assert 96 <= row["width"] == row["height"] <= 128 and row["image"].size == (
            row["width"],
            row["height"],
        )
        boxes = row["objects"]["bbox"]
        assert len(boxes) >= 2
        for i, a in enumerate(boxes):
            assert a[0] >= 0 and a[1] >= 0 and a[0] + a[2] <= row["width"] + 1e-3
            for b in boxes[i + 1 :]:
                assert box_iou(a, b) <= 0.05 + 1e-6


def test_mosaic_boxes_follow_the_pixels():
    """A single bright square pasted with rotation and scaling still lies inside its box."""
    import datasets

    from hf_galaxy.data.detection import detection_features

    arr = np.zeros((40, 40, 3), dtype=np.uint8)
    arr[5:15, 20:35] = 255
    ds = datasets.Dataset.from_list(
        [
            {
                "image_id": 0,
                "image": Image.fromarray(arr),
                "width": 40,
                "height": 40,
                "id": "x",
                "objects": {"id": [0], "area": [150.0], "bbox": [[20, 5, 15, 10]], "category": [0]},
            }
        ],
        features=detection_features(["thing"]),
    )
    mos = make_mosaics(
        ds, 4, size=(100, 100), cutouts_per_field=(1, 1), scale=(0.5, 0.9), seed=3, show_progress=False
    )
    for row in mos:
        img = np.asarray(row["image"])[:, :, 0]
        x, y, w, h = row["objects"]["bbox"][0]
        ys, xs = np.nonzero(img > 128)
        assert (
            xs.min() >= x - 1.5
            and xs.max() <= x + w + 0.5
            and ys.min() >= y - 1.5
            and ys.max() <= y + h + 0.5
        )
        assert (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1) >= 0.6 * w * h


# ------------------------------------------------------------------------------------------ COCO
def test_export_coco_validates_and_round_trips(det, tmp_path):
    paths = export_coco(det, tmp_path / "coco", image_format="png")
    assert set(paths) == {"train", "validation", "test"}
    counts = validate_coco(paths["train"])
    assert counts["images"] == len(det["train"]) and counts["categories"] == len(categories_of(det))
    data = json.loads(paths["train"].read_text())
    assert set(data) == {"info", "licenses", "images", "annotations", "categories"}
    back = load_coco(paths["train"])
    assert categories_of(back) == categories_of(det)
    for a, b in zip(det["train"], back):
        assert a["image_id"] == b["image_id"] and (a["width"], a["height"]) == (b["width"], b["height"])
        assert a["objects"]["category"] == b["objects"]["category"]
        assert np.allclose(a["objects"]["bbox"], b["objects"]["bbox"])
        assert np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))  # PNG is lossless
        assert a["id"] == b["id"]  # the galaxy id survives as the COCO image's galaxy_id
    assert data["images"][0]["galaxy_id"] == det["train"][0]["id"]


def test_export_coco_of_real_cutouts(tmp_path):
    """Real DECaLS ring cutouts and GZ2/Kaggle images: segmentation boxes -> COCO -> pycocotools."""
    import datasets

    from hf_galaxy.data.dataset import load_galaxy_dataset

    rings = load_galaxy_dataset(
        REAL / "rings" / "catalog.csv", label_column="ring", cache_dir=tmp_path / "c1"
    )
    kaggle = load_galaxy_dataset(REAL / "gz2_kaggle", cache_dir=tmp_path / "c2")
    for name, dsd in (("rings", rings), ("gz2_kaggle", kaggle)):
        full = datasets.concatenate_datasets(list(dsd.values()))
        det = to_detection(full, source="segmentation")
        assert detection_info(det)["target_source"].get("segmentation", 0) >= 0.9 * len(full)
        for row in det.select(range(4)):
            w, h = row["width"], row["height"]
            box = next(b for b, c in zip(row["objects"]["bbox"], row["objects"]["category"]) if c < 2)
            assert box[0] < w / 2 < box[0] + box[2] and box[1] < h / 2 < box[1] + box[3]
            assert 20 < box[2] < w and 20 < box[3] < h  # a galaxy-sized box on the centre
        path = export_coco(det, tmp_path / name, split="all")
        counts = validate_coco(path)
        assert counts["images"] == len(full) and counts["annotations"] >= len(full)


def test_export_coco_refuses_duplicate_image_ids(det, tmp_path):
    import datasets

    train = det["train"].select(range(4))
    mos = make_mosaics(train, 2, size=(96, 96), cutouts_per_field=(1, 2), seed=0, show_progress=False)
    clash = make_mosaics(train, 2, image_id_offset=0, size=(96, 96), seed=0, show_progress=False)
    with pytest.raises(DetectionError, match=r"duplicate image_id 0 \(x2\), 1 \(x2\)"):
        export_coco(datasets.concatenate_datasets([train, clash]), tmp_path / "bad", split="train")
    assert not (tmp_path / "bad" / "train").exists()  # nothing written
    # the default offset starts past the largest id of the input, so cutouts + mosaics export cleanly
    assert mos["image_id"] == [max(train["image_id"]) + 1, max(train["image_id"]) + 2]
    path = export_coco(datasets.concatenate_datasets([train, mos]), tmp_path / "ok", split="train")
    assert validate_coco(path)["images"] == 6 and len(list((tmp_path / "ok" / "train").iterdir())) == 6


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c["annotations"][1].pop("bbox"), r"annotation id=2 \(annotations\[1\]\) has no 'bbox'"),
        (lambda c: c["annotations"][1].update(bbox=[1, 2, 3]), r"annotation id=2 .*not 4 numbers"),
        (lambda c: c["annotations"][1].update(bbox=[1, "a", 3, 4]), r"annotation id=2 .*non-numeric"),
        (lambda c: c["annotations"][1].update(bbox=[1, None, 3, 4]), r"annotation id=2 .*non-numeric"),
        (lambda c: c["images"][1].pop("file_name"), r"image id=8 \(images\[1\]\) has no 'file_name'"),
    ],
)
def test_load_coco_malformed_entries_name_the_file_and_id(tmp_path, change, match):
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    coco = {
        "images": [
            {"id": 7, "file_name": "a.png", "width": 30, "height": 20},
            {"id": 8, "file_name": "a.png", "width": 30, "height": 20},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 0, "bbox": [1, 1, 5, 5]},
            {"id": 2, "image_id": 8, "category_id": 0, "bbox": [2, 2, 5, 5]},
        ],
        "categories": [{"id": 0, "name": "spiral"}],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(coco))
    assert len(load_coco(path)) == 2  # the unchanged file loads
    change(coco)
    path.write_text(json.dumps(coco))
    with pytest.raises(DetectionError, match=match) as err:
        load_coco(path)
    assert str(path) in str(err.value)


def test_to_detection_carries_the_dataset_facts(det, cls_data):
    from hf_galaxy.data.dataset import describe

    facts = describe(det)
    assert facts["release"] == cls_data.galaxy_info["release"] and facts["release"]
    assert facts["label_scheme"] == cls_data.galaxy_info["label_scheme"]
    assert facts["class_balance"] == cls_data.galaxy_info["class_balance"]
    assert facts["categories"] == categories_of(det) and facts["box_source"] == "auto"
    assert facts["task"] == "detection"
    counts = facts["object_counts"]["train"]
    assert set(counts) == set(categories_of(det))
    assert sum(counts.values()) == sum(len(o["bbox"]) for o in det["train"]["objects"])
