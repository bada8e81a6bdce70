"""On-disk repositories of the offline Hub: content-addressed blobs, commits with 40-hex ids, branches, tags, PR refs.

Layout under `root`:

```
{type}s/{namespace}/{name}/repo.json           private flag, creation date
{type}s/{namespace}/{name}/refs.json           {"branches": {...}, "tags": {...}, "prs": {...}}
{type}s/{namespace}/{name}/commits/{sha}.json  parents, message, author, date and the whole file table
{type}s/{namespace}/{name}/.lock               serialises writers (threads and processes)
blobs/{git oid}                                regular file contents, shared by every repository
lfs/{sha256}                                   LFS file contents
{type}s/{namespace}/{name}/lfs-grants/{sha256}   LFS objects this repository may reference (uploaded to it)
tmp/                                           uploads in progress (removed on any failure)
```
Every file is written to a temporary name and renamed into place, and a commit only moves a ref after its
commit file is on disk, so a server killed mid-write never leaves a half repository behind. Every name that reaches
the disk is validated first (repo ids, ref names, file paths, object ids): nothing outside `root` is read or written.
"""

import errno
import hashlib
import json
import os
import re
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

REPO_TYPES = ("model", "dataset", "space")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,39}$")
_PR_REF = re.compile(r"^refs/pr/(\d+)$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
_REF_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*$")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
MAX_PATH_BYTES = 1024
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n"


class HubError(Exception):
    """An expected failure, answered with `status`, an `X-Error-Code` and a message."""

    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


def git_blob_oid(content: bytes) -> str:
    """The id git gives a blob: sha1 of `blob <size>\\0<content>`."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def validate_path(path) -> str:
    """A repository file path as the Hub accepts it: relative, `/`-separated, no `.`/`..`/empty parts or controls."""
    if not isinstance(path, str) or not path:
        raise HubError(400, None, f"Invalid file path {path!r}: give a non-empty relative path like 'dir/file.txt'.")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise HubError(400, None, f"Invalid file path: longer than {MAX_PATH_BYTES} bytes.")
    parts = path.split("/")
    if CONTROL_CHARACTERS.search(path) or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise HubError(
            400, None, f"Invalid file path {path!r}: no leading '/', empty, '.' or '..' parts, backslashes or controls."
        )
    return path


def validate_ref_name(name) -> str:
    """A new branch or tag name: git's rules, and never something that reads as a commit id or a PR ref."""
    if not isinstance(name, str) or not name or len(name) > 200:
        raise HubError(400, None, f"Invalid reference name {name!r}: 1 to 200 characters.")
    if _SHORT_SHA.match(name) or _HEX40.match(name):
        raise HubError(
            400, None, f"Invalid reference name {name!r}: it reads as a commit id, so it could shadow one. Rename it."
        )
    parts = name.split("/")
    if (
        name.startswith("refs/")
        or any(not _REF_SEGMENT.match(p) or p.endswith(".lock") or ".." in p for p in parts)
        or name.endswith(".")
    ):
        raise HubError(
            400,
            None,
            f"Invalid reference name {name!r}: use letters, digits, '.', '_', '-', '+' in '/'-separated parts "
            "(no '..', no leading '.' or '-', not 'refs/...').",
        )
    return name


def check_no_file_folder_clash(paths) -> None:
    """Refuse a file table where a path is both a file and a folder (it would break every snapshot download)."""
    files = set(paths)
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in files:
                raise HubError(400, None, f"{folder!r} cannot be both a file and the folder of {path!r}.")


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def disk_error(err: OSError) -> "HubError":
    """A full disk (or quota, or file-size limit) as the error the client sees; other OS errors are not expected."""
    if err.errno in _DISK_ERRORS:
        return HubError(507, None, "The Hub's disk is full: nothing was stored. Free space on the server and retry.")
    raise err


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise disk_error(err) from err


def _write_json(path: Path, value) -> None:
    _write_atomic(path, json.dumps(value, indent=1, sort_keys=True).encode())


@dataclass
class FileEntry:
    """One file of a commit: its git oid and size, plus the sha256 when it is stored through LFS."""

    oid: str
    size: int
    sha256: str | None = None

    def to_tree(self, path: str) -> dict:
        entry = {"type": "file", "path": path, "oid": self.oid, "size": self.size}
        if self.sha256:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(lfs_pointer(self.sha256, 0))}
        return entry


