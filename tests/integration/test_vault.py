"""The vault against a real S3 server (moto over HTTP)."""

import hashlib
import os
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.vault.hygiene import require_encryption
from gravitypm_ops.vault.layout import MANIFEST_NAME, IntegrityError, VaultError, backup_prefix
from gravitypm_ops.vault.retention import RetentionPolicy, apply_retention
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.vault.streams import PART_SIZE, Protection

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


@pytest.fixture
def vault(stack):
    return Vault(stack.vault_bucket, f"test-{uuid.uuid4().hex[:8]}", stack.s3_client(), signer=stack.signer())


def make_backup(vault, run_id: str, run_after: datetime, payload: bytes = b"data", kind: str = "db") -> dict:
    writer = vault.begin_backup(kind, dag_id="gravitypm_test", run_id=run_id, run_after=run_after)
    with writer.artifact("payload.bin", compression="none", format="bytes") as out:
        out.write(payload)
    return writer.commit(source={"host": "test"}, tools={}, content={"n": len(payload)})




def upload_random(writer, name: str, mebibytes: int) -> tuple[str, int, int]:
    """Stream `mebibytes` of random data as one artifact; returns (sha256, size, peak traced memory)."""
    digest, size = hashlib.sha256(), 0
    tracemalloc.start()
    with writer.artifact(name, compression="none", format="bytes") as out:
        for _ in range(mebibytes * 2):
            chunk = os.urandom(512 * 1024)
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return digest.hexdigest(), size, peak


def test_streamed_artifact_is_hashed_sized_encrypted_and_memory_bounded(vault, stack):
    writer = vault.begin_backup("db", dag_id="d", run_id="r", run_after=T0)
    sha, size, peak_small = upload_random(writer, "small.bin", 20)
    _, _, peak_large = upload_random(writer, "large.bin", 60)
    assert peak_small < 4 * PART_SIZE
    assert peak_large < 1.25 * peak_small  # flat: memory does not grow with the artifact
    artifact = writer.artifacts[0]
    assert (artifact.size, artifact.sha256) == (size, sha)
    head = stack.s3_client().head_object(Bucket=vault.bucket, Key=artifact.key)
    assert head["ContentLength"] == size and head["ServerSideEncryption"] == "AES256"


def test_manifest_commits_and_a_rerun_returns_the_committed_backup(vault):
    manifest = make_backup(vault, "scheduled__1", T0)
    again = vault.begin_backup("db", dag_id="gravitypm_test", run_id="scheduled__1", run_after=T0)
    assert again == manifest  # idempotent by run: the committed backup comes back, nothing is rewritten
    assert [m["backup_id"] for m in vault.list_backups("db")] == [manifest["backup_id"]]
    for field in ("schema_version", "kind", "backup_id", "dag_id", "run_id", "started", "finished", "source",
                  "artifacts", "tools", "protection", "content"):
        assert field in manifest, field
    assert manifest["protection"]["encryption"] == "SSE-S3"


def test_a_committed_manifest_is_never_overwritten(vault):
    writer = vault.begin_backup("db", dag_id="d", run_id="r", run_after=T0)
    writer.commit(source={}, tools={}, content={})
    with pytest.raises(VaultError, match="already committed"):
        writer.commit(source={}, tools={}, content={"other": True})


def test_failed_backup_leaves_nothing_committed_and_no_open_uploads(vault, stack):
    writer = vault.begin_backup("db", dag_id="d", run_id="r", run_after=T0)
    with pytest.raises(RuntimeError, match="dump broke"):
        with writer.artifact("a.bin", compression="none", format="bytes") as out:
            out.write(os.urandom(PART_SIZE + 1024))  # one part already uploaded
            raise RuntimeError("dump broke")
    writer.abort()
    s3 = stack.s3_client()
    assert s3.list_multipart_uploads(Bucket=vault.bucket, Prefix=vault.prefix).get("Uploads", []) == []
    assert vault.list_backups("db") == [] and vault.latest("db") is None
    assert s3.list_objects_v2(Bucket=vault.bucket, Prefix=vault.prefix).get("KeyCount") == 0


def test_uncommitted_artifacts_are_invisible_and_cleared_by_the_rerun(vault, stack):
    writer = vault.begin_backup("db", dag_id="d", run_id="r", run_after=T0)
    with writer.artifact("a.bin", compression="none", format="bytes") as out:
        out.write(b"partial attempt")  # the task dies before commit
    assert vault.list_backups("db") == []
    retry = vault.begin_backup("db", dag_id="d", run_id="r", run_after=T0)
    assert stack.s3_client().list_objects_v2(Bucket=vault.bucket, Prefix=retry.prefix).get("KeyCount") == 0


