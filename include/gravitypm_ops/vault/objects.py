"""Single objects in the vault's bucket: the S3 calls every other part of the vault builds on.

Every write goes through here, so every object gets the vault's protection: encryption at rest
(SSE-S3 or SSE-KMS) and, with `object_lock_days`, Object Lock (COMPLIANCE) on the version
written. Only the mutable objects (status.json, leases) are written overwritable and unlocked.
Callers outside the vault package see VaultError subclasses, never the S3 client's errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from gravitypm_ops.vault.layout import ObjectMissing, StoreError, VaultError, WriteConflict
from gravitypm_ops.vault.streams import PART_SIZE, ArtifactUpload, Protection

log = logging.getLogger(__name__)


def s3_client(conn_id: str):
    """A boto3 S3 client for an Airflow AWS connection (endpoint_url in its extra for S3-compatibles)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id).get_conn()


def error_code(err) -> str:
    """The S3 error code of a botocore ClientError ("NoSuchKey", "404", "PreconditionFailed", …)."""
    return str(getattr(err, "response", {}).get("Error", {}).get("Code"))


def _body(body: dict | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body, indent=2, sort_keys=True, default=str).encode()


class ObjectStore:
    """A bucket + prefix reached through one S3 client, with the protection every write gets."""

    def __init__(self, bucket: str, prefix: str, s3_client, protection: Protection = Protection()):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.s3 = s3_client
        self.protection = protection

    # --- writing ----------------------------------------------------------------------------
    def put_once(self, key: str, body: dict | bytes, content_type: str = "application/json") -> bool:
        """Write a new object, never over an existing one (If-None-Match: *), encrypted and locked.

        A dict is stored as JSON, bytes as they are. Returns False, writing nothing, when the key
        already exists. Raises WriteConflict while another writer is writing the same key.
        """
        try:
            answer = self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=_body(body), ContentType=content_type, IfNoneMatch="*",
                **self.protection.encryption_args(),
            )
        except self.s3.exceptions.ClientError as err:
            code = error_code(err)
            if code == "PreconditionFailed":
                return False
            if code == "ConditionalRequestConflict":
                raise WriteConflict(f"{key}: another writer is writing it right now") from None
            raise
        self.protect(key, answer.get("VersionId"))
        return True

    def put(self, key: str, body: dict | bytes) -> None:
        """Write (or rewrite) a JSON object, encrypted. Not locked: only for objects that are
        rewritten or deleted later (status.json, leases)."""
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=_body(body), ContentType="application/json",
                           **self.protection.encryption_args())

    def upload(self, key: str, part_size: int = PART_SIZE) -> ArtifactUpload:
        """A streaming multipart upload to `key`; lock the version `complete()` returns with `protect`."""
        return ArtifactUpload(self.s3, self.bucket, key, self.protection, part_size)

    def protect(self, key: str, version_id: str | None) -> None:
        """Apply the vault's Object Lock (if any) to an object written by other means (upload, copy)."""
        days = self.protection.object_lock_days
        if not days:
            return
        until = datetime.now(UTC) + timedelta(days=days)
        args = {"VersionId": version_id} if version_id else {}
        self.s3.put_object_retention(
            Bucket=self.bucket, Key=key, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until}, **args
        )

    # --- reading ----------------------------------------------------------------------------
    def open_object(self, key: str):
        """The object's body as a stream (close it); ObjectMissing when there is none."""
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except self.s3.exceptions.NoSuchKey:
            raise ObjectMissing(f"{key}: not in bucket {self.bucket!r}") from None

    def read_bytes(self, key: str) -> bytes | None:
        """A small object's bytes, None when there is none."""
        try:
            body = self.open_object(key)
        except ObjectMissing:
            return None
        with body:
            return body.read()

    def read_json(self, key: str) -> dict | None:
        """A JSON object, None when there is none (ValueError when it is not JSON)."""
        data = self.read_bytes(key)
        return None if data is None else json.loads(data)

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix`, in key order."""
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield obj["Key"]
        except self.s3.exceptions.NoSuchBucket:
            raise VaultError(f"vault bucket {self.bucket!r} does not exist (config key vault_bucket)") from None

    def list_prefixes(self, prefix: str) -> list[str]:
        """The "folders" right below `prefix` (full prefixes, ending in "/")."""
        found = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix,
                                                                       Delimiter="/"):
            found.extend(common["Prefix"] for common in page.get("CommonPrefixes", []))
        return found

    def object_versions(self, prefix: str) -> dict | None:
        """On a versioned bucket: {"deleted": [keys with a delete marker], "versions": {key: number of
        versions}} under `prefix`; None when the bucket keeps no versions. StoreError when the store
        refuses to tell."""
        try:
            if self.s3.get_bucket_versioning(Bucket=self.bucket).get("Status") not in ("Enabled", "Suspended"):
                return None
            pages = list(self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix))
        except self.s3.exceptions.ClientError as err:
            raise StoreError(f"cannot list object versions in {self.bucket!r}: {error_code(err)}",
                             error_code(err)) from None
        history: dict = {"deleted": [], "versions": {}}
        for page in pages:
            history["deleted"] += [marker["Key"] for marker in page.get("DeleteMarkers", [])]
            for version in page.get("Versions", []):
                history["versions"][version["Key"]] = history["versions"].get(version["Key"], 0) + 1
        return history

    def locked_until(self, key: str) -> str | None:
        """Why the store would refuse to delete `key` (retention date or legal hold), else None."""
        # From HEAD: some stores (moto) do not implement GetObjectRetention.
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            return "legal hold"
        until = head.get("ObjectLockRetainUntilDate")
        if until is not None and until > datetime.now(UTC):
            return f"retained until {until.astimezone(UTC).isoformat()}"
        return None

    # --- deleting ---------------------------------------------------------------------------
    def delete_key(self, key: str) -> str | None:
        """Delete one key (a delete marker on a versioned bucket). Returns None, or the store's
        error code when it refused (Object Lock, IAM), which is logged."""
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.ClientError as err:
            log.warning("could not delete %s: %s", key, error_code(err))
            return error_code(err)
        return None

    def delete_prefix(self, prefix: str) -> None:
        for key in list(self.list_keys(prefix)):
            self.delete_key(key)

    def discard_incomplete(self, prefix: str) -> None:
        """Abort the multipart uploads left under `prefix` by an interrupted write."""
        uploads = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix).get("Uploads", [])
        for upload in uploads:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
