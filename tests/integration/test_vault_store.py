"""The vault's object layer against moto: one write-once path (encrypted, locked, never overwritten)
for manifests, verification records, audit records, drill reports and off-site copies."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.vault import leases
from gravitypm_ops.vault.layout import ObjectMissing, VaultError
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.vault.streams import Protection

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


@pytest.fixture
def vault(stack):
    return Vault(stack.vault_bucket, f"store-{uuid.uuid4().hex[:8]}", stack.s3_client(), signer=stack.signer())


@pytest.fixture
def locked(stack):
    s3 = stack.s3_client()
    bucket = f"store-locked-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return Vault(bucket, "production", s3, Protection(object_lock_days=1))


def make_backup(vault) -> dict:
    writer = vault.begin_backup("db", dag_id="gravitypm_test", run_id=uuid.uuid4().hex, run_after=T0)
    with writer.artifact("payload.bin", compression="none", format="bytes") as out:
        out.write(b"data")
    return writer.commit(source={"host": "test"}, tools={}, content={})


def lock_of(vault, key: str) -> tuple:
    # moto lacks GetObjectRetention: the lock fields come with HEAD.
    head = vault.s3.head_object(Bucket=vault.bucket, Key=key)
    return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")


def test_a_verification_record_is_locked_like_every_other_object(locked):
    manifest = make_backup(locked)
    record = {"status": "passed", "finished": datetime.now(UTC).isoformat(), "checks": []}

    key = locked.record_verification(manifest, record)

    manifest_key = manifest["artifacts"][0]["key"].rsplit("/", 1)[0] + "/manifest.json"
    for written in (key, manifest_key, manifest["artifacts"][0]["key"]):
        mode, until = lock_of(locked, written)
        assert mode == "COMPLIANCE" and until > datetime.now(UTC), written
    assert locked.locked_until(key).startswith("retained until")
    assert locked.resolve("db", manifest["backup_id"])["verification"] == record
    with pytest.raises(VaultError, match="never overwritten"):  # same record, same name
        locked.record_verification(manifest, record)


def test_only_the_mutable_objects_stay_unlocked(locked):
    lease = leases.hold(locked, "db", "gravitypm_db_restore/manual__1")
    status = locked.write_status({"kinds": {}})
    assert lock_of(locked, lease) == lock_of(locked, status) == (None, None)
    leases.release(locked, "db", "gravitypm_db_restore/manual__1")  # a lease must stay deletable
    assert leases.active(locked, "db") == []


def test_put_once_refuses_to_overwrite(vault, stack):
    key = f"{vault.prefix}/once/doc.json"

    assert vault.put_once(key, {"n": 1}) is True
    assert vault.put_once(key, {"n": 2}) is False
    assert vault.put_once(key, b"raw bytes") is False

    assert vault.read_json(key) == {"n": 1}
    versions = stack.s3_client().list_object_versions(Bucket=vault.bucket, Prefix=key)
    assert len(versions["Versions"]) == 1 and "DeleteMarkers" not in versions  # nothing ever replaced it
    head = stack.s3_client().head_object(Bucket=vault.bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256" and head["ContentType"] == "application/json"


def test_put_once_stores_bytes_as_they_are_with_their_content_type(locked):
    key = "production/once/report.md"
    assert locked.put_once(key, "# Réport\n".encode(), "text/markdown; charset=utf-8") is True
    assert locked.read_bytes(key) == "# Réport\n".encode()
    head = locked.s3.head_object(Bucket=locked.bucket, Key=key)
    assert head["ContentType"] == "text/markdown; charset=utf-8" and head["ObjectLockMode"] == "COMPLIANCE"






def test_missing_objects_and_buckets_are_vault_errors(vault, stack):
    assert vault.read_json(f"{vault.prefix}/nothing.json") is None
    with pytest.raises(ObjectMissing):
        vault.open_object(f"{vault.prefix}/nothing.json")
    with pytest.raises(VaultError, match="'no-such-bucket' does not exist"):
        list(Vault("no-such-bucket", "p", stack.s3_client()).list_keys("p/"))


def test_a_lapsed_lease_holds_nothing(vault):
    leases.hold(vault, "fs", "gravitypm_dr_drill/manual__1", hours=1)
    assert [lease["holder"] for lease in leases.active(vault, "fs")] == ["gravitypm_dr_drill/manual__1"]
    assert leases.active(vault, "fs", now=datetime.now(UTC) + timedelta(hours=2)) == []
    assert leases.active(vault, "db") == []
