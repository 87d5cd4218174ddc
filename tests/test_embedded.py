"""Datasets with their images inside (Hub layout): ``Dataset``/``DatasetDict`` objects, parquet files with an image
column and local copies of Hub repos read through the release readers, with the same label schemes, skip report
and cache as catalogue files."""

from __future__ import annotations

import io
import json

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
    import datasets

    only_train = load_galaxy_dataset(datasets.DatasetDict({"train": src["train"]}), image_size=32,
                                     cache_dir=tmp_path / "cache")  # fmt: skip
    assert set(only_train) == {"train", "validation", "test"}  # both made from train, by seed


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


# --------------------------------------------------------------------------------- from the (loopback) Hub
@pytest.fixture(scope="module")
def repo_folder(tmp_path_factory):
    from tests.hub_datasets import make_gz2_dataset_repo

    return make_gz2_dataset_repo(tmp_path_factory.mktemp("gz2") / "repo")


@pytest.fixture
def hub(tmp_path, monkeypatch, repo_folder):
    from tests.hub_datasets import push_gz2_dataset_repo
    from tests.hub_helpers import TOKEN, isolated_hf_caches, loopback_hub

    isolated_hf_caches(tmp_path / "hf_cache", monkeypatch)
    with loopback_hub(tmp_path / "hub", monkeypatch) as server:
        push_gz2_dataset_repo(server.endpoint, repo_folder, token=TOKEN)
        push_gz2_dataset_repo(server.endpoint, repo_folder, token=TOKEN, revision="v1")
        yield server


def test_a_hub_dataset_id_loads_through_the_real_client(hub, tmp_path, monkeypatch):
    from huggingface_hub import snapshot_download

    from tests.hub_datasets import REPO_ID
    from tests.hub_helpers import hub_offline

    dsd = load_galaxy_dataset(REPO_ID, name="tiny", image_size=32, cache_dir=tmp_path / "c")
    assert hub.file_requests(REPO_ID, "tiny/train-00000-of-00001.parquet", repo_type="dataset")
    info = dsd.galaxy_info
    assert info["dataset_id"] == REPO_ID and info["config"] == "tiny" and info["release"] == "Galaxy Zoo 2"
    assert info["catalog"] == f"Hub dataset {REPO_ID} (tiny)"
    assert info["split_sizes"]["test"] == 2 and sum(info["split_sizes"].values()) == 6
    full = load_galaxy_dataset(REPO_ID, label_scheme="tree", tree_questions="complete", revision="v1",
                               image_size=32, cache_dir=tmp_path / "c")  # fmt: skip
    assert info["n_dropped"] == 0 and sum(len(d) for d in full.values()) == 16
    assert full.galaxy_info["revision"] == "v1"
    # the counts are the repo's own (the root question of one test galaxy)
    import datasets

    source = datasets.load_dataset(REPO_ID, split="test")
    row = next(r for r in full["test"])
    src = next(r for r in source if str(r["id_str"]) == row["id"])
    assert row["counts"][:3] == [
        src[f"smooth-or-featured-gz2_{a}"] for a in ("smooth", "featured-or-disk", "artifact")
    ]
    # a local copy of the repo reads the same galaxies
    local = snapshot_download(REPO_ID, repo_type="dataset")
    copy = load_galaxy_dataset(local, name="tiny", image_size=32, cache_dir=tmp_path / "c")
    assert sorted(copy["test"]["id"]) == sorted(dsd["test"]["id"])
    hub_offline(monkeypatch)
    with pytest.raises(CatalogError) as err:
        load_galaxy_dataset("someone/not-cached", cache_dir=tmp_path / "c")
    message = str(err.value)
    assert "\n" not in message and "Hub dataset someone/not-cached: could not be loaded" in message
    assert "once with network access" in message


def test_recipes_train_on_a_hub_dataset_id(hub, tmp_path):
    from hf_galaxy import finetune
    from tests.galaxy_tiny import TINY_VIT
    from tests.hub_datasets import REPO_ID

    result = finetune(REPO_ID, TINY_VIT, tmp_path / "out", dataset_config_name="tiny", image_size=32,
                      max_steps=1, per_device_train_batch_size=4, eval_strategy="no", report_to="none",
                      use_cpu=True, num_grid_images=0)  # fmt: skip
    card = json.loads((tmp_path / "out" / "hf_galaxy_card.json").read_text())
    assert card["dataset"]["dataset_id"] == REPO_ID and card["dataset"]["source"] == REPO_ID
    assert "test_accuracy" in result.metrics


