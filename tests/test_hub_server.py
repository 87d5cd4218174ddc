"""The loopback Hub server speaks enough of the Hub API for the real huggingface_hub client."""

from __future__ import annotations

import base64
import gzip
import json
import urllib.error
import urllib.request

import httpx2
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.hub_server import HubServer, git_blob_id

TOKEN = "hf_server_test_token"


@pytest.fixture
def server(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with HubServer(tmp_path / "hub", token=TOKEN) as hub:
        yield hub


@pytest.fixture
def api(server):
    return HfApi(endpoint=server.endpoint, token=TOKEN)


def _commit(api, repo, files, message="update", revision=None):
    ops = [CommitOperationAdd(path, data) for path, data in files.items()]
    return api.create_commit(repo, ops, commit_message=message, revision=revision)


def test_create_repo_exist_ok_and_namespace(api, server):
    url = api.create_repo("alice/model")
    assert url.repo_id == "alice/model" and url.endpoint == server.endpoint
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo("alice/model")
    assert info.value.response.status_code == 409
    assert api.create_repo("alice/model", exist_ok=True).repo_id == "alice/model"
    assert api.create_repo("bare-name").repo_id == "tester/bare-name"  # no namespace: the user's
    assert api.list_repo_files("alice/model") == [".gitattributes"]


def test_writes_need_the_token(server):
    with pytest.raises(HfHubHTTPError) as info:
        HfApi(endpoint=server.endpoint, token="wrong").create_repo("alice/x")
    assert info.value.response.status_code == 401


def test_commit_download_and_metadata_headers(api, server, tmp_path):
    api.create_repo("alice/m")
    info = _commit(api, "alice/m", {"config.json": b'{"a": 1}', "sub/dir/w.bin": b"\x00\x01" * 100})
    assert len(info.oid) == 40
    url = hf_hub_url("alice/m", "config.json", endpoint=server.endpoint)
    meta = get_hf_file_metadata(url, token=TOKEN)
    assert meta.commit_hash == info.oid
    assert meta.etag == git_blob_id(b'{"a": 1}') and meta.size == 8
    path = hf_hub_download(
        "alice/m", "sub/dir/w.bin", endpoint=server.endpoint, cache_dir=tmp_path / "c", token=TOKEN
    )
    assert open(path, "rb").read() == b"\x00\x01" * 100
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(
            "alice/m", "missing.txt", endpoint=server.endpoint, cache_dir=tmp_path / "c", token=TOKEN
        )
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(
            "alice/m",
            "config.json",
            revision="nope",
            endpoint=server.endpoint,
            cache_dir=tmp_path / "c",
            token=TOKEN,
        )
    request = urllib.request.Request(url, headers={"Range": "bytes=2-4"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 206 and response.read() == b'a":'


def test_tree_paths_info_and_snapshot(api, server, tmp_path):
    api.create_repo("alice/t")
    _commit(api, "alice/t", {"a.txt": b"a", "d/b.txt": b"bb", "d/e/c.txt": b"ccc"})
    top = {e.path for e in api.list_repo_tree("alice/t")}
    assert top == {".gitattributes", "a.txt", "d"}
    deep = {e.path for e in api.list_repo_tree("alice/t", recursive=True)}
    assert deep == {".gitattributes", "a.txt", "d", "d/b.txt", "d/e", "d/e/c.txt"}
    assert {e.path for e in api.list_repo_tree("alice/t", path_in_repo="d")} == {"d/b.txt", "d/e"}
    infos = api.get_paths_info("alice/t", ["a.txt", "d", "nope"])
    assert {i.path for i in infos} == {"a.txt", "d"}
    folder = snapshot_download("alice/t", endpoint=server.endpoint, cache_dir=tmp_path / "c", token=TOKEN)
    assert (tmp_path / "c").exists() and open(f"{folder}/d/e/c.txt").read() == "ccc"


def test_branches_commits_and_deletes(api, server):
    api.create_repo("alice/b")
    first = _commit(api, "alice/b", {"x.txt": b"1", "old/y.txt": b"y"}, "first")
    api.create_branch("alice/b", branch="dev")
    api.create_branch("alice/b", branch="dev", exist_ok=True)
    _commit(api, "alice/b", {"x.txt": b"2"}, "on dev", revision="dev")
    assert server.files("alice/b", "main")["x.txt"] == b"1"
    assert server.files("alice/b", "dev")["x.txt"] == b"2"
    assert server.files("alice/b", first.oid)["x.txt"] == b"1"  # a commit id is a revision too
    assert [c.title for c in api.list_repo_commits("alice/b", revision="dev")] == [
        "on dev",
        "first",
        "initial commit",
    ]
    refs = api.list_repo_refs("alice/b")
    assert {b.name for b in refs.branches} == {"main", "dev"}
    api.create_commit(
        "alice/b",
        [CommitOperationDelete("old/", is_folder=True), CommitOperationDelete("x.txt")],
        commit_message="cleanup",
    )
    assert set(server.files("alice/b")) == {".gitattributes"}
    with pytest.raises(RevisionNotFoundError):
        _commit(api, "alice/b", {"z": b"z"}, revision="no-such-branch")


def test_unchanged_files_are_not_recommitted(api, server):
    api.create_repo("alice/u")
    _commit(api, "alice/u", {"same.txt": b"same"}, "one")
    _commit(api, "alice/u", {"same.txt": b"same"}, "two")  # the preupload oid says: unchanged
    assert [c.title for c in api.list_repo_commits("alice/u")] == ["one", "initial commit"]


def test_upload_folder_and_model_info(api, server, tmp_path):
    folder = tmp_path / "f"
    (folder / "sub").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: mit\ntags:\n- astronomy\n---\n# hi\n")
    (folder / "sub" / "w.safetensors").write_bytes(b"w" * 1000)
    api.create_repo("alice/f", private=True)
    api.upload_folder(repo_id="alice/f", folder_path=folder)
    info = api.model_info("alice/f", files_metadata=True)
    assert info.private and info.tags == ["astronomy"] and info.card_data["license"] == "mit"
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes["sub/w.safetensors"] == 1000
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.endpoint, token=False).model_info("alice/f")


def test_validate_yaml_rejects_bad_metadata(api, server):
    api.create_repo("alice/y")
    with pytest.raises(ValueError, match="license"):
        _commit(api, "alice/y", {"README.md": b"---\nlicense: not-a-license\n---\n"})
    with pytest.raises(ValueError, match="YAML"):
        _commit(api, "alice/y", {"README.md": b"---\nlicense: [unclosed\n---\n"})
    assert set(server.files("alice/y")) == {".gitattributes"}


def test_dropped_commit_raises_transport_error_and_commits_nothing(api, server):
    api.create_repo("alice/d")
    server.drop_next_commit = True
    with pytest.raises(httpx2.TransportError):
        _commit(api, "alice/d", {"a.txt": b"a"})
    assert server.dropped_commits == 1
    assert set(server.files("alice/d")) == {".gitattributes"}
    _commit(api, "alice/d", {"a.txt": b"a"})  # the server keeps serving
    assert server.files("alice/d")["a.txt"] == b"a"


def _raw_commit(server, repo, body: bytes, headers: dict[str, str]):
    request = urllib.request.Request(
        f"{server.endpoint}/api/models/{repo}/commit/main",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson", **headers},
    )
    return urllib.request.urlopen(request)


def test_gzip_commit_bodies_and_lfs_refusal(api, server):
    api.create_repo("alice/g")
    lines = [
        {"key": "header", "value": {"summary": "gz", "description": ""}},
        {
            "key": "file",
            "value": {"path": "z.txt", "encoding": "base64", "content": base64.b64encode(b"zz").decode()},
        },
    ]
    body = gzip.compress(b"".join(json.dumps(x).encode() + b"\n" for x in lines))
    with _raw_commit(server, "alice/g", body, {"Content-Encoding": "gzip"}) as response:
        assert json.loads(response.read())["commitOid"]
    assert server.files("alice/g")["z.txt"] == b"zz"
    lfs = [
        lines[0],
        {"key": "lfsFile", "value": {"path": "big.bin", "algo": "sha256", "oid": "0" * 64, "size": 1}},
    ]
    with pytest.raises(urllib.error.HTTPError) as info:
        _raw_commit(server, "alice/g", b"".join(json.dumps(x).encode() + b"\n" for x in lfs), {})
    assert info.value.code == 422
