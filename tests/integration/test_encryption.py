"""Client-side encryption of backups with age (issue 17) against the real local stack.

The stack's config has `encryption_recipients` = its ops and recovery public keys and the
`gravitypm_backup_identity` connection holds the ops identity only (dev/stack.py), so every backup
DAG run here encrypts config and db backups, as `make up` does.
"""

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from gravitypm_ops.backup import files as backup_files
from gravitypm_ops.backup import mongo as backup_mongo
from gravitypm_ops.config import parse_config
from gravitypm_ops.console.backups import load_backups, render_backups
from gravitypm_ops.console.metrics import metrics_text
from gravitypm_ops.offsite.copy import Copier
from gravitypm_ops.status import write_primary
from gravitypm_ops.vault.encryption import MAGIC, Encryption
from gravitypm_ops.vault.retention import RetentionPolicy, apply_retention
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.verification.verify import verify_backup
from tests.backups import new_bucket

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
ENV_SECRETS = ("fake-mongo-secret-7f3a", "fake-jwt-secret-2d8e4b", "fake-oauth-secret-5a1f")
CANNOT = "cannot be restored with the keys Airflow holds"


@pytest.fixture
def prefix():
    return f"enc-{uuid.uuid4().hex[:8]}"


def raw(stack, key: str) -> bytes:
    return stack.s3_client().get_object(Bucket=stack.vault_bucket, Key=key)["Body"].read()


def stack_vault(stack, prefix: str, **overrides) -> tuple[Vault, object]:
    """The vault and config a DAG task of the stack would build (Vault.from_config: encryption on)."""
    cfg = parse_config({**stack.ops_config(), "vault_prefix": prefix, **overrides})
    return Vault.from_config(cfg), cfg


def test_a_config_backup_is_age_ciphertext_holding_no_env_value_and_verifies(run_dag, stack, prefix, slack):
    result = run_dag("gravitypm_config_backup", {"vault_prefix": prefix})
    assert result.state == "success", result.task_states
    backup_id = result.xcom("archive_to_vault")["backup_id"]
    vault, _ = stack_vault(stack, prefix)
    manifest = vault.resolve("config", backup_id)

    env = (stack.app_root / ".env").read_bytes()
    assert all(s.encode() in env for s in ENV_SECRETS)
    for artifact in manifest["artifacts"]:  # archive and file index alike
        stored = raw(stack, artifact["key"])
        assert stored.startswith(MAGIC + b"\n"), artifact["name"]
        assert not any(s.encode() in stored for s in ENV_SECRETS)
        assert b".env" not in stored  # the index's file names are encrypted too
        assert artifact["encryption"] == {"format": "age", "recipients": stack.secrets.age_recipients}
        assert (artifact["size"], artifact["sha256"]) == (len(stored), hashlib.sha256(stored).hexdigest())
    # No plaintext hash of a secret file leaves the worker: not in the manifest, not in XCom.
    seen = json.dumps(manifest) + json.dumps(result.xcom("archive_to_vault"))
    assert hashlib.sha256(env).hexdigest() not in seen and not any(s in seen for s in ENV_SECRETS)
    # The offline recovery key (never given to Airflow) opens it too: the second recipient works.
    archive = next(a for a in manifest["artifacts"] if a["name"].startswith("files."))
    recovery = x25519.Identity.from_str(stack.secrets.age_recovery_identity)
    assert pyrage.decrypt(raw(stack, archive["key"]), [recovery]).startswith(b"\x28\xb5\x2f\xfd")  # a zstd frame

    verification = run_dag("gravitypm_backup_verification", {"vault_prefix": prefix}, run_conf={"backup_id": backup_id})

    assert verification.task_states["verify_backups"] == "success", verification.task_states
    record = vault.resolve("config", backup_id)["verification"]
    assert [(c["name"], c["status"]) for c in record["checks"]] == [
        ("artifacts", "passed"), ("keys", "passed"), ("files", "passed")]
    assert "2 recipients" in record["checks"][1]["detail"]
    leaked = json.dumps(slack.messages()) + json.dumps(verification.xcom("verify_backups"))
    assert stack.secrets.age_ops_identity not in leaked and stack.secrets.age_recovery_identity not in leaked


