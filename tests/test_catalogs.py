"""Tests for the Galaxy Zoo catalogue readers (hf_galaxy/data/catalogs/).

Fixtures: tests/fixtures/catalogs/ (tables in each release's exact column names, written by
make_fixtures.py there) and tests/fixtures/real/ (a small copy of real Galaxy Zoo images; see its
PROVENANCE.md). HDF5 files and images for lookup tests are generated in tmp_path.
"""

from __future__ import annotations

import csv
import importlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hf_galaxy.data.catalogs import FORMATS, CatalogError, detect_format, read_catalog
from hf_galaxy.data.catalogs.trees import (
    GZ1_TREE,
    GZ2_NATIVE,
    GZ2_TREE,
    GZD5_TREE,
    GZD12_TREE,
    KAGGLE_NATIVE,
    get_tree,
)

FIX = Path(__file__).parent / "fixtures" / "catalogs"
REAL = Path(__file__).parent / "fixtures" / "real"
GZ1_T2 = FIX / "GalaxyZoo1_DR_table2.csv"
GZ1_T3 = FIX / "GalaxyZoo1_DR_table3.csv"
ZOOSPEC = FIX / "zooSpec.csv"
HART16 = FIX / "gz2_hart16.csv"
MAPPING = FIX / "gz2_filename_mapping.csv"
KAGGLE = FIX / "training_solutions_rev1.csv"
GZD5 = FIX / "gz_decals_volunteers_5.csv"
GZD12 = FIX / "gz_decals_volunteers_1_and_2.csv"
GZ1_ANSWERS = [
    "elliptical",
    "clockwise_spiral",
    "anticlockwise_spiral",
    "edge_on",
    "star_or_unknown",
    "merger",
]


