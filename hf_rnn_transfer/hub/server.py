"""An offline Hugging Face Hub: the real HTTP protocol on Starlette + uvicorn, repositories stored by `HubStorage`.

`huggingface_hub`, `transformers` and `datasets` talk to it unchanged once `HF_ENDPOINT` points at it (see
`hub_endpoint`). It is a network server, so every input is hostile until validated: routes are matched on the raw
path, every segment is decoded and checked, the token is checked before any body is read, bodies are streamed with
size limits and an idle timeout, LFS uploads need a signed URL from an authenticated batch call, and nothing echoes
client text into a header unescaped. `HubLimits` holds every limit (the `hub serve` flags).

Needs the `hub` extra (`pip install "hf-rnn-transfer[hub]"`); importing `hf_rnn_transfer` never imports this module.

Example:

```python
>>> from hf_rnn_transfer.hub import LocalHub
>>> with LocalHub("hub-data", tokens={"hf_alice": "alice"}) as hub:
...     print(hub.endpoint)  # e.g. http://127.0.0.1:39817
```
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import parse_qs, unquote

try:
    import anyio
    import uvicorn
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError as err:  # pragma: no cover - exercised by the packaging test in a venv without the extra
    raise ImportError(
        "The offline Hub server needs its optional dependencies: pip install 'hf-rnn-transfer[hub]'"
    ) from err

import yaml

from .storage import (
    CONTROL_CHARACTERS,
    HEX64,
    HubError,
    HubStorage,
    Repository,
    check_no_file_folder_clash,
    disk_error,
    validate_path,
)

logger = logging.getLogger(__name__)

_PREFIX_TYPES = {"": "model", "datasets/": "dataset", "spaces/": "space"}
_TYPE_PREFIXES = {v: k for k, v in _PREFIX_TYPES.items()}
_SEG = r"([^/]+)"
_API_REPO = rf"^/api/(models|datasets|spaces)/{_SEG}/{_SEG}"
_RESOLVE = rf"^/(datasets/|spaces/)?{_SEG}/{_SEG}/resolve/{_SEG}/(.+)$"


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern
    handler: str
    body: str = "none"  # none | json (small, in memory) | commit (NDJSON, spooled to disk) | lfs (streamed to storage)
    access: str = "read"  # read | user (a valid token) | write (a token that may write the path's repository)


def _route(method, pattern, handler, body="none", access="read") -> _Route:
    return _Route(method, re.compile(pattern), handler, body, access)


_ROUTES = [
    _route("GET", r"^/api/whoami-v2$", "whoami", access="user"),
    _route("GET", r"^/api/agent-harnesses$", "agent_harnesses"),
    _route("GET", r"^/api/models$", "list_models"),
    _route("POST", r"^/api/validate-yaml$", "validate_yaml", body="json"),
    _route("POST", r"^/api/repos/create$", "create_repo", body="json", access="user"),
    _route("DELETE", r"^/api/repos/delete$", "delete_repo", body="json", access="user"),
    _route("PUT", _API_REPO + r"/settings$", "settings", body="json", access="write"),
    _route("GET", _API_REPO + r"$", "repo_info"),
    _route("GET", _API_REPO + rf"/revision/{_SEG}$", "repo_info"),
    _route("GET", _API_REPO + rf"/tree/{_SEG}(?:/(.*))?$", "tree"),
    _route("POST", _API_REPO + rf"/paths-info/{_SEG}$", "paths_info", body="json"),
    _route("POST", _API_REPO + rf"/preupload/{_SEG}$", "preupload", body="json", access="write"),
    _route("POST", _API_REPO + rf"/commit/{_SEG}$", "commit", body="commit", access="write"),
    _route("GET", _API_REPO + r"/refs$", "refs"),
    _route("GET", _API_REPO + rf"/commits/{_SEG}$", "commits"),
    _route("POST", _API_REPO + rf"/branch/{_SEG}$", "create_branch", body="json", access="write"),
    _route("DELETE", _API_REPO + rf"/branch/{_SEG}$", "delete_branch", access="write"),
    _route("POST", _API_REPO + rf"/tag/{_SEG}$", "create_tag", body="json", access="write"),
    _route("DELETE", _API_REPO + rf"/tag/{_SEG}$", "delete_tag", access="write"),
    _route("POST", _API_REPO + r"/lfs-verify/([0-9a-f]{64})$", "lfs_verify", access="write"),
    _route("POST", rf"^/(datasets/|spaces/)?{_SEG}/{_SEG}\.git/info/lfs/objects/batch$", "lfs_batch", "json", "write"),
    _route("PUT", r"^/lfs-objects/([0-9a-f]{64})$", "lfs_upload", body="lfs", access="signed"),
    _route("HEAD", _RESOLVE, "resolve"),
    _route("GET", _RESOLVE, "resolve"),
]
_FRONT_MATTER_BYTES = 64 * 1024
_LISTED_MAX = 1000  # models one listing returns at most
_LIST_PARAMETERS = {"filter", "author", "search", "limit", "full", "config", "cardData", "sort", "direction"}
_LIST_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,95}$")  # a tag, author or search text
_AUTHOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")  # a namespace


@dataclass
class HubLimits:
    """
    What one request may cost the offline Hub. Every field is a `hub serve` flag.

    Args:
        max_request_bytes: largest JSON or form body (repo creation, preupload, paths-info, LFS batch, ...).
        max_commit_bytes: largest commit body (NDJSON with base64 regular files); spooled to disk, not memory.
        max_regular_file_bytes: largest file sent inside a commit (larger files must go through LFS).
        max_file_bytes: largest LFS object (weights, parquet shards).
        read_timeout: seconds a client may stay silent while sending a body, or not read a response, before the
            server gives up on it (408 while receiving).
        header_timeout: seconds a connection may take to send a request's headers, also between keep-alive requests;
            idle connections are closed after it.
        max_connections: open connections at once; more are closed on arrival.
        backlog: connections the kernel queues before the server accepts them.
        worker_threads: threads doing storage work (reads, commits) at once.
    """

    max_request_bytes: int = 1 << 20
    max_commit_bytes: int = 1 << 30
    max_regular_file_bytes: int = 16 << 20
    max_file_bytes: int = 50 << 30
    read_timeout: float = 30.0
    header_timeout: float = 10.0
    max_connections: int = 256
    backlog: int = 128
    worker_threads: int = 16

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"HubLimits.{f.name} must be a positive number, got {value!r}.")


def header_safe(text: str, limit: int = 400) -> str:
    """Client text made safe for a header: printable ASCII only (no CR/LF injection, no non-Latin-1 crash)."""
    escaped = str(text)[:limit].encode("ascii", "backslashreplace").decode("ascii")
    return CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", escaped)


def _regular_or_lfs(path: str, size: int, sample: bytes) -> str:
    """Binary or large files go through LFS, as on the real Hub (the `.gitattributes` rules plus a size limit)."""
    if path.endswith((".safetensors", ".parquet", ".bin", ".arrow")) or size > 10 * 1024 * 1024:
        return "lfs"
    return "lfs" if b"\0" in sample else "regular"


# -- request validation helpers --------------------------------------------------------------------------------------
def _field(body: dict, key: str, kinds, required: bool = True, default=None):
    if not isinstance(body, dict):
        raise HubError(400, None, "Malformed request: the body must be a JSON object.")
    if key not in body or body[key] is None:
        if required:
            raise HubError(400, None, f"Malformed request: {key!r} is missing.")
        return default
    value = body[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        names = "/".join(k.__name__ for k in _as_tuple(kinds))
        raise HubError(400, None, f"Malformed request: {key!r} must be {names}, not {type(value).__name__}.")
    return value


def _as_tuple(kinds) -> tuple:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() in ("1", "true")


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: a README's front matter cannot expand into a billion-laughs bomb."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not accepted", self.peek_event().start_mark)
        return super().compose_node(parent, index)


def _load_yaml(text: str):
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError as err:
        raise yaml.YAMLError("YAML nested too deeply") from err


def _card_info(repo: Repository, commit) -> dict:
    """What a repository's card metadata adds to its info: cardData, tags, library_name, pipeline_tag."""
    card = commit.files.get("README.md")
    if card is None:
        return {}
    with open(repo.read(card), "rb") as handle:
        card_data = _front_matter(handle.read(_FRONT_MATTER_BYTES))
    if not card_data:
        return {}
    tags = card_data.get("tags")
    info = {"cardData": card_data, "tags": [str(t) for t in tags] if isinstance(tags, list) else []}
    for key in ("library_name", "pipeline_tag"):
        if isinstance(card_data.get(key), str):
            info[key] = card_data[key]
    return info