def _ortho_rows(tree, campaign: str, n: int, seed: int = 1) -> dict:
    """Counts walked down ``tree`` (each child's total = its parent answer's count), ``{q}-{campaign}_...``."""
    rng = np.random.default_rng(seed)
    rows = _gz2_rows(n, seed)
    rows = {k: rows[k] for k in ("image", "id_str", "ra", "dec")}
    totals: dict[str, np.ndarray] = {}
    for q in tree.questions:
        if q.parent is None:
            total = rng.integers(10, 40, n)
        else:
            total = rows[f"{q.parent[0]}-{campaign}_{q.parent[1]}"]
        probs = rng.dirichlet(np.ones(len(q.answers)), n)
        counts = np.array([rng.multinomial(int(t), p) for t, p in zip(total, probs)])
        for k, a in enumerate(q.answers):
            rows[f"{q.name}-{campaign}_{a}"] = counts[:, k].astype(np.int32)
            with np.errstate(invalid="ignore", divide="ignore"):
                rows[f"{q.name}-{campaign}_{a}_fraction"] = (counts[:, k] / total).astype(np.float32)
        rows[f"{q.name}-{campaign}_total-votes"] = np.asarray(total, dtype=np.int32)
        totals[q.name] = total
    return rows


def test_gz_candels_hubble_and_evo_tables_read_with_their_trees_and_drop_bad_counts(tmp_path):
    import datasets

    from hf_galaxy.data.catalogs.trees import GZ_CANDELS_TREE, GZ_HUBBLE_TREE
    from hf_galaxy.data.tree import TreeLayout

    rows = _ortho_rows(GZ_CANDELS_TREE, "candels", 30)
    rows["clump-count-candels_2"][0] = -1  # a negative count
    rows["bar-candels_yes_fraction"][1] = (
        0.99 if rows["bar-candels_yes_fraction"][1] < 0.5 else 0.0
    )  # disagrees
    ds = datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image())
    dsd = load_galaxy_dataset(ds, label_scheme="tree", image_size=32, cache_dir=tmp_path / "c")
    assert dsd.galaxy_info["release"] == "Galaxy Zoo CANDELS"
    assert TreeLayout.from_dict(dsd.galaxy_info["tree"]) == TreeLayout.from_tree(GZ_CANDELS_TREE)
    assert sum(len(d) for d in dsd.values()) == 28
    reasons = {d["id"]: d["reason"] for d in dsd.report.dropped}
    assert reasons == {"g000": "vote count negative", "g001": "fractions do not match the counts"}
    by_question = load_galaxy_dataset(ds, question="clumpy-appearance", min_share_asked=0.0, image_size=32,
                                      cache_dir=tmp_path / "c")  # fmt: skip
    assert by_question["train"].features["label"].names == ["clumpy_appearance_yes", "clumpy_appearance_no"]

    hubble = _ortho_rows(GZ_HUBBLE_TREE, "hubble", 10, seed=2)
    evo = {
        **_ortho_rows(GZ_CANDELS_TREE, "candels", 10, seed=3),
        **{k: v for k, v in hubble.items() if "-hubble_" in k},
    }
    evo_ds = datasets.Dataset.from_dict(evo).cast_column("image", datasets.Image())
    union = load_galaxy_dataset(evo_ds, label_scheme="tree", image_size=32, cache_dir=tmp_path / "c")
    assert union.galaxy_info["release"] == "Galaxy Zoo Evo (hubble + candels)"
    layout = TreeLayout.from_dict(union.galaxy_info["tree"])
    assert layout.n_answers == 40 + 38 and layout.questions[0] == "smooth-or-featured-hubble"


