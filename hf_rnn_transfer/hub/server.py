"""An offline Hugging Face Hub: the real HTTP protocol, served from a directory with the standard library.

`huggingface_hub`, `transformers` and `datasets` talk to it unchanged once `HF_ENDPOINT` points at it (see
`hub_endpoint`). Repositories are stored by `HubStorage`; this module maps HTTP requests onto it.

Example:

```python
>>> from hf_rnn_transfer.hub import LocalHub
>>> with LocalHub("hub-data", tokens={"hf_alice": "alice"}) as hub:
...     print(hub.endpoint)  # e.g. http://127.0.0.1:39817
```
"""

import base64
import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote

import yaml

from .storage import HubError, HubStorage, Repository, git_blob_oid

logger = logging.getLogger(__name__)

_PREFIX_TYPES = {"": "model", "datasets/": "dataset", "spaces/": "space"}
_TYPE_PREFIXES = {v: k for k, v in _PREFIX_TYPES.items()}
_SEG = r"([^/]+)"
_API_REPO = rf"^/api/(models|datasets|spaces)/{_SEG}/{_SEG}"
_ROUTES = [
    ("GET", r"^/api/whoami-v2$", "whoami"),
    ("GET", r"^/api/agent-harnesses$", "agent_harnesses"),
    ("POST", r"^/api/validate-yaml$", "validate_yaml"),
    ("POST", r"^/api/repos/create$", "create_repo"),
    ("DELETE", r"^/api/repos/delete$", "delete_repo"),
    ("PUT", _API_REPO + r"/settings$", "settings"),
    ("GET", _API_REPO + r"$", "repo_info"),
    ("GET", _API_REPO + rf"/revision/{_SEG}$", "repo_info"),
    ("GET", _API_REPO + rf"/tree/{_SEG}(?:/(.*))?$", "tree"),
    ("POST", _API_REPO + rf"/paths-info/{_SEG}$", "paths_info"),
    ("POST", _API_REPO + rf"/preupload/{_SEG}$", "preupload"),
    ("POST", _API_REPO + rf"/commit/{_SEG}$", "commit"),
    ("GET", _API_REPO + r"/refs$", "refs"),
    ("GET", _API_REPO + rf"/commits/{_SEG}$", "commits"),
    ("POST", _API_REPO + rf"/branch/{_SEG}$", "create_branch"),
    ("DELETE", _API_REPO + rf"/branch/{_SEG}$", "delete_branch"),
    ("POST", _API_REPO + rf"/tag/{_SEG}$", "create_tag"),
    ("DELETE", _API_REPO + rf"/tag/{_SEG}$", "delete_tag"),
    ("POST", rf"^/(datasets/|spaces/)?{_SEG}/{_SEG}\.git/info/lfs/objects/batch$", "lfs_batch"),
    ("PUT", r"^/lfs-objects/([0-9a-f]{64})$", "lfs_upload"),
    ("POST", r"^/lfs-verify/([0-9a-f]{64})$", "lfs_verify"),
    ("HEAD", rf"^/(datasets/|spaces/)?{_SEG}/{_SEG}/resolve/{_SEG}/(.+)$", "resolve"),
    ("GET", rf"^/(datasets/|spaces/)?{_SEG}/{_SEG}/resolve/{_SEG}/(.+)$", "resolve"),
]
_COMPILED = [(method, re.compile(pattern), name) for method, pattern, name in _ROUTES]
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _regular_or_lfs(path: str, size: int, sample: bytes) -> str:
    """Binary or large files go through LFS, as on the real Hub (the `.gitattributes` rules plus a size limit)."""
    if path.endswith((".safetensors", ".parquet", ".bin", ".arrow")) or size > 10 * 1024 * 1024:
        return "lfs"
    return "lfs" if b"\0" in sample else "regular"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    # -- plumbing ------------------------------------------------------------------------------------------------
    def log_message(self, format, *args):  # requests are not logged: URLs may name private repos
        pass

    def _dispatch(self, method: str) -> None:
        self._body_cache = None
        raw_path, _, query = self.path.partition("?")
        self.query = {k: v for k, v in parse_qs(query).items()}
        try:
            for route_method, pattern, name in _COMPILED:
                if route_method == method and (match := pattern.match(raw_path)):
                    # segments are decoded one by one: a revision arrives as `refs%2Fpr%2F1`
                    groups = [unquote(g) if g is not None else None for g in match.groups()]
                    self._read_body()
                    getattr(self, f"_h_{name}")(*groups)
                    return
            self._read_body()
            raise HubError(404, None, f"No route for {method} {raw_path}")
        except HubError as err:
            self._error(err)
        except (ValueError, KeyError, json.JSONDecodeError) as err:
            self._error(HubError(400, None, f"Bad request: {err}"))

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self._body_cache is None:
            length = int(self.headers.get("Content-Length") or 0)
            self._body_cache = self.rfile.read(length) if length else b""
        return self._body_cache

    def _json_body(self):
        body = self._read_body()
        return json.loads(body) if body else {}

    def _send(self, status: int, body: bytes = b"", content_type="application/json", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, value, status: int = 200, headers: dict | None = None):
        self._send(status, json.dumps(value).encode(), headers=headers)

    def _error(self, err: HubError):
        headers = {"X-Error-Message": err.message}
        if err.code:
            headers["X-Error-Code"] = err.code
        if err.commit:
            headers["X-Repo-Commit"] = err.commit
        self._json({"error": err.message}, status=err.status, headers=headers)

    # -- auth ----------------------------------------------------------------------------------------------------
    def _user(self, required: bool = False) -> dict | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            if required:
                raise HubError(401, None, "You must be authenticated: pass a token (Authorization: Bearer ...).")
            return None
        user = self.server.tokens.get(header[len("Bearer ") :].strip())
        if user is None:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return user

    def _can_write(self, user: dict | None, namespace: str) -> bool:
        return user is not None and (namespace == user["name"] or namespace in user["orgs"])

    def _repo(self, plural: str, namespace: str, name: str, write: bool = False) -> Repository:
        repo = self.server.storage.repo(plural.rstrip("s"), f"{namespace}/{name}")
        user = self._user(required=write)
        missing = HubError(404, "RepoNotFound", f"Repository {repo.id} not found (or not visible with this token).")
        if not repo.exists():
            raise missing
        if repo.meta["private"] and not self._can_write(user, namespace):
            raise missing
        if write and not self._can_write(user, namespace):
            raise HubError(403, None, f"You don't have the rights to write to {repo.id} (namespace {namespace}).")
        return repo

    def _url(self, path: str) -> str:
        return f"{self.server.endpoint}/{path.lstrip('/')}"

    # -- account and misc ----------------------------------------------------------------------------------------
    def _h_whoami(self):
        user = self._user(required=True)
        orgs = [{"name": org, "type": "org"} for org in user["orgs"]]
        self._json(
            {
                "type": "user",
                "name": user["name"],
                "fullname": user["name"],
                "orgs": orgs,
                "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}},
            }
        )

    def _h_agent_harnesses(self):
        self._json({"standardEnvVars": [], "harnesses": {}})

    def _h_validate_yaml(self):
        body = self._json_body()
        errors = []
        try:
            yaml.safe_load(body.get("content", "").split("---")[1] if "---" in body.get("content", "") else "")
        except (yaml.YAMLError, IndexError) as err:
            errors.append({"message": str(err)})
        self._json({"errors": errors, "warnings": []})

    # -- repositories --------------------------------------------------------------------------------------------
    def _h_create_repo(self):
        body = self._json_body()
        user = self._user(required=True)
        namespace = body.get("organization") or user["name"]
        repo_type = body.get("type") or "model"
        repo_id = f"{namespace}/{body['name']}"
        if not self._can_write(user, namespace):
            raise HubError(
                403, None, f"You don't have the rights to create a {repo_type} under the namespace {namespace!r}."
            )
        private = body.get("private", body.get("visibility") == "private")
        repo, created = self.server.storage.create_repo(repo_type, repo_id, user["name"], bool(private))
        url = self._url(_TYPE_PREFIXES[repo_type] + repo.id)
        if not created:
            self._json(
                {"error": "You already created this repo", "url": url},
                status=409,
                headers={"X-Error-Message": "You already created this repo"},
            )
            return
        self._json({"url": url, "name": repo.id, "id": repo.id})

    def _h_delete_repo(self):
        body = self._json_body()
        user = self._user(required=True)
        namespace = body.get("organization") or user["name"]
        repo = self._repo((body.get("type") or "model") + "s", namespace, body["name"], write=True)
        self.server.storage.delete_repo(repo)
        self._json({})

    def _h_settings(self, plural, namespace, name):
        repo = self._repo(plural, namespace, name, write=True)
        body = self._json_body()
        if "private" in body:
            repo.set_private(body["private"])
        self._json({"private": repo.meta["private"]})

    def _h_repo_info(self, plural, namespace, name, revision=None):
        repo = self._repo(plural, namespace, name)
        revision = revision or "main"
        sha = repo.resolve(revision)
        commit = repo.commit(sha)
        with_blobs = self.query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling = {"rfilename": path}
            if with_blobs:
                sibling.update(size=entry.size, blobId=entry.oid)
                if entry.sha256:
                    sibling["lfs"] = entry.to_tree(path)["lfs"] | {"sha256": entry.sha256}
            siblings.append(sibling)
        info = {
            "id": repo.id,
            "_id": repo.id,
            "modelId": repo.id,
            "author": namespace,
            "sha": sha,
            "private": repo.meta["private"],
            "disabled": False,
            "gated": False,
            "lastModified": commit.date,
            "createdAt": repo.meta["createdAt"],
            "siblings": siblings,
            "tags": [],
            "downloads": 0,
            "likes": 0,
        }
        card = commit.files.get("README.md")
        if card is not None:
            card_data = _front_matter(repo.read(card).read_text(errors="replace"))
            if card_data:
                info["cardData"] = card_data
                info["tags"] = list(card_data.get("tags") or [])
                if "library_name" in card_data:
                    info["library_name"] = card_data["library_name"]
                if "pipeline_tag" in card_data:
                    info["pipeline_tag"] = card_data["pipeline_tag"]
        self._json(info)

    def _h_tree(self, plural, namespace, name, revision, path):
        repo = self._repo(plural, namespace, name)
        sha = repo.resolve(revision)
        files = repo.commit(sha).files
        prefix = (path or "").strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        if prefix and prefix in files:
            raise HubError(400, None, f"{prefix} is a file, not a folder.")
        entries = _list_tree(files, prefix, recursive)
        if prefix and not entries:
            raise HubError(404, "EntryNotFound", f"{prefix} does not exist on {revision}.", sha)
        self._json(entries)

    def _h_paths_info(self, plural, namespace, name, revision):
        repo = self._repo(plural, namespace, name)
        sha = repo.resolve(revision)
        files = repo.commit(sha).files
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            paths = self._json_body().get("paths", [])
        else:
            paths = parse_qs(self._read_body().decode()).get("paths", [])
        out = []
        for path in paths:
            path = path.strip("/")
            if path in files:
                out.append(files[path].to_tree(path))
            elif any(p.startswith(path + "/") for p in files):
                out.append({"type": "directory", "path": path, "oid": _tree_oid(files, path)})
        self._json(out)

    def _h_preupload(self, plural, namespace, name, revision):
        repo = self._repo(plural, namespace, name, write=True)
        try:
            files = repo.commit(repo.resolve(revision)).files
        except HubError:
            files = {}  # a branch about to be created by the commit
        answer = []
        for item in self._json_body().get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            mode = _regular_or_lfs(item["path"], int(item.get("size", 0)), sample)
            existing = files.get(item["path"])
            oid = None
            if existing is not None:
                oid = existing.sha256 if mode == "lfs" else existing.oid
            answer.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._json({"files": answer, "commitOid": None})

    def _h_commit(self, plural, namespace, name, revision):
        repo = self._repo(plural, namespace, name, write=True)
        user = self._user(required=True)
        storage = self.server.storage
        header, additions, deletions, folders = {}, {}, [], []
        for line in self._read_body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                content = (
                    base64.b64decode(value["content"])
                    if value.get("encoding") == "base64"
                    else value["content"].encode()
                )
                additions[value["path"]] = storage.store_blob(content)
            elif key == "lfsFile":
                additions[value["path"]] = storage.lfs_entry(value["oid"], value.get("size"))
            elif key == "deletedFile":
                deletions.append(value["path"])
            elif key == "deletedFolder":
                folders.append(value["path"])
            else:
                raise HubError(400, None, f"Unknown commit operation {key!r}.")
        create_pr = self.query.get("create_pr", ["0"])[0] in ("1", "true", "True")
        sha, pr = repo.create_commit(
            revision,
            author=user["name"],
            title=header.get("summary") or "Upload",
            message=header.get("description") or "",
            additions=additions,
            deletions=deletions,
            deleted_folders=folders,
            parent_commit=header.get("parentCommit"),
            create_pr=create_pr,
        )
        base = self._url(_TYPE_PREFIXES[repo.type] + repo.id)
        self._json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{base}/commit/{sha}",
                "pullRequestUrl": f"{base}/discussions/{pr}" if pr else None,
            }
        )

    # -- refs ----------------------------------------------------------------------------------------------------
    def _h_refs(self, plural, namespace, name):
        repo = self._repo(plural, namespace, name)
        refs = repo.refs()
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in refs["branches"].items()]
        tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": s} for t, s in refs["tags"].items()]
        out = {"branches": branches, "converts": [], "tags": tags}
        if self.query.get("include_prs", ["0"])[0] in ("1", "true", "True"):
            out["pullRequests"] = [
                {"name": n, "ref": f"refs/pr/{n}", "targetCommit": s} for n, s in refs["prs"].items()
            ]
        self._json(out)

    def _h_commits(self, plural, namespace, name, revision):
        repo = self._repo(plural, namespace, name)
        history = repo.history(repo.resolve(revision))
        self._json(
            [
                {"id": c.id, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": c.author}]}
                for c in history
            ]
        )

    def _h_create_branch(self, plural, namespace, name, branch):
        repo = self._repo(plural, namespace, name, write=True)
        body = self._json_body()
        start = repo.resolve(body.get("startingPoint") or "main")
        if body.get("emptyBranch"):
            raise HubError(400, None, "Empty branches are not supported by the offline Hub.")
        repo.update_ref("branches", branch, start)
        self._json({})

    def _h_delete_branch(self, plural, namespace, name, branch):
        self._repo(plural, namespace, name, write=True).update_ref("branches", branch, None)
        self._json({})

    def _h_create_tag(self, plural, namespace, name, revision):
        repo = self._repo(plural, namespace, name, write=True)
        body = self._json_body()
        repo.update_ref("tags", body["tag"], repo.resolve(revision))
        self._json({})

    def _h_delete_tag(self, plural, namespace, name, tag):
        self._repo(plural, namespace, name, write=True).update_ref("tags", tag, None)
        self._json({})

    # -- LFS -----------------------------------------------------------------------------------------------------
    def _h_lfs_batch(self, prefix, namespace, name):
        self._repo(_PREFIX_TYPES[prefix or ""] + "s", namespace, name, write=True)
        body = self._json_body()
        if body.get("operation") != "upload":
            raise HubError(400, None, "The offline Hub serves LFS downloads through /resolve; batch is for uploads.")
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry = {"oid": oid, "size": size, "authenticated": True}
            if not self.server.storage.lfs_path(oid).exists():
                entry["actions"] = {
                    "upload": {"href": self._url(f"lfs-objects/{oid}")},
                    "verify": {"href": self._url(f"lfs-verify/{oid}")},
                }
            objects.append(entry)
        self._send(
            200,
            json.dumps({"transfer": "basic", "objects": objects}).encode(),
            content_type="application/vnd.git-lfs+json",
        )

    def _h_lfs_upload(self, oid):
        # The client PUTs without Authorization, like to S3; the content must hash to its oid and only enters a
        # repository through an authenticated commit.
        self.server.storage.store_lfs(oid, self._read_body())
        self._send(200)

    def _h_lfs_verify(self, oid):
        self._user(required=True)
        if not self.server.storage.lfs_path(oid).exists():
            raise HubError(404, None, f"LFS object {oid} was not uploaded.")
        self._json({"success": True})

    # -- downloads -----------------------------------------------------------------------------------------------
    def _h_resolve(self, prefix, namespace, name, revision, path):
        repo = self._repo(_PREFIX_TYPES[prefix or ""] + "s", namespace, name)
        sha = repo.resolve(revision)
        entry = repo.commit(sha).files.get(path)
        if entry is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision} of {repo.id}.", sha)
        blob = repo.read(entry)
        etag = entry.sha256 or entry.oid
        headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if entry.sha256:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(entry.size)})
        if self.command == "HEAD":
            self.send_response(200)
            self.send_header("Content-Length", str(entry.size))
            self.send_header("Content-Type", "application/octet-stream")
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            return
        data = blob.read_bytes()
        status = 200
        if (range_header := self.headers.get("Range")) and (match := _RANGE.match(range_header.strip())):
            start_s, end_s = match.groups()
            if start_s == "":
                start, end = max(0, len(data) - int(end_s)), len(data) - 1
            else:
                start, end = int(start_s), min(int(end_s) if end_s else len(data) - 1, len(data) - 1)
            if start >= len(data) and len(data) > 0:
                raise HubError(416, None, f"Range {range_header} is outside the {len(data)} bytes of {path}.")
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(status, data, content_type="application/octet-stream", headers=headers)