def raw(path: Path) -> pd.DataFrame:
    """The fixture exactly as text (an independent view of what the reader should return)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def sexagesimal_ra(text: str) -> float:
    h, m, s = (float(x) for x in text.split(":"))
    return 15.0 * (h + m / 60 + s / 3600)


def sexagesimal_dec(text: str) -> float:
    sign = -1.0 if text.strip().startswith("-") else 1.0
    d, m, s = (abs(float(x)) for x in text.split(":"))
    return sign * (d + m / 60 + s / 3600)


def touch_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xd9")  # the readers only look for files; content is not decoded here
    return path


# ------------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (GZ1_T2, "gz1"),
        (GZ1_T3, "gz1"),
        (ZOOSPEC, "gz1"),
        (HART16, "gz2"),
        (KAGGLE, "kaggle"),
        (GZD5, "decals"),
        (GZD12, "decals"),
        (REAL / "rings" / "catalog.csv", "decals"),
        (REAL / "gz2_kaggle", "imagefolder"),
    ],
)
def test_every_layout_is_detected_by_exactly_one_reader(path: Path, fmt: str) -> None:
    assert detect_format(path) == fmt
    columns = [] if path.is_dir() else list(pd.read_csv(path, nrows=0).columns)
    hits = [
        f for f in FORMATS if importlib.import_module(f"hf_galaxy.data.catalogs.{f}").sniff(path, columns)
    ]
    assert hits == [fmt]


def test_unknown_layout_names_columns_and_formats(tmp_path: Path) -> None:
    p = tmp_path / "mystery.csv"
    p.write_text("galaxy,colour,mood\n1,red,happy\n")
    with pytest.raises(CatalogError) as err:
        read_catalog(p)
    msg = str(err.value)
    assert "galaxy, colour, mood" in msg
    for fmt in FORMATS:
        assert fmt in msg


def test_forced_format_with_missing_column_names_it(tmp_path: Path) -> None:
    df = raw(GZ1_T2).drop(columns=["P_MG"])
    p = tmp_path / "t2.csv"
    df.to_csv(p, index=False)
    with pytest.raises(CatalogError, match="P_MG"):
        read_catalog(p, format="gz1")
    with pytest.raises(CatalogError, match=r"GalaxyID.*Class1\.1"):
        read_catalog(GZ1_T2, format="kaggle")
    with pytest.raises(CatalogError, match="t01_smooth_or_features_a01_smooth_fraction"):
        read_catalog(GZ1_T2, format="gz2")
    with pytest.raises(CatalogError, match="id_str"):
        read_catalog(KAGGLE, format="decals")
    with pytest.raises(CatalogError, match="not supported"):
        read_catalog(GZ1_T2, format="gz3")


def test_unknown_reader_option_is_an_error() -> None:
    with pytest.raises(CatalogError, match="fractoin"):
        read_catalog(HART16, fractoin="debiased")
    with pytest.raises(CatalogError, match="weighted_fraction"):
        read_catalog(HART16, fraction="percent")
    with pytest.raises(CatalogError, match="mapping"):
        read_catalog(GZ1_T2, mapping=MAPPING)


# -------------------------------------------------------------------------------------- trees


def test_trees_parents_and_aliases() -> None:
    assert GZ1_TREE.root.answers == tuple(GZ1_ANSWERS)
    names = [q.name for q in GZ2_TREE.questions]
    assert names == [
        "smooth-or-featured", "disk-edge-on", "bar", "has-spiral-arms", "bulge-size", "something-odd",
        "how-rounded", "odd-feature", "bulge-shape", "spiral-winding", "spiral-arm-count",
    ]  # fmt: skip
    parents = {q.name: q.parent for q in GZ2_TREE.questions}
    assert parents["something-odd"] == ("smooth-or-featured", "!artifact")  # every path but artifact
    assert parents["has-spiral-arms"] == ("disk-edge-on", "no")
    assert parents["bulge-size"] == ("disk-edge-on", "no")
    assert parents["spiral-arm-count"] == ("has-spiral-arms", "yes")
    assert parents["how-rounded"] == ("smooth-or-featured", "smooth")
    assert parents["bulge-shape"] == ("disk-edge-on", "yes")
    assert parents["odd-feature"] == ("something-odd", "yes")
    for alias in ("t04_spiral", "t04", "Class4", "has-spiral-arms-gz2"):
        assert GZ2_TREE.question(alias).name == "has-spiral-arms"
    assert GZ2_TREE.question("odd-feature").answers[-1] == "dust-lane"
    # every parent answer exists in its parent question
    for tree in (GZ2_TREE, GZD5_TREE, GZD12_TREE):
        for q in tree.questions:
            if q.parent is not None:
                assert q.parent[1].lstrip("!") in tree.question(q.parent[0]).answers  # "!a": any but a
    assert GZD5_TREE.question("bar").answers == ("strong", "weak", "no")
    assert GZD12_TREE.question("how-rounded").answers == ("completely", "in-between", "cigar-shaped")
    assert "cant-tell" not in GZD12_TREE.question("spiral-arm-count").answers
    assert GZD5_TREE.question("bar-dr8").name == "bar"
    assert len(GZ2_NATIVE) == len(KAGGLE_NATIVE) == 37
    with pytest.raises(CatalogError, match="gzd-5"):
        get_tree("gz3")


@pytest.mark.parametrize("path", [GZ1_T2, GZ1_T3, ZOOSPEC, HART16, KAGGLE, GZD5, GZD12])
def test_empty_cells_never_crash(tmp_path: Path, path: Path) -> None:
    """Blank a third of the non-id cells: every reader still returns every row (NaN where blank)."""
    df = raw(path)
    rng = np.random.default_rng(0)
    id_col = df.columns[0] if path != ZOOSPEC else "dr7objid"
    for c in df.columns:
        if c != id_col:
            df.loc[rng.random(len(df)) < 0.33, c] = ""
    p = tmp_path / path.name
    df.to_csv(p, index=False)
    cat = read_catalog(p, format=detect_format(path))
    assert cat.table["id"].tolist() == df[id_col].tolist()
    assert cat.table[cat.vote_columns()].isna().any().any()


# ---------------------------------------------------------------------------------------- GZ1


def test_gz1_table2() -> None:
    cat = read_catalog(GZ1_T2)
    text = raw(GZ1_T2)
    t = cat.table
    assert cat.release == "Galaxy Zoo 1" and cat.tree is GZ1_TREE
    assert t["id"].tolist() == text["OBJID"].tolist()
    assert all(isinstance(i, str) and len(i) == 18 for i in t["id"])
    assert t["id"][0] == "587722981736000089"  # not rounded through float64
    # hand-checked coordinates: 00:00:00.41 -> 0.41 s * 15 / 3600 deg; -10:22:25.7; -00:12:34.5
    assert t["ra"][0] == pytest.approx(0.41 * 15 / 3600, abs=1e-9)
    assert t["dec"][0] == pytest.approx(-(10 + 22 / 60 + 25.7 / 3600), abs=1e-9)
    assert text["DEC"][3] == "-00:12:34.5"
    assert t["dec"][3] == pytest.approx(-(12 / 60 + 34.5 / 3600), abs=1e-9)
    np.testing.assert_allclose(t["ra"], [sexagesimal_ra(s) for s in text["RA"]], atol=1e-9)
    np.testing.assert_allclose(t["dec"], [sexagesimal_dec(s) for s in text["DEC"]], atol=1e-9)
    assert cat.vote_columns() == [f"gz1_{a}" for a in GZ1_ANSWERS]
    for answer, col in zip(GZ1_ANSWERS, ["P_EL", "P_CW", "P_ACW", "P_EDGE", "P_DK", "P_MG"]):
        np.testing.assert_allclose(t[f"gz1_{answer}"], text[col].astype(float))
    np.testing.assert_allclose(t[cat.vote_columns()].sum(axis=1), 1.0, atol=0.01)
    np.testing.assert_array_equal(t["gz1_total-votes"], text["NVOTE"].astype(float))
    np.testing.assert_array_equal(t["nvotes"], text["NVOTE"].astype(float))
    np.testing.assert_allclose(t["p_cs"], text["P_CS"].astype(float))
    np.testing.assert_allclose(t["p_el_debiased"], text["P_EL_DEBIASED"].astype(float))
    assert t["flag_spiral"].tolist() == text["SPIRAL"].astype(int).tolist()
    # ready 3-class label from the flags
    assert cat.label_columns == ("gz1_flag_class",)
    assert cat.class_names["gz1_flag_class"] == ["elliptical", "spiral", "uncertain"]
    expected = [0 if e == "1" else 1 if s == "1" else 2 for e, s in zip(text["ELLIPTICAL"], text["SPIRAL"])]
    assert t["gz1_flag_class"].tolist() == expected
    assert set(expected) == {0, 1, 2}
    assert t["image_path"][0] == str(FIX.absolute() / "587722981736000089.jpg")
    assert cat.meta["tree_version"] == "gz1" and cat.meta["layout"] == "table:table2"


def test_gz1_table3_and_skyserver() -> None:
    t3 = read_catalog(GZ1_T3)
    assert t3.label_columns == () and "p_el_debiased" not in t3.table and "p_cs" in t3.table
    assert t3.meta["layout"] == "table:table3"
    assert t3.table["id"].tolist() == raw(GZ1_T3)["OBJID"].tolist()

    sky = read_catalog(ZOOSPEC)
    text = raw(ZOOSPEC)
    assert sky.table["id"].tolist() == text["dr7objid"].tolist()  # the DR7 id, not the DR8 objid
    assert sky.table["dr8objid"].tolist() == text["objid"].tolist()
    assert sky.table["specobjid"].tolist() == text["specobjid"].tolist()
    np.testing.assert_allclose(sky.table["ra"], text["ra"].astype(float))  # degrees already
    np.testing.assert_allclose(sky.table["dec"], text["dec"].astype(float))
    # the sexagesimal strings agree with the degrees to their printed precision
    np.testing.assert_allclose(sky.table["ra"], [sexagesimal_ra(s) for s in text["rastring"]], atol=1e-4)
    np.testing.assert_allclose(sky.table["gz1_merger"], text["p_mg"].astype(float))
    assert sky.label_columns == ("gz1_flag_class",)
    assert sky.meta["coordinates"] == "ra/dec decimal degrees"


def test_gz1_fits(tmp_path: Path) -> None:
    from astropy.table import Table

    text = raw(GZ1_T2)
    tab = Table()
    tab["OBJID"] = np.array([int(i) for i in text["OBJID"]], dtype=np.int64)
    tab["RA"] = text["RA"].to_numpy(dtype=str)
    tab["DEC"] = text["DEC"].to_numpy(dtype=str)
    for c in text.columns[3:]:
        tab[c] = text[c].astype(float).to_numpy() if c.startswith("P_") else text[c].astype(int).to_numpy()
    p = tmp_path / "GalaxyZoo1_DR_table2.fits"
    tab.write(p)
    assert detect_format(p) == "gz1"
    fits_cat = read_catalog(p)
    csv_cat = read_catalog(GZ1_T2)
    assert fits_cat.table["id"].tolist() == csv_cat.table["id"].tolist()
    for col in ["ra", "dec", *csv_cat.vote_columns(), "gz1_flag_class"]:
        np.testing.assert_allclose(fits_cat.table[col].astype(float), csv_cat.table[col].astype(float))

    sky = Table.read(ZOOSPEC, format="ascii.csv")
    sky["dr7objid"] = np.array([int(i) for i in raw(ZOOSPEC)["dr7objid"]], dtype=np.int64)
    p2 = tmp_path / "zooSpec.fits"
    sky.write(p2)
    cat2 = read_catalog(p2)
    assert cat2.table["id"].tolist() == raw(ZOOSPEC)["dr7objid"].tolist()
    np.testing.assert_allclose(cat2.table["ra"], raw(ZOOSPEC)["ra"].astype(float))


def test_gz1_image_lookup_picks_existing_extension(tmp_path: Path) -> None:
    ids = raw(GZ1_T2)["OBJID"].tolist()
    touch_image(tmp_path / f"{ids[0]}.png")
    touch_image(tmp_path / f"{ids[1]}.fits.gz")
    touch_image(tmp_path / f"{ids[2]}.fits")
    touch_image(tmp_path / f"{ids[2]}.jpeg")  # preferred over .fits
    (tmp_path / "notes.txt").write_text("not an image")
    cat = read_catalog(GZ1_T2, tmp_path)
    paths = cat.table["image_path"].tolist()
    assert paths[0] == str(tmp_path / f"{ids[0]}.png")
    assert paths[1] == str(tmp_path / f"{ids[1]}.fits.gz")
    assert paths[2] == str(tmp_path / f"{ids[2]}.jpeg")
    assert paths[3] == str(tmp_path / f"{ids[3]}.jpg")  # missing: the .jpg path, reported later


def test_gz1_bad_coordinates_and_nan(tmp_path: Path) -> None:
    df = raw(GZ1_T2)
    df.loc[4, "P_EL"] = ""
    df.loc[5, "RA"] = ""
    p = tmp_path / "t2.csv"
    df.to_csv(p, index=False)
    cat = read_catalog(p)
    assert np.isnan(cat.table["gz1_elliptical"][4]) and np.isnan(cat.table["ra"][5])
    df.loc[2, "RA"] = "12:xx:49.4"
    df.to_csv(p, index=False)
    with pytest.raises(CatalogError, match=r"row 2.*12:xx:49\.4"):
        read_catalog(p)


# ---------------------------------------------------------------------------------------- GZ2


def test_gz2_hart16_columns_fractions_and_tree() -> None:
    text = raw(HART16)
    assert len(text.columns) == 231
    assert list(text.columns[:9]) == [
        "dr7objid", "ra", "dec", "rastring", "decstring", "sample", "gz2_class", "total_classifications",
        "total_votes",
    ]  # fmt: skip
    cat = read_catalog(HART16)
    t = cat.table
    assert cat.tree is GZ2_TREE and cat.meta["fraction"] == "fraction" and cat.meta["tree_version"] == "gz2"
    assert t["id"].tolist() == text["dr7objid"].tolist()
    np.testing.assert_allclose(t["ra"], text["ra"].astype(float))
    assert cat.vote_columns() == [c for q in GZ2_TREE.questions for c in q.columns()]
    # recompute every conditional fraction independently from the raw counts
    for prefix, question, answer in GZ2_NATIVE:
        task = prefix[:3]
        task_counts = [c for c in text.columns if c.startswith(task) and c.endswith("_count")]
        total = text[task_counts].astype(float).sum(axis=1)
        count = text[f"{prefix}_count"].astype(float)
        expected = np.where(total > 0, count / total.where(total > 0), np.nan)
        np.testing.assert_allclose(t[f"{question}_{answer}"], expected, atol=6e-4, err_msg=prefix)
        np.testing.assert_array_equal(t[f"{question}_total-votes"], total)
        np.testing.assert_array_equal(t[f"{question}_{answer}_count"], count)
    # row 0: every volunteer said "smooth", so the disk questions were never asked
    assert t["disk-edge-on_total-votes"][0] == 0 and np.isnan(t["disk-edge-on_yes"][0])
    assert t["how-rounded_total-votes"][0] == t["smooth-or-featured_total-votes"][0]
    np.testing.assert_array_equal(t["nvotes"], text["total_classifications"].astype(float))
    assert t["gz2_class"].tolist() == text["gz2_class"].tolist()
    assert cat.label_columns == ()  # gz2_class is free text, not a ready label
    # images without a mapping: <image_dir>/<dr7objid>.jpg
    assert t["image_path"][1] == str(FIX.absolute() / f"{text['dr7objid'][1]}.jpg")


@pytest.mark.parametrize("stat", ["weighted_fraction", "debiased"])
def test_gz2_fraction_option(stat: str) -> None:
    text = raw(HART16)
    cat = read_catalog(HART16, fraction=stat)
    assert cat.meta["fraction"] == stat
    col = f"t08_odd_feature_a38_dust_lane_{stat}"
    total = cat.table["odd-feature_total-votes"]
    expected = np.where(total > 0, text[col].astype(float), np.nan)
    np.testing.assert_allclose(cat.table["odd-feature_dust-lane"], expected)


def test_gz2_mapping_drops_and_records_rows_without_asset(tmp_path: Path) -> None:
    text = raw(HART16)
    mapping = raw(MAPPING)
    touch_image(tmp_path / "101.jpg")
    cat = read_catalog(HART16, tmp_path, mapping=MAPPING)
    mapped = set(mapping["objid"])
    missing = [i for i in text["dr7objid"] if i not in mapped]
    assert len(missing) == 2
    assert len(cat) == len(text) - 2
    assert [d[0] for d in cat.dropped] == missing
    assert all("no asset_id in mapping" in d[1] for d in cat.dropped)
    assert cat.meta["n_no_mapping"] == 2
    by_id = dict(zip(cat.table["id"], cat.table["image_path"]))
    # row 1 is listed twice in the mapping (stripe82 -> 999, original -> 101): its own sample wins
    assert by_id[text["dr7objid"][1]] == str(tmp_path / "101.jpg")
    assert by_id[text["dr7objid"][0]] == str(tmp_path / "100.jpg")


def test_gz2_galaxy_datasets_subfolder(tmp_path: Path) -> None:
    gid = raw(HART16)["dr7objid"][2]
    touch_image(tmp_path / gid[:6] / f"{gid}.jpg")
    cat = read_catalog(HART16, tmp_path)
    assert cat.table["image_path"][2] == str(tmp_path / gid[:6] / f"{gid}.jpg")


def test_gz2_galaxy_datasets_ortho_catalogue(tmp_path: Path) -> None:
    """galaxy-datasets' GZ2 catalogue: ``<question>-gz2_<answer>`` counts, task 08 dropped."""
    hart = read_catalog(HART16)
    df = pd.DataFrame({"id_str": hart.table["id"], "ra": hart.table["ra"], "dec": hart.table["dec"]})
    for q in GZ2_TREE.questions:
        if q.name == "odd-feature":
            continue
        for a in q.answers:
            df[f"{q.name}-gz2_{a}"] = hart.table[f"{q.name}_{a}_count"].astype(int)
        df[f"{q.name}-gz2_total-votes"] = hart.table[f"{q.name}_total-votes"].astype(int)
    df["file_loc"] = [f"/data/gz2/images/{i[:6]}/{i}.jpg" for i in df["id_str"]]
    touch_image(tmp_path / df["id_str"][0][:6] / f"{df['id_str'][0]}.jpg")
    p = tmp_path / "gz2_train_catalog.csv"
    df.to_csv(p, index=False)
    assert detect_format(p) == "gz2"
    cat = read_catalog(p, tmp_path)
    assert [q.name for q in cat.tree.questions] == [
        q.name for q in GZ2_TREE.questions if q.name != "odd-feature"
    ]
    assert cat.table["id"].tolist() == hart.table["id"].tolist()
    for col in cat.vote_columns():
        np.testing.assert_allclose(cat.table[col], hart.table[col], atol=6e-4, err_msg=col)
    assert cat.table["image_path"][0] == str(tmp_path / df["id_str"][0][:6] / f"{df['id_str'][0]}.jpg")
    with pytest.raises(CatalogError, match="raw fractions only"):
        read_catalog(p, fraction="debiased")


