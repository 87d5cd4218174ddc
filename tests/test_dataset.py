"""load_galaxy_dataset: features, splits, skip report, cache, image conversion, streaming."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import hf_galaxy.data.dataset as hd
from hf_galaxy import load_galaxy_dataset
from hf_galaxy.data.catalogs import CatalogError
from hf_galaxy.data.dataset import ImageError, assign_splits, describe, open_image

FIXTURES = Path(__file__).parent / "fixtures"
GZ1_NAMES = ["elliptical", "clockwise_spiral", "anticlockwise_spiral", "edge_on", "star_or_unknown", "merger"]


def write_gz1(root: Path, n: int = 60, seed: int = 0, size: int = 40) -> tuple[Path, Path]:
    """A GZ1 Table 2 CSV with ``n`` galaxies and small random JPEG cutouts named by OBJID."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        oid = 587722981742084144 + i * 7
        f = np.round(rng.dirichlet(np.full(6, 0.4)), 3)
        f[int(np.argmax(f))] += round(1 - f.sum(), 3)
        rows.append(
            {
                "OBJID": oid,
                "RA": f"{i % 24:02d}:{i % 60:02d}:12.34",
                "DEC": f"-00:{i % 60:02d}:25.7",
                "NVOTE": 30 + i,
                "P_EL": f[0],
                "P_CW": f[1],
                "P_ACW": f[2],
                "P_EDGE": f[3],
                "P_DK": f[4],
                "P_MG": f[5],
                "P_CS": f[1] + f[2] + f[3],
                "P_EL_DEBIASED": f[0],
                "P_CS_DEBIASED": f[1] + f[2] + f[3],
                "SPIRAL": 0,
                "ELLIPTICAL": 0,
                "UNCERTAIN": 1,
            }
        )
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(images / f"{oid}.jpg")
    cat = root / "catalog.csv"
    pd.DataFrame(rows).to_csv(cat, index=False)
    return cat, images


@pytest.fixture()
def gz1(tmp_path: Path) -> tuple[Path, Path]:
    return write_gz1(tmp_path / "gz1")


def corrupt(images: Path, ids: list[str]) -> None:
    """Make ids[0] zero-byte, delete ids[1], truncate ids[2]."""
    (images / f"{ids[0]}.jpg").write_bytes(b"")
    (images / f"{ids[1]}.jpg").unlink()
    data = (images / f"{ids[2]}.jpg").read_bytes()
    (images / f"{ids[2]}.jpg").write_bytes(data[: len(data) // 2])


def test_features_splits_and_labels(gz1, tmp_path) -> None:
    cat, images = gz1
    dsd = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache", image_size=32)
    assert set(dsd) == {"train", "validation", "test"}
    train = dsd["train"]
    assert train.features["label"].names == GZ1_NAMES
    assert set(train.column_names) == {"image", "label", "votes", "id", "ra", "dec"}
    ex = train[0]
    assert ex["image"].size == (32, 32) and ex["image"].mode == "RGB"
    assert len(ex["votes"]) == 6 and int(np.argmax(ex["votes"])) == ex["label"]
    ids = [set(dsd[s]["id"]) for s in dsd]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(len(i) for i in ids) == 60
    table = pd.read_csv(cat, dtype={"OBJID": str}).set_index("OBJID")
    for row in dsd["test"]:
        fr = table.loc[row["id"], ["P_EL", "P_CW", "P_ACW", "P_EDGE", "P_DK", "P_MG"]].to_numpy(float)
        np.testing.assert_allclose(row["votes"], fr / fr.sum(), atol=1e-5)
    info = describe(dsd)
    assert info["release"] and info["label_scheme"] == "plurality" and info["class_names"] == GZ1_NAMES
    assert sum(info["split_sizes"].values()) == 60


def test_split_is_deterministic_stratified_and_order_independent() -> None:
    labels = np.repeat(np.arange(3), [50, 30, 20])
    ids = [f"id{i:03d}" for i in range(100)]
    a = assign_splits(labels, ids, seed=1)
    perm = np.random.default_rng(5).permutation(100)
    b = assign_splits(labels[perm], [ids[i] for i in perm], seed=1)
    assert dict(zip(ids, a)) == {ids[i]: s for i, s in zip(perm, b)}
    for cls, k in zip(range(3), [50, 30, 20]):
        part = a[labels == cls]
        assert (part == "validation").sum() == round(k * 0.1) and (part == "test").sum() == round(k * 0.1)
    assert (assign_splits(labels, ids, seed=2) != a).any()


def test_bad_images_are_skipped_reported_and_written_next_to_cache(gz1, tmp_path) -> None:
    cat, images = gz1
    ids = sorted(p.stem for p in images.glob("*.jpg"))[:3]
    corrupt(images, ids)
    dsd = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache", image_size=32)
    assert sum(len(d) for d in dsd.values()) == 57
    reasons = {d["id"]: d["reason"] for d in dsd.report.dropped}
    assert reasons == {
        ids[0]: "zero-byte image file",
        ids[1]: "missing image file",
        ids[2]: "truncated image file",
    }
    report_path = Path(dsd.report.path)
    assert report_path.parent == Path(dsd["train"].cache_files[0]["filename"]).parent
    with open(report_path) as f:
        rows = list(csv.DictReader(f))
    assert {r["id"] for r in rows} == set(ids) and all(r["stage"] == "image" for r in rows)
    summary = dsd.report.summary()
    for reason in ("zero-byte image file", "missing image file", "truncated image file"):
        assert f"dropped 1: image: {reason}" in summary
    kept = {i for d in dsd.values() for i in d["id"]}
    assert not kept & set(ids)


def test_strict_raises_at_first_bad_image(gz1, tmp_path) -> None:
    cat, images = gz1
    ids = sorted(p.stem for p in images.glob("*.jpg"))[:3]
    corrupt(images, ids)
    with pytest.raises(ImageError, match="strict=True"):
        load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache", strict=True)


def count_prepared(monkeypatch) -> list[str]:
    """Record the images load_galaxy_dataset prepares from now on (a cache hit prepares none)."""
    calls: list[str] = []
    real = hd.prepare_image

    def counting(path, *args, **kwargs):
        calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(hd, "prepare_image", counting)
    return calls


def test_second_identical_call_is_served_from_cache(gz1, tmp_path, monkeypatch) -> None:
    cat, images = gz1
    first = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache", image_size=32)

    calls = count_prepared(monkeypatch)
    second = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache", image_size=32)
    assert calls == []
    for s in first:
        assert second[s]["id"] == first[s]["id"]
        assert second[s].cache_files == first[s].cache_files
    # A changed input file invalidates the cache: the images are prepared again.
    target = images / f"{first['train'][0]['id']}.jpg"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))
    load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache", image_size=32)
    assert len(calls) > 0