def test_a_backup_for_a_key_airflow_does_not_hold_is_critical_in_verification(run_dag, stack, prefix, slack):
    foreign = str(x25519.Identity.generate().to_public())
    result = run_dag("gravitypm_config_backup", {"vault_prefix": prefix, "encryption_recipients": [foreign]})
    assert result.state == "success", result.task_states
    backup_id = result.xcom("archive_to_vault")["backup_id"]
    slack.clear()

    verification = run_dag("gravitypm_backup_verification", {"vault_prefix": prefix}, run_conf={"backup_id": backup_id})

    assert verification.task_states["verify_backups"] == "failed"
    vault, _ = stack_vault(stack, prefix)
    record = vault.resolve("config", backup_id)["verification"]
    checks = {c["name"]: c for c in record["checks"]}
    assert checks["artifacts"]["status"] == "passed"  # the bytes are intact: only the key is missing
    assert checks["keys"]["status"] == "failed" and CANNOT in checks["keys"]["detail"]
    assert foreign[:12] in checks["keys"]["detail"]  # names the recipients it was encrypted to
    assert checks["files"]["status"] == "failed"
    [alert] = [t for t in slack.texts() if backup_id in t and "[Critical]" in t]
    assert CANNOT in alert
    assert stack.secrets.age_ops_identity not in json.dumps(slack.messages())


def test_an_encrypted_db_backup_verifies_and_restores_into_another_database(run_dag, stack, prefix, small_db):
    vault, cfg = stack_vault(stack, prefix, mongo_databases=[small_db])
    client = stack.mongo_client()
    manifest = backup_mongo.run_backup(cfg, vault, client, dag_id="t", run_id=uuid.uuid4().hex, run_after=T0)
    [artifact] = manifest["artifacts"]
    stored = raw(stack, artifact["key"])
    assert stored.startswith(MAGIC) and artifact["encryption"]["recipients"] == stack.secrets.age_recipients
    assert b"@example" not in stored  # the documents' e-mail addresses are only in the plaintext
    record = verify_backup(vault, manifest, mongo_client=client, production_databases=(small_db,))
    assert record["status"] == "passed", record["checks"]
    target = f"enc_copy_{uuid.uuid4().hex[:6]}"
    try:
        result = run_dag("gravitypm_db_restore", {"vault_prefix": prefix, "mongo_databases": [small_db]},
                         run_conf={"source_database": small_db, "target_database": target, "dry_run": False,
                                   "require_approval": False, "backup_id": manifest["backup_id"]})

        assert result.state == "success", result.task_states
        for name in ("items", "empty"):
            assert list(client[target][name].find().sort("_id")) == list(client[small_db][name].find().sort("_id"))
    finally:
        client.drop_database(target)


