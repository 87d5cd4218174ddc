"""A loopback server that speaks the part of the Hugging Face Hub API the project uses (stdlib only).

It lets tests run the real ``huggingface_hub`` client code (``create_repo``, ``create_commit``,
``upload_folder``, ``snapshot_download``, ``hf_hub_download``, ``from_pretrained``, ``pipeline``) without the
network. Files are stored on disk per repo, content-addressed by their git blob id; each commit records the
full tree, so every revision (branch or commit id) can be served.

Endpoints: ``POST /api/repos/create``, ``POST /api/validate-yaml``, ``GET /api/whoami-v2``,
``GET /api/{models,datasets}/{repo}[/revision/{rev}]``, ``GET .../tree/{rev}[/{path}]``, ``POST .../paths-info/{rev}``,
``GET .../refs``, ``GET .../commits/{rev}``, ``POST .../branch/{branch}``, ``POST .../preupload/{rev}`` (always
answers the 'regular' upload mode, so no LFS or Xet transfer is attempted), ``POST .../commit/{rev}`` (NDJSON,
optionally gzip-compressed) and ``GET``/``HEAD /{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag``
and ``Content-Length`` headers (and byte ranges).

Request log: ``server.requests`` (method, path, query, auth, ``Range`` header) and ``server.responses`` (method,
path, status, body bytes sent); ``server.file_requests(repo_id, path, repo_type=...)`` filters the downloads.

Failure injection: ``server.drop_next_commit = True`` makes the server close the socket in the middle of the
next commit POST, without answering and without committing.

Usage::

    with HubServer(tmp_path / "hub", token="hf_test") as server:
        api = HfApi(endpoint=server.endpoint, token="hf_test")
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

INITIAL_GITATTRIBUTES = (
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
)
#: Licenses the fake validate-yaml accepts (a subset of the Hub's list is enough for tests).
KNOWN_LICENSES = {"mit", "apache-2.0", "cc-by-4.0", "cc-by-nc-sa-4.0", "bsd-3-clause", "other", "unknown"}
REPO_TYPES = {"models": "model", "datasets": "dataset"}


def git_blob_id(data: bytes) -> str:
    """The git blob sha1 of ``data`` (what the Hub reports as a regular file's oid)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class HubError(Exception):
    """An HTTP error answer: status, X-Error-Code header and message."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class _Repo:
    """One repository: branches, commits (full trees) and content-addressed blobs on disk."""

    def __init__(self, folder: Path, repo_id: str, repo_type: str, private: bool) -> None:
        self.folder, self.repo_id, self.repo_type, self.private = folder, repo_id, repo_type, private
        (folder / "objects").mkdir(parents=True, exist_ok=True)
        self.branches: dict[str, str] = {}
        self.commits: dict[str, dict[str, Any]] = {}
        self.created_at = _now()

    # storage -------------------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        oid = git_blob_id(data)
        path = self.folder / "objects" / oid
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return oid

    def blob_path(self, oid: str) -> Path:
        return self.folder / "objects" / oid

    def save(self) -> None:
        state = {
            "repo_id": self.repo_id,
            "repo_type": self.repo_type,
            "private": self.private,
            "branches": self.branches,
            "commits": self.commits,
        }
        (self.folder / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")

    # git-like operations -------------------------------------------------------------------------
    def commit(self, branch: str, tree: dict[str, str], title: str, message: str, parent: str | None) -> str:
        payload = json.dumps([parent, sorted(tree.items()), title, message, time.time_ns()]).encode()
        oid = hashlib.sha1(payload).hexdigest()
        self.commits[oid] = {
            "parent": parent,
            "title": title,
            "message": message,
            "date": _now(),
            "tree": dict(sorted(tree.items())),
        }
        self.branches[branch] = oid
        self.save()
        return oid

    def resolve(self, revision: str) -> str:
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.commits:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def tree(self, revision: str) -> tuple[str, dict[str, str]]:
        oid = self.resolve(revision)
        return oid, self.commits[oid]["tree"]

    def size(self, blob: str) -> int:
        return self.blob_path(blob).stat().st_size

    def entry(self, path: str, blob: str) -> dict[str, Any]:
        return {"type": "file", "oid": blob, "size": self.size(blob), "path": path}

    def card_data(self, tree: dict[str, str]) -> dict[str, Any] | None:
        if "README.md" not in tree:
            return None
        text = self.blob_path(tree["README.md"]).read_text(encoding="utf-8", errors="replace")
        meta = _front_matter(text)
        return meta if isinstance(meta, dict) else None


def _front_matter(text: str) -> Any:
    """YAML front matter of a README (``None`` when there is none). Raises ``yaml.YAMLError``."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return yaml.safe_load("\n".join(lines[1:i])) or {}
    raise yaml.YAMLError("front matter is not closed by a '---' line")


class HubServer:
    """The loopback Hub: a ``ThreadingHTTPServer`` on 127.0.0.1 (free port) in a background thread.

    Args:
        root: Folder where repositories are stored.
        token: When set, writes need ``Authorization: Bearer <token>`` and private repos are only readable with it.
        user: The user name that ``whoami`` reports and that owns repos created without a namespace.
    """

    def __init__(
        self, root: str | Path, *, token: str | None = "hf_loopback_test_token", user: str = "tester"
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.user = user
        self.repos: dict[tuple[str, str], _Repo] = {}
        self.requests: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.drop_next_commit = False
        self.dropped_commits = 0
        self.lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loopback-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # helpers for tests ---------------------------------------------------------------------------
    def repo(self, repo_id: str, repo_type: str = "model") -> _Repo:
        """The stored repository ``repo_id`` (``KeyError`` when it does not exist)."""
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """Path -> content of every file of ``repo_id`` at ``revision``."""
        repo = self.repo(repo_id, repo_type)
        _, tree = repo.tree(revision)
        return {path: repo.blob_path(blob).read_bytes() for path, blob in tree.items()}

    def clear_log(self) -> None:
        """Forget the logged requests and responses."""
        with self.lock:
            self.requests.clear()
            self.responses.clear()

    def file_requests(
        self, repo_id: str, path: str | None = None, *, repo_type: str = "model", method: str | None = "GET"
    ) -> list[dict[str, Any]]:
        """The logged ``resolve`` requests (``GET`` by default; ``None``: any method) for ``repo_id``'s files.

        ``path`` keeps only that file (any revision). Each entry is a :attr:`requests` entry (with ``range``).
        """
        prefix = ("" if repo_type == "model" else f"/{repo_type}s") + f"/{repo_id}/resolve/"
        out = []
        for req in list(self.requests):
            if not req["path"].startswith(prefix) or (method and req["method"] != method):
                continue
            file_path = unquote(req["path"][len(prefix) :].partition("/")[2])
            if path is None or file_path == path:
                out.append(req)
        return out

    def _create(self, repo_id: str, repo_type: str, private: bool) -> _Repo:
        with self.lock:
            folder = self.root / f"{repo_type}s" / repo_id
            repo = _Repo(folder, repo_id, repo_type, private)
            blob = repo.put_blob(INITIAL_GITATTRIBUTES)
            repo.commit("main", {".gitattributes": blob}, "initial commit", "", None)
            self.repos[(repo_type, repo_id)] = repo
            return repo


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    # plumbing ------------------------------------------------------------------------------------
    def _authorized(self) -> bool:
        return self.hub.token is None or self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _require_auth(self) -> None:
        if not self._authorized():
            raise HubError(401, "Invalid credentials in Authorization header", None)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
        return data

    def _json_body(self) -> Any:
        data = self._body()
        try:
            return json.loads(data or b"{}")
        except json.JSONDecodeError as err:
            raise HubError(400, f"invalid JSON body: {err}") from err

    def _send(
        self,
        status: int,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ):
        if body is None:
            body = b"" if payload is None else json.dumps(payload).encode()
            ctype = "application/json"
        else:
            ctype = "application/octet-stream"
        with self.hub.lock:  # what was answered, for tests that check what was served (and how much)
            self.hub.responses.append(
                {
                    "method": self.command,
                    "path": urlsplit(self.path).path,
                    "status": status,
                    "bytes": 0 if self.command == "HEAD" else len(body),
                }
            )
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, err: HubError) -> None:
        headers = {"X-Error-Message": err.message}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send(err.status, {"error": err.message}, headers)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        query = parse_qs(url.query)
        self.hub.requests.append(
            {
                "method": self.command,
                "path": url.path,
                "query": query,
                "auth": "Authorization" in self.headers,
                "range": self.headers.get("Range"),
            }
        )
        try:
            self._route(segments, query)
        except HubError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_HEAD = _dispatch  # noqa: N815 (http.server naming)

    # routing -------------------------------------------------------------------------------------
    def _route(self, seg: list[str], query: dict[str, list[str]]) -> None:
        method = self.command
        if seg[:1] == ["api"]:
            if seg[1:] == ["repos", "create"] and method == "POST":
                return self._create_repo()
            if seg[1:] == ["validate-yaml"] and method == "POST":
                return self._validate_yaml()
            if seg[1:2] == ["whoami-v2"] and method == "GET":
                self._require_auth()
                return self._send(
                    200, {"type": "user", "name": self.hub.user, "auth": {"type": "access_token"}}
                )
            if len(seg) >= 4 and seg[1] in REPO_TYPES:
                repo = self._repo(REPO_TYPES[seg[1]], f"{seg[2]}/{seg[3]}")
                return self._repo_api(repo, seg[4:], query)
            raise HubError(404, f"unknown API route /{'/'.join(seg)}")
        if method in ("GET", "HEAD"):
            repo_type = "model"
            if seg[:1] == ["datasets"]:
                repo_type, seg = "dataset", seg[1:]
            if len(seg) >= 5 and seg[2] == "resolve":
                repo = self._repo(repo_type, f"{seg[0]}/{seg[1]}")
                return self._resolve(repo, seg[3], "/".join(seg[4:]))
        raise HubError(404, f"unknown route /{'/'.join(seg)}")

    def _repo(self, repo_type: str, repo_id: str) -> _Repo:
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._authorized()):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _repo_api(self, repo: _Repo, rest: list[str], query: dict[str, list[str]]) -> None:
        method = self.command
        action = rest[0] if rest else ""
        if method == "GET" and action in ("", "revision"):
            return self._info(repo, rest[1] if action == "revision" and len(rest) > 1 else "main", query)
        if method == "GET" and action == "tree" and len(rest) >= 2:
            return self._tree(repo, rest[1], "/".join(rest[2:]), query)
        if method == "POST" and action == "paths-info" and len(rest) == 2:
            return self._paths_info(repo, rest[1])
        if method == "GET" and action == "refs":
            return self._send(
                200,
                {
                    "branches": [
                        {"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid}
                        for b, oid in repo.branches.items()
                    ],
                    "converts": [],
                    "tags": [],
                    "pullRequests": [],
                },
            )
        if method == "GET" and action == "commits" and len(rest) == 2:
            return self._commits(repo, rest[1])
        if method == "POST" and action == "branch" and len(rest) == 2:
            return self._create_branch(repo, rest[1])
        if method == "POST" and action == "preupload" and len(rest) == 2:
            return self._preupload(repo, rest[1])
        if method == "POST" and action == "commit" and len(rest) == 2:
            return self._commit(repo, rest[1], query)
        raise HubError(404, f"unknown repo route {method} {'/'.join(rest)}")

    # endpoints -----------------------------------------------------------------------------------
    def _create_repo(self) -> None:
        self._require_auth()
        body = self._json_body()
        name, org = body.get("name"), body.get("organization")
        repo_type = body.get("type") or "model"
        if not name or repo_type not in REPO_TYPES.values():
            raise HubError(400, f"invalid create request {body}")
        repo_id = f"{org or self.hub.user}/{name}"
        private = body.get("visibility") == "private" or bool(body.get("private"))
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.hub.endpoint}/{prefix}{repo_id}"
        with self.hub.lock:
            if (repo_type, repo_id) in self.hub.repos:
                return self._send(409, {"error": "You already created this model repo", "url": url})
            self.hub._create(repo_id, repo_type, private)
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self) -> None:
        body = self._json_body()
        errors = []
        try:
            meta = _front_matter(body.get("content", ""))
        except yaml.YAMLError as err:
            meta, errors = None, [{"message": f"YAML parse error: {err}"}]
        if meta is not None and not isinstance(meta, dict):
            errors.append({"message": "metadata must be a YAML mapping"})
        elif isinstance(meta, dict):
            if "license" in meta and meta["license"] not in KNOWN_LICENSES:
                errors.append({"message": f'"license" must be one of {sorted(KNOWN_LICENSES)}'})
            index = meta.get("model-index")
            if index is not None and not (
                isinstance(index, list)
                and all(isinstance(m, dict) and "name" in m and "results" in m for m in index)
            ):
                errors.append({"message": '"model-index" must be a list of {name, results}'})
        if errors:
            return self._send(400, {"errors": errors, "warnings": []})
        self._send(200, {"errors": [], "warnings": []})

    def _info(self, repo: _Repo, revision: str, query: dict[str, list[str]]) -> None:
        oid, tree = repo.tree(revision)
        card = repo.card_data(tree) or {}
        blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for path, blob in tree.items():
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=repo.size(blob), blobId=blob)
            siblings.append(sibling)
        self._send(
            200,
            {
                "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": oid,
                "lastModified": repo.commits[oid]["date"],
                "createdAt": repo.created_at,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": list(card.get("tags") or []),
                "pipeline_tag": card.get("pipeline_tag"),
                "library_name": card.get("library_name"),
                "cardData": card or None,
                "siblings": siblings,
                "usedStorage": sum(repo.size(b) for b in tree.values()),
            },
        )

    def _tree(self, repo: _Repo, revision: str, path: str, query: dict[str, list[str]]) -> None:
        _, tree = repo.tree(revision)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in tree):
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
        entries: dict[str, dict[str, Any]] = {}
        for file_path, blob in tree.items():
            if not file_path.startswith(prefix):
                continue
            rel = file_path[len(prefix) :].split("/")
            for depth in range(1, len(rel)):  # parent folders
                folder = prefix + "/".join(rel[:depth])
                if recursive or depth == 1:
                    entries.setdefault(
                        folder,
                        {"type": "directory", "oid": git_blob_id(folder.encode()), "size": 0, "path": folder},
                    )
            if recursive or len(rel) == 1:
                entries[file_path] = repo.entry(file_path, blob)
        self._send(200, list(entries.values()))

    def _paths_info(self, repo: _Repo, revision: str) -> None:
        form = parse_qs(self._body().decode())
        _, tree = repo.tree(revision)
        out = []
        for path in form.get("paths", []):
            if path in tree:
                out.append(repo.entry(path, tree[path]))
            elif any(p.startswith(path.rstrip("/") + "/") for p in tree):
                out.append({"type": "directory", "oid": git_blob_id(path.encode()), "size": 0, "path": path})
        self._send(200, out)

    def _commits(self, repo: _Repo, revision: str) -> None:
        oid: str | None = repo.resolve(revision)
        out = []
        while oid is not None:
            c = repo.commits[oid]
            out.append(
                {
                    "id": oid,
                    "title": c["title"],
                    "message": c["message"],
                    "date": c["date"],
                    "authors": [{"user": self.hub.user}],
                }
            )
            oid = c["parent"]
        self._send(200, out)

    def _create_branch(self, repo: _Repo, branch: str) -> None:
        self._require_auth()
        body = self._json_body()
        with self.hub.lock:
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = repo.resolve(body.get("startingPoint") or "main")
            repo.branches[branch] = start
            repo.save()
        self._send(200, {})

    def _preupload(self, repo: _Repo, revision: str) -> None:
        self._require_auth()
        body = self._json_body()
        _, tree = repo.tree(revision)
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": tree.get(f["path"])}
            for f in body.get("files", [])
        ]
        self._send(200, {"files": files, "commitOid": repo.resolve(revision)})

    def _drop_connection(self) -> None:
        """Read part of the request body, then close the socket without answering."""
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 512))
        self.hub.dropped_commits += 1
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()

    def _commit(self, repo: _Repo, revision: str, query: dict[str, list[str]]) -> None:
        self._require_auth()
        with self.hub.lock:
            if self.hub.drop_next_commit:
                self.hub.drop_next_commit = False
                return self._drop_connection()
        if query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by the loopback server")
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        with self.hub.lock:
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            head = repo.branches[revision]
            parent = header.get("parentCommit")
            if parent and parent != head:
                raise HubError(412, f"parent commit {parent} is not the head of {revision} ({head})")
            tree = dict(repo.commits[head]["tree"])
            for item in lines[1:]:
                key, value = item.get("key"), item.get("value", {})
                path = value.get("path", "")
                if not path or path.startswith("/") or ".." in path.split("/"):
                    raise HubError(400, f"invalid path {path!r}")
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HubError(400, f"unsupported encoding for {path}")
                    tree[path] = repo.put_blob(base64.b64decode(value["content"]))
                elif key == "deletedFile":
                    if tree.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    folder = path.rstrip("/") + "/"
                    for p in [p for p in tree if p.startswith(folder)]:
                        del tree[p]
                elif key == "lfsFile":
                    raise HubError(
                        422, f"LFS uploads are not supported here (preupload answers 'regular'): {path}"
                    )
                else:
                    raise HubError(400, f"unknown commit operation {key!r}")
            oid = repo.commit(revision, tree, header.get("summary", ""), header.get("description", ""), head)
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._send(
            200,
            {
                "success": True,
                "commitOid": oid,
                "commitUrl": f"{self.hub.endpoint}/{prefix}{repo.repo_id}/commit/{oid}",
                "hookOutput": "",
            },
        )

    def _resolve(self, repo: _Repo, revision: str, path: str) -> None:
        oid, tree = repo.tree(revision)
        if path not in tree:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        blob = tree[path]
        data = repo.blob_path(blob).read_bytes()
        headers = {"X-Repo-Commit": oid, "ETag": f'"{blob}"', "Accept-Ranges": "bytes"}
        status = 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and self.command == "GET":
            start_s, _, end_s = rng[len("bytes=") :].partition("-")
            start = int(start_s or 0)
            end = int(end_s) if end_s else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(status, headers=headers, body=data)