# ------------------------------------------------------------------------------------- Kaggle


def test_kaggle_unweighting_hand_checked_row() -> None:
    cat = read_catalog(KAGGLE)
    t = cat.table
    assert cat.tree is GZ2_TREE and t["id"][0] == "100008"
    row = t.iloc[0]
    # Row 0: Class1.2 = 0.7, Class2.2 = 0.56, Class4.1 = 0.448, Class6.1 = 0.3, Class2.1 = 0.14.
    hand = {
        "smooth-or-featured_featured-or-disk": 0.7,  # Q1 is not weighted
        "disk-edge-on_no": 0.56 / 0.7,  # 0.8
        "bar_yes": 0.14 / 0.56,  # 0.25
        "has-spiral-arms_yes": 0.448 / 0.56,  # 0.8
        "bulge-size_just-noticeable": 0.224 / 0.56,  # 0.4
        "something-odd_yes": 0.3,  # Q6 sums to 1: left as is
        "how-rounded_round": 0.1 / 0.2,  # 0.5
        "odd-feature_merger": 0.09 / 0.3,  # 0.3
        "bulge-shape_boxy": 0.035 / 0.14,  # 0.25
        "spiral-winding_medium": 0.224 / 0.448,  # 0.5
        "spiral-arm-count_cant-tell": 0.112 / 0.448,  # 0.25
    }
    for col, value in hand.items():
        assert row[col] == pytest.approx(value, abs=1e-9), col
    for q in GZ2_TREE.questions:
        assert sum(row[c] for c in q.columns()) == pytest.approx(1.0, abs=1e-6), q.name
    assert row["has-spiral-arms_proportion_volunteers_asked"] == pytest.approx(0.56)
    assert row["Class4.1"] == pytest.approx(0.448)  # original target kept for the RMSE metric
    assert cat.meta["n_constraint_violations"] == 0