def _front_matter(head: bytes) -> dict:
    """The card metadata of a README (its first `_FRONT_MATTER_BYTES`); {} when absent, invalid or too large."""
    text = head.decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    parts = text.split("---", 2)
    if len(parts) < 3:
        return {}
    try:
        data = _load_yaml(parts[1])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _folder_oids(files) -> dict[str, str]:
    """Oid of every folder of a file table, in one pass (a per-folder scan made big listings quadratic)."""
    listings: dict[str, list[str]] = {}
    for path, entry in sorted(files.items()):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            listings.setdefault("/".join(parts[:depth]), []).append(f"{path}:{entry.oid}\n")
    return {folder: hashlib.sha1("".join(lines).encode()).hexdigest() for folder, lines in listings.items()}


def _list_tree(files, prefix: str, recursive: bool) -> list[dict]:
    base = prefix + "/" if prefix else ""
    oids = _folder_oids(files)
    entries, folders = [], set()
    for path, entry in sorted(files.items()):
        if not path.startswith(base):
            continue
        parts = path[len(base) :].split("/")
        for depth in range(1, len(parts)):
            folder = base + "/".join(parts[:depth])
            if (recursive or depth == 1) and folder not in folders:
                folders.add(folder)
                entries.append({"type": "directory", "path": folder, "oid": oids[folder]})
        if recursive or len(parts) == 1:
            entries.append(entry.to_tree(path))
    return entries


