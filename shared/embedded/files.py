"""An ObjectStore in a local folder: one file per object, S3's behaviour where it shows.

Layout under `root`: objects at `root/<key>`; a JSON sidecar per object (metadata, content type,
etag) and temporary files under `root/.dressvision-meta/`, a name no key may start with, so
`list()` only ever sees real keys. With `versioned=True` (the catalog, as its S3 bucket is
versioned) an overwritten object's previous bytes and sidecar are kept under
`.dressvision-meta/versions/<hash of key>/`, one per distinct etag, so `restore` can bring a
good photo back after a bad re-upload. Every file is written to a temporary file and moved into
place with `os.replace`, so a reader sees the old or the new object, never half of one. The
object and its sidecar are two files: a reader racing a writer may briefly pair a new body with
old metadata; `get` recomputes the etag from the body it read, so that etag is always right.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from shared.errors import NotFoundError, ObjectStoreError, UnsafeKeyError
from shared.ports import ObjectInfo, ObjectStore, StoredObject, check_user_metadata

META_DIR = ".dressvision-meta"
DEFAULT_CONTENT_TYPE = "binary/octet-stream"  # what S3 reports when none was given
MAX_KEY_BYTES = 1024  # S3's limit


def etag_of(body: bytes) -> str:
    """S3's etag of a single-part upload: the quoted MD5 hex digest of the body."""
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


def check_key(key: str) -> None:
    """Raise `UnsafeKeyError` unless `key` is a relative '/'-separated key that stays inside a
    folder: no absolute path, '..', '.', empty segment, backslash, NUL, or reserved name."""
    if not isinstance(key, str) or not key:
        raise UnsafeKeyError(f"object key must be a non-empty string, got {key!r}")
    if "\x00" in key or "\\" in key:
        raise UnsafeKeyError(f"object key {key!r} contains a NUL or a backslash; use '/'")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise UnsafeKeyError(f"object key is longer than {MAX_KEY_BYTES} bytes: {key[:60]!r}...")
    segments = key.split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise UnsafeKeyError(
            f"object key {key!r} must be relative, without empty, '.' or '..' segments"
        )
    if segments[0] == META_DIR:
        raise UnsafeKeyError(f"object key {key!r} uses the reserved folder {META_DIR!r}")