@dataclass
class Commit:
    id: str
    parents: list[str]
    title: str
    message: str
    author: str
    date: str
    files: dict[str, FileEntry] = field(default_factory=dict)


class Repository:
    """One repository on disk. Readers see whole commits only; writers hold `write_lock()`."""

    def __init__(self, storage: "HubStorage", repo_type: str, namespace: str, name: str):
        self.storage, self.type, self.namespace, self.name = storage, repo_type, namespace, name
        self.path = storage.root / f"{repo_type}s" / namespace / name
        self.id = f"{namespace}/{name}"

    # -- metadata ------------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / "repo.json").exists()

    @property
    def meta(self) -> dict:
        return json.loads((self.path / "repo.json").read_text())

    def set_private(self, private: bool) -> None:
        with self.write_lock():
            _write_json(self.path / "repo.json", {**self.meta, "private": bool(private)})

    def refs(self) -> dict:
        return json.loads((self.path / "refs.json").read_text())

    # -- commits -------------------------------------------------------------------------------------------------
    def commit(self, sha: str) -> Commit:
        data = json.loads((self.path / "commits" / f"{sha}.json").read_text())
        data["files"] = {p: FileEntry(**e) for p, e in data["files"].items()}
        return Commit(**data)

    def resolve(self, revision: str) -> str:
        """Commit id of a branch, tag, `refs/pr/N`, full or short sha; `RevisionNotFound` otherwise."""
        commits = self.path / "commits"
        if _HEX40.match(revision) and (commits / f"{revision}.json").exists():
            return revision  # a full commit id always means that commit (ref names that look like one are refused)
        refs = self.refs()
        if revision in refs["branches"]:
            return refs["branches"][revision]
        if revision in refs["tags"]:
            return refs["tags"][revision]
        if match := _PR_REF.match(revision):
            if match.group(1) in refs["prs"]:
                return refs["prs"][match.group(1)]
        if _SHORT_SHA.match(revision):
            found = [p.stem for p in commits.glob(f"{revision}*.json")]
            if len(found) == 1:
                return found[0]
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def history(self, sha: str) -> list[Commit]:
        """Commits reachable from `sha`, newest first (first-parent history)."""
        out = []
        while sha:
            commit = self.commit(sha)
            out.append(commit)
            sha = commit.parents[0] if commit.parents else None
        return out

    @contextmanager
    def write_lock(self):
        lock = self.storage.thread_lock(self.path)
        with lock:
            self.path.mkdir(parents=True, exist_ok=True)
            with FileLock(self.path / ".lock"):
                yield

    def create_commit(
        self,
        revision: str,
        author: str,
        title: str,
        message: str = "",
        additions: dict[str, FileEntry] | None = None,
        deletions: list[str] = (),
        deleted_folders: list[str] = (),
        parent_commit: str | None = None,
        create_pr: bool = False,
    ) -> tuple[str, int | None]:
        """Apply one commit atomically on top of `revision`; returns the commit id and the PR number if one."""
        with self.write_lock():
            head = self.resolve(revision)
            if parent_commit is not None and parent_commit != head:
                raise HubError(
                    412, None, f"A commit has happened since {parent_commit}: {revision} is now at {head}. Pull first."
                )
            files = dict(self.commit(head).files)
            for path in deletions:
                if path not in files:
                    raise HubError(404, "EntryNotFound", f"Cannot delete {path}: it is not in {revision}.", head)
                del files[path]
            for folder in deleted_folders:
                prefix = folder.rstrip("/") + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
            for path in additions or {}:
                validate_path(path)
            files.update(additions or {})
            check_no_file_folder_clash(files)
            sha = self._write_commit([head], author, title, message, files)
            refs = self.refs()
            pr_number = None
            if create_pr:
                pr_number = max((int(n) for n in refs["prs"]), default=0) + 1
                refs["prs"][str(pr_number)] = sha
            elif revision in refs["tags"] or _HEX40.match(revision) or _PR_REF.match(revision):
                if match := _PR_REF.match(revision):
                    refs["prs"][match.group(1)] = sha
                else:
                    raise HubError(400, None, f"Cannot commit to {revision}: commits go to a branch or a PR.")
            else:
                refs["branches"][revision] = sha
            _write_json(self.path / "refs.json", refs)
            return sha, pr_number

    def _write_commit(self, parents, author, title, message, files: dict[str, FileEntry]) -> str:
        body = {
            "parents": parents,
            "title": title,
            "message": message,
            "author": author,
            "date": now_iso(),
            "files": {p: vars(e) for p, e in sorted(files.items())},
        }
        sha = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()
        _write_json(self.path / "commits" / f"{sha}.json", {"id": sha, **body})
        return sha

    def update_ref(self, kind: str, name: str, target: str | None, must_not_exist: bool = True) -> None:
        """Create (`target` set) or delete (`target=None`) a branch or tag."""
        if target is not None:
            validate_ref_name(name)
        with self.write_lock():
            refs = self.refs()
            if target is None:
                if name not in refs[kind]:
                    raise HubError(404, "RevisionNotFound", f"Invalid rev id: {name}")
                if kind == "branches" and name == "main":
                    raise HubError(403, None, "The main branch cannot be deleted.")
                del refs[kind][name]
            else:
                if must_not_exist and name in refs[kind]:
                    raise HubError(409, None, f"Reference {name} already exists.")
                refs[kind][name] = target
            _write_json(self.path / "refs.json", refs)

    # -- file contents -------------------------------------------------------------------------------------------
    def read(self, entry: FileEntry) -> Path:
        return self.storage.lfs_path(entry.sha256) if entry.sha256 else self.storage.blob_path(entry.oid)

    def _grant_path(self, sha256: str) -> Path:
        if not HEX64.match(sha256):
            raise HubError(400, None, f"Invalid LFS oid {sha256!r}: 64 lowercase hex characters (a sha256).")
        return self.path / "lfs-grants" / sha256

    def grant_lfs(self, sha256: str) -> None:
        """Let this repository reference an LFS object: its content was uploaded to it."""
        _write_atomic(self._grant_path(sha256), b"")

    def has_lfs(self, sha256: str) -> bool:
        """Whether this repository may reference the object (uploaded to it, and stored)."""
        return self._grant_path(sha256).exists() and self.storage.lfs_path(sha256).exists()


