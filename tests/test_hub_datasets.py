"""The real ``datasets`` client loads a mwalmsley-layout GZ2 dataset repo from the loopback Hub (offline)."""

from __future__ import annotations

import math
from pathlib import Path

import datasets
import numpy as np
import pytest
from huggingface_hub import snapshot_download

from tests.hub_datasets import (
    FIXTURE_IMAGES,
    HUB_QUESTIONS,
    REPO_ID,
    count_column,
    fraction_column,
    make_gz2_dataset_repo,
    push_gz2_dataset_repo,
    total_column,
    vote_columns,
)
from tests.hub_helpers import TOKEN, hub_offline, isolated_hf_caches, loopback_hub

PARQUET = {
    ("default", "train"): "data/train-00000-of-00001.parquet",
    ("default", "test"): "data/test-00000-of-00001.parquet",
    ("tiny", "train"): "tiny/train-00000-of-00001.parquet",
    ("tiny", "test"): "tiny/test-00000-of-00001.parquet",
}


@pytest.fixture(scope="module")
def repo_folder(tmp_path_factory) -> Path:
    return make_gz2_dataset_repo(tmp_path_factory.mktemp("gz2") / "repo")


@pytest.fixture
def hub(tmp_path, monkeypatch, repo_folder):
    """The loopback Hub holding ``someone/gz2-tiny`` (main), with fresh hub and datasets caches."""
    isolated_hf_caches(tmp_path / "cache", monkeypatch)
    with loopback_hub(tmp_path / "hub", monkeypatch) as server:
        server.main_oid = push_gz2_dataset_repo(server.endpoint, repo_folder, token=TOKEN)
        server.clear_log()
        yield server


def _parquet_gets(server, path: str) -> list[dict]:
    return server.file_requests(REPO_ID, path, repo_type="dataset")


def _image_bytes(ds) -> list[bytes]:
    return [row["image"]["bytes"] for row in ds.cast_column("image", datasets.Image(decode=False))]


# ------------------------------------------------------------------------------------------- fixture repo
def test_fixture_repo_layout_and_votes(repo_folder):
    files = sorted(p.relative_to(repo_folder).as_posix() for p in repo_folder.rglob("*") if p.is_file())
    assert files == sorted(["README.md", *PARQUET.values()])
    readme = (repo_folder / "README.md").read_text()
    assert "config_name: tiny" in readme and "path: tiny/train-*" in readme and "dataset_info:" in readme
    ds = datasets.load_dataset(str(repo_folder), split="train")
    assert ds.column_names == ["image", "id_str", "dataset_name", "ra", "dec", *vote_columns()]
    assert "odd-feature-gz2_ring" not in ds.column_names  # task 08 is dropped, as in mwalmsley/gz2
    assert ds.features["smooth-or-featured-gz2_smooth"].dtype == "int32"
    assert ds.features["bar-gz2_yes_fraction"].dtype == "float32"
    assert set(ds["dataset_name"]) == {"gz2"}
    table = ds.remove_columns("image").to_pandas()
    n_missing = 0
    for _, row in table.iterrows():
        assert 20 <= row[total_column(HUB_QUESTIONS[0])] <= 60
        for q in HUB_QUESTIONS:
            total = row[total_column(q)]
            assert total == sum(row[count_column(q, a)] for a in q.answers)
            if q.parent is not None:
                parent = next(p for p in HUB_QUESTIONS if p.name == q.parent[0])
                answer = q.parent[1]
                expected = (
                    sum(row[count_column(parent, a)] for a in parent.answers if a != answer[1:])
                    if answer.startswith("!")
                    else row[count_column(parent, answer)]
                )
                assert total == expected, (q.name, row["id_str"])
            fractions = [row[fraction_column(q, a)] for a in q.answers]
            if total:
                assert math.isclose(sum(fractions), 1.0, rel_tol=1e-5)
            else:
                assert all(np.isnan(f) for f in fractions)
                n_missing += 1
    assert n_missing > 0  # some questions got no votes (NaN fractions)
    spiral = {p.stem for p in (FIXTURE_IMAGES / "spiral").glob("*.jpg")}
    is_spiral = table["id_str"].isin(spiral)
    featured = table["smooth-or-featured-gz2_featured-or-disk_fraction"]
    assert featured[is_spiral].mean() > 0.6 > featured[~is_spiral].mean()


# ------------------------------------------------------------------------------------------- Hub loading
def test_load_tiny_and_default_from_the_loopback(hub, repo_folder):
    ds = datasets.load_dataset(REPO_ID, name="tiny", split="train")
    assert len(ds) == 4
    image = ds[0]["image"]
    assert image.size == (424, 424) and image.mode == "RGB"
    first = FIXTURE_IMAGES / "spiral" / f"{ds[0]['id_str']}.jpg"
    assert _image_bytes(ds)[0] == first.read_bytes()  # embedded JPEG, byte for byte
    for path in (PARQUET["tiny", "train"], PARQUET["tiny", "test"]):  # served by the loopback
        gets = _parquet_gets(hub, path)
        assert len(gets) == 1 and gets[0]["path"].endswith(f"/resolve/{hub.main_oid}/{path}")
    assert not _parquet_gets(hub, PARQUET["default", "train"])
    assert {
        (r["path"], r["status"]) for r in hub.responses if r["path"].endswith(PARQUET["tiny", "train"])
    } >= {(f"/datasets/{REPO_ID}/resolve/{hub.main_oid}/{PARQUET['tiny', 'train']}", 200)}

    dd = datasets.load_dataset(REPO_ID, name="default")
    assert {s: len(d) for s, d in dd.items()} == {"train": 12, "test": 4}
    assert dd["train"][:4]["id_str"] == ds["id_str"]  # tiny = the first rows of default
    assert datasets.load_dataset(REPO_ID, split="test")["id_str"] == dd["test"]["id_str"]  # default config


