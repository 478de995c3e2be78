"""Backup verification against real servers: good backups pass, damaged ones fail and say why."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.backup import files as backup_files
from gravitypm_ops.backup import mongo as backup_mongo
from gravitypm_ops.config import parse_config
from gravitypm_ops.vault.layout import backup_prefix
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.verification.verify import verify_backup

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def prefix():
    return f"verify-{uuid.uuid4().hex[:8]}"


def db_backup_in(stack, prefix: str, database: str) -> tuple[Vault, dict]:
    vault = Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())
    cfg = parse_config({"mongo_databases": [database], "vault_bucket": stack.vault_bucket, "vault_prefix": prefix})
    manifest = backup_mongo.run_backup(cfg, vault, stack.mongo_client(), dag_id="t", run_id=uuid.uuid4().hex, run_after=T0)
    return vault, manifest


def verify(stack, vault, manifest, database):
    return verify_backup(vault, manifest, mongo_client=stack.mongo_client(), production_databases=(database,))


def test_a_good_db_backup_passes_and_reverification_appends(stack, prefix, small_db):
    vault, manifest = db_backup_in(stack, prefix, small_db)

    first = verify(stack, vault, manifest, small_db)
    second = verify(stack, vault, manifest, small_db)

    assert first["status"] == second["status"] == "passed", first["checks"]
    assert [c["name"] for c in first["checks"]] == ["artifacts", "trial_restore"]
    records = vault.verifications(manifest)
    assert [r["finished"] for r in records] == [first["finished"], second["finished"]]  # append-only
    scratch = [d for d in stack.mongo_client().list_database_names() if d.startswith("gravitypm_scratch_")]
    assert scratch == []  # dropped afterwards
    assert vault.latest("db")["backup_id"] == manifest["backup_id"]


def flip_one_byte(stack, key: str, offset: int = 100) -> None:
    s3 = stack.s3_client()
    data = bytearray(s3.get_object(Bucket=stack.vault_bucket, Key=key)["Body"].read())
    data[min(offset, len(data) - 1)] ^= 0x01
    s3.put_object(Bucket=stack.vault_bucket, Key=key, Body=bytes(data))


def test_one_flipped_byte_fails_verification_and_names_the_artifact(stack, prefix, small_db):
    vault, manifest = db_backup_in(stack, prefix, small_db)
    flip_one_byte(stack, manifest["artifacts"][0]["key"])

    record = verify(stack, vault, manifest, small_db)

    assert record["status"] == "failed"
    failed = {c["name"]: c["detail"] for c in record["checks"] if c["status"] == "failed"}
    assert "mongodump.archive.gz" in failed["artifacts"] and "sha256" in failed["artifacts"]
    assert vault.latest("db") is None  # the only backup failed: nothing is trustworthy


def test_a_deleted_artifact_fails_verification(stack, prefix, small_db):
    vault, manifest = db_backup_in(stack, prefix, small_db)
    stack.s3_client().delete_object(Bucket=stack.vault_bucket, Key=manifest["artifacts"][0]["key"])

    record = verify(stack, vault, manifest, small_db)

    assert record["status"] == "failed"
    assert "mongodump.archive.gz" in next(c["detail"] for c in record["checks"] if c["name"] == "artifacts")


def test_a_restore_with_fewer_documents_than_the_manifest_fails(stack, prefix, small_db):
    vault, manifest = db_backup_in(stack, prefix, small_db)
    # The manifest claims one more document than the archive holds.
    key = backup_prefix(prefix, "db", manifest["backup_id"]) + "manifest.json"
    stored = json.loads(stack.s3_client().get_object(Bucket=stack.vault_bucket, Key=key)["Body"].read())
    stored["content"]["databases"][small_db]["items"]["documents"] += 1
    stored = vault.sign(stored)  # as if our own writer had counted wrong (a bucket writer's edit is refused)
    stack.s3_client().put_object(Bucket=stack.vault_bucket, Key=key, Body=json.dumps(stored).encode())

    record = verify(stack, vault, vault.resolve("db", manifest["backup_id"]), small_db)

    restore = next(c for c in record["checks"] if c["name"] == "trial_restore")
    assert record["status"] == "failed" and restore["status"] == "failed"
    assert "items: 30 documents restored, manifest says 31" in restore["detail"]


def test_scratch_never_targets_a_production_database(stack, prefix, small_db):
    vault, manifest = db_backup_in(stack, prefix, small_db)
    scratch = f"gravitypm_scratch_{manifest['backup_id'].replace('-', '_')}_{small_db}"
    record = verify_backup(vault, manifest, mongo_client=stack.mongo_client(), production_databases=(scratch,))
    assert record["status"] == "failed"
    assert "refusing to use a production or reserved database" in record["checks"][1]["detail"]


def test_fs_backup_verification_passes_then_catches_a_flipped_byte(stack, prefix):
    vault = Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())
    cfg = parse_config({"app_root": str(stack.app_root), "vault_bucket": stack.vault_bucket, "vault_prefix": prefix})
    manifest = backup_files.run_backup("config", cfg, vault, dag_id="t", run_id="r", run_after=T0)

    assert verify_backup(vault, manifest)["status"] == "passed"
    archive = next(a for a in manifest["artifacts"] if a["name"].startswith("files."))
    flip_one_byte(stack, archive["key"], offset=archive["size"] // 2)
    record = verify_backup(vault, manifest)
    assert record["status"] == "failed"
    assert archive["name"] in next(c["detail"] for c in record["checks"] if c["name"] == "artifacts")


def test_the_dag_verifies_new_backups_writes_status_and_audits_freshness(run_dag, stack, slack, prefix, small_db):
    vault, manifest = db_backup_in(stack, prefix, small_db)
    # An uncommitted prefix (artifacts, no manifest) is not a backup.
    stack.s3_client().put_object(
        Bucket=stack.vault_bucket, Key=backup_prefix(prefix, "fs", "20261127T020000Z-x") + "files.tar.zst", Body=b"x"
    )
    overrides = {"vault_prefix": prefix, "mongo_databases": [small_db]}

    result = run_dag("gravitypm_backup_verification", overrides)

    assert result.task_states["verify_backups"] == "success"
    assert result.xcom("verify_backups")["verified"] == [
        {"kind": "db", "backup_id": manifest["backup_id"], "status": "passed", "failed_checks": []}
    ]
    # fs, config and logs have no (verified) backup: the RPO audit fails and says so, and so does the run.
    assert result.task_states["audit_freshness"] == "failed"
    assert result.task_states["write_status"] == "success" and result.state == "failed"
    findings = {f["subject"]: f for f in result.xcom("audit_freshness", key="check")["findings"]}
    assert findings["db"]["status"] == "ok"
    assert findings["fs"] == {"subject": "fs", "status": "breach", "detail": "no backup yet"}
    assert any("[Warning]" in t and "audit_freshness" in t for t in slack.texts())
    status = json.loads(stack.s3_client().get_object(Bucket=stack.vault_bucket, Key=f"{prefix}/status.json")["Body"].read())
    assert status["kinds"]["db"]["latest_id"] == manifest["backup_id"] and status["kinds"]["db"]["verified"] is True
    assert status["kinds"]["fs"] is None


def test_a_failed_verification_posts_a_critical_alert_naming_backup_and_check(run_dag, stack, slack, prefix, small_db):
    vault, manifest = db_backup_in(stack, prefix, small_db)
    flip_one_byte(stack, manifest["artifacts"][0]["key"])

    result = run_dag("gravitypm_backup_verification", {"vault_prefix": prefix, "mongo_databases": [small_db]})

    assert result.task_states["verify_backups"] == "failed"
    alert = next(t for t in slack.texts() if "failed verification" in t)
    assert "[Critical]" in alert and manifest["backup_id"] in alert and "`artifacts`" in alert


def test_verification_has_a_time_limit_so_a_stuck_check_cannot_hold_the_vault_pool(dagbag):
    # one slot in gravitypm_vault: without a limit a hung check stalls retention, status and the RPO audit
    task = dagbag.get_dag("gravitypm_backup_verification").task_dict["verify_backups"]
    assert task.pool == "gravitypm_vault" and task.execution_timeout == timedelta(hours=3)