def test_kaggle_not_asked_is_nan() -> None:
    t = read_catalog(KAGGLE).table
    # row 1: Class1.2 = 0, so nothing below "featured" was asked; Q6 and Q7 still were
    for q in ("disk-edge-on", "bar", "has-spiral-arms", "bulge-size", "bulge-shape", "spiral-winding"):
        assert all(np.isnan(t[c][1]) for c in GZ2_TREE.question(q).columns()), q
    assert not np.isnan(t["how-rounded_round"][1]) and not np.isnan(t["something-odd_yes"][1])
    # row 2: Class6.1 = 0 -> odd-feature not asked
    assert all(np.isnan(t[c][2]) for c in GZ2_TREE.question("odd-feature").columns())
    assert t["image_path"][0].endswith("/100008.jpg")


def test_kaggle_images_training_folder(tmp_path: Path) -> None:
    touch_image(tmp_path / "images_training_rev1" / "100008.jpg")
    cat = read_catalog(KAGGLE, tmp_path)
    assert cat.table["image_path"][0] == str(tmp_path / "images_training_rev1" / "100008.jpg")


# ------------------------------------------------------------------------------- GZ DECaLS


def test_decals_gzd5_volunteers(tmp_path: Path) -> None:
    text = raw(GZD5)
    iau = text["iauname"].tolist()
    # image lookup: row 0 at the listed relative path, row 1 only by base name, row 2 missing
    touch_image(tmp_path / text["png_loc"][0])
    touch_image(tmp_path / Path(text["png_loc"][1]).name)
    cat = read_catalog(GZD5, tmp_path)
    t = cat.table
    assert cat.meta["tree_version"] == "gzd-5" and cat.tree.name == "gzd-5"
    assert [q.name for q in cat.tree.questions] == [q.name for q in GZD5_TREE.questions]
    assert t["id"].tolist() == iau
    assert t["image_path"][0] == str(tmp_path / text["png_loc"][0])
    assert t["image_path"][1] == str(tmp_path / Path(text["png_loc"][1]).name)
    assert t["image_path"][2] == str(tmp_path / text["png_loc"][2])
    for q in GZD5_TREE.questions:
        total = text[f"{q.name}_total-votes"].astype(float)
        for a in q.answers:
            frac = pd.to_numeric(text[f"{q.name}_{a}_fraction"], errors="coerce")
            expected = np.where(total > 0, frac, np.nan)
            np.testing.assert_allclose(t[f"{q.name}_{a}"], expected, err_msg=f"{q.name}_{a}")
            np.testing.assert_array_equal(t[f"{q.name}_{a}_count"], text[f"{q.name}_{a}"].astype(int))
        np.testing.assert_array_equal(t[f"{q.name}_total-votes"], total)
    assert t["merging_total-votes"][3] == 0 and np.isnan(t["merging_merger"][3])
    th50, th90 = text["petro_th50"].astype(float), text["petro_th90"].astype(float)
    np.testing.assert_allclose(t["pixel_scale"], np.maximum(np.minimum(0.04 * th50, 0.02 * th90), 0.1))
    np.testing.assert_allclose(t["radius_arcsec"], th90)
    assert t["wrong_size_warning"].tolist() == [v == "True" for v in text["wrong_size_warning"]]
    assert t["upload_group"].tolist() == text["upload_group"].tolist()
    assert cat.label_columns == ()  # no label-like integer column in a volunteer catalogue