def _front_matter(text: str) -> dict:
    if not text.startswith("---"):
        return {}
    try:
        return yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return {}


def _tree_oid(files, folder: str) -> str:
    listing = "".join(f"{p}:{e.oid}\n" for p, e in sorted(files.items()) if p.startswith(folder + "/"))
    return git_blob_oid(listing.encode())


def _list_tree(files, prefix: str, recursive: bool) -> list[dict]:
    base = prefix + "/" if prefix else ""
    entries, folders = [], set()
    for path, entry in sorted(files.items()):
        if not path.startswith(base):
            continue
        rest = path[len(base) :]
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            folder = base + "/".join(parts[:depth])
            if (recursive or depth == 1) and folder not in folders:
                folders.add(folder)
                entries.append({"type": "directory", "path": folder, "oid": _tree_oid(files, folder)})
        if recursive or len(parts) == 1:
            entries.append(entry.to_tree(path))
    return entries


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, storage: HubStorage, tokens: dict):
        super().__init__(address, _Handler)
        self.storage = storage
        self.tokens = tokens
        host, port = self.server_address[:2]
        self.endpoint = f"http://{host}:{port}"
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def get_request(self):
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Drop the clients' keep-alive connections too, so a stopped Hub really stops answering."""
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def normalise_tokens(tokens: dict | None) -> dict[str, dict]:
    """`{token: "user"}` or `{token: {"name": "user", "orgs": [...]}}` -> `{token: {"name", "orgs"}}`."""
    out = {}
    for token, user in (tokens or {}).items():
        if isinstance(user, str):
            user = {"name": user, "orgs": []}
        if not isinstance(user, dict) or not isinstance(user.get("name"), str):
            raise ValueError("Hub tokens map a token to a user name or to {'name': ..., 'orgs': [...]}.")
        out[token] = {"name": user["name"], "orgs": list(user.get("orgs", []))}
    return out


