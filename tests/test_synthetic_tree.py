"""Tests for hf_galaxy.data.synthetic_tree: whole-tree vote counts of the synthetic Galaxy Zoo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hf_galaxy.data.catalogs.trees import GZ2_TREE, GZD5_TREE
from hf_galaxy.data.synthetic import SyntheticZoo, _rng, make_galaxy_zoo, sample_galaxy_params
from hf_galaxy.data.synthetic_tree import (
    TREE_CHOICES,
    simulate_tree_votes,
    tree_release,
    true_answers,
)
from hf_galaxy.data.tree import TreeLayout

N, SEED, SIZE = 60, 7, 32
SPIRALS = ("clockwise_spiral", "anticlockwise_spiral")


@pytest.fixture(scope="module", params=TREE_CHOICES)
def zoo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SyntheticZoo:
    return make_galaxy_zoo(
        tmp_path_factory.mktemp(request.param),
        N,
        seed=SEED,
        image_size=SIZE,
        show_progress=False,
        tree=request.param,
    )


def _catalog(zoo: SyntheticZoo) -> pd.DataFrame:
    rel = tree_release(zoo.tree)
    return pd.read_csv(zoo.tree_catalog_path, dtype={rel.id_column: str, rel.objid_column: str})


def _truth(zoo: SyntheticZoo) -> pd.DataFrame:
    rel = tree_release(zoo.tree)
    return pd.read_csv(zoo.tree_truth_path, dtype={rel.id_column: str, "OBJID": str}, keep_default_na=False)


def _counts(zoo: SyntheticZoo, cat: pd.DataFrame) -> tuple[TreeLayout, np.ndarray]:
    """The written counts laid out like the reader's tree (the written questions, in tree order)."""
    rel = tree_release(zoo.tree)
    layout = TreeLayout.from_tree(
        rel.tree.restrict([c for q in rel.written_questions() for c in q.columns()])
    )
    cols = [f"{q}{rel.suffix}_{a}" for q, answers in zip(layout.questions, layout.answers) for a in answers]
    return layout, cat[cols].to_numpy(np.int64)


def test_paths_and_layout(zoo: SyntheticZoo) -> None:
    rel = tree_release(zoo.tree)
    assert zoo.tree_catalog_path == zoo.out_dir / f"catalog_{zoo.tree}.csv"
    assert zoo.tree_truth_path == zoo.out_dir / f"truth_{zoo.tree}.csv"
    cat = _catalog(zoo)
    assert list(cat.columns[:5]) == [rel.id_column, rel.objid_column, "ra", "dec", "file_loc"]
    assert len(cat) == N and cat[rel.id_column].is_unique
    gz1 = pd.read_csv(zoo.catalog_path, dtype={"OBJID": str})
    assert cat[rel.objid_column].tolist() == gz1["OBJID"].tolist()
    assert all((zoo.out_dir / f).is_file() for f in cat["file_loc"])
    assert cat["ra"].between(0, 360).all() and cat["dec"].between(-10, 70).all()
    if zoo.tree == "decals":
        assert cat["iauname"].str.fullmatch(r"J\d{6}\.\d{2}[+-]\d{6}\.\d").all()
    else:  # galaxy-datasets' GZ2 layout has no task 08
        assert not any(c.startswith("odd-feature") for c in cat.columns)
        assert "odd-feature" in _truth(zoo).columns


def test_reader_loads_every_galaxy_with_the_written_counts(zoo: SyntheticZoo, tmp_path: Path) -> None:
    from hf_galaxy.data.dataset import load_galaxy_dataset

    dsd = load_galaxy_dataset(
        zoo.tree_catalog_path, label_scheme="tree", image_size=SIZE, cache_dir=str(tmp_path / "cache")
    )
    assert dsd.galaxy_info["n_dropped"] == 0 and sum(dsd.galaxy_info["split_sizes"].values()) == N
    layout = TreeLayout.from_dict(dsd.galaxy_info["tree"])
    written, counts = _counts(zoo, cat := _catalog(zoo))
    assert layout.questions == written.questions and layout.answer_names == written.answer_names
    by_id = dict(zip(cat[tree_release(zoo.tree).id_column], counts.tolist()))
    checked = 0
    for split in dsd.values():
        for gid, row in zip(split["id"], split["counts"]):
            assert row == by_id[gid]
            checked += 1
    assert checked == N