def test_num_proc_gives_the_same_dataset(gz1, tmp_path) -> None:
    cat, images = gz1
    serial = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "c1", image_size=16)
    parallel = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "c2", image_size=16, num_proc=2)
    for s in serial:
        assert sorted(serial[s]["id"]) == sorted(parallel[s]["id"])


def test_streaming_returns_iterable_splits_without_bad_rows(gz1, tmp_path) -> None:
    import datasets

    cat, images = gz1
    ids = sorted(p.stem for p in images.glob("*.jpg"))[:3]
    corrupt(images, ids)
    dsd = load_galaxy_dataset(cat, images, streaming=True, image_size=16)
    assert all(isinstance(d, datasets.IterableDataset) for d in dsd.values())
    seen = [ex["id"] for d in dsd.values() for ex in d]
    assert len(seen) == 57 and not set(seen) & set(ids)
    first = next(iter(dsd["train"]))
    assert first["image"].size == (16, 16)


def test_duplicate_ids_are_an_error(gz1, tmp_path) -> None:
    cat, images = gz1
    df = pd.read_csv(cat, dtype={"OBJID": str})
    df = pd.concat([df, df.iloc[[3]]])
    df.to_csv(cat, index=False)
    with pytest.raises(CatalogError, match=f"duplicate galaxy ids.*{df.iloc[3]['OBJID']}"):
        load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache")


def test_empty_after_filtering_says_which_filter(gz1, tmp_path) -> None:
    cat, images = gz1
    with pytest.raises(ValueError, match="below threshold 0.999"):
        load_galaxy_dataset(cat, images, label_scheme="clean", threshold=0.999, cache_dir=tmp_path / "c")


def test_catalogue_split_column_is_respected(tmp_path) -> None:
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3), ("test", 3)):
        for cls in ("a", "b"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                    d / f"{split}{cls}{i}.png"
                )
    dsd = load_galaxy_dataset(root, cache_dir=tmp_path / "cache")
    assert {s: len(d) for s, d in dsd.items()} == {"train": 12, "validation": 6, "test": 6}
    assert all(i.startswith("val") for i in dsd["validation"]["id"])
    assert dsd["train"].features["label"].names == ["a", "b"]


