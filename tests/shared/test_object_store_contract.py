"""The ObjectStore contract, run against the local folder store and S3 (moto); then what only
the local store must refuse: keys that escape its folder."""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
import requests
from moto import mock_aws

from shared.aws.s3 import S3ObjectStore
from shared.embedded.files import META_DIR, LocalObjectStore
from shared.errors import DressvisionError, NotFoundError, ObjectStoreError, UnsafeKeyError
from shared.ports import ObjectStore

BUCKET = "dressvision-test-catalog"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "objects", name=BUCKET)
        return
    request.getfixturevalue("aws_env")  # fake credentials, from tests/conftest.py
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield S3ObjectStore(BUCKET)


def fetch(url: str) -> bytes:
    """What a browser would get from `url` (moto answers the S3 ones, offline)."""
    if url.startswith("file://"):
        with urllib.request.urlopen(url) as response:
            return response.read()
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return response.content


def quoted_md5(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


# -- the contract, on both backends ---------------------------------------------------------


def test_put_then_get_returns_body_and_info(store: ObjectStore) -> None:
    body = b"\xff\xd8 not really a jpeg"
    put = store.put(
        "catalog/p1/a.jpg", body, metadata={"Image-Id": "p1/a"}, content_type="image/jpeg"
    )
    got = store.get("catalog/p1/a.jpg")

    assert got.body == body
    assert got.info == put
    assert got.info.key == "catalog/p1/a.jpg"
    assert got.info.size == len(body)
    assert got.info.etag == quoted_md5(body)
    assert got.info.metadata == {"image-id": "p1/a"}  # lower-cased, as S3 does
    assert got.info.content_type == "image/jpeg"


def test_head_matches_get_without_the_body(store: ObjectStore) -> None:
    store.put("a.json", b"{}", metadata={"kind": "manifest"}, content_type="application/json")

    assert store.head("a.json") == store.get("a.json").info
    assert store.exists("a.json")
    assert not store.exists("b.json")


def test_content_type_defaults_like_s3(store: ObjectStore) -> None:
    info = store.put("blob", b"x")

    assert info.content_type == store.head("blob").content_type == "binary/octet-stream"
    assert store.head("blob").metadata == {}


def test_overwrite_replaces_body_and_metadata(store: ObjectStore) -> None:
    store.put("k", b"old", metadata={"a": "1"}, content_type="text/plain")
    store.put("k", b"newer", metadata={"b": "2"})

    got = store.get("k")
    assert got.body == b"newer"
    assert got.info.metadata == {"b": "2"}
    assert got.info.etag == quoted_md5(b"newer")
    assert got.info.content_type == "binary/octet-stream"


def test_put_if_absent_creates_once_and_never_overwrites(store: ObjectStore) -> None:
    assert store.put_if_absent("loop/claim.json", b"first", content_type="application/json")
    assert not store.put_if_absent("loop/claim.json", b"second")
    got = store.get("loop/claim.json")
    assert got.body == b"first"
    assert got.info.content_type == "application/json"
    assert got.info.etag == quoted_md5(b"first")
    store.delete("loop/claim.json")
    assert store.put_if_absent("loop/claim.json", b"again")  # a released claim can be retaken


def test_put_if_absent_has_one_winner_among_concurrent_callers(store: ObjectStore) -> None:
    barrier = threading.Barrier(6)

    def claim(n: int) -> bool:
        barrier.wait(timeout=10)
        return store.put_if_absent("loop/claim.json", str(n).encode())

    with ThreadPoolExecutor(6) as pool:
        won = list(pool.map(claim, range(6)))
    assert won.count(True) == 1
    assert store.get("loop/claim.json").body == str(won.index(True)).encode()


def test_read_range(store: ObjectStore) -> None:
    store.put("r", b"0123456789")

    assert store.read_range("r", 2, 3) == b"234"
    assert store.read_range("r", 0, 10) == b"0123456789"
    assert store.read_range("r", 8, 5) == b"89"  # fewer at the end
    assert store.read_range("r", 10, 5) == b""  # nothing past the end
    assert store.read_range("r", 3, 0) == b""
    with pytest.raises(ValueError):
        store.read_range("r", -1, 2)


def test_list_prefix_sorted(store: ObjectStore) -> None:
    for key in ["b", "a/c/d", "ab", "a/b", "catalog/p 1/é.jpg"]:
        store.put(key, b"x")

    assert list(store.list()) == ["a/b", "a/c/d", "ab", "b", "catalog/p 1/é.jpg"]
    assert list(store.list("a/")) == ["a/b", "a/c/d"]
    assert list(store.list("a")) == ["a/b", "a/c/d", "ab"]  # a string prefix, not a folder
    assert list(store.list("a/c")) == ["a/c/d"]
    assert list(store.list("catalog/p 1/")) == ["catalog/p 1/é.jpg"]
    assert list(store.list("zzz/")) == []


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("x/y", b"1")
    store.put("x/z", b"2")

    store.delete("x/y")
    store.delete("x/y")
    store.delete("never/there")

    assert not store.exists("x/y")
    assert list(store.list()) == ["x/z"]


def test_delete_then_reuse_prefix_as_key(store: ObjectStore) -> None:
    store.put("p/q", b"1")
    store.delete("p/q")

    store.put("p", b"2")  # no leftover folder may block it

    assert list(store.list()) == ["p"]


def test_missing_key_raises_not_found(store: ObjectStore) -> None:
    for call in (store.get, store.head, lambda key: store.read_range(key, 0, 4)):
        with pytest.raises(NotFoundError):
            call("missing/key")


def test_url_serves_the_object(store: ObjectStore) -> None:
    store.put("catalog/p 1/a b.jpg", b"pixels", content_type="image/jpeg")

    url = store.url("catalog/p 1/a b.jpg", expires_s=60)

    assert fetch(url) == b"pixels"


# -- the S3 adapter's error mapping ---------------------------------------------------------


def test_s3_other_errors_name_bucket_and_key(aws_env: None) -> None:
    with mock_aws():
        store = S3ObjectStore("dressvision-no-such-bucket")
        with pytest.raises(ObjectStoreError, match="s3://dressvision-no-such-bucket/k") as err:
            store.put("k", b"x")
    assert err.value.__cause__ is not None


def test_s3_client_is_created_lazily(aws_env: None) -> None:
    store = S3ObjectStore(BUCKET)

    assert store._client is None
    assert store.client.meta.config.retries["mode"] == "standard"


# -- local only: keys that would escape the folder -------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects", name=BUCKET)


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "a/../b",
        "a//b",
        "a/b/",
        "./a",
        "a\\b",
        "..\\x",
        "a\x00b",
        "",
        f"{META_DIR}/objects/x",
    ],
)
def test_local_refuses_unsafe_keys(local: LocalObjectStore, key: str) -> None:
    with pytest.raises(UnsafeKeyError):
        local.put(key, b"x")
    with pytest.raises(UnsafeKeyError):
        local.get(key)
    with pytest.raises(UnsafeKeyError):
        local.delete(key)
    assert not (local.root.parent / "x").exists()