def test_decals_debiased_and_gzd12() -> None:
    text = raw(GZD5)
    deb = read_catalog(GZD5, fraction="debiased")
    expected = pd.to_numeric(text["bar_weak_debiased"], errors="coerce")
    expected = np.where(text["bar_total-votes"].astype(float) > 0, expected, np.nan)
    np.testing.assert_allclose(deb.table["bar_weak"], expected)
    assert deb.meta["fraction"] == "debiased"

    cat = read_catalog(GZD12)
    assert cat.meta["tree_version"] == "gzd-1-2"
    assert cat.tree.question("how-rounded").answers == ("completely", "in-between", "cigar-shaped")
    assert "bar_yes" in cat.table and "bar_strong" not in cat.table
    with pytest.raises(CatalogError, match="tree"):
        read_catalog(GZD12, tree="gzd-9")


def test_decals_auto_catalogue_partial_question_and_campaign_suffix(tmp_path: Path) -> None:
    text = raw(GZD5)
    # auto catalogue: fractions only, no counts, no totals
    vote = [c for c in text.columns if c.endswith("_total-votes") or c.endswith("_debiased")]
    counts = [c.removesuffix("_fraction") for c in text.columns if c.endswith("_fraction")]
    auto = text.drop(columns=vote + counts)
    auto = auto.drop(columns=["bar_weak_fraction"])  # bar becomes a partial question
    p = tmp_path / "gz_decals_auto_fractions.csv"
    auto.to_csv(p, index=False)
    cat = read_catalog(p)
    assert "bar" not in [q.name for q in cat.tree.questions] and len(cat.tree.questions) == 9
    assert cat.meta["partial_questions"] == ["bar"]
    assert "bar_strong_fraction" in cat.table and "bar_strong" not in cat.table
    assert not any(c.endswith("_total-votes") for c in cat.table.columns)
    np.testing.assert_allclose(
        cat.table["how-rounded_round"], pd.to_numeric(text["how-rounded_round_fraction"], errors="coerce")
    )

    # galaxy-datasets naming: campaign suffix on the question, counts only (fractions recomputed)
    ortho = text[["iauname", *counts, *[c for c in vote if c.endswith("_total-votes")]]].copy()
    ortho.columns = [c if c == "iauname" else c.replace("_", "-dr5_", 1) for c in ortho.columns]
    p2 = tmp_path / "decals_dr5_ortho_train_catalog.csv"
    ortho.to_csv(p2, index=False)
    assert detect_format(p2) == "decals"
    cat2 = read_catalog(p2)
    assert cat2.meta["campaign"] == "dr5" and cat2.meta["tree_version"] == "gzd-5"
    np.testing.assert_allclose(
        cat2.table["bar_weak"], read_catalog(GZD5).table["bar_weak"], atol=1e-6, equal_nan=True
    )