def test_an_encrypted_fs_backup_restores_end_to_end(run_dag, stack, prefix, tmp_path):
    root = tmp_path / "production"
    files = {"uploads/a.txt": "alpha\n" * 100, ".env": "JWT_SECRET=fake-enc-restore-secret\n", "config/app.json": "{}\n"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    overrides = {"app_root": str(root), "restore_allowed_roots": [str(root)], "encrypt_kinds": ["fs", "config"]}
    vault, cfg = stack_vault(stack, prefix, **overrides)
    manifest = backup_files.run_backup("fs", cfg, vault, dag_id="t", run_id=uuid.uuid4().hex, run_after=T0)
    assert all(raw(stack, a["key"]).startswith(MAGIC) for a in manifest["artifacts"])
    assert verify_backup(vault, manifest)["status"] == "passed"
    (root / "uploads/a.txt").write_text("overwritten by mistake\n")
    (root / ".env").unlink()

    result = run_dag("gravitypm_fs_restore", {"vault_prefix": prefix, **overrides},
                     run_conf={"kind": "fs", "confirm": str(root), "dry_run": False, "backup_id": manifest["backup_id"]})

    assert result.state == "success", result.task_states
    assert {rel: (root / rel).read_text() for rel in files} == files


def test_without_the_identity_a_restore_is_refused_by_the_plan(run_dag, stack, prefix, small_db, monkeypatch, capfd):
    vault, cfg = stack_vault(stack, prefix, mongo_databases=[small_db])
    client = stack.mongo_client()
    manifest = backup_mongo.run_backup(cfg, vault, client, dag_id="t", run_id=uuid.uuid4().hex, run_after=T0)
    assert verify_backup(vault, manifest, mongo_client=client, production_databases=(small_db,))["status"] == "passed"
    monkeypatch.delenv("AIRFLOW_CONN_GRAVITYPM_BACKUP_IDENTITY")

    result = run_dag("gravitypm_db_restore", {"vault_prefix": prefix, "mongo_databases": [small_db]},
                     run_conf={"source_database": small_db, "target_database": f"enc_no_{uuid.uuid4().hex[:6]}",
                               "dry_run": False, "require_approval": False, "backup_id": manifest["backup_id"]})

    assert result.task_states["plan"] == "failed"
    assert result.task_states["safety_backup"] != "success" and result.task_states["restore"] != "success"
    out = capfd.readouterr().out
    assert CANNOT in out and "gravitypm_backup_identity" in out


def test_offsite_copy_retention_status_metrics_and_console_work_on_ciphertext(stack, prefix, monkeypatch):
    primary = Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer(),
                    encryption=Encryption(tuple(stack.secrets.age_recipients), ("db",)))
    manifests = []
    for hours in (30, 20, 10):
        writer = primary.begin_backup("db", dag_id="t", run_id=uuid.uuid4().hex,
                                      run_after=T0 - timedelta(hours=hours))
        with writer.artifact("payload.bin", compression="none", format="bytes") as out:
            out.write(b"secret payload %d\n" % hours * 1000)
        manifests.append(writer.commit(source={"host": "test"}, tools={}, content={}))
    assert all(raw(stack, m["artifacts"][0]["key"]).startswith(MAGIC) for m in manifests)

    # Off-site: copies the ciphertext byte for byte, with no identity at all.
    offsite = Vault(new_bucket(stack.s3_client()), prefix, stack.s3_client(), signer=stack.signer(),
                    identities=lambda: pytest.fail("the off-site copy must never read an identity"))
    report = Copier(primary, offsite, server_side=False).sync("db", RetentionPolicy(last=100), datetime.now(UTC))
    assert len(report["copied"]) == 3, report
    copy = offsite.resolve("db", manifests[-1]["backup_id"])
    assert copy["artifacts"][0]["encryption"] == manifests[-1]["artifacts"][0]["encryption"]
    offsite.check_artifact(copy, "payload.bin")
    # … and a restore from it decrypts with the identity Airflow holds.
    reader = Vault(offsite.bucket, prefix, stack.s3_client(), signer=stack.signer())
    with reader.open_artifact(copy, "payload.bin") as body:
        assert body.read() == b"secret payload 10\n" * 1000

    # Retention decides on manifests only.
    decided = apply_retention(primary, "db", RetentionPolicy(last=1), datetime.now(UTC))
    assert [m["backup_id"] for m in primary.list_backups("db")] == [manifests[-1]["backup_id"]], decided

    # status.json, /metrics and the Backups page.
    monkeypatch.setenv("AIRFLOW_VAR_GRAVITYPM_OPS", json.dumps({**stack.ops_config(), "vault_prefix": prefix}))
    status = write_primary(parse_config({**stack.ops_config(), "vault_prefix": prefix}), primary, datetime.now(UTC))
    assert status["kinds"]["db"]["latest_id"] == manifests[-1]["backup_id"]
    text = metrics_text(lambda: primary, datetime.now(UTC))
    assert re.search(r"^gravitypm_vault_up 1$", text, re.MULTILINE), text
    assert re.search(r'^gravitypm_backup_count\{kind="db"\} 1$', text, re.MULTILINE), text
    by_kind, status_doc, problems = load_backups(primary)
    page = render_backups(by_kind, status_doc, datetime.now(UTC), problems)
    assert "encrypted (age, 2 recipients)" in page


def test_the_recovery_key_file_in_state_is_what_make_up_configures(stack):
    secrets = json.loads(Path(stack.state_dir / "secrets.json").read_text())
    ops = x25519.Identity.from_str(secrets["age_ops_identity"])
    recovery = x25519.Identity.from_str(secrets["age_recovery_identity"])
    assert stack.ops_config()["encryption_recipients"] == [str(ops.to_public()), str(recovery.to_public())]
    conn = json.loads(stack.airflow_env()["AIRFLOW_CONN_GRAVITYPM_BACKUP_IDENTITY"])
    assert conn["password"] == secrets["age_ops_identity"]
    assert secrets["age_recovery_identity"] not in json.dumps(stack.airflow_env())  # the safe's key stays out
    assert pyrage.decrypt(pyrage.encrypt(b"x", [recovery.to_public()]), [recovery]) == b"x"


def test_without_recipients_backups_are_written_as_before_and_the_morning_checklist_warns(run_dag, stack, prefix):
    plain = run_dag("gravitypm_config_backup", {"vault_prefix": prefix, "encryption_recipients": []})
    assert plain.state == "success", plain.task_states
    vault, _ = stack_vault(stack, prefix)
    manifest = vault.resolve("config", plain.xcom("archive_to_vault")["backup_id"])
    assert all(a["encryption"] is None and not raw(stack, a["key"]).startswith(MAGIC) for a in manifest["artifacts"])

    result = run_dag("gravitypm_morning_checklist", {"vault_prefix": prefix, "encryption_recipients": []})

    assert result.task_states["check_vault_hygiene"] == "success"  # a warning, not a failure
    item = result.xcom("check_vault_hygiene", key="item")
    finding = {f["subject"]: f for f in item["data"]["findings"]}["client_encryption"]
    assert finding["outcome"] == "warning" and "backups are not client-side encrypted" in finding["detail"]