def test_resolve_by_id_latest_and_latest_as_of(vault):
    first = make_backup(vault, "r1", T0)
    second = make_backup(vault, "r2", T0 + timedelta(hours=6))
    assert vault.resolve("db", first["backup_id"]) == first
    assert vault.resolve("db", "latest") == second
    between = datetime.fromisoformat(second["finished"]) - timedelta(microseconds=1)
    assert vault.resolve("db", f"latest@{between.isoformat()}") == first
    with pytest.raises(VaultError, match="no committed db backup"):
        vault.resolve("db", "20200101T000000Z-nothere")
    with pytest.raises(VaultError, match="no committed db backup as of"):
        vault.resolve("db", "latest@2000-01-01T00:00:00+00:00")
    with pytest.raises(VaultError, match="not a backup id"):
        vault.resolve("db", "yesterday")
    summary = vault.summary("db", T0 + timedelta(hours=7))
    assert summary["count"] == 2 and summary["latest_id"] == second["backup_id"]
    assert summary["verified"] is False and summary["latest_verified_id"] is None
    assert vault.summary("fs", T0) is None


def test_reading_back_verifies_size_and_sha256(vault, stack):
    manifest = make_backup(vault, "r", T0, payload=b"the real bytes")
    with vault.open_artifact(manifest, "payload.bin") as reader:
        assert reader.read() == b"the real bytes"
    key = manifest["artifacts"][0]["key"]
    stack.s3_client().put_object(Bucket=vault.bucket, Key=key, Body=b"the fake bytes")  # same size, other content
    with vault.open_artifact(manifest, "payload.bin") as reader, pytest.raises(IntegrityError, match="sha256"):
        reader.read()


def test_retention_deletes_manifest_first_then_artifacts_and_dry_run_deletes_nothing(vault, stack):
    manifests = [make_backup(vault, f"r{i}", T0 + timedelta(hours=6 * i)) for i in range(4)]
    policy = RetentionPolicy(last=2)
    now = T0 + timedelta(days=1)

    dry = apply_retention(vault, "db", policy, now, dry_run=True)
    assert sorted(dry["removed"]) == sorted(m["backup_id"] for m in manifests[:2])
    assert len(vault.list_backups("db")) == 4

    report = apply_retention(vault, "db", policy, now)
    assert sorted(report["removed"]) == sorted(m["backup_id"] for m in manifests[:2])
    assert [m["backup_id"] for m in vault.list_backups("db")] == [m["backup_id"] for m in manifests[2:]]
    s3 = stack.s3_client()
    for gone in manifests[:2]:
        prefix = backup_prefix(vault.prefix, "db", gone["backup_id"])
        assert s3.list_objects_v2(Bucket=vault.bucket, Prefix=prefix).get("KeyCount") == 0
        # Delete markers on a versioned bucket: the manifest's marker is older than the artifact's.
        markers = s3.list_object_versions(Bucket=vault.bucket, Prefix=prefix)["DeleteMarkers"]
        order = [m["Key"].rsplit("/", 1)[-1] for m in sorted(markers, key=lambda m: m["LastModified"])]
        assert order[0] == MANIFEST_NAME


def test_object_locked_backups_are_kept_and_reported(stack):
    s3 = stack.s3_client()
    bucket = f"locked-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    vault = Vault(bucket, "production", s3, Protection(object_lock_days=1))
    old = make_backup(vault, "r1", T0)
    make_backup(vault, "r2", T0 + timedelta(hours=6))
    head = s3.head_object(Bucket=bucket, Key=old["artifacts"][0]["key"])
    assert head["ObjectLockMode"] == "COMPLIANCE"

    report = apply_retention(vault, "db", RetentionPolicy(last=1), T0 + timedelta(days=1))
    assert report["removed"] == []
    kept = {k["backup_id"]: k["reasons"] for k in report["kept"]}
    assert kept[old["backup_id"]][0].startswith("kept: locked (retained until")
    assert len(vault.list_backups("db")) == 2


def test_kms_key_id_selects_sse_kms(stack):
    s3 = stack.s3_client()
    key_id = "arn:aws:kms:us-east-1:123456789012:key/gravitypm-test"
    vault = Vault(stack.vault_bucket, f"kms-{uuid.uuid4().hex[:8]}", s3, Protection(kms_key_id=key_id))
    manifest = make_backup(vault, "r", T0)
    head = s3.head_object(Bucket=vault.bucket, Key=manifest["artifacts"][0]["key"])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert manifest["protection"] == {"encryption": "SSE-KMS", "kms_key_id": key_id, "object_lock": None}


def test_missing_bucket_is_a_clear_error(stack):
    with pytest.raises(VaultError, match="'no-such-vault' does not exist"):
        Vault("no-such-vault", "production", stack.s3_client()).check_access()


def test_require_encryption_refuses_a_store_that_ignored_sse(stack, vault):
    manifest = make_backup(vault, "r", T0)
    keys = [a["key"] for a in manifest["artifacts"]]
    require_encryption(vault, keys)  # moto honours the SSE header

    class IgnoresSSE:  # some S3-compatible stores accept the header and store plaintext
        def head_object(self, **kwargs):
            return {"ContentLength": 1}

    blind = Vault(vault.bucket, vault.prefix, IgnoresSSE())
    with pytest.raises(VaultError, match="did not encrypt it at rest"):
        require_encryption(blind, keys)