def test_several_campaigns_read_as_their_union_or_one_campaign(tmp_path: Path) -> None:
    from hf_galaxy.data.catalogs.trees import GZD5_TREE, GZD12_TREE

    df = pd.DataFrame({"id_str": ["a", "b"]})
    for tree, c in ((GZD5_TREE, "dr5"), (GZD12_TREE, "dr12")):
        for a in tree.question("smooth-or-featured").answers:
            df[f"smooth-or-featured-{c}_{a}"] = [3, 0] if a == "smooth" else [1, 0]
        df[f"smooth-or-featured-{c}_total-votes"] = df[
            [f"smooth-or-featured-{c}_{a}" for a in ("smooth", "featured-or-disk", "artifact")]
        ].sum(axis=1)
    df["bar-dr5_weak_fraction"], df["bar-dr12_yes_fraction"] = [0.1, 0.2], [0.5, 0.5]
    p = tmp_path / "gz_evo.csv"
    df.to_csv(p, index=False)
    evo = read_catalog(p)  # GZ Evo: both campaigns' questions side by side, suffixed
    assert evo.release == "Galaxy Zoo DECaLS (campaigns dr5 + dr12)" and evo.meta["campaigns"] == [
        "dr5",
        "dr12",
    ]
    assert [q.name for q in evo.tree.questions] == ["smooth-or-featured-dr5", "smooth-or-featured-dr12"]
    assert evo.table["smooth-or-featured-dr5_smooth"].tolist()[0] == pytest.approx(0.6)
    assert np.isnan(evo.table["smooth-or-featured-dr12_smooth"].iat[1])  # nobody answered: no fraction
    assert read_catalog(p, campaign="dr12").meta["tree_version"] == "gzd-1-2"


