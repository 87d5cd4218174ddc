"""Tests for hf_galaxy.data.synthetic: the procedural GZ1 release (catalogue, images, truth, boxes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hf_galaxy.data.synthetic import (
    CATALOG_COLUMNS,
    GRAY_SKY_LEVEL,
    GRAY_SKY_RMS,
    GZ1_CLASSES,
    SyntheticZoo,
    make_galaxy_zoo,
    render_galaxy,
    sample_galaxy_params,
    simulate_votes,
)

FRACTIONS = ["P_EL", "P_CW", "P_ACW", "P_EDGE", "P_DK", "P_MG"]
SIZE = 64


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> SyntheticZoo:
    return make_galaxy_zoo(tmp_path_factory.mktemp("zoo"), n=60, seed=3, image_size=SIZE, show_progress=False)


@pytest.fixture(scope="module")
def catalog(zoo: SyntheticZoo) -> pd.DataFrame:
    return pd.read_csv(zoo.catalog_path, dtype={"OBJID": str, "RA": str, "DEC": str})


@pytest.fixture(scope="module")
def truth(zoo: SyntheticZoo) -> pd.DataFrame:
    return pd.read_csv(zoo.truth_path, dtype={"OBJID": str})


@pytest.fixture(scope="module")
def boxes(zoo: SyntheticZoo) -> dict:
    return json.loads(zoo.boxes_path.read_text())


@pytest.fixture(scope="module")
def big_zoo(tmp_path_factory: pytest.TempPathFactory) -> SyntheticZoo:
    """Many tiny cut-outs, for statistics of the simulated votes."""
    return make_galaxy_zoo(tmp_path_factory.mktemp("big"), n=600, seed=11, image_size=16, show_progress=False)


def _gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float32).mean(axis=2)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- catalogue ------------------------------------------------------------------------------------


def test_paths_and_header(zoo: SyntheticZoo) -> None:
    assert zoo.n == 60
    assert zoo.catalog_path == zoo.out_dir / "catalog.csv"
    assert zoo.image_dir == zoo.out_dir / "images"
    first = zoo.catalog_path.read_text().splitlines()[0]
    assert first == (
        "OBJID,RA,DEC,NVOTE,P_EL,P_CW,P_ACW,P_EDGE,P_DK,P_MG,P_CS,P_EL_DEBIASED,P_CS_DEBIASED,"
        "SPIRAL,ELLIPTICAL,UNCERTAIN"
    )
    assert tuple(first.split(",")) == CATALOG_COLUMNS
    assert zoo.truth_path.read_text().splitlines()[0] == "OBJID,true_class"


def test_column_types(catalog: pd.DataFrame) -> None:
    assert len(catalog) == 60
    assert catalog["OBJID"].str.fullmatch(r"587\d{15}").all()
    assert catalog["OBJID"].is_unique
    # DR7 objID bit layout: skyVersion 1, rerun 40, camcol 1-6
    ids = [int(v) for v in catalog["OBJID"]]
    assert all(v >> 59 == 1 and (v >> 48) & 0x7FF == 40 and 1 <= (v >> 29) & 7 <= 6 for v in ids)
    assert catalog["NVOTE"].dtype.kind == "i" and catalog["NVOTE"].between(20, 80).all()
    for col in ["SPIRAL", "ELLIPTICAL", "UNCERTAIN"]:
        assert catalog[col].dtype.kind == "i" and set(catalog[col]) <= {0, 1}
    for col in [*FRACTIONS, "P_CS", "P_EL_DEBIASED", "P_CS_DEBIASED"]:
        assert catalog[col].dtype.kind == "f" and catalog[col].between(0, 1).all()
        assert np.allclose(catalog[col], catalog[col].round(3), atol=1e-12)


def test_fractions_sum_to_one_and_combined_spiral(catalog: pd.DataFrame) -> None:
    assert np.allclose(catalog[FRACTIONS].sum(axis=1), 1.0, atol=1e-9)
    assert np.allclose(catalog["P_CS"], catalog[["P_CW", "P_ACW", "P_EDGE"]].sum(axis=1), atol=1e-9)
    # fractions are vote counts over NVOTE (rounded to 3 decimals)
    counts = catalog[FRACTIONS].mul(catalog["NVOTE"], axis=0)
    assert np.allclose(counts, counts.round(), atol=0.04)


def test_flags_follow_debiased_fractions(catalog: pd.DataFrame) -> None:
    assert (catalog["SPIRAL"] == (catalog["P_CS_DEBIASED"] > 0.8).astype(int)).all()
    assert (catalog["ELLIPTICAL"] == (catalog["P_EL_DEBIASED"] > 0.8).astype(int)).all()
    assert (
        catalog["UNCERTAIN"] == ((catalog["SPIRAL"] == 0) & (catalog["ELLIPTICAL"] == 0)).astype(int)
    ).all()
    assert catalog["SPIRAL"].sum() > 0 and catalog["ELLIPTICAL"].sum() > 0 and catalog["UNCERTAIN"].sum() > 0
    # debiasing moves votes between the two columns but keeps their sum
    total = catalog["P_EL"] + catalog["P_CS"]
    assert np.allclose(catalog["P_EL_DEBIASED"] + catalog["P_CS_DEBIASED"], total, atol=1e-9)
    assert (catalog["P_EL_DEBIASED"] != catalog["P_EL"]).any()


def test_ra_dec_are_sexagesimal_and_parse_back(catalog: pd.DataFrame) -> None:
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    assert catalog["RA"].str.fullmatch(r"\d\d:\d\d:\d\d\.\d\d").all()
    assert catalog["DEC"].str.fullmatch(r"[+-]\d\d:\d\d:\d\d\.\d").all()
    coords = SkyCoord(catalog["RA"].tolist(), catalog["DEC"].tolist(), unit=(u.hourangle, u.deg))
    assert ((coords.ra.deg >= 0) & (coords.ra.deg < 360)).all()
    assert ((coords.dec.deg >= -10.01) & (coords.dec.deg <= 70.01)).all()
    assert coords.ra.deg.std() > 30  # spread over the sky, not one field
    # the formatting round-trips: hours to 0.01 s (0.15 arcsec) and degrees to 0.1 arcsec
    again = coords.ra.to_string(unit=u.hourangle, sep=":", precision=2, pad=True)
    assert list(again) == catalog["RA"].tolist()


# --- truth and images -----------------------------------------------------------------------------


def test_truth_and_images(zoo: SyntheticZoo, catalog: pd.DataFrame, truth: pd.DataFrame) -> None:
    assert truth["OBJID"].tolist() == catalog["OBJID"].tolist()
    assert set(truth["true_class"]) <= set(GZ1_CLASSES)
    assert len(set(truth["true_class"])) == 6  # 60 draws of the default mix hit every class
    names = sorted(p.name for p in zoo.image_dir.iterdir())
    assert names == sorted(f"{o}.jpg" for o in catalog["OBJID"])
    for objid in catalog["OBJID"][:10]:
        with Image.open(zoo.image_dir / f"{objid}.jpg") as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (SIZE, SIZE)


def test_determinism_same_seed_and_parallel(tmp_path: Path, zoo: SyntheticZoo) -> None:
    again = make_galaxy_zoo(tmp_path / "a", n=60, seed=3, image_size=SIZE, show_progress=False)
    assert _files(again.out_dir) == _files(zoo.out_dir)
    # galaxy i does not depend on n, and worker processes give the same bytes as the serial run
    par = make_galaxy_zoo(tmp_path / "p", n=8, seed=3, image_size=SIZE, num_proc=2, show_progress=False)
    first = zoo.catalog_path.read_text().splitlines()[:9]
    assert par.catalog_path.read_text().splitlines() == first
    for p in par.image_dir.iterdir():
        assert p.read_bytes() == (zoo.image_dir / p.name).read_bytes()
    other = make_galaxy_zoo(tmp_path / "b", n=60, seed=4, image_size=SIZE, show_progress=False)
    assert other.catalog_path.read_bytes() != zoo.catalog_path.read_bytes()
    assert other.truth_path.read_bytes() != zoo.truth_path.read_bytes()


def test_catalog_does_not_depend_on_image_size(tmp_path: Path, zoo: SyntheticZoo) -> None:
    small = make_galaxy_zoo(tmp_path, n=10, seed=3, image_size=32, show_progress=False)
    assert small.catalog_path.read_text().splitlines() == zoo.catalog_path.read_text().splitlines()[:11]
    with Image.open(next(small.image_dir.iterdir())) as im:
        assert im.size == (32, 32)


def test_rerun_in_same_folder_removes_stale_images(tmp_path: Path) -> None:
    make_galaxy_zoo(tmp_path, n=5, seed=1, image_size=32, show_progress=False)
    z = make_galaxy_zoo(tmp_path, n=4, seed=2, image_size=32, show_progress=False)
    listed = set(pd.read_csv(z.catalog_path, dtype={"OBJID": str})["OBJID"])
    assert {p.stem for p in z.image_dir.iterdir()} == listed
    (tmp_path / "notes.txt").write_text("mine")
    make_galaxy_zoo(tmp_path, n=2, seed=2, image_size=32, show_progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"  # files that are not ours are left alone


def test_class_fractions_option(tmp_path: Path) -> None:
    z = make_galaxy_zoo(
        tmp_path, n=6, seed=0, image_size=32, class_fractions={"edge_on": 1.0}, show_progress=False
    )
    assert set(pd.read_csv(z.truth_path)["true_class"]) == {"edge_on"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be a positive integer"),
        ({"n": 3, "image_size": 8}, "image_size must be an integer >= 16"),
        ({"n": 3, "seed": -1}, "seed must be a non-negative integer"),
        ({"n": 3, "num_proc": 0}, "num_proc must be a positive integer"),
        ({"n": 3, "class_fractions": {"spiral": 1.0}}, "unknown classes"),
        ({"n": 3, "class_fractions": {"edge_on": 0.0}}, "not all zero"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_galaxy_zoo(tmp_path, show_progress=False, **kwargs)
    assert not (tmp_path / "catalog.csv").exists()


def test_render_galaxy_rejects_unknown_class() -> None:
    with pytest.raises(ValueError, match="unknown GZ1 class 'spiral'"):
        render_galaxy("spiral", np.random.default_rng(0), 32)


# --- chirality ------------------------------------------------------------------------------------


def test_anticlockwise_is_the_mirror_of_clockwise() -> None:
    for seed in range(3):
        params = sample_galaxy_params("clockwise_spiral", np.random.default_rng(seed))
        cw = render_galaxy("clockwise_spiral", params, 96)
        acw = render_galaxy("anticlockwise_spiral", params, 96)
        assert cw.shape == (3, 96, 96) and cw.dtype == np.float32
        assert np.array_equal(cw, render_galaxy("clockwise_spiral", params, 96))  # deterministic
        np.testing.assert_allclose(acw, cw[:, :, ::-1], rtol=1e-5, atol=1e-5 * float(cw.max()))
        # not trivially true: a spiral is not symmetric under the flip
        assert np.abs(cw - cw[:, :, ::-1]).mean() > 0.05 * np.abs(cw).mean()


def _arm_phase(image: np.ndarray, m: int, radii: np.ndarray) -> np.ndarray:
    """Unwrapped phase of the m-armed pattern in thin annuli; azimuth measured with y pointing down."""
    size = image.shape[0]
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size]
    r, phi = np.hypot(x - c, y - c), np.arctan2(y - c, x - c)
    out = []
    for r0 in radii:
        ring = (r >= r0 - 1.0) & (r < r0 + 1.0)
        out.append(-np.angle((image[ring] * np.exp(-1j * m * phi[ring])).sum()))
    return np.unwrap(np.array(out))


def test_chirality_convention_z_wise_is_clockwise() -> None:
    # GZ1 "clockwise" = Z-wise: followed outward, the arms turn anticlockwise on the displayed image,
    # i.e. the arm azimuth (clockwise-positive with y down) decreases with radius.
    for seed in range(3):
        params = sample_galaxy_params("clockwise_spiral", np.random.default_rng(seed), clarity=1.0)
        params.update(q=1.0, arms=2)
        size = 128
        r_eff = params["r_eff"] * size / 424
        radii = np.linspace(0.8 * r_eff, 2.2 * r_eff, 10)
        cw = _arm_phase(render_galaxy("clockwise_spiral", params, size).mean(axis=0), 2, radii)
        acw = _arm_phase(render_galaxy("anticlockwise_spiral", params, size).mean(axis=0), 2, radii)
        assert (np.diff(cw) < 0).all(), cw
        assert (np.diff(acw) > 0).all(), acw


# --- votes ----------------------------------------------------------------------------------------


def test_plurality_mostly_matches_truth_and_clean_keeps_fewer(big_zoo: SyntheticZoo) -> None:
    cat = pd.read_csv(big_zoo.catalog_path, dtype={"OBJID": str})
    truth = pd.read_csv(big_zoo.truth_path, dtype={"OBJID": str})
    plurality = cat[FRACTIONS].to_numpy().argmax(axis=1)
    true = truth["true_class"].map(GZ1_CLASSES.index).to_numpy()
    agree = (plurality == true).mean()
    assert 0.85 <= agree <= 0.97, agree
    clean = cat[FRACTIONS].max(axis=1) >= 0.8
    assert 0.35 <= clean.mean() <= 0.75, clean.mean()
    assert clean.sum() < len(cat)  # clean(0.8) keeps strictly fewer rows than plurality
    assert (plurality[clean] == true[clean]).mean() > (plurality == true).mean()
    # class mix close to the default 30/15/15/15/10/15
    mix = truth["true_class"].value_counts(normalize=True)
    assert abs(mix["elliptical"] - 0.30) < 0.07 and abs(mix["star_or_unknown"] - 0.10) < 0.05
    # chirality confusion dominates the spirals' errors
    cw = true == 1
    assert cat.loc[cw, "P_ACW"].mean() > cat.loc[cw, "P_DK"].mean()


def test_simulate_votes_depends_on_clarity() -> None:
    rng = np.random.default_rng(0)
    shares = {}
    for clarity in (0.1, 0.95):
        votes = [simulate_votes("edge_on", clarity, rng) for _ in range(300)]
        shares[clarity] = np.mean([counts[3] / nvote for nvote, counts in votes])
        assert all(counts.sum() == nvote and 20 <= nvote <= 80 for nvote, counts in votes)
    assert shares[0.95] > shares[0.1] + 0.3


# --- boxes ----------------------------------------------------------------------------------------


def test_truth_boxes(boxes: dict, truth: pd.DataFrame) -> None:
    assert list(boxes) == truth["OBJID"].tolist()
    n_field = 0
    for objid, cls in zip(truth["OBJID"], truth["true_class"]):
        entries = boxes[objid]
        targets = [b for b in entries if b["target"]]
        assert len(targets) == 1 and targets[0]["category"] == cls
        for b in entries:
            x, y, w, h = b["bbox"]
            assert all(isinstance(v, int) for v in b["bbox"])
            assert x >= 0 and y >= 0 and w >= 1 and h >= 1 and x + w <= SIZE and y + h <= SIZE
        tx, ty, tw, th = targets[0]["bbox"]
        assert tx <= SIZE / 2 <= tx + tw and ty <= SIZE / 2 <= ty + th
        for b in entries:
            if not b["target"]:
                n_field += 1
                assert b["category"] in {"star", "neighbour"}
                x, y, w, h = b["bbox"]
                assert x + w <= tx or tx + tw <= x or y + h <= ty or ty + th <= y  # no overlap with target
    assert n_field > 10  # neighbours and stars do occur


def test_boxes_match_sep_segmentation(tmp_path: Path) -> None:
    import sep  # a required dependency: a missing sep must fail, not skip

    size = 128
    z = make_galaxy_zoo(tmp_path, n=30, seed=5, image_size=size, show_progress=False)
    boxes = json.loads(z.boxes_path.read_text())
    ious = []
    for objid, entries in boxes.items():
        gray = np.ascontiguousarray(_gray(z.image_dir / f"{objid}.jpg"))
        bkg = sep.Background(gray, bw=size // 4, bh=size // 4)
        _, seg = sep.extract(
            gray - bkg.back(), 1.5, err=bkg.globalrms, segmentation_map=True, deblend_cont=1.0, minarea=5
        )
        label = seg[size // 2, size // 2]
        tx, ty, tw, th = next(b["bbox"] for b in entries if b["target"])
        if label == 0:
            ious.append(0.0)
            continue
        ys, xs = np.nonzero(seg == label)
        sx, sy, sw, sh = xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        iw = max(0, min(tx + tw, sx + sw) - max(tx, sx))
        ih = max(0, min(ty + th, sy + sh) - max(ty, sy))
        ious.append(iw * ih / (tw * th + sw * sh - iw * ih))
    assert np.mean(np.array(ious) >= 0.7) >= 0.85, sorted(ious)


def test_gray_sky_matches_documented_level_and_noise(zoo: SyntheticZoo, boxes: dict) -> None:
    """The grey sky level and rms (JPEG noise included) that the box threshold is defined with."""
    sky = []
    for objid, entries in list(boxes.items())[:20]:
        gray = _gray(zoo.image_dir / f"{objid}.jpg")
        free = np.ones_like(gray, dtype=bool)
        for b in entries:
            x, y, w, h = b["bbox"]
            free[max(y - 4, 0) : y + h + 4, max(x - 4, 0) : x + w + 4] = False
        sky.append(gray[free])
    pixels = np.concatenate(sky)
    assert abs(np.median(pixels) - GRAY_SKY_LEVEL) < 1.5
    assert abs(pixels.std() / GRAY_SKY_RMS - 1.0) < 0.1, (pixels.std(), GRAY_SKY_RMS)


# --- looks --------------------------------------------------------------------------------------


def _shape_and_colour(zoo: SyntheticZoo, objid: str, box: list[int]) -> tuple[float, float]:
    """Axis ratio from second moments of the sky-subtracted light in the box, and blue-minus-red."""
    rgb = np.asarray(Image.open(zoo.image_dir / f"{objid}.jpg"), dtype=np.float64)
    x, y, w, h = box
    gray = rgb.mean(axis=2)
    sky = np.median(gray)
    noise = 1.4826 * np.median(np.abs(gray - sky))
    cut = gray[y : y + h, x : x + w] - sky
    cut[cut < 3 * noise] = 0.0  # only the galaxy's light, not the positive half of the noise
    yy, xx = np.mgrid[y : y + h, x : x + w]
    tot = cut.sum()
    mx, my = (cut * xx).sum() / tot, (cut * yy).sum() / tot
    cov = np.cov(np.stack([xx.ravel() - mx, yy.ravel() - my]), aweights=cut.ravel())
    lo, hi = np.linalg.eigvalsh(cov)
    pix = rgb[y : y + h, x : x + w][cut > 0.3 * cut.max()]
    return float(np.sqrt(lo / hi)), float((pix[:, 2] - pix[:, 0]).mean())


def test_classes_look_different(zoo: SyntheticZoo, truth: pd.DataFrame, boxes: dict) -> None:
    stats: dict[str, list[tuple[float, float]]] = {}
    for objid, cls in zip(truth["OBJID"], truth["true_class"]):
        box = next(b["bbox"] for b in boxes[objid] if b["target"])
        stats.setdefault(cls, []).append(_shape_and_colour(zoo, objid, box))
    ratio = {c: np.median([s[0] for s in v]) for c, v in stats.items()}
    blue = {c: np.median([s[1] for s in v]) for c, v in stats.items()}
    assert ratio["edge_on"] < 0.45 < ratio["elliptical"], ratio
    assert max(s[0] for s in stats["edge_on"]) < min(s[0] for s in stats["elliptical"]), stats
    assert blue["clockwise_spiral"] > blue["elliptical"] and blue["anticlockwise_spiral"] > blue["elliptical"]


def test_a_complete_set_with_the_same_arguments_is_reused_untouched(tmp_path):
    """Re-running (e.g. `--dataset synthetic:N` on every DDP rank) must not rewrite the images."""
    zoo = make_galaxy_zoo(tmp_path / "z", 6, seed=2, image_size=32, show_progress=False)
    first = {p.name: p.stat().st_mtime_ns for p in zoo.image_dir.iterdir()}
    again = make_galaxy_zoo(tmp_path / "z", 6, seed=2, image_size=32, show_progress=False)
    assert again == zoo and {p.name: p.stat().st_mtime_ns for p in zoo.image_dir.iterdir()} == first
    other = make_galaxy_zoo(tmp_path / "z", 6, seed=3, image_size=32, show_progress=False)
    assert other.catalog_path.read_text() != "" and {p.name for p in zoo.image_dir.iterdir()} != set(first)
    (zoo.image_dir / next(iter(sorted(p.name for p in zoo.image_dir.iterdir())))).unlink()
    repaired = make_galaxy_zoo(tmp_path / "z", 6, seed=3, image_size=32, show_progress=False)
    assert len(list(repaired.image_dir.iterdir())) == 6  # an incomplete set is regenerated