@dataclass
class _Call:
    """One request as the handlers see it: the request, the decoded path groups, the user, the body."""

    request: Request
    groups: list
    user: dict | None
    repo: Repository | None = None
    body: object = None


class HubApp:
    """The ASGI application: routing, auth, body limits and the Hub endpoints over a `HubStorage`."""

    def __init__(self, storage: HubStorage, tokens: dict, limits: HubLimits | None = None):
        self.storage, self.tokens, self.limits = storage, tokens, limits or HubLimits()
        self.endpoint = ""  # set by the server once it listens
        self._limiter: anyio.CapacityLimiter | None = None
        secret_file = storage.root / "upload-secret"
        if not secret_file.exists():
            secret_file.write_bytes(secrets.token_bytes(32))
            secret_file.chmod(0o600)
        self._secret = secret_file.read_bytes()

    # -- ASGI ----------------------------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            return
        if scope["type"] != "http":
            return
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.limits.worker_threads)
        request = Request(scope, receive)
        headers = request.headers
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        try:
            response = await self._handle(request)
        except ClientDisconnect:
            return
        except Exception as err:  # noqa: BLE001 - every failure gets an answer, never a dropped connection
            if isinstance(err, (ValueError, KeyError, TypeError, AttributeError, UnicodeError, binascii.Error)):
                err = HubError(400, None, f"Malformed request: {err}")
            elif not isinstance(err, HubError):
                logger.exception("offline Hub: unexpected error on %s", header_safe(scope.get("path", "")))
                err = HubError(500, None, "Internal error of the offline Hub (see its log).")
            # an unread body cannot be followed by another request on this connection
            response = self._error(err, close=has_body and not scope.get("hub.body_done"))
        await response(scope, receive, self._timed_send(send))

    def _timed_send(self, send):
        timeout = self.limits.read_timeout

        async def timed(message):
            with anyio.fail_after(timeout):  # a client that stops reading frees its connection
                await send(message)

        return timed

    async def _handle(self, request: Request) -> Response:
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        raw_path = raw.decode("ascii")  # clients percent-encode; raw non-ASCII bytes raise -> 400
        method = request.method
        route, match = None, None
        for candidate in _ROUTES:
            if candidate.method == method and (match := candidate.pattern.match(raw_path)):
                route = candidate
                break
        if route is None:
            raise HubError(404, None, f"No route for {method} {header_safe(raw_path, 200)}")
        # segments are decoded one by one: a revision arrives as `refs%2Fpr%2F1`
        groups = [unquote(g, errors="strict") if g is not None else None for g in match.groups()]
        for group in groups:
            if group is not None and CONTROL_CHARACTERS.search(group):
                raise HubError(400, None, "Control characters (CR, LF, NUL, ...) are not allowed in a URL.")
        call = _Call(
            request=request, groups=groups, user=self._user(request, required=route.access in ("user", "write"))
        )
        if route.access == "write":
            call.repo = await self._thread(self._writable_repo, route, call)
        elif route.access == "signed":
            signed_repo, signed_size = self._check_upload_signature(request, groups[0])
        if route.body == "json":
            call.body = await self._json_body(request)
        elif route.body == "commit":
            call.body = tempfile.SpooledTemporaryFile(max_size=1 << 20, dir=self._tmp_dir())
        try:
            if route.body == "commit":
                await self._stream_body(request, self.limits.max_commit_bytes, call.body.write, sink_in_thread=True)
                call.body.seek(0)
            elif route.body == "lfs":
                return await self._lfs_upload(call, signed_repo, signed_size)
            return await self._thread(getattr(self, f"_h_{route.handler}"), call)
        finally:
            if route.body == "commit":
                call.body.close()

    async def _thread(self, fn, *args):
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _tmp_dir(self) -> Path:
        path = self.storage.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- bodies --------------------------------------------------------------------------------------------------
    async def _stream_body(self, request: Request, limit: int, sink, sink_in_thread: bool = False) -> int:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise HubError(400, None, "Invalid Content-Length header.")
            if int(declared) > limit:
                raise HubError(413, None, f"Request body of {declared} bytes is over this Hub's limit of {limit}.")
        total, stream, failed = 0, request.stream().__aiter__(), None
        while True:
            try:
                with anyio.fail_after(self.limits.read_timeout):
                    chunk = await stream.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise HubError(
                    408, None, f"The request body stalled for {self.limits.read_timeout:g} s: send it again."
                ) from None
            total += len(chunk)
            if total > limit:
                raise HubError(413, None, f"Request body is over this Hub's limit of {limit} bytes.")
            if chunk and failed is None:
                try:
                    if sink_in_thread:
                        await self._thread(sink, chunk)
                    else:
                        sink(chunk)
                except OSError as err:
                    failed = disk_error(err)  # other OS errors propagate
                except HubError as err:
                    if err.status != 507:
                        raise
                    failed = err
        request.scope["hub.body_done"] = True
        if failed is not None:  # a full disk: the rest of the body was drained so the client reads the answer
            raise failed
        return total

    async def _json_body(self, request: Request):
        parts = []
        await self._stream_body(request, self.limits.max_request_bytes, parts.append)
        body = b"".join(parts)
        if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
            return parse_qs(body.decode("utf-8"))
        try:
            return json.loads(body) if body else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise HubError(400, None, f"Malformed request: the body is not JSON ({err}).") from None

    # -- responses -----------------------------------------------------------------------------------------------
    def _json(self, value, status: int = 200, headers: dict | None = None, media_type="application/json") -> Response:
        return Response(json.dumps(value), status_code=status, headers=headers, media_type=media_type)

    def _error(self, err: HubError, close: bool = False) -> Response:
        headers = {"X-Error-Message": header_safe(err.message)}
        if err.code:
            headers["X-Error-Code"] = err.code
        if err.commit:
            headers["X-Repo-Commit"] = err.commit
        if close:  # the body was not read: the connection cannot carry another request
            headers["Connection"] = "close"
        return JSONResponse({"error": err.message}, status_code=err.status, headers=headers)

    def _url(self, path: str) -> str:
        return f"{self.endpoint}/{path.lstrip('/')}"

    # -- auth ----------------------------------------------------------------------------------------------------
    def _user(self, request: Request, required: bool = False) -> dict | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            if required:
                raise HubError(401, None, "You must be authenticated: pass a token (Authorization: Bearer ...).")
            return None
        given = header[len("Bearer ") :].strip().encode()
        user = None
        for token, candidate in self.tokens.items():  # constant time per token: no timing oracle on tokens
            if hmac.compare_digest(token.encode(), given):
                user = candidate
        if user is None:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return user

    @staticmethod
    def _can_write(user: dict | None, namespace: str) -> bool:
        return user is not None and (namespace == user["name"] or namespace in user["orgs"])

    def _repo(self, repo_type: str, namespace: str, name: str, user: dict | None, write: bool = False) -> Repository:
        repo = self.storage.repo(repo_type, f"{namespace}/{name}")
        missing = HubError(404, "RepoNotFound", f"Repository {repo.id} not found (or not visible with this token).")
        if not repo.exists():
            raise missing
        if repo.meta["private"] and not self._can_write(user, namespace):
            raise missing
        if write and not self._can_write(user, namespace):
            raise HubError(403, None, f"You don't have the rights to write to {repo.id} (namespace {namespace}).")
        return repo

    def _writable_repo(self, route: _Route, call: _Call) -> Repository:
        if route.handler == "lfs_batch":
            prefix, namespace, name = call.groups[:3]
            return self._repo(_PREFIX_TYPES[prefix or ""], namespace, name, call.user, write=True)
        plural, namespace, name = call.groups[:3]
        return self._repo(plural[:-1], namespace, name, call.user, write=True)

    def _read_repo(self, call: _Call) -> Repository:
        plural, namespace, name = call.groups[:3]
        return self._repo(plural[:-1], namespace, name, call.user)

    def _sign_upload(self, repo: Repository, oid: str, size: int, expires: int) -> str:
        message = f"{repo.type}\n{repo.id}\n{oid}\n{size}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _check_upload_signature(self, request: Request, oid: str) -> tuple[Repository, int]:
        """The repository and size a signed LFS upload URL was issued for; 403 if it is not one of ours."""
        query = request.query_params
        refused = HubError(403, None, "LFS upload URL is invalid or expired: ask the LFS batch endpoint for a new one.")
        try:
            repo = self.storage.repo(query["type"], query["repo"])
            size, expires = int(query["size"]), int(query["expires"])
        except (KeyError, ValueError, HubError):
            raise refused from None
        signature = self._sign_upload(repo, oid, size, expires)
        if expires < time.time() or not hmac.compare_digest(signature, query.get("signature", "")):
            raise refused
        return repo, size

    # -- account and misc ----------------------------------------------------------------------------------------
    def _h_whoami(self, call: _Call):
        user = call.user
        return self._json(
            {
                "type": "user",
                "name": user["name"],
                "fullname": user["name"],
                "orgs": [{"name": org, "type": "org"} for org in user["orgs"]],
                "auth": {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}},
            }
        )

    def _h_agent_harnesses(self, call: _Call):
        return self._json({"standardEnvVars": [], "harnesses": {}})

    def _h_validate_yaml(self, call: _Call):
        content = _field(call.body, "content", str, required=False, default="")
        errors = []
        if content.startswith("---"):
            try:
                _load_yaml(content.split("---", 2)[1])
            except yaml.YAMLError as err:
                errors.append({"message": str(err)})
        return self._json({"errors": errors, "warnings": []})

    # -- repositories --------------------------------------------------------------------------------------------
    def _h_create_repo(self, call: _Call):
        body, user = call.body, call.user
        name = _field(body, "name", str)
        namespace = _field(body, "organization", str, required=False) or user["name"]
        repo_type = _field(body, "type", str, required=False, default="model")
        private = _field(body, "private", bool, required=False)
        visibility = _field(body, "visibility", str, required=False)
        if visibility not in (None, "public", "private"):
            raise HubError(400, None, f"Invalid visibility {visibility!r}: 'public' or 'private'.")
        if private is None:
            private = visibility == "private"
        if not self._can_write(user, namespace):
            raise HubError(
                403, None, f"You don't have the rights to create a {repo_type} under the namespace {namespace!r}."
            )
        repo, created = self.storage.create_repo(repo_type, f"{namespace}/{name}", user["name"], private)
        url = self._url(_TYPE_PREFIXES[repo_type] + repo.id)
        if not created:
            return self._json(
                {"error": "You already created this repo", "url": url},
                status=409,
                headers={"X-Error-Message": "You already created this repo"},
            )
        return self._json({"url": url, "name": repo.id, "id": repo.id})

    def _h_delete_repo(self, call: _Call):
        body, user = call.body, call.user
        namespace = _field(body, "organization", str, required=False) or user["name"]
        repo_type = _field(body, "type", str, required=False, default="model")
        repo = self._repo(repo_type, namespace, _field(body, "name", str), user, write=True)
        self.storage.delete_repo(repo)
        return self._json({})

    def _h_settings(self, call: _Call):
        repo, body = call.repo, call.body
        if not isinstance(body, dict):
            raise HubError(400, None, "Malformed request: the body must be a JSON object.")
        unknown = set(body) - {"private", "visibility", "gated"}
        if unknown:
            raise HubError(400, None, f"Unsupported repository settings {sorted(unknown)}: use private/visibility.")
        private = _field(body, "private", bool, required=False)
        visibility = _field(body, "visibility", str, required=False)
        if visibility is not None:
            if visibility not in ("public", "private"):
                raise HubError(400, None, f"Invalid visibility {visibility!r}: 'public' or 'private'.")
            private = visibility == "private"
        if body.get("gated") not in (None, False, "false"):
            raise HubError(
                400, None, "Gated access is not supported by the offline Hub: make the repository private instead."
            )
        if private is not None:
            repo.set_private(private)
        return self._json({"private": repo.meta["private"], "gated": False})

    def _h_repo_info(self, call: _Call):
        repo = self._read_repo(call)
        revision = call.groups[3] if len(call.groups) > 3 and call.groups[3] else "main"
        sha = repo.resolve(revision)
        commit = repo.commit(sha)
        with_blobs = _flag(call.request, "blobs")
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
            "author": repo.namespace,
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
        info.update(_card_info(repo, commit))
        return self._json(info)

    def _h_list_models(self, call: _Call):
        """`HfApi.list_models`: the visible model repositories whose card tags (or library / pipeline tag) hold every
        `filter`, of `author`, with `search` in the id; sorted by id, at most `limit` (and `_LISTED_MAX`)."""
        query = call.request.query_params
        unknown = sorted(set(query.keys()) - _LIST_PARAMETERS)
        if unknown:
            raise HubError(
                400, None, f"Unsupported model listing parameters {unknown}: use {sorted(_LIST_PARAMETERS)}."
            )
        filters = query.getlist("filter")
        if len(filters) > 10:
            raise HubError(400, None, f"At most 10 filter values per listing, got {len(filters)}.")
        for name, values in (
            ("filter", filters),
            ("author", query.getlist("author")),
            ("search", query.getlist("search")),
        ):
            if len(values) > 1 and name != "filter":
                raise HubError(400, None, f"Give {name} once.")
            for value in values:
                if not _LIST_VALUE.match(value) or (name == "author" and not _AUTHOR.match(value)):
                    allowed = "letters, digits and ._-" if name == "author" else "letters, digits and ._:/+-"
                    raise HubError(400, None, f"Invalid {name} {value[:100]!r}: {allowed} (1-96).")
        limit = query.get("limit", str(_LISTED_MAX))
        if not limit.isdigit() or not 1 <= int(limit) <= _LISTED_MAX:
            raise HubError(400, None, f"limit must be an integer from 1 to {_LISTED_MAX}, got {limit[:20]!r}.")
        author, search = query.get("author"), (query.get("search") or "").lower()
        listed = []
        for repo in self.storage.repositories("model"):
            if (author and repo.namespace != author) or (search and search not in repo.id.lower()):
                continue  # the cheap tests first: no file is read for a repository they leave out
            private = repo.meta["private"]
            if private and not self._can_write(call.user, repo.namespace):
                continue  # not visible with this token
            sha = repo.resolve("main")
            commit = repo.commit(sha)
            info = _card_info(repo, commit)
            labels = {*info.get("tags", []), info.get("library_name"), info.get("pipeline_tag")}
            if all(f in labels for f in filters):
                summary = {"id": repo.id, "modelId": repo.id, "author": repo.namespace, "sha": sha, "private": private,
                           "lastModified": commit.date, "tags": [], "downloads": 0, "likes": 0}  # fmt: skip
                listed.append(summary | {k: v for k, v in info.items() if k != "cardData"})
                if len(listed) >= int(limit):
                    break
        return self._json(listed)

    def _h_tree(self, call: _Call):
        repo = self._read_repo(call)
        revision, path = call.groups[3], call.groups[4]
        sha = repo.resolve(revision)
        files = repo.commit(sha).files
        prefix = (path or "").strip("/")
        if prefix and prefix in files:
            raise HubError(400, None, f"{prefix} is a file, not a folder.")
        entries = _list_tree(files, prefix, _flag(call.request, "recursive"))
        if prefix and not entries:
            raise HubError(404, "EntryNotFound", f"{prefix} does not exist on {revision}.", sha)
        return self._json(entries)

    def _h_paths_info(self, call: _Call):
        repo = self._read_repo(call)
        files = repo.commit(repo.resolve(call.groups[3])).files
        paths = _field(call.body, "paths", list, required=False, default=[])
        oids = _folder_oids(files)
        out = []
        for path in paths:
            if not isinstance(path, str):
                raise HubError(400, None, "Malformed request: 'paths' must be a list of strings.")
            path = path.strip("/")
            if path in files:
                out.append(files[path].to_tree(path))
            elif path in oids:
                out.append({"type": "directory", "path": path, "oid": oids[path]})
        return self._json(out)

    def _h_preupload(self, call: _Call):
        repo = call.repo
        try:
            files = repo.commit(repo.resolve(call.groups[3])).files
        except HubError:
            files = {}  # a branch about to be created by the commit
        answer = []
        for item in _field(call.body, "files", list):
            path = validate_path(_field(item, "path", str))
            size = _field(item, "size", int, required=False, default=0)
            sample = base64.b64decode(_field(item, "sample", str, required=False, default=""), validate=True)
            mode = _regular_or_lfs(path, size, sample)
            existing = files.get(path)
            oid = None
            if existing is not None:
                oid = existing.sha256 if mode == "lfs" else existing.oid
            answer.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return self._json({"files": answer, "commitOid": None})

    def _h_commit(self, call: _Call):
        repo, user, storage = call.repo, call.user, self.storage
        header, additions, deletions, folders = {}, {}, [], []
        line_limit = self.limits.max_regular_file_bytes * 4 // 3 + 4096  # base64 plus the JSON around it
        while line := call.body.readline(line_limit + 1):
            if len(line) > line_limit and not line.endswith(b"\n"):
                raise HubError(
                    413, None, f"A file in the commit is over {self.limits.max_regular_file_bytes} bytes: use LFS."
                )
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = _field(item, "key", str), _field(item, "value", dict)
            if key == "header":
                header = value
            elif key == "file":
                path = validate_path(_field(value, "path", str))
                content = _field(value, "content", str)
                if value.get("encoding") == "base64":
                    data = base64.b64decode(content, validate=True)
                else:
                    data = content.encode()
                if len(data) > self.limits.max_regular_file_bytes:
                    raise HubError(
                        413, None, f"{path} is over {self.limits.max_regular_file_bytes} bytes: upload it with LFS."
                    )
                additions[path] = storage.store_blob(data)
            elif key == "lfsFile":
                path = validate_path(_field(value, "path", str))
                oid = _field(value, "oid", str)
                if not HEX64.match(oid):
                    raise HubError(400, None, f"Invalid LFS oid for {path!r}: 64 lowercase hex characters.")
                if not repo.has_lfs(oid):
                    raise HubError(
                        400, None, f"LFS object {oid} was not uploaded to {repo.id}: upload it through LFS first."
                    )
                additions[path] = storage.lfs_entry(oid, _field(value, "size", int, required=False))
            elif key == "deletedFile":
                deletions.append(validate_path(_field(value, "path", str)))
            elif key == "deletedFolder":
                folders.append(validate_path(_field(value, "path", str).rstrip("/")))
            else:
                raise HubError(400, None, f"Unknown commit operation {key!r}.")
        check_no_file_folder_clash(additions)
        sha, pr = repo.create_commit(
            call.groups[3],
            author=user["name"],
            title=str(header.get("summary") or "Upload"),
            message=str(header.get("description") or ""),
            additions=additions,
            deletions=deletions,
            deleted_folders=folders,
            parent_commit=_field(header, "parentCommit", str, required=False),
            create_pr=_flag(call.request, "create_pr"),
        )
        base = self._url(_TYPE_PREFIXES[repo.type] + repo.id)
        return self._json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{base}/commit/{sha}",
                "pullRequestUrl": f"{base}/discussions/{pr}" if pr else None,
            }
        )

    # -- refs ----------------------------------------------------------------------------------------------------
    def _h_refs(self, call: _Call):
        refs = self._read_repo(call).refs()
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in refs["branches"].items()]
        tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": s} for t, s in refs["tags"].items()]
        out = {"branches": branches, "converts": [], "tags": tags}
        if _flag(call.request, "include_prs"):
            out["pullRequests"] = [
                {"name": n, "ref": f"refs/pr/{n}", "targetCommit": s} for n, s in refs["prs"].items()
            ]
        return self._json(out)

    def _h_commits(self, call: _Call):
        repo = self._read_repo(call)
        history = repo.history(repo.resolve(call.groups[3]))
        return self._json(
            [
                {"id": c.id, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": c.author}]}
                for c in history
            ]
        )

    def _h_create_branch(self, call: _Call):
        repo, body = call.repo, call.body
        start = repo.resolve(_field(body, "startingPoint", str, required=False, default="main"))
        if _field(body, "emptyBranch", bool, required=False):
            raise HubError(400, None, "Empty branches are not supported by the offline Hub.")
        repo.update_ref("branches", call.groups[3], start)
        return self._json({})

    def _h_delete_branch(self, call: _Call):
        call.repo.update_ref("branches", call.groups[3], None)
        return self._json({})

    def _h_create_tag(self, call: _Call):
        repo = call.repo
        repo.update_ref("tags", _field(call.body, "tag", str), repo.resolve(call.groups[3]))
        return self._json({})

    def _h_delete_tag(self, call: _Call):
        call.repo.update_ref("tags", call.groups[3], None)
        return self._json({})

    # -- LFS -----------------------------------------------------------------------------------------------------
    def _h_lfs_batch(self, call: _Call):
        repo, body = call.repo, call.body
        if _field(body, "operation", str) != "upload":
            raise HubError(400, None, "The offline Hub serves LFS downloads through /resolve; batch is for uploads.")
        objects = []
        expires = int(time.time()) + 3600
        for obj in _field(body, "objects", list):
            oid, size = _field(obj, "oid", str), _field(obj, "size", int)
            entry = {"oid": oid, "size": size, "authenticated": True}
            if not HEX64.match(oid) or size < 0:
                entry["error"] = {"code": 422, "message": "oid must be a sha256 (64 hex) and size >= 0."}
            elif size > self.limits.max_file_bytes:
                entry["error"] = {"code": 413, "message": f"Over this Hub's limit of {self.limits.max_file_bytes} B."}
            elif not repo.has_lfs(oid):  # known to *this* repo only: no oracle on other repositories' objects
                signature = self._sign_upload(repo, oid, size, expires)
                query = f"type={repo.type}&repo={repo.id}&size={size}&expires={expires}&signature={signature}"
                api = f"api/{repo.type}s/{repo.id}"
                entry["actions"] = {
                    "upload": {"href": self._url(f"lfs-objects/{oid}?{query}")},
                    "verify": {"href": self._url(f"{api}/lfs-verify/{oid}")},
                }
            objects.append(entry)
        return self._json({"transfer": "basic", "objects": objects}, media_type="application/vnd.git-lfs+json")

    async def _lfs_upload(self, call: _Call, repo: Repository, size: int) -> Response:
        # The client PUTs without Authorization, like to S3: the signed URL from the batch call is the permission.
        oid = call.groups[0]
        if size > self.limits.max_file_bytes:
            raise HubError(413, None, f"LFS object of {size} bytes is over this Hub's limit.")
        declared = call.request.headers.get("content-length")
        if declared is not None and declared != str(size):
            raise HubError(400, None, f"LFS upload of {declared} bytes, but the batch call announced {size}.")
        upload = await self._thread(self.storage.open_lfs_upload, oid, size)
        try:
            await self._stream_body(call.request, size, upload.write, sink_in_thread=True)
            await self._thread(upload.finish)
            await self._thread(repo.grant_lfs, oid)
        except BaseException:
            await anyio.to_thread.run_sync(upload.abort)
            raise
        return Response(status_code=200)

    def _h_lfs_verify(self, call: _Call):
        oid = call.groups[3]
        if not call.repo.has_lfs(oid):
            raise HubError(404, None, f"LFS object {oid} was not uploaded to {call.repo.id}.")
        return self._json({"success": True})

    # -- downloads -----------------------------------------------------------------------------------------------
    def _h_resolve(self, call: _Call):
        prefix, namespace, name, revision, path = call.groups
        repo = self._repo(_PREFIX_TYPES[prefix or ""], namespace, name, call.user)
        sha = repo.resolve(revision)
        entry = repo.commit(sha).files.get(path)
        if entry is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision} of {repo.id}.", sha)
        etag = entry.sha256 or entry.oid
        headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Content-Length": str(entry.size)}
        if entry.sha256:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(entry.size)})
        # streamed from disk in chunks, Range and HEAD included: memory stays flat for any file size
        return _FileResponse(repo.read(entry), headers=headers, media_type="application/octet-stream")