class HubStorage:
    """All repositories under one root directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in (self.root / "tmp").glob("*.part"):  # uploads cut off by a crash: their space comes back
            stale.unlink(missing_ok=True)
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def thread_lock(self, path: Path) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(path, threading.Lock())

    def repo(self, repo_type: str, repo_id: str) -> Repository:
        if repo_type not in REPO_TYPES:
            raise HubError(400, None, f"Unknown repo type {repo_type!r}; use one of {REPO_TYPES}.")
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(_NAME.match(p) for p in parts) or ".." in repo_id:
            raise HubError(
                400, None, f"Invalid repo id {repo_id!r}: use 'namespace/name' (letters, digits, '-', '_', '.')."
            )
        return Repository(self, repo_type, parts[0], parts[1])

    def repositories(self, repo_type: str):
        """Every existing repository of `repo_type`, sorted by id (folders that are not one are passed over)."""
        folder = self.root / f"{repo_type}s"
        namespaces = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        for namespace in namespaces:
            for path in sorted(p for p in namespace.iterdir() if p.is_dir()):
                try:
                    repo = self.repo(repo_type, f"{namespace.name}/{path.name}")  # the id rules of every request
                except HubError:
                    continue
                if repo.exists():
                    yield repo

    def create_repo(self, repo_type: str, repo_id: str, owner: str, private: bool) -> tuple[Repository, bool]:
        """Create a repository with an initial commit holding `.gitattributes`; returns (repo, created)."""
        repo = self.repo(repo_type, repo_id)
        with repo.write_lock():
            if repo.exists():
                return repo, False
            entry = self.store_blob(GITATTRIBUTES)
            sha = repo._write_commit([], owner, "initial commit", "", {".gitattributes": entry})
            _write_json(repo.path / "refs.json", {"branches": {"main": sha}, "tags": {}, "prs": {}})
            _write_json(repo.path / "repo.json", {"private": bool(private), "createdAt": now_iso(), "owner": owner})
        return repo, True

    def delete_repo(self, repo: Repository) -> None:
        with repo.write_lock():
            # keep the blobs: they are shared and content-addressed
            for child in list(repo.path.iterdir()):
                if child.name != ".lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()

    def blob_path(self, oid: str) -> Path:
        if not isinstance(oid, str) or not _HEX40.match(oid):
            raise HubError(400, None, f"Invalid blob oid {oid!r}.")
        return self.root / "blobs" / oid

    def lfs_path(self, sha256: str) -> Path:
        if not isinstance(sha256, str) or not HEX64.match(sha256):
            raise HubError(400, None, f"Invalid LFS oid {sha256!r}: 64 lowercase hex characters (a sha256).")
        return self.root / "lfs" / sha256

    def open_lfs_upload(self, sha256: str, size: int) -> "LfsUpload":
        """Start streaming an LFS object to disk; `finish()` checks its size and hash and stores it."""
        return LfsUpload(self, sha256, size)

    def store_blob(self, content: bytes) -> FileEntry:
        oid = git_blob_oid(content)
        path = self.blob_path(oid)
        if not path.exists():
            _write_atomic(path, content)
        return FileEntry(oid=oid, size=len(content))

    def lfs_entry(self, sha256: str, size: int | None = None) -> FileEntry:
        path = self.lfs_path(sha256)
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise HubError(400, None, f"Invalid LFS size {size!r}: a non-negative integer.")
        if not path.exists():
            raise HubError(400, None, f"LFS object {sha256} was never uploaded.")
        actual = path.stat().st_size
        if size is not None and size != actual:
            raise HubError(400, None, f"LFS object {sha256} has {actual} bytes, not {size}.")
        return FileEntry(oid=git_blob_oid(lfs_pointer(sha256, actual)), size=actual, sha256=sha256)


class LfsUpload:
    """One LFS object being written: to `root/tmp` first, hashed on the way, renamed into `lfs/` once it matches."""

    def __init__(self, storage: HubStorage, sha256: str, size: int):
        self.target = storage.lfs_path(sha256)  # validates the oid
        self.sha256, self.size, self.received = sha256, size, 0
        self._hash = hashlib.sha256()
        tmp_dir = storage.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp_dir / f"{sha256}.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}.part"
        self._handle = open(self.tmp, "wb")

    def write(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.size:
            raise HubError(400, None, f"LFS upload is longer than its declared {self.size} bytes.")
        self._hash.update(chunk)
        try:
            self._handle.write(chunk)
        except OSError as err:
            raise disk_error(err) from err

    def finish(self) -> None:
        try:
            self._handle.close()
        except OSError as err:
            raise disk_error(err) from err
        if self.received != self.size or self._hash.hexdigest() != self.sha256:
            raise HubError(400, None, f"LFS upload does not match its oid {self.sha256} and size {self.size}.")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        self._handle.close()
        self.tmp.unlink(missing_ok=True)
