"""Copying one artifact from one vault to another, checked against its manifest entry.

- `copy_in_store`: CopyObject, or UploadPartCopy in parts for big objects, when one client
  reaches both buckets: no bytes pass through the worker. The copy is not hashed here (S3's own
  copy checksum is no whole-object SHA-256): the caller re-reads it (`Vault.check_artifact`).
- `copy_streamed`: downloaded in a thread while hashed and uploaded as a multipart upload
  (~20 MiB held whatever the size); completed only if the bytes sent hash to the manifest's
  SHA-256, so a bad copy is never even assembled.

Both return the new version id (lock it with `target.protect` once it is checked) and raise
ObjectMissing when the source object is gone.
"""

from __future__ import annotations

from gravitypm_ops.vault.layout import IntegrityError, ObjectMissing
from gravitypm_ops.vault.objects import ObjectStore, error_code
from gravitypm_ops.vault.streams import PART_SIZE, HashingReader, clean_up_after

COPY_PART_SIZE = 512 * 2**20  # server-side copies above this go in UploadPartCopy parts (S3 allows <= 5 GiB each)
READ_CHUNK = 1 << 20


def copy_in_store(source: ObjectStore, target: ObjectStore, artifact: dict, key: str, *,
                  part_size: int = COPY_PART_SIZE) -> str | None:
    """Copy `artifact` (a manifest entry in `source`) to `key` in `target`, inside S3."""
    s3, src = target.s3, {"Bucket": source.bucket, "Key": artifact["key"]}
    dest = {"Bucket": target.bucket, "Key": key, **target.protection.encryption_args()}
    try:
        if artifact["size"] <= part_size:
            return s3.copy_object(CopySource=src, **dest).get("VersionId")
        upload_id = s3.create_multipart_upload(**dest)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, artifact["size"], part_size), 1):
                end = min(start + part_size, artifact["size"]) - 1
                answer = s3.upload_part_copy(
                    CopySource=src, CopySourceRange=f"bytes={start}-{end}", Bucket=target.bucket,
                    Key=key, UploadId=upload_id, PartNumber=number,
                )
                parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
            return s3.complete_multipart_upload(
                Bucket=target.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts},
            ).get("VersionId")
        except BaseException as err:  # report the copy's error, not a failing abort's (S3 gone mid-copy)
            clean_up_after(err, f"aborting the multipart copy to {key}",
                           lambda: s3.abort_multipart_upload(Bucket=target.bucket, Key=key, UploadId=upload_id))
            raise
    except s3.exceptions.ClientError as err:
        if error_code(err) in ("NoSuchKey", "404"):
            raise ObjectMissing(f"{artifact['key']}: not in bucket {source.bucket!r}") from None
        raise


def copy_streamed(source: ObjectStore, target: ObjectStore, artifact: dict, key: str, *,
                  part_size: int = PART_SIZE, read_chunk: int = READ_CHUNK) -> str | None:
    """Copy `artifact` (a manifest entry in `source`) to `key` in `target` through this worker;
    IntegrityError, with nothing assembled, unless the bytes match the manifest entry."""
    from gravitypm_ops.formats.streaming import prefetch

    body = source.open_object(artifact["key"])
    upload = target.upload(key, part_size)
    try:
        with HashingReader(body, artifact) as reader:  # raises IntegrityError at EOF on a size/sha mismatch
            for chunk in prefetch(iter(lambda: reader.read(read_chunk), b""), batch=1, depth=2):
                upload.write(chunk)
            reader.verify()
        size, sha, version = upload.complete()
    except BaseException as err:
        upload.abort(err)
        raise
    landed = target.s3.head_object(Bucket=target.bucket, Key=key)["ContentLength"]
    if (size, sha, landed) != (artifact["size"], artifact["sha256"], artifact["size"]):
        raise IntegrityError(f"{key}: copy has {landed} bytes, manifest says {artifact['size']}")
    return version