def test_real_rings_catalogue() -> None:
    cat = read_catalog(REAL / "rings" / "catalog.csv")
    t = cat.table
    assert cat.label_columns == ("ring",)
    assert cat.class_names["ring"] == ["not_ring", "ring"]
    assert t["ring"].value_counts().to_dict() == {1: 10, 0: 10}
    assert all(Path(p).is_file() for p in t["image_path"])
    assert all(Path(p).name == f"{i}.jpg" for i, p in zip(t["id"], t["image_path"]))
    assert t["id"][0] == "J000411.19+020924.0"
    # only parts of three questions are present: no complete question, fractions kept as they are
    assert cat.tree is None and cat.vote_columns() == []
    assert cat.meta["partial_questions"] == ["smooth-or-featured", "disk-edge-on", "has-spiral-arms"]
    assert (t["smooth-or-featured_featured-or-disk_fraction"] > 0.6).all()


def test_decals_absolute_paths_from_another_machine(tmp_path: Path) -> None:
    text = raw(REAL / "rings" / "catalog.csv").head(3)
    text["file_loc"] = [f"/raid/scratch/decals/png/{i[:4]}/{i}.png" for i in text["id_str"]]
    p = tmp_path / "catalog.csv"
    text.to_csv(p, index=False)
    first = text["id_str"][0]
    touch_image(tmp_path / first[:4] / f"{first}.png")
    t = read_catalog(p).table
    assert t["image_path"][0] == str(tmp_path / first[:4] / f"{first}.png")  # found under image_dir
    assert t["image_path"][1] == text["file_loc"][1]  # not found anywhere: kept, reported later


def test_meta_is_json_serialisable(tmp_path: Path) -> None:
    import json

    h5 = _h5(tmp_path / "g.h5", images=np.zeros((2, 4, 4, 3), np.uint8), ans=np.array([0, 1]))
    for path in (
        GZ1_T2,
        ZOOSPEC,
        HART16,
        KAGGLE,
        GZD5,
        REAL / "rings" / "catalog.csv",
        REAL / "gz2_kaggle",
        h5,
    ):
        cat = read_catalog(path)
        json.dumps(cat.meta)
        assert "tree_version" in cat.meta


def test_decals_label_column_rules(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "id_str": [f"J{i:03d}" for i in range(6)],
            "smooth-or-featured_smooth_fraction": [0.1] * 6,
            "ring": [0, 1, 0, 1, 1, 0],
            "morph": [0, 2, 1, 2, 0, 1],
            "row_number": [0, 1, 2, 3, 4, 5],  # an index, not a class
            "brickid": [5, 5, 6, 6, 7, 7],
            "score": [0.5] * 6,
        }
    )
    p = tmp_path / "labels.csv"
    df.to_csv(p, index=False)
    cat = read_catalog(p)
    assert cat.label_columns == ("ring", "morph")
    assert cat.class_names == {"ring": ["not_ring", "ring"], "morph": ["morph_0", "morph_1", "morph_2"]}
    assert read_catalog(p, label_columns=["morph"]).label_columns == ("morph",)
    with pytest.raises(CatalogError, match="score"):
        read_catalog(p, label_columns=["score"])


# --------------------------------------------------------------------------- Galaxy10 / MNIST


def _h5(path: Path, **datasets: np.ndarray) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return path


def test_galaxy10_decals_and_sdss(tmp_path: Path) -> None:
    n = 12
    labels = np.arange(n) % 10
    p = _h5(
        tmp_path / "Galaxy10_DECals.h5",
        images=np.zeros((n, 16, 16, 3), np.uint8),
        ans=labels.astype(np.uint8),
        ra=np.linspace(10, 20, n),
        dec=np.linspace(-5, 5, n),
        redshift=np.full(n, 0.05),
        pxscale=np.full(n, 0.524),
    )
    assert detect_format(p) == "galaxy10"
    cat = read_catalog(p)
    t = cat.table
    assert cat.release == "Galaxy10 DECaLS" and cat.label_columns == ("ans",)
    assert cat.class_names["ans"][0] == "disturbed" and cat.class_names["ans"][9] == "edge_on_with_bulge"
    assert len(cat.class_names["ans"]) == 10
    assert t["id"].tolist() == [f"galaxy10_{i}" for i in range(n)]
    assert t["image_index"].tolist() == list(range(n)) and (t["image_path"] == str(p)).all()
    assert t["ans"].tolist() == labels.tolist()
    np.testing.assert_allclose(t["pixel_scale"], 0.524)
    np.testing.assert_allclose(t["ra"], np.linspace(10, 20, n))

    p2 = _h5(tmp_path / "Galaxy10.h5", images=np.zeros((4, 8, 8, 3), np.uint8), ans=np.array([0, 1, 5, 9]))
    sdss = read_catalog(p2)
    assert sdss.release == "Galaxy10 SDSS"
    assert sdss.class_names["ans"][:3] == [
        "disk_face_on_no_spiral", "smooth_completely_round", "smooth_in_between_round",
    ]  # fmt: skip
    assert sdss.class_names["ans"][5] == "disk_edge_on_boxy_bulge" and "ra" not in sdss.table