def test_totals_follow_the_tree(zoo: SyntheticZoo) -> None:
    rel = tree_release(zoo.tree)
    cat = _catalog(zoo)
    layout, counts = _counts(zoo, cat)
    totals = layout.totals(counts)
    qi = {q: i for i, q in enumerate(layout.questions)}
    for q, parent, s in zip(layout.questions, layout.parents, layout.slices()):
        np.testing.assert_array_equal(cat[f"{q}{rel.suffix}_total-votes"], totals[:, qi[q]])
        frac = cat[[f"{q}{rel.suffix}_{a}_fraction" for a in layout.answers[qi[q]]]].to_numpy()
        answered = totals[:, qi[q]] > 0
        np.testing.assert_allclose(
            frac[answered], counts[answered, s] / totals[answered, qi[q], None], atol=1e-6
        )
        assert np.isnan(frac[~answered]).all()
        if parent is None:
            np.testing.assert_array_equal(totals[:, qi[q]], totals[:, 0])  # every volunteer answers it
            continue
        pq, pa = parent
        if pa.startswith("!"):
            expected = totals[:, qi[pq]] - counts[:, layout.answer_index(pq, pa[1:])]
        else:
            expected = counts[:, layout.answer_index(pq, pa)]
        np.testing.assert_array_equal(totals[:, qi[q]], expected, err_msg=q)
    # volunteers vary per galaxy, deeper questions get fewer votes, some none at all
    root = totals[:, 0]
    lo, hi = rel.volunteers[2:]
    assert root.min() >= lo and root.max() <= hi and len(set(root.tolist())) > 10
    arms = totals[:, qi["spiral-arm-count"]]
    assert (arms <= root).all() and arms.mean() < 0.5 * root.mean() and (arms == 0).any()


def test_truth_file_follows_the_true_morphology(zoo: SyntheticZoo) -> None:
    rel = tree_release(zoo.tree)
    truth = _truth(zoo)
    gz1 = pd.read_csv(zoo.truth_path, dtype={"OBJID": str})
    assert truth["true_class"].tolist() == gz1["true_class"].tolist()
    cls = truth["true_class"]
    assert (truth.loc[cls == "elliptical", "smooth-or-featured"] == "smooth").all()
    assert (truth.loc[cls == "edge_on", "disk-edge-on"] == "yes").all()
    spirals = truth[cls.isin(SPIRALS)]
    assert (spirals["has-spiral-arms"] == "yes").all()
    assert (spirals["spiral-arm-count"] == spirals["arms"].astype(str)).all()
    assert (truth.loc[~cls.isin(SPIRALS), "spiral-arm-count"] == "").all()
    assert (
        truth.loc[cls != "elliptical", "how-rounded"].isin(
            ["", "round", "in-between", "cigar-shaped", "cigar"]
        )
    ).all()
    assert (truth.loc[truth["bar"] != "", "bar"] == "no").all()
    merging = "merging" if zoo.tree == "decals" else "something-odd"
    assert (truth.loc[cls == "merger", merging].isin(["merger", "yes"])).all()
    # a question has a true answer exactly where its parent's true answer leads to it
    for q in rel.tree.questions:
        if q.parent is None:
            assert (truth[q.name] != "").all()
            continue
        pq, pa = q.parent
        leads = truth[pq] != pa[1:] if pa.startswith("!") else truth[pq] == pa
        np.testing.assert_array_equal(truth[q.name] != "", leads & (truth[pq] != ""), err_msg=q.name)
        assert set(truth[q.name]) <= {"", *q.answers}


def test_plurality_answers_recover_the_truth(zoo: SyntheticZoo) -> None:
    rel = tree_release(zoo.tree)
    cat, truth = _catalog(zoo), _truth(zoo)
    layout, counts = _counts(zoo, cat)
    for q, s in zip(layout.questions, layout.slices()):
        block = counts[:, s]
        has = (truth[q] != "").to_numpy() & (block.sum(axis=1) > 0)
        plurality = np.array(rel.tree.question(q).answers)[block.argmax(axis=1)]
        agree = (plurality[has] == truth[q].to_numpy()[has]).mean()
        floor = {"bulge-size": 0.6, "edge-on-bulge": 0.6, "bulge-shape": 0.6, "spiral-winding": 0.6}.get(
            q, 0.75
        )
        assert has.sum() >= 5 and agree >= floor, (q, int(has.sum()), agree)


def test_simulated_votes_statistics() -> None:
    """Many galaxies without rendering: spiral arm counts, edge-on and smooth pluralities match the truth."""
    layout = TreeLayout.from_tree(GZD5_TREE)
    hits: dict[str, list[bool]] = {"spiral-arm-count": [], "disk-edge-on": [], "smooth-or-featured": []}
    volunteers = []
    for i in range(400):
        cls = ("clockwise_spiral", "edge_on", "elliptical", "anticlockwise_spiral")[i % 4]
        params = sample_galaxy_params(cls, _rng(99, i, 1))
        v, counts = simulate_tree_votes("decals", cls, params, _rng(99, i, 4))
        volunteers.append(v)
        truth = true_answers("decals", cls, params)
        for q in hits:
            block = counts[layout.slices()[layout.questions.index(q)]]
            if truth[q] and block.sum() > 0:
                hits[q].append(GZD5_TREE.question(q).answers[int(block.argmax())] == truth[q])
    assert np.mean(hits["spiral-arm-count"]) > 0.8 and len(hits["spiral-arm-count"]) > 150
    assert np.mean(hits["disk-edge-on"]) > 0.9 and np.mean(hits["smooth-or-featured"]) > 0.9
    assert 10 <= min(volunteers) and max(volunteers) <= 60 and np.std(volunteers) > 5
    # the GZ2 tree's "anything odd?" gets every volunteer but those who said artifact
    g2 = TreeLayout.from_tree(GZ2_TREE)
    params = sample_galaxy_params("merger", _rng(1, 0, 1))
    _, counts = simulate_tree_votes("gz2", "merger", params, _rng(1, 0, 4))
    odd = counts[g2.slices()[g2.questions.index("something-odd")]].sum()
    assert odd == counts[:3].sum() - counts[g2.answer_index("smooth-or-featured", "artifact")]