# ------------------------------------------------------------------------------------------ publishing
def test_a_prepared_dataset_publishes_with_its_card_and_loads_back(hub, tmp_path, capsys):
    import datasets
    from huggingface_hub import DatasetCard

    from hf_galaxy.cli import main
    from hf_galaxy.hub import publish_dataset
    from tests.hub_datasets import REPO_ID

    dsd = load_galaxy_dataset(
        REPO_ID, label_scheme="clean", threshold=0.5, image_size=32, cache_dir=tmp_path / "c"
    )
    prepared = tmp_path / "prepared"
    dsd.save_to_disk(str(prepared))
    dry = publish_dataset(prepared, "tester/gz2-clean", dry_run_dir=tmp_path / "dry")
    assert sorted(dry.files) == sorted(["README.md", *(f"data/{s}-00000-of-00001.parquet" for s in dsd)])
    card = DatasetCard.load(tmp_path / "dry" / "README.md")
    assert card.data.license == "cc-by-4.0" and card.data.task_categories == ["image-classification"]
    assert "galaxy-zoo" in card.data.tags and card.data.configs[0]["config_name"] == "default"
    text = card.text
    assert "Galaxy Zoo 2" in text and "Label scheme: `clean`" in text and "at least 0.5" in text
    assert f"Source dataset: `{REPO_ID}`" in text and "Willett et al. 2013" in text
    for split, ds in dsd.items():
        assert f"| {split} | {len(ds)} |" in text
    assert main(["publish-dataset", str(prepared), "tester/gz2-clean"]) == 0
    assert "published the dataset" in capsys.readouterr().out
    pushed = {k for k in hub.files("tester/gz2-clean", repo_type="dataset") if k != ".gitattributes"}
    assert pushed == set(dry.files)
    back = datasets.load_dataset("tester/gz2-clean")
    assert {s: len(d) for s, d in back.items()} == {s: len(d) for s, d in dsd.items()}
    assert back["train"].features["label"].names == dsd["train"].features["label"].names
    assert back["test"][0]["image"].size == (32, 32) and back["test"]["id"] == dsd["test"]["id"]
    # hf-galaxy reads its own publication as it was prepared, facts included
    again = load_galaxy_dataset("tester/gz2-clean")
    assert again.galaxy_info["label_scheme"] == "clean" and again.galaxy_info["release"] == "Galaxy Zoo 2"
    assert again["test"]["id"] == dsd["test"]["id"] and again["train"]["label"] == dsd["train"]["label"]
    with pytest.raises(CatalogError, match="was prepared with label_scheme='clean'"):
        load_galaxy_dataset("tester/gz2-clean", label_scheme="votes")
    # a whole-tree set keeps its tree through the Hub, so it trains as one
    from hf_galaxy.training.classification import dataset_tree

    tree = load_galaxy_dataset(REPO_ID, label_scheme="tree", image_size=32, cache_dir=tmp_path / "c")
    publish_dataset(tree, "tester/gz2-tree", dry_run_dir=tmp_path / "dry_tree")
    restored = load_galaxy_dataset(tmp_path / "dry_tree")
    assert (
        dataset_tree(restored) == dataset_tree(tree)
        and restored["train"]["counts"] == tree["train"]["counts"]
    )
    with pytest.raises(ValueError, match="not a Hub license identifier"):
        publish_dataset(dsd, "tester/x", license="beer", dry_run_dir=tmp_path / "dry2")


