"""An ObjectStore on one S3 bucket. The boto3 client is injectable and created on first use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shared.errors import NotFoundError, ObjectStoreError
from shared.ports import ObjectInfo, ObjectStore, StoredObject, check_user_metadata

# Error codes S3 uses for a missing key: GetObject says NoSuchKey, HeadObject (no body) says 404.
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
# A conditional create lost: the key exists (412) or another conditional write won (409).
_ALREADY_THERE = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


class S3ObjectStore(ObjectStore):
    """Objects in `bucket`. User metadata keys come back lower-cased (S3 does that)."""

    def __init__(self, bucket: str, *, client: Any | None = None):
        self.name = bucket
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        """The S3 client, created on first use with standard retries (throttling, 5xx)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client("s3", config=Config(retries={"mode": "standard"}))
        return self._client

    def put(
        self,
        key: str,
        body: bytes,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        meta = {k.lower(): str(v) for k, v in (metadata or {}).items()}
        check_user_metadata(meta)  # a clear error here rather than S3's signature mismatch
        extra = {"ContentType": content_type} if content_type else {}
        response = self._call(
            "put_object", key, Bucket=self.bucket, Key=key, Body=body, Metadata=meta, **extra
        )
        return ObjectInfo(
            key=key,
            size=len(body),
            etag=response.get("ETag"),
            metadata=meta,
            content_type=content_type or "binary/octet-stream",  # S3's default
        )

    def put_if_absent(self, key: str, body: bytes, *, content_type: str | None = None) -> bool:
        """S3's conditional write (`If-None-Match: *`): 412 when the key exists, 409 when a
        concurrent conditional write of the same key won."""
        extra = {"ContentType": content_type} if content_type else {}
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*", **extra)
        except _boto_errors() as exc:
            if _code(exc) in _ALREADY_THERE:
                return False
            raise self._error("put_object", key, exc) from exc
        return True

    def get(self, key: str) -> StoredObject:
        response = self._call("get_object", key, Bucket=self.bucket, Key=key)
        with response["Body"] as stream:
            body = stream.read()
        return StoredObject(info=_info(key, response, size=len(body)), body=body)

    def head(self, key: str) -> ObjectInfo:
        response = self._call("head_object", key, Bucket=self.bucket, Key=key)
        return _info(key, response, size=response["ContentLength"])

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError(f"start and length must be >= 0, got {start} and {length}")
        if length == 0:
            self.head(key)  # still NotFoundError for a missing key
            return b""
        try:
            response = self._call(
                "get_object",
                key,
                Bucket=self.bucket,
                Key=key,
                Range=f"bytes={start}-{start + length - 1}",
            )
        except ObjectStoreError as exc:
            # A range that starts past the end is an error on S3; the port says "fewer bytes".
            if _code(exc.__cause__) == "InvalidRange":
                return b""
            raise
        with response["Body"] as stream:
            return stream.read()

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix`, sorted (all pages are read first)."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            keys = [
                item["Key"]
                for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
        except _boto_errors() as exc:
            raise self._error("list_objects_v2", f"{prefix}*", exc) from exc
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        self._call("delete_object", key, Bucket=self.bucket, Key=key)

    def restore(self, key: str, etag: str | None) -> bool:
        """Copy the newest noncurrent version of `key` whose ETag is `etag` over the current one
        (the bucket must be versioned; the catalog bucket is). The bad version stays as a
        noncurrent version until the lifecycle rule expires it."""
        if not etag:
            return False
        paginator = self.client.get_paginator("list_object_versions")
        try:
            versions = [
                v
                for page in paginator.paginate(Bucket=self.bucket, Prefix=key)
                for v in page.get("Versions", [])
                if v["Key"] == key and not v.get("IsLatest") and v.get("VersionId") != "null"
            ]
        except _boto_errors() as exc:
            raise self._error("list_object_versions", key, exc) from exc
        versions.sort(key=lambda v: v["LastModified"], reverse=True)
        for version in versions:
            if version.get("ETag") == etag:
                self._call(
                    "copy_object",
                    key,
                    Bucket=self.bucket,
                    Key=key,
                    CopySource={
                        "Bucket": self.bucket,
                        "Key": key,
                        "VersionId": version["VersionId"],
                    },
                    MetadataDirective="COPY",
                )
                return True
        return False

    def url(self, key: str, expires_s: int = 3600) -> str:
        """A presigned GET URL valid for `expires_s` seconds."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
        )

    def _call(self, operation: str, key: str, **kwargs: Any) -> dict:
        try:
            return getattr(self.client, operation)(**kwargs)
        except _boto_errors() as exc:
            raise self._error(operation, key, exc) from exc

    def _error(self, operation: str, key: str, exc: Exception) -> Exception:
        """The domain exception for a failed call on `key`."""
        where = f"s3://{self.bucket}/{key}"
        if _code(exc) in _MISSING:
            return NotFoundError(f"no object at {where}")
        return ObjectStoreError(
            f"S3 {operation} on {where} failed: {exc}. Check that bucket {self.bucket!r} exists "
            "and that this role may access it."
        )


def _code(exc: BaseException | None) -> str | None:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _boto_errors() -> tuple[type[Exception], ...]:
    # Imported here so that importing this module does not load botocore.
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def _info(key: str, response: Mapping[str, Any], *, size: int) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=size,
        etag=response.get("ETag"),
        metadata=dict(response.get("Metadata", {})),
        content_type=response.get("ContentType"),
    )
