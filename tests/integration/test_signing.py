"""Signed manifests and verification records (issue 14, item 8): whoever can write the bucket cannot make a
backup "verified", nor `latest` (the restore form's default). Real S3 (the stack's moto server); documents
forged with plain S3 calls, as a bucket writer would."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.console import backups as console_backups
from gravitypm_ops.console import metrics as console_metrics
from gravitypm_ops.vault.layout import MANIFEST_NAME, VERIFICATIONS_DIR, VaultError, backup_id_for, backup_prefix
from gravitypm_ops.vault.signing import Signer
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.verification import tasks as verification_tasks
from tests.backups import record_verification, verification_record, write_backup
from tests.console_pages import parse_exposition

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


@pytest.fixture
def vault(prefixed_vault):
    return prefixed_vault  # tests/integration/conftest.py: its own prefix, named in the config Variable


@pytest.fixture
def good_and_bad(vault):
    """db backup A verified passed; the newer backup B failed its verification."""
    a = write_backup(vault, "db", T0, b"a" * 100)
    record_verification(vault, a, "passed")
    b = write_backup(vault, "db", T0 + timedelta(hours=6), b"b" * 100)
    record_verification(vault, b, "failed")
    return a, b


def put_raw(vault, key: str, doc) -> None:
    """What a bucket writer can do: any object at any key, no signature."""
    vault.s3.put_object(Bucket=vault.bucket, Key=key, Body=json.dumps(doc).encode())


def record_key(manifest: dict, finished: datetime, name: str = "forged") -> str:
    return (backup_prefix(manifest["key_prefix"], manifest["kind"], manifest["backup_id"]) + VERIFICATIONS_DIR
            + f"{finished:%Y%m%dT%H%M%S%fZ}-{name}.json")


def test_a_forged_passed_record_does_not_make_a_failed_backup_verified(vault, good_and_bad):
    a, b = good_and_bad
    later = datetime.fromisoformat(b["finished"]) + timedelta(minutes=5)
    forged = record_key({**b, "key_prefix": vault.prefix}, later)
    put_raw(vault, forged, verification_record(b, "passed", later))

    assert vault.latest("db")["backup_id"] == a["backup_id"]  # without signatures: B, the broken one
    listed = {m["backup_id"]: m for m in vault.list_backups("db")}
    assert listed[b["backup_id"]]["verification"]["status"] == "failed"
    assert vault.rejected == {forged: "not signed"}


def test_a_forged_backup_is_never_listed_nor_resolved(vault, good_and_bad):
    a, _ = good_and_bad
    backup_id = backup_id_for("gravitypm_db_backup", "forged", T0 + timedelta(hours=12))
    manifest = {**{k: v for k, v in a.items() if k not in ("signature", "verification")}, "backup_id": backup_id}
    prefix = backup_prefix(vault.prefix, "db", backup_id)
    put_raw(vault, prefix + MANIFEST_NAME, manifest)
    put_raw(vault, record_key({**manifest, "key_prefix": vault.prefix}, T0 + timedelta(hours=13)),
            verification_record(manifest, "passed", T0 + timedelta(hours=13)))

    assert backup_id not in [m["backup_id"] for m in vault.list_backups("db")]
    assert vault.latest("db")["backup_id"] == a["backup_id"]
    with pytest.raises(VaultError, match=f"db backup '{backup_id}' refused: its manifest is not signed"):
        vault.resolve("db", backup_id)


def test_signed_documents_copied_to_another_key_are_refused(vault, good_and_bad, stack):
    a, b = good_and_bad
    s3 = vault.s3
    a_record_key = next(k for k in vault.list_keys(backup_prefix(vault.prefix, "db", a["backup_id"]) + VERIFICATIONS_DIR))
    a_record = s3.get_object(Bucket=vault.bucket, Key=a_record_key)["Body"].read()
    name = a_record_key.rsplit("/", 1)[-1]
    # A's genuine "passed" record beside B; and renamed within A to sort last.
    beside_b = backup_prefix(vault.prefix, "db", b["backup_id"]) + VERIFICATIONS_DIR + "99991231T000000000000Z-x.json"
    s3.put_object(Bucket=vault.bucket, Key=beside_b, Body=a_record)
    renamed = a_record_key.replace(name, "99991231T000000000000Z-x.json")
    s3.put_object(Bucket=vault.bucket, Key=renamed, Body=a_record)
    # A's genuine manifest under another backup id.
    other_id = backup_id_for("gravitypm_db_backup", "moved", T0 + timedelta(hours=18))
    moved = backup_prefix(vault.prefix, "db", other_id) + MANIFEST_NAME
    s3.copy_object(Bucket=vault.bucket, Key=moved,
                   CopySource={"Bucket": vault.bucket, "Key": backup_prefix(vault.prefix, "db", a["backup_id"]) + MANIFEST_NAME})

    listed = {m["backup_id"]: m for m in vault.list_backups("db")}
    assert set(listed) == {a["backup_id"], b["backup_id"]}
    assert listed[b["backup_id"]]["verification"]["status"] == "failed"
    assert vault.rejected[beside_b] == f"signed for backup {a['backup_id']!r}, not {b['backup_id']!r}"
    assert vault.rejected[renamed] == "signed under another name (finished time differs)"
    assert vault.rejected[moved].startswith("signed as ")


def test_a_key_airflow_does_not_hold_reads_nothing(vault, good_and_bad, stack):
    stranger = Vault(vault.bucket, vault.prefix, stack.s3_client(), signer=Signer(["z" * 64]))
    assert stranger.list_backups("db") == []
    assert all("which Airflow does not hold" in why for why in stranger.rejected.values())


def test_status_console_and_metrics_report_what_was_left_out(vault, good_and_bad):
    _, b = good_and_bad
    later = datetime.fromisoformat(b["finished"]) + timedelta(minutes=5)
    forged = record_key({**b, "key_prefix": vault.prefix}, later)
    put_raw(vault, forged, verification_record(b, "passed", later))

    status = verification_tasks.write_status()  # the verification DAG's last task, through the connections
    assert status["signing"]["enabled"] is True and status["signing"]["key_id"] == vault.signer.key_id
    assert status["signing"]["rejected"] == [{"key": forged, "reason": "not signed"}]
    assert status["kinds"]["db"]["verified"] is False  # B, the newest, failed; the forged pass is ignored

    listings, _status, problems = console_backups.load_backups(vault)
    assert listings["db"][-1]["verification"]["status"] == "failed"
    assert (forged, "left out: not signed") in [(p.key, p.detail) for p in problems]

    m = parse_exposition(console_metrics.metrics_text(lambda: vault, datetime.now(UTC)))
    assert m[("gravitypm_vault_signing_enabled", ())] == 1
    assert m[("gravitypm_vault_rejected_objects", ())] == 1


def test_a_status_json_written_by_someone_else_is_not_believed(vault, good_and_bad):
    verification_tasks.write_status()
    put_raw(vault, vault.status_key, {"written": datetime.now(UTC).isoformat(), "kinds": {}})
    assert vault.read_status() is None
    assert vault.rejected[vault.status_key] == "not signed"


def test_the_offsite_copy_re_signs_the_manifest_and_leaves_forged_records_behind(vault, good_and_bad, stack):
    from gravitypm_ops.offsite.copy import Copier
    from gravitypm_ops.vault.retention import RetentionPolicy

    a, _ = good_and_bad
    later = datetime.fromisoformat(a["finished"]) + timedelta(minutes=5)
    forged = record_key({**a, "key_prefix": vault.prefix}, later)
    put_raw(vault, forged, verification_record(a, "failed", later))
    s3 = stack.s3_client()
    bucket = f"gpm-signing-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    offsite = Vault(bucket, "dr", s3, signer=stack.signer())

    report = Copier(vault, offsite, server_side=True).sync("db", RetentionPolicy(last=10), datetime.now(UTC))

    assert [c["backup_id"] for c in report["copied"]] == [a["backup_id"]]
    copy = offsite.resolve("db", a["backup_id"])  # artifact keys rewritten, signature still good
    assert copy["artifacts"][0]["key"].startswith("dr/") and copy["verification"]["status"] == "passed"
    names = [k.rsplit("/", 1)[-1] for k in offsite.list_keys("dr/")]
    assert forged.rsplit("/", 1)[-1] not in names and offsite.rejected == {}