def test_galaxy_mnist_and_bad_labels(tmp_path: Path) -> None:
    p = _h5(tmp_path / "train_dataset.hdf5", images=np.zeros((5, 8, 8, 3), np.uint8),
            labels=np.array([0, 1, 2, 3, 3], np.uint8))  # fmt: skip
    cat = read_catalog(p)
    assert cat.release == "Galaxy MNIST" and cat.label_columns == ("labels",)
    assert cat.class_names["labels"] == ["smooth_round", "smooth_cigar", "edge_on_disk", "unbarred_spiral"]
    assert cat.table["id"].tolist() == [f"galaxy_mnist_{i}" for i in range(5)]
    assert cat.meta["file_split"] == "train"
    bad = _h5(tmp_path / "bad.h5", images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.array([0, 7]))
    with pytest.raises(CatalogError, match="row 1"):
        read_catalog(bad)
    short = _h5(tmp_path / "short.h5", images=np.zeros((3, 8, 8, 3), np.uint8), ans=np.array([0, 1]))
    with pytest.raises(CatalogError, match="3 images but 2"):
        read_catalog(short)
    other = _h5(tmp_path / "other.h5", pixels=np.zeros((3, 4)))
    with pytest.raises(CatalogError, match="pixels"):
        read_catalog(other, format="galaxy10")


# ------------------------------------------------------------------------------- image folder


def test_real_image_folder() -> None:
    cat = read_catalog(REAL / "gz2_kaggle")
    t = cat.table
    assert cat.label_columns == ("class",)
    assert cat.class_names["class"] == ["non_spiral", "spiral"]
    assert t["class"].value_counts().sort_index().tolist() == [8, 8]
    assert cat.meta["class_counts"] == {"non_spiral": 8, "spiral": 8}
    assert "split" not in t
    assert all(Path(p).is_file() for p in t["image_path"])
    spiral = set(t.loc[t["class"] == 1, "id"])
    assert spiral == {p.stem for p in (REAL / "gz2_kaggle" / "spiral").glob("*.jpg")}


def test_image_folder_with_splits(tmp_path: Path) -> None:
    layout = {
        "train/elliptical": ["a.jpg", "b.png"],
        "train/spiral": ["c.jpg", "d.fits.gz", "readme.txt"],
        "val/elliptical": ["e.tiff"],
        "val/spiral": ["f.jpeg"],
        "test/spiral": ["g.jpg"],
    }
    for folder, files in layout.items():
        for name in files:
            touch_image(tmp_path / folder / name)
    (tmp_path / ".DS_Store").write_text("x")
    cat = read_catalog(tmp_path)
    t = cat.table.set_index("id")
    assert cat.class_names["class"] == ["elliptical", "spiral"]
    assert sorted(t.index) == ["a", "b", "c", "d", "e", "f", "g"]
    assert (
        t.loc["d", "split"] == "train"
        and t.loc["e", "split"] == "validation"
        and t.loc["g", "split"] == "test"
    )
    assert t.loc["d", "class"] == 1 and t.loc["e", "class"] == 0
    assert cat.meta["split_counts"] == {"train": 4, "validation": 2, "test": 1}
    assert cat.meta["n_ignored_files"] == 2  # readme.txt and .DS_Store


def test_image_folder_errors_and_repeated_stems(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CatalogError, match="no images"):
        read_catalog(empty)
    flat = tmp_path / "flat"
    touch_image(flat / "a.jpg")
    with pytest.raises(CatalogError, match="no class sub-folders"):
        read_catalog(flat)
    rep = tmp_path / "rep"
    touch_image(rep / "x" / "0.jpg")
    touch_image(rep / "y" / "0.jpg")
    with pytest.raises(CatalogError, match=r"0 in x, y\. A galaxy must not be in two classes or splits"):
        read_catalog(rep)  # one galaxy in two classes (or splits) would leak or carry two labels
    cat = read_catalog(rep, ids="path")
    assert sorted(cat.table["id"]) == ["x/0", "y/0"]


def test_readers_do_not_need_shared(tmp_path: Path) -> None:
    """The real fixtures are self-contained: copy them elsewhere and read them again."""
    shutil.copytree(REAL / "rings", tmp_path / "rings")
    cat = read_catalog(tmp_path / "rings" / "catalog.csv")
    assert all(str(p).startswith(str(tmp_path)) and Path(p).is_file() for p in cat.table["image_path"])
    with (tmp_path / "rings" / "catalog.csv").open() as f:
        assert next(csv.reader(f))[0] == "id_str"