def _files(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def test_gz1_files_do_not_change_with_a_tree(tmp_path: Path) -> None:
    tree_files = ("catalog_decals.csv", "truth_decals.csv", "catalog_gz2.csv", "truth_gz2.csv")
    plain = make_galaxy_zoo(tmp_path / "plain", 8, seed=SEED, image_size=SIZE, show_progress=False)
    assert plain.tree is None and plain.tree_catalog_path is None
    assert not any((plain.out_dir / f).exists() for f in tree_files)
    reference = _files(plain.out_dir, skip=("synthetic_manifest.json",))
    for tree in TREE_CHOICES:
        z = make_galaxy_zoo(tmp_path / tree, 8, seed=SEED, image_size=SIZE, show_progress=False, tree=tree)
        assert _files(z.out_dir, skip=("synthetic_manifest.json", *tree_files)) == reference
        assert json.loads((z.out_dir / "synthetic_manifest.json").read_text())["tree"] == tree


def test_determinism_num_proc_and_n(tmp_path: Path, zoo: SyntheticZoo) -> None:
    again = make_galaxy_zoo(tmp_path / "a", N, seed=SEED, image_size=SIZE, show_progress=False, tree=zoo.tree)
    assert again.tree_catalog_path.read_bytes() == zoo.tree_catalog_path.read_bytes()
    assert again.tree_truth_path.read_bytes() == zoo.tree_truth_path.read_bytes()
    # galaxy i's votes do not depend on n, the image size or the worker processes
    small = make_galaxy_zoo(
        tmp_path / "p", 6, seed=SEED, image_size=16, num_proc=2, show_progress=False, tree=zoo.tree
    )
    assert (
        small.tree_catalog_path.read_text().splitlines() == zoo.tree_catalog_path.read_text().splitlines()[:7]
    )
    other = make_galaxy_zoo(
        tmp_path / "o", 6, seed=SEED + 1, image_size=16, show_progress=False, tree=zoo.tree
    )
    assert (
        other.tree_catalog_path.read_text().splitlines()[1:]
        != small.tree_catalog_path.read_text().splitlines()[1:]
    )


def test_reuse_and_changing_the_tree(tmp_path: Path) -> None:
    z = make_galaxy_zoo(tmp_path, 5, seed=2, image_size=SIZE, show_progress=False, tree="decals")
    images = {p.name: p.stat().st_mtime_ns for p in z.image_dir.iterdir()}
    stamp = z.tree_catalog_path.stat().st_mtime_ns
    again = make_galaxy_zoo(tmp_path, 5, seed=2, image_size=SIZE, show_progress=False, tree="decals")
    assert again == z and z.tree_catalog_path.stat().st_mtime_ns == stamp
    # another tree: only the tree files change, the images are kept
    g = make_galaxy_zoo(tmp_path, 5, seed=2, image_size=SIZE, show_progress=False, tree="gz2")
    assert {p.name: p.stat().st_mtime_ns for p in z.image_dir.iterdir()} == images
    assert (
        g.tree_catalog_path.is_file() and not z.tree_catalog_path.exists() and not z.tree_truth_path.exists()
    )
    fresh = make_galaxy_zoo(tmp_path / "fresh", 5, seed=2, image_size=SIZE, show_progress=False, tree="gz2")
    assert g.tree_catalog_path.read_bytes() == fresh.tree_catalog_path.read_bytes()
    # an incomplete tree set is rewritten; no tree drops the tree files and matches a GZ1-only folder
    g.tree_truth_path.unlink()
    assert make_galaxy_zoo(
        tmp_path, 5, seed=2, image_size=SIZE, show_progress=False, tree="gz2"
    ).tree_truth_path.is_file()
    plain = make_galaxy_zoo(tmp_path, 5, seed=2, image_size=SIZE, show_progress=False)
    assert not g.tree_catalog_path.exists() and not g.tree_truth_path.exists()
    ref = make_galaxy_zoo(tmp_path / "ref", 5, seed=2, image_size=SIZE, show_progress=False)
    mine = {k: v for k, v in _files(plain.out_dir).items() if not k.startswith(("fresh/", "ref/"))}
    assert mine == _files(ref.out_dir)


@pytest.mark.parametrize("bad", ["decals5", "GZ2", "kaggle", 2])
def test_bad_tree_value(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match=r"^tree must be None or one of 'decals', 'gz2', got ") as err:
        make_galaxy_zoo(tmp_path, 3, image_size=SIZE, show_progress=False, tree=bad)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)
    assert not (tmp_path / "catalog.csv").exists() and not (tmp_path / "images").exists()