# ---------------------------------------------------------------------------------------- several nodes
def test_streamed_preparation_shards_across_two_processes(tmp_path):
    """Two processes (RANK 0/1 of WORLD_SIZE 2) each stream their shards with split_dataset_by_node: together
    they see every training galaxy exactly once (the split has several shards, so each node gets whole ones)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from hf_galaxy.data.synthetic import make_galaxy_zoo

    zoo = make_galaxy_zoo(tmp_path / "zoo", 40, image_size=32, show_progress=False)
    worker = Path(__file__).with_name("shard_worker.py")
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "PYTHONPATH": str(worker.parents[1])}
        procs.append(subprocess.Popen(
            [sys.executable, str(worker), str(zoo.catalog_path), str(tmp_path / f"rank{rank}.json")], env=env
        ))  # fmt: skip
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    parts = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    whole = load_galaxy_dataset(zoo.catalog_path, image_size=32, cache_dir=tmp_path / "c")["train"]["id"]
    assert parts[0]["n_shards"] > 1 and parts[0]["ids"] and parts[1]["ids"]
    assert not set(parts[0]["ids"]) & set(parts[1]["ids"])
    assert sorted(parts[0]["ids"] + parts[1]["ids"]) == sorted(whole)


def test_streaming_a_hub_dataset_reads_the_parquet_lazily(hub, tmp_path):
    from tests.hub_datasets import REPO_ID

    hub.clear_log()
    dsd = load_galaxy_dataset(REPO_ID, streaming=True, image_size=32)
    files = [r for r in hub.file_requests(REPO_ID, repo_type="dataset") if r["path"].endswith(".parquet")]
    assert files and all(
        r["range"] for r in files
    )  # only byte ranges of the parquet files, never all of them
    streamed = list(dsd["test"])
    whole = load_galaxy_dataset(REPO_ID, image_size=32, cache_dir=tmp_path / "c")
    assert sorted(r["id"] for r in streamed) == sorted(whole["test"]["id"])
    first = next(r for r in whole["test"] if r["id"] == streamed[0]["id"])
    assert streamed[0]["label"] == first["label"] and streamed[0]["image"].size == (32, 32)
    assert streamed[0]["image"].tobytes() == first["image"].tobytes()  # the same prepared image, stored once
    assert dsd.galaxy_info["split_sizes"]["validation"] > 0  # made from train, as without streaming


def test_streamed_images_are_the_prepared_images_not_a_second_jpeg_compression(tmp_path):
    from hf_galaxy.data.synthetic import make_galaxy_zoo

    zoo = make_galaxy_zoo(tmp_path / "zoo", 12, image_size=48, show_progress=False)
    streamed = {
        r["id"]: r["image"].tobytes()
        for r in load_galaxy_dataset(zoo.catalog_path, streaming=True, image_size=32)["train"]
    }
    stored = load_galaxy_dataset(zoo.catalog_path, image_size=32, cache_dir=tmp_path / "c")["train"]
    assert streamed and all(streamed[r["id"]] == r["image"].tobytes() for r in stored)


def test_predict_and_embed_read_a_hub_dataset_id(hub, tmp_path):
    import pandas as pd

    from hf_galaxy.cli import main
    from tests.hub_datasets import REPO_ID
    from tests.hub_helpers import make_output_dir

    model = make_output_dir(tmp_path / "model")
    out = tmp_path / "p.csv"
    assert (
        main(
            ["predict", REPO_ID, "--model", str(model), "--dataset_config_name", "tiny", "--output", str(out)]
        )
        == 0
    )
    frame = pd.read_csv(out, dtype={"id": str})
    import datasets

    tiny = datasets.load_dataset(REPO_ID, name="tiny")
    assert sorted(frame["id"]) == sorted(str(i) for s in tiny.values() for i in s["id_str"])
    assert main(["embed", REPO_ID, "--model", str(model), "--output_dir", str(tmp_path / "emb")]) == 0
    emb = datasets.load_from_disk(str(tmp_path / "emb"))
    assert len(emb) == 16 and {"id", "embedding", "ra", "dec"} <= set(emb.column_names)


def test_decals_volunteer_rows_whose_counts_disagree_are_dropped_and_counted(tmp_path):
    import pandas as pd

    from hf_galaxy.data.catalogs import read_catalog

    src = "tests/fixtures/catalogs/gz_decals_volunteers_5.csv"
    assert read_catalog(src).dropped == []  # the real rows agree (fractions rounded to 3 decimals)
    df = pd.read_csv(src)
    df.loc[0, "bar_strong_fraction"] = 0.9 if df.loc[0, "bar_strong_fraction"] < 0.5 else 0.0
    df.loc[1, "merging_merger"] = -2
    df.to_csv(tmp_path / "bad.csv", index=False)
    cat = read_catalog(tmp_path / "bad.csv")
    assert cat.dropped == [(str(df["iauname"][1]), "vote count negative"),
                           (str(df["iauname"][0]), "fractions do not match the counts")]  # fmt: skip
    assert len(cat.table) == len(df) - 2


def test_pretraining_takes_a_hub_dataset_as_unlabelled_images(hub, tmp_path):
    from hf_galaxy.training.pretraining import unlabelled_images
    from tests.hub_datasets import REPO_ID

    images, report = unlabelled_images([REPO_ID], 32, work_dir=tmp_path)
    assert report["images_per_source"] == {REPO_ID: 16} and not report["skipped"]
    assert images[0]["image"].size == (424, 424) and images[0]["source"] == REPO_ID


def test_gz1_and_kaggle_layouts_with_images_inside(tmp_path):
    import datasets

    rows = _gz2_rows(12)
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(6), 12)
    gz1 = {"image": rows["image"], "OBJID": [str(587722981736000000 + i) for i in range(12)],
           "RA": rows["ra"], "DEC": rows["dec"], "NVOTE": [30] * 12,
           **{c: p[:, k] for k, c in enumerate(("P_EL", "P_CW", "P_ACW", "P_EDGE", "P_DK", "P_MG"))}}  # fmt: skip
    ds = datasets.Dataset.from_dict(gz1).cast_column("image", datasets.Image())
    dsd = load_galaxy_dataset(ds, image_size=32, cache_dir=tmp_path / "c")
    assert dsd.galaxy_info["release"] == "Galaxy Zoo 1" and sum(len(d) for d in dsd.values()) == 12
    by_id = {r["id"]: r for d in dsd.values() for r in d}
    assert all(by_id[i]["label"] == int(np.argmax(p[k])) for k, i in enumerate(gz1["OBJID"]))