# ------------------------------------------------------------------------------------------ image modes
def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_image_modes_convert_to_rgb_consistently(tmp_path) -> None:
    gray = np.zeros((10, 10), dtype=np.uint8)
    gray[2, 3] = 200
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = 0
    rgba[2, 3] = (200, 200, 200, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    deep = gray.astype(np.uint16) * 257
    Image.fromarray(deep).save(tmp_path / "deep.png")  # 16-bit grayscale PNG
    from astropy.io import fits

    fits.PrimaryHDU(gray.astype(np.float32)[::-1]).writeto(tmp_path / "cut.fits")  # FITS rows are bottom-up
    cube = np.stack([gray, gray, gray]).astype(np.float32)[:, ::-1]
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = {
        n: np.asarray(open_image(tmp_path / n))
        for n in ("gray.png", "rgba.png", "deep.png", "cut.fits", "cube.fits")
    }
    for name, arr in out.items():
        assert arr.shape == (10, 10, 3) and arr.dtype == np.uint8, name
        assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all(), name
        assert np.unravel_index(arr[..., 0].argmax(), (10, 10)) == (2, 3), name
    assert (
        out["gray.png"][2, 3, 0] == 200
        and out["deep.png"][2, 3, 0] == 200
        and out["rgba.png"][2, 3, 0] == 200
    )
    assert out["rgba.png"][0, 0].tolist() == [0, 0, 0]  # transparent -> black sky, not white
    assert out["cut.fits"][2, 3, 0] == 255 and out["cut.fits"][0, 0, 0] == 0


def test_unreadable_image_error_names_file(tmp_path) -> None:
    p = tmp_path / "junk.jpg"
    p.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="junk.jpg"):
        open_image(p)


def test_split_barely_moves_when_the_label_scheme_changes() -> None:
    """Ranking by a hash of (seed, id) keeps a galaxy's split when other rows come and go."""
    rng = np.random.default_rng(0)
    ids = [f"g{i:04d}" for i in range(2000)]
    labels = rng.integers(0, 6, 2000)
    full = dict(zip(ids, assign_splits(labels, ids, seed=0)))
    keep = rng.random(2000) < 0.5  # e.g. the clean scheme keeps about half
    sub_ids = [i for i, k in zip(ids, keep) if k]
    sub = dict(zip(sub_ids, assign_splits(labels[keep], sub_ids, seed=0)))
    test_now_train = sum(full[i] == "test" and sub[i] == "train" for i in sub_ids)
    assert test_now_train <= 0.02 * len(sub_ids)


def test_split_column_with_gaps_names_the_rows(gz1, tmp_path) -> None:
    cat, images = gz1
    df = pd.read_csv(cat, dtype={"OBJID": str})
    df["split"] = ["train"] * (len(df) - 1) + [None]
    df.to_csv(cat, index=False)
    with pytest.raises(CatalogError, match=f"1 row\\(s\\) have a split .*id={df['OBJID'].iloc[-1]}"):
        load_galaxy_dataset(cat, images, cache_dir=tmp_path / "c")


def test_a_missing_coordinate_keeps_ra_dec_for_the_others(gz1, tmp_path) -> None:
    cat, images = gz1
    df = pd.read_csv(cat, dtype={"OBJID": str})
    df.loc[0, "RA"] = None
    df.to_csv(cat, index=False)
    dsd = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "c", image_size=16)
    rows = {r["id"]: (r["ra"], r["dec"]) for d in dsd.values() for r in d.select_columns(["id", "ra", "dec"])}
    assert rows[df["OBJID"].iloc[0]][0] is None
    assert sum(ra is not None for ra, _ in rows.values()) == len(df) - 1


def test_unreadable_hdf5_row_is_skipped_not_fatal(tmp_path) -> None:
    import h5py

    path = tmp_path / "g10.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    assert np.asarray(open_image(path, 1)).shape == (8, 8, 3)
    with pytest.raises(ImageError, match=r"g10.h5\[images\]\[5\]: unreadable HDF5 image"):
        open_image(path, 5)


def test_every_image_mode_is_stored_as_rgb(gz1, tmp_path) -> None:
    """CMYK, palette, gray+alpha, 16-bit and float cut-outs all end up RGB in the dataset (a CMYK JPEG too,
    whose original bytes must not be passed through)."""
    cat, images = gz1
    ids = sorted(p.stem for p in images.glob("*.jpg"))[:5]
    rgb = Image.open(images / f"{ids[0]}.jpg").convert("RGB")
    rgb.convert("CMYK").save(images / f"{ids[0]}.jpg")  # a CMYK JPEG under its usual name
    assert Image.open(images / f"{ids[0]}.jpg").mode == "CMYK"
    gray = np.asarray(rgb.convert("L"))
    others = {
        ids[1]: rgb.convert("P"),
        ids[2]: Image.fromarray(np.stack([gray, np.full_like(gray, 255)], -1), "LA"),
        ids[3]: Image.fromarray(gray.astype(np.uint16) * 257),  # I;16
        ids[4]: Image.fromarray(gray.astype(np.float32) / 255.0, "F"),
    }
    for gid, img in others.items():
        (images / f"{gid}.jpg").unlink()
        img.save(images / f"{gid}.{'tif' if img.mode == 'F' else 'png'}")
    dsd = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache")
    assert dsd.report.n_dropped == 0
    seen = {}
    for split in dsd.values():
        for row in split:
            if row["id"] in ids:
                seen[row["id"]] = row["image"]
    assert set(seen) == set(ids)
    for gid, img in seen.items():
        assert img.mode == "RGB", (gid, img.mode)
    cmyk = np.asarray(seen[ids[0]], dtype=np.int16)
    assert np.abs(cmyk - np.asarray(rgb, dtype=np.int16)).mean() < 20  # the same picture, converted