class LocalHub:
    """
    Run the offline Hub in a background thread of this process.

    Args:
        root: directory holding the repositories; created if missing, reused (with its history) if present.
        tokens: `{token: user}` or `{token: {"name": user, "orgs": [org, ...]}}`. Writing needs a token whose user
            owns the namespace (or belongs to the org); private repositories are invisible without one.
        host, port: where to listen; port 0 picks a free port.

    Example:

    ```python
    >>> with LocalHub("hub-data", tokens={"hf_alice": "alice"}) as hub, hub_endpoint(hub.endpoint):
    ...     model.push_to_hub("alice/my-lstm", token="hf_alice")
    ```
    """

    def __init__(self, root: str | Path, tokens: dict | None = None, host: str = "127.0.0.1", port: int = 0):
        self.storage = HubStorage(root)
        self.tokens = normalise_tokens(tokens)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalHub is not running: use `with LocalHub(...) as hub:` or call start().")
        return self._server.endpoint

    def start(self) -> "LocalHub":
        self._server = _Server(self._address, self.storage, self.tokens)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(root: str | Path, host: str, port: int, tokens: dict) -> None:
    """Serve the offline Hub in the foreground until interrupted (`hf-rnn-transfer hub serve`)."""
    server = _Server((host, port), HubStorage(root), normalise_tokens(tokens))
    print(f"Offline Hub serving {Path(root).resolve()} at {server.endpoint} ({len(tokens)} token(s)); Ctrl-C stops.")
    print(f"Point the clients at it: export HF_ENDPOINT={server.endpoint} HF_HUB_DISABLE_XET=1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