class _FileResponse(FileResponse):
    chunk_size = 1 << 20


def _protocol(limits: HubLimits):
    """uvicorn's h11 protocol, plus a deadline for each request's headers and a cap on open connections."""

    class DeadlineH11Protocol(H11Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            self._deadline = None
            if len(self.connections) > limits.max_connections:
                transport.close()  # over the cap: refused now rather than holding a file descriptor
                return
            self._arm_deadline()

        def on_response_complete(self):
            super().on_response_complete()
            self._arm_deadline()

        def connection_lost(self, exc):
            if getattr(self, "_deadline", None) is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm_deadline(self):
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(limits.header_timeout, self._deadline_passed)

        def _deadline_passed(self):
            waiting_for_headers = self.cycle is None or self.cycle.response_complete
            if waiting_for_headers and not self.transport.is_closing():
                self.transport.close()

    return DeadlineH11Protocol


def _uvicorn_server(app: HubApp, limits: HubLimits, log_level: str = "warning") -> "uvicorn.Server":
    config = uvicorn.Config(
        app,
        http=_protocol(limits),
        lifespan="off",
        log_level=log_level,
        access_log=False,  # URLs may name private repositories
        timeout_keep_alive=max(1, int(limits.header_timeout)),
        timeout_graceful_shutdown=2,
        backlog=limits.backlog,
        h11_max_incomplete_event_size=64 * 1024,  # request line + headers
        server_header=False,
    )
    return uvicorn.Server(config)


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def normalise_tokens(tokens: dict | None) -> dict[str, dict]:
    """`{token: "user"}` or `{token: {"name": "user", "orgs": [...]}}` -> `{token: {"name", "orgs"}}`."""
    out = {}
    for token, user in (tokens or {}).items():
        if isinstance(user, str):
            user = {"name": user, "orgs": []}
        if (
            not isinstance(token, str)
            or not token
            or not isinstance(user, dict)
            or not isinstance(user.get("name"), str)
        ):
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
        limits: a `HubLimits` (body sizes, timeouts, connections); safe defaults when omitted.

    Example:

    ```python
    >>> with LocalHub("hub-data", tokens={"hf_alice": "alice"}) as hub, hub_endpoint(hub.endpoint):
    ...     model.push_to_hub("alice/my-lstm", token="hf_alice")
    ```
    """

    def __init__(
        self,
        root: str | Path,
        tokens: dict | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: HubLimits | None = None,
    ):
        self.storage = HubStorage(root)
        self.tokens = normalise_tokens(tokens)
        self.limits = limits or HubLimits()
        self._address = (host, port)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._endpoint: str | None = None

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalHub is not running: use `with LocalHub(...) as hub:` or call start().")
        return self._endpoint

    def start(self) -> "LocalHub":
        sock = _listen(*self._address, self.limits.backlog)
        host, port = sock.getsockname()[:2]
        app = HubApp(self.storage, self.tokens, self.limits)
        self._endpoint = app.endpoint = f"http://{host}:{port}"
        self._server = _uvicorn_server(app, self.limits)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="local-hub", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The offline Hub did not start on {self._endpoint}.")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(root: str | Path, host: str, port: int, tokens: dict, limits: HubLimits | None = None) -> None:
    """Serve the offline Hub in the foreground until interrupted (`hf-rnn-transfer hub serve`)."""
    limits = limits or HubLimits()
    storage = HubStorage(root)
    sock = _listen(host, port, limits.backlog)
    bound_host, bound_port = sock.getsockname()[:2]
    app = HubApp(storage, normalise_tokens(tokens), limits)
    app.endpoint = f"http://{bound_host}:{bound_port}"
    print(f"Offline Hub serving {Path(root).resolve()} at {app.endpoint} ({len(tokens)} token(s)); Ctrl-C stops.")
    print(f"Point the clients at it: export HF_ENDPOINT={app.endpoint} HF_HUB_DISABLE_XET=1", flush=True)
    try:
        _uvicorn_server(app, limits).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