def test_second_load_is_served_from_the_datasets_cache(hub):
    first = datasets.load_dataset(REPO_ID, name="tiny", split="train")
    assert len(_parquet_gets(hub, PARQUET["tiny", "train"])) == 1
    hub.clear_log()
    second = datasets.load_dataset(REPO_ID, name="tiny", split="train")
    assert second["id_str"] == first["id_str"]
    assert not hub.file_requests(REPO_ID, None, repo_type="dataset")  # no file GET at all
    assert second.cache_files and all("someone___gz2-tiny" in f["filename"] for f in second.cache_files)


def test_revision_branch_and_commit(hub, tmp_path):
    six = make_gz2_dataset_repo(tmp_path / "six", n_tiny=6)
    branch_oid = push_gz2_dataset_repo(hub.endpoint, six, token=TOKEN, revision="six")
    assert branch_oid != hub.main_oid
    assert len(datasets.load_dataset(REPO_ID, name="tiny", split="train", revision="six")) == 6
    assert _parquet_gets(hub, PARQUET["tiny", "train"])[-1]["path"].split("/")[5] == branch_oid
    # a newer main, then the old commit by id
    push_gz2_dataset_repo(hub.endpoint, six, token=TOKEN, commit_message="six on main")
    assert len(datasets.load_dataset(REPO_ID, name="tiny", split="train")) == 6
    old = datasets.load_dataset(REPO_ID, name="tiny", split="train", revision=hub.main_oid)
    assert len(old) == 4
    with pytest.raises(datasets.exceptions.DatasetNotFoundError, match="Revision 'nope' doesn't exist"):
        datasets.load_dataset(REPO_ID, name="tiny", split="train", revision="nope")


def test_streaming_fetches_lazily_with_range_requests(hub):
    stream = datasets.load_dataset(REPO_ID, name="default", split="train", streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    path = PARQUET["default", "train"]
    assert not _parquet_gets(hub, path)  # nothing fetched before iterating
    rows = list(stream.take(3))
    assert [r["image"].size for r in rows] == [(424, 424)] * 3
    gets = _parquet_gets(hub, path)
    assert gets and all(g["range"] and g["range"].startswith("bytes=") for g in gets)
    assert {r["status"] for r in hub.responses if r["path"].endswith(path) and r["method"] == "GET"} == {206}
    assert not hub.file_requests(REPO_ID, PARQUET["default", "test"], repo_type="dataset")


def test_snapshot_download_then_load_the_local_folder(hub, monkeypatch):
    local = Path(snapshot_download(REPO_ID, repo_type="dataset"))
    assert local.name == hub.main_oid
    assert {p.relative_to(local).as_posix() for p in local.rglob("*.parquet")} == set(PARQUET.values())
    hub_offline(monkeypatch)  # the local copy needs no server
    hub.clear_log()
    tiny = datasets.load_dataset(str(local), name="tiny", split="train")
    assert len(tiny) == 4 and tiny[0]["image"].size == (424, 424)
    assert {s: len(d) for s, d in datasets.load_dataset(str(local)).items()} == {"train": 12, "test": 4}
    assert not hub.requests
    # offline, the hub cache's snapshot is found again by repo id
    again = snapshot_download(REPO_ID, repo_type="dataset", local_files_only=True)
    assert Path(again) == local


def test_offline_errors(hub, monkeypatch):
    with pytest.raises(datasets.exceptions.DatasetNotFoundError, match="doesn't exist on the Hub"):
        datasets.load_dataset("someone/missing", split="train")
    snapshot_download(REPO_ID, repo_type="dataset")  # in the hub cache, not in the datasets cache
    hub_offline(monkeypatch)
    hub.clear_log()
    for repo_id in ("someone/not-cached", REPO_ID):
        with pytest.raises(ConnectionError) as info:
            datasets.load_dataset(repo_id, name="tiny", split="train")
        assert type(info.value) is ConnectionError
        assert str(info.value) == f"Couldn't reach '{repo_id}' on the Hub (OfflineModeIsEnabled)"
    assert not hub.requests


def test_offline_after_a_load_uses_the_datasets_cache(hub, monkeypatch):
    online = datasets.load_dataset(REPO_ID, name="tiny", split="train")
    hub_offline(monkeypatch)
    hub.clear_log()
    offline = datasets.load_dataset(REPO_ID, name="tiny", split="train")
    assert offline["id_str"] == online["id_str"] and not hub.requests


def test_loopback_hub_patches_are_restored(tmp_path):
    import datasets.config
    from huggingface_hub import constants

    names = ("HF_ENDPOINT", "HUB_DATASETS_URL", "HF_HUB_OFFLINE", "USE_PARQUET_EXPORT", "HF_DATASETS_CACHE")
    before = {n: getattr(datasets.config, n) for n in names}
    hub_before = (constants.ENDPOINT, constants.HF_HUB_OFFLINE, constants.HF_HUB_CACHE)
    with pytest.MonkeyPatch.context() as mp:
        isolated_hf_caches(tmp_path / "cache", mp)
        with loopback_hub(tmp_path / "hub", mp) as server:
            assert datasets.config.HF_ENDPOINT == server.endpoint == constants.ENDPOINT
            assert datasets.config.HF_HUB_OFFLINE is False
            hub_offline(mp)
            assert datasets.config.HF_HUB_OFFLINE is True and constants.HF_HUB_OFFLINE is True
    assert {n: getattr(datasets.config, n) for n in names} == before
    assert (constants.ENDPOINT, constants.HF_HUB_OFFLINE, constants.HF_HUB_CACHE) == hub_before