def test_an_oversized_image_is_a_counted_skip_naming_its_size(gz1, tmp_path) -> None:
    cat, images = gz1
    ids = sorted(p.stem for p in images.glob("*.jpg"))[:2]
    (images / f"{ids[0]}.jpg").unlink()
    # 9500 x 9500 (90 million pixels) is over Pillow's decompression-bomb limit, but a 1-bit PNG of it is small
    Image.new("1", (9500, 9500)).save(images / f"{ids[0]}.png")
    dsd = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache")
    dropped = {d["id"]: d for d in dsd.report.dropped}
    assert set(dropped) == {ids[0]} and dropped[ids[0]]["reason"] == "image too large"
    assert "9500x9500" in dropped[ids[0]]["detail"] and f"{ids[0]}.png" in dropped[ids[0]]["detail"]
    assert sum(len(d) for d in dsd.values()) == 59
    # the limit is an option: a lower one skips the 40x40 cut-outs too (then nothing is left, and the error
    # says why), 0 lifts it
    with pytest.raises(CatalogError, match=r"image: image too large: 60"):
        load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache", max_image_pixels=1000)
    unlimited = load_galaxy_dataset(
        cat, images, cache_dir=tmp_path / "cache", max_image_pixels=0, image_size=16
    )
    assert unlimited.report.n_dropped == 0
    with pytest.raises(ValueError, match="max_image_pixels"):
        load_galaxy_dataset(cat, images, max_image_pixels=-1)


def test_an_unexpected_error_in_one_image_is_a_counted_skip(gz1, tmp_path, monkeypatch) -> None:
    cat, images = gz1
    bad = sorted(p.stem for p in images.glob("*.jpg"))[0]
    real = hd.prepare_image

    def flaky(path, *args, **kwargs):
        if Path(path).stem == bad:
            raise RuntimeError("decoder crashed")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(hd, "prepare_image", flaky)
    dsd = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache", image_size=24)
    (drop,) = dsd.report.dropped
    assert drop["id"] == bad and drop["reason"] == "unexpected error"
    assert (
        "RuntimeError" in drop["detail"]
        and "decoder crashed" in drop["detail"]
        and f"{bad}.jpg" in drop["detail"]
    )
    with pytest.raises(ImageError, match=f"{bad}.jpg.*decoder crashed.*strict=True"):
        load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache2", image_size=24, strict=True)


def test_report_and_facts_survive_the_usual_datasetdict_operations(gz1, tmp_path) -> None:
    cat, images = gz1
    dsd = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache", image_size=16)
    kept = dsd.filter(lambda row: row["label"] == 0)
    for out in (
        kept,
        dsd.map(lambda row: row),
        dsd.select_columns(["image", "label", "id"]),
        dsd.shuffle(seed=1),
    ):
        assert type(out).__name__ == "GalaxyDatasetDict"
        assert out.report is dsd.report and out.galaxy_info["release"] == dsd.galaxy_info["release"]
    facts = describe(kept)  # the facts describe the filtered splits, not the loaded ones
    assert facts["split_sizes"] == {s: len(d) for s, d in kept.items()}
    assert all(set(balance) == set(GZ1_NAMES) for balance in facts["class_balance"].values())
    assert sum(facts["class_balance"]["train"].values()) == len(kept["train"])
    assert all(count == 0 for name, count in facts["class_balance"]["train"].items() if name != "elliptical")


def test_facts_follow_a_split_replaced_in_place(gz1, tmp_path) -> None:
    """A bagging member's resampled train split (dsd["train"] = ...) gets its own sizes and class balance."""
    import copy

    from hf_galaxy.data.dataset import recount_facts

    cat, images = gz1
    dsd = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "cache", image_size=16)
    member = copy.copy(dsd)
    member.galaxy_info = dict(dsd.galaxy_info)
    member["train"] = dsd["train"].select([0, 0, 1])
    recount_facts(member)
    assert describe(member)["split_sizes"]["train"] == 3
    assert sum(describe(member)["class_balance"]["train"].values()) == 3
    assert (
        describe(dsd)["split_sizes"]["train"] == len(dsd["train"]) > 3
    )  # the original's facts are untouched