class LocalObjectStore(ObjectStore):
    """Objects as files under `root` (created if missing); `name` stands for the bucket."""

    def __init__(self, root: Path, *, name: str, versioned: bool = False):
        self.name = name
        self.versioned = versioned
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self._root = root.resolve()
        self._meta = self._root / META_DIR / "objects"
        self._tmp = self._root / META_DIR / "tmp"
        self._versions = self._root / META_DIR / "versions"
        self._meta.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self._root

    def put(
        self,
        key: str,
        body: bytes,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        """Write `body` at `key` atomically, with its metadata (keys lower-cased, like S3)."""
        path = self._path(key)
        check_user_metadata(metadata or {})
        info = ObjectInfo(
            key=key,
            size=len(body),
            etag=etag_of(body),
            metadata={k.lower(): str(v) for k, v in (metadata or {}).items()},
            content_type=content_type or DEFAULT_CONTENT_TYPE,
        )
        sidecar = {"etag": info.etag, "metadata": info.metadata, "content_type": info.content_type}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.versioned and path.is_file():
                self._keep_version(key, path)
            self._write_atomic(path, body)
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
            # S3 can hold both 'a' and 'a/b'; a folder cannot.
            raise ObjectStoreError(
                f"cannot write {key!r} in local store {self.name!r} ({self._root}): an object "
                "and a key prefix share a name there; pick keys that do not nest under objects"
            ) from exc
        self._write_atomic(self._sidecar(key), json.dumps(sidecar).encode())
        return info

    def put_if_absent(self, key: str, body: bytes, *, content_type: str | None = None) -> bool:
        """A hard link from a complete temporary file: `link` fails if the key exists, so of
        concurrent callers (threads or processes) one wins, and readers never see half."""
        path = self._path(key)
        fd, tmp = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(tmp, path)
        except FileExistsError:
            return False
        except (NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectStoreError(
                f"cannot write {key!r} in local store {self.name!r}: an object and a key prefix "
                "share a name there"
            ) from exc
        finally:
            os.unlink(tmp)
        sidecar = {
            "etag": etag_of(body),
            "metadata": {},
            "content_type": content_type or DEFAULT_CONTENT_TYPE,
        }
        self._write_atomic(self._sidecar(key), json.dumps(sidecar).encode())
        return True

    def get(self, key: str) -> StoredObject:
        path = self._existing(key)
        body = path.read_bytes()
        return StoredObject(info=self._info(key, path, body=body), body=body)

    def head(self, key: str) -> ObjectInfo:
        path = self._existing(key)
        return self._info(key, path)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError(f"start and length must be >= 0, got {start} and {length}")
        path = self._existing(key)
        with path.open("rb") as f:
            f.seek(start)
            return f.read(length)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix` (a plain string prefix, like S3's), sorted."""
        folder = prefix.rpartition("/")[0]
        if folder:
            check_key(folder)
        start = self._root / folder
        if not start.is_dir() or not self._inside(start):
            return iter(())
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            if Path(dirpath) == self._root and META_DIR in dirnames:
                dirnames.remove(META_DIR)
            for filename in filenames:
                path = Path(dirpath, filename)
                key = path.relative_to(self._root).as_posix()
                if key.startswith(prefix) and (not path.is_symlink() or self._inside(path)):
                    keys.append(key)
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        path = self._path(key)
        for target in (path, self._sidecar(key)):
            try:
                target.unlink()
            except FileNotFoundError:
                pass
            except IsADirectoryError:  # a key prefix, not an object: nothing to delete
                return
        self._prune_empty_folders(path.parent)

    def restore(self, key: str, etag: str | None) -> bool:
        """Put the kept version of `key` with `etag` back in place (see the module docstring)."""
        if not self.versioned or not etag:
            return False
        kept = self._versions / _key_hash(key) / etag.strip('"')
        try:
            body = (kept / "body").read_bytes()
            sidecar = json.loads((kept / "sidecar.json").read_text())
        except FileNotFoundError:
            return False
        self.put(
            key, body, metadata=sidecar.get("metadata"), content_type=sidecar.get("content_type")
        )
        return True

    def url(self, key: str, expires_s: int = 3600) -> str:
        """A `file://` URL (it does not expire; `expires_s` is for S3's signed URLs)."""
        return self._path(key).as_uri()

    # -- internals --------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        check_key(key)
        path = self._root / key
        if not self._inside(path):
            raise UnsafeKeyError(
                f"object key {key!r} resolves outside {self._root} (through a symbolic link)"
            )
        return path

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self._root)

    def _existing(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise NotFoundError(f"no object {key!r} in local store {self.name!r} ({self._root})")
        return path

    def _sidecar(self, key: str) -> Path:
        # Hashed names: flat, bounded length, and never clash with each other or with keys.
        return self._meta / f"{_key_hash(key)}.json"

    def _keep_version(self, key: str, path: Path) -> None:
        """Keep the current object of `key` (one copy per distinct etag) before it is replaced."""
        info = self._info(key, path)
        kept = self._versions / _key_hash(key) / (info.etag or "").strip('"')
        if (kept / "body").is_file():
            return
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, kept / "body")
        sidecar = {"etag": info.etag, "metadata": dict(info.metadata)}
        sidecar["content_type"] = info.content_type
        (kept / "sidecar.json").write_text(json.dumps(sidecar))

    def _info(self, key: str, path: Path, *, body: bytes | None = None) -> ObjectInfo:
        try:
            sidecar = json.loads(self._sidecar(key).read_text())
        except FileNotFoundError:
            sidecar = {}  # a file dropped into the folder by hand: an object without metadata
        if body is not None:  # the etag of the bytes actually read, even mid-overwrite
            etag, size = etag_of(body), len(body)
        else:
            size = path.stat().st_size
            etag = sidecar.get("etag") or etag_of(path.read_bytes())
        return ObjectInfo(
            key=key,
            size=size,
            etag=etag,
            metadata=sidecar.get("metadata", {}),
            content_type=sidecar.get("content_type", DEFAULT_CONTENT_TYPE),
        )

    def _write_atomic(self, path: Path, data: bytes) -> None:
        # The temporary file lives on the same file system as `path`, so os.replace is atomic.
        fd, tmp = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _prune_empty_folders(self, folder: Path) -> None:
        # S3 has no folders: once its last object goes, a prefix must not block a later put.
        while folder != self._root and self._inside(folder):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
