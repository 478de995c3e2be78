"""Upload and download streams: multipart upload while hashing, read back while verifying."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from gravitypm_ops.redact import scrub
from gravitypm_ops.vault.layout import IntegrityError

log = logging.getLogger(__name__)
PART_SIZE = 8 * 2**20  # S3 needs >= 5 MiB for every part but the last; this bounds memory per upload.


def clean_up_after(cause: BaseException, what: str, clean_up) -> None:
    """Run `clean_up` after `cause` ended a write. A clean-up that fails too (S3 gone mid-upload)
    is logged beside `cause` and added to its notes, never raised in its place: the caller
    re-raises `cause`, the error that broke the write."""
    try:
        clean_up()
    except Exception as err:  # noqa: BLE001 - logged and noted on `cause`, which the caller raises
        failure = scrub(f"{type(err).__name__}: {err}")
        log.error("%s failed too (%s); raising the error that stopped the write: %s",
                  what, failure, scrub(f"{type(cause).__name__}: {cause}"))
        cause.add_note(f"while handling it, {what} failed: {failure}")


@dataclass(frozen=True)
class Protection:
    """What the vault applies to every object it writes."""

    kms_key_id: str = ""
    object_lock_days: int = 0

    def encryption_args(self) -> dict:
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}

    def describe(self) -> dict:
        return {
            "encryption": "SSE-KMS" if self.kms_key_id else "SSE-S3",
            "kms_key_id": self.kms_key_id or None,
            "object_lock": {"mode": "COMPLIANCE", "days": self.object_lock_days} if self.object_lock_days else None,
        }


class ArtifactUpload:
    """A write-only, streaming file object backed by one S3 multipart upload.

    Hashes and counts every byte written; holds at most one part in memory.
    """

    def __init__(self, s3, bucket: str, key: str, protection: Protection, part_size: int = PART_SIZE):
        self.s3, self.bucket, self.key, self.part_size = s3, bucket, key, part_size
        self._sha = hashlib.sha256()
        self._size = 0
        self._buffer = bytearray()
        self._parts: list[dict] = []
        self._upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **protection.encryption_args())[
            "UploadId"
        ]
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._sha.update(data)
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) >= self.part_size:
            with memoryview(self._buffer) as view:
                part = bytes(view[: self.part_size])  # the one copy handed to the HTTP client
            del self._buffer[: self.part_size]
            self._send(part)
        return len(data)

    def flush(self) -> None:
        pass

    def _send(self, chunk: bytes) -> None:
        number = len(self._parts) + 1
        etag = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=chunk
        )["ETag"]
        self._parts.append({"PartNumber": number, "ETag": etag})

    def complete(self) -> tuple[int, str, str]:
        """Upload the last part and finish; returns (size, sha256, version_id)."""
        if self._buffer or not self._parts:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        answer = self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
        )
        self.closed = True
        return self._size, self._sha.hexdigest(), answer.get("VersionId")

    def abort(self, cause: BaseException | None = None) -> None:
        """Abort the multipart upload (once). With `cause`, the error that ended the write
        (``except BaseException as err: upload.abort(err); raise``), a failing abort is logged
        and noted on `cause` instead of raised (`clean_up_after`)."""
        if self.closed:
            return
        self.closed = True
        if cause is None:
            self._abort()
        else:
            clean_up_after(cause, f"aborting the multipart upload of {self.key}", self._abort)

    def _abort(self) -> None:
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)


class HashingReader:
    """A read-only stream over an artifact that raises IntegrityError at EOF on a size/SHA mismatch."""

    def __init__(self, body, artifact: dict):
        self._body, self._artifact = body, artifact
        self._sha, self._size, self._checked = hashlib.sha256(), 0, False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._body.read(n if n is not None and n >= 0 else None)
        self._sha.update(data)
        self._size += len(data)
        if not data or n is None or n < 0:
            self.verify()
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def verify(self) -> None:
        """Raise IntegrityError unless everything read so far is the whole artifact, intact.

        Runs by itself at EOF; call it after reading when the consumer stops at the last byte.
        """
        if self._checked:
            return
        self._checked = True
        expected_size, expected_sha = self._artifact["size"], self._artifact["sha256"]
        if self._size != expected_size or self._sha.hexdigest() != expected_sha:
            raise IntegrityError(
                f"{self._artifact['key']}: read {self._size} bytes sha256 {self._sha.hexdigest()[:16]}…, "
                f"manifest says {expected_size} bytes sha256 {expected_sha[:16]}…"
            )

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