def test_local_refuses_unsafe_list_prefix(local: LocalObjectStore) -> None:
    with pytest.raises(UnsafeKeyError):
        list(local.list("../"))


def test_local_refuses_symlink_escape(local: LocalObjectStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    os.symlink(outside, local.root / "link")
    os.symlink(outside / "secret", local.root / "file-link")

    with pytest.raises(UnsafeKeyError):
        local.get("link/secret")
    with pytest.raises(UnsafeKeyError):
        local.get("file-link")
    with pytest.raises(UnsafeKeyError):
        local.put("link/new", b"x")
    with pytest.raises(UnsafeKeyError):
        local.delete("link/secret")
    assert not (outside / "new").exists()
    assert (outside / "secret").read_bytes() == b"secret"
    assert list(local.list()) == []


def test_local_keeps_sidecars_and_temp_files_out_of_the_key_space(
    local: LocalObjectStore,
) -> None:
    local.put("a", b"1", metadata={"m": "v"})
    local.put("a", b"2", metadata={"m": "w"})

    assert list(local.list()) == ["a"]
    assert sorted(p.name for p in local.root.iterdir()) == sorted(["a", META_DIR])
    assert not any((local.root / META_DIR / "tmp").iterdir())


def test_local_file_dropped_in_by_hand_is_an_object(local: LocalObjectStore) -> None:
    (local.root / "dropped.bin").write_bytes(b"abc")

    info = local.head("dropped.bin")

    assert (info.size, info.etag, info.metadata) == (3, quoted_md5(b"abc"), {})
    assert local.get("dropped.bin").body == b"abc"


def test_local_object_and_prefix_with_one_name_is_a_clear_error(
    local: LocalObjectStore,
) -> None:
    local.put("a", b"1")

    with pytest.raises(ObjectStoreError, match="nest") as err:
        local.put("a/b", b"2")
    assert isinstance(err.value, DressvisionError)
    assert local.get("a").body == b"1"
