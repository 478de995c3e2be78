"""Alert storms (issue 14 item 11), with real DAG runs: an alert is posted when it starts firing,
reminded every `alerts.repeat_hours`, and "recovered" once when it clears; the state lives in the
vault (`<vault_prefix>/alerts/`), so each test's own prefix keeps its alerts to itself."""

import gzip
import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.backup import files as backup_files
from gravitypm_ops.backup import mongo as backup_mongo
from gravitypm_ops.config import parse_config
from gravitypm_ops.log_rotation.files import RotatedFile
from gravitypm_ops.log_rotation.tasks import DISK_ALERT
from gravitypm_ops.log_rotation.ship import ship_to_vault
from gravitypm_ops.vault.store import Vault

VERIFY = "gravitypm_backup_verification"
TINY_REPEAT = {"alerts": {"repeat_hours": 0.000001}}  # every run is past it: the next one reminds


@pytest.fixture
def prefix():
    return f"alerts-{uuid.uuid4().hex[:8]}"


def alert_state(stack, prefix: str, key: str) -> dict:
    body = stack.s3_client().get_object(Bucket=stack.vault_bucket, Key=f"{prefix}/alerts/{key}.json")["Body"]
    return json.loads(body.read())


def freshness_alerts(slack) -> list[str]:
    return [t for t in slack.texts() if "at task `audit_freshness`" in t]


def every_kind_backed_up(stack, prefix: str, database: str, tmp_path) -> None:
    """A real backup of each kind, as the backup DAGs make them; the verification DAG verifies them."""
    vault = Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())
    cfg = parse_config({"mongo_databases": [database], "app_root": str(stack.app_root),
                        "vault_bucket": stack.vault_bucket, "vault_prefix": prefix})
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    backup_mongo.run_backup(cfg, vault, stack.mongo_client(), dag_id="t", run_id=uuid.uuid4().hex, run_after=now)
    for kind in ("fs", "config"):
        backup_files.run_backup(kind, cfg, vault, dag_id="t", run_id=uuid.uuid4().hex, run_after=now)
    rotated = tmp_path / "app.log.1.gz"
    rotated.write_bytes(gzip.compress(b"one line\n"))
    data = rotated.read_bytes()
    ship_to_vault(vault, [RotatedFile("app.log", str(rotated), 1, len(data), hashlib.sha256(data).hexdigest(), 9, True,
                                      os.path.getmtime(rotated))],
                  settings={"pattern": "*.log", "compress": True, "compress_level": 6}, logs_dir=str(tmp_path),
                  dag_id="t", run_id=uuid.uuid4().hex)


def test_a_failing_freshness_audit_alerts_once_reminds_and_recovers_once(run_dag, stack, slack, prefix, small_db,
                                                                         tmp_path):
    overrides = {"vault_prefix": prefix, "mongo_databases": [small_db]}

    # The storm: the verification DAG runs again and again on a vault without backups.
    runs = [run_dag(VERIFY, overrides) for _ in range(3)]

    assert {r.task_states["audit_freshness"] for r in runs} == {"failed"}
    [alert] = freshness_alerts(slack)
    assert "[Warning]" in alert and "logs: no backup yet" in alert and runs[0].dag_run.run_id in alert
    assert len(slack.texts()) == 1, slack.texts()  # nothing else either
    state = alert_state(stack, prefix, f"task/{VERIFY}/audit_freshness")
    assert state["status"] == "firing" and state["count"] == 3 and state["last_run"] == runs[2].dag_run.run_id

    # Past repeat_hours: one reminder, saying since when and how many runs; then quiet again.
    slack.clear()
    run_dag(VERIFY, {**overrides, **TINY_REPEAT})
    [reminder] = slack.texts()
    assert reminder.startswith(":repeat: *Reminder*: still firing since ") and "4 runs in a row" in reminder
    assert "logs: no backup yet" in reminder
    run_dag(VERIFY, overrides)
    assert slack.texts() == [reminder]

    # The condition clears: exactly one "recovered", and nothing more on the next green run.
    every_kind_backed_up(stack, prefix, small_db, tmp_path)
    slack.clear()
    green = run_dag(VERIFY, overrides)
    assert green.state == "success", green.task_states
    [recovered] = slack.texts()
    assert f"*[Info] {VERIFY} recovered* at task `audit_freshness`" in recovered
    assert "5 run(s) firing since" in recovered and runs[0].dag_run.run_id not in recovered
    assert alert_state(stack, prefix, f"task/{VERIFY}/audit_freshness")["status"] == "resolved"
    assert run_dag(VERIFY, overrides).state == "success"
    assert slack.texts() == [recovered]


def flip_one_byte(stack, key: str) -> None:
    s3 = stack.s3_client()
    data = bytearray(s3.get_object(Bucket=stack.vault_bucket, Key=key)["Body"].read())
    data[100] ^= 0x01
    s3.put_object(Bucket=stack.vault_bucket, Key=key, Body=bytes(data))


def test_a_corrupt_backup_alerts_once_per_backup_and_recovers_when_it_verifies_again(run_dag, stack, slack, prefix,
                                                                                      small_db):
    vault = Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())
    cfg = parse_config({"mongo_databases": [small_db], "vault_bucket": stack.vault_bucket, "vault_prefix": prefix})
    manifest = backup_mongo.run_backup(cfg, vault, stack.mongo_client(), dag_id="t", run_id=uuid.uuid4().hex,
                                       run_after=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5))
    bid, artifact = manifest["backup_id"], manifest["artifacts"][0]["key"]
    overrides = {"vault_prefix": prefix, "mongo_databases": [small_db]}
    flip_one_byte(stack, artifact)

    first, second = run_dag(VERIFY, overrides), run_dag(VERIFY, overrides)  # the backup is re-verified each run

    assert first.task_states["verify_backups"] == second.task_states["verify_backups"] == "failed"
    texts = slack.texts()
    [critical] = [t for t in texts if "failed verification*" in t]
    assert "[Critical]" in critical and bid in critical and "`artifacts`" in critical
    assert len([t for t in texts if "at task `verify_backups`" in t]) == 1  # the task's own alert: once too

    flip_one_byte(stack, artifact)  # repaired
    slack.clear()
    third = run_dag(VERIFY, overrides)

    assert third.task_states["verify_backups"] == "success"
    texts = slack.texts()
    [backup_ok] = [t for t in texts if f"backup `{bid}` recovered" in t]
    assert "[Info]" in backup_ok and "passed verification again" in backup_ok and "2 run(s)" in backup_ok
    assert len([t for t in texts if "recovered* at task `verify_backups`" in t]) == 1
    assert alert_state(stack, prefix, f"verification/db/{bid}")["status"] == "resolved"


def test_a_task_failing_the_same_way_alerts_once_and_a_different_failure_alerts_again(run_dag, stack, slack, prefix,
                                                                                       monkeypatch, small_db):
    overrides = {"vault_prefix": prefix, "mongo_databases": [small_db]}
    mongo = stack.connections()["gravitypm_mongo"]

    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_MONGO", json.dumps({**mongo, "port": 1}))
    unreachable = [run_dag("gravitypm_db_backup", overrides) for _ in range(2)]
    assert {r.task_states["preflight"] for r in unreachable} == {"failed"}
    [alert] = [t for t in slack.texts() if "at task `preflight`" in t]
    assert "[Critical]" in alert and unreachable[0].dag_run.run_id in alert

    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_MONGO", json.dumps({**mongo, "password": "wrong-password"}))
    assert run_dag("gravitypm_db_backup", overrides).task_states["preflight"] == "failed"
    assert len([t for t in slack.texts() if "at task `preflight`" in t]) == 2  # failing another way: posted

    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_MONGO", json.dumps(mongo))
    slack.clear()
    assert run_dag("gravitypm_db_backup", overrides).state == "success"
    [recovered] = [t for t in slack.texts() if "recovered" in t]
    assert "recovered* at task `preflight`" in recovered and "1 run(s) firing since" in recovered


def test_without_a_readable_alert_state_every_failure_is_posted(run_dag, slack, caplog):
    # Fail open: the vault bucket is missing, so no state can be read or written; a duplicate beats silence.
    for _ in range(2):
        assert run_dag("gravitypm_db_backup", {"vault_bucket": "no-such-vault"}).task_states["preflight"] == "failed"
    assert len([t for t in slack.texts() if "at task `preflight`" in t]) == 2
    assert "state unreadable" in caplog.text and "posting it without de-duplication" in caplog.text


def test_the_logs_disk_warning_is_posted_once_and_recovered_once(run_dag, slack, prefix, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("x\n")
    over = {"vault_prefix": prefix, "logs_dir": str(logs), "disk_min_free_percent": 99}  # this disk is > 1 % used

    for _ in range(2):
        assert run_dag("gravitypm_log_rotation", over).xcom("check_disk_space")["status"] == "breach"
    [alert] = [t for t in slack.texts() if "logs filesystem" in t]
    assert "[Warning] gravitypm_log_rotation: the logs filesystem is over 1% used" in alert

    slack.clear()
    calm = run_dag("gravitypm_log_rotation", {**over, "disk_min_free_percent": 0.001})
    assert calm.xcom("check_disk_space")["status"] == "ok"
    [recovered] = [t for t in slack.texts() if "logs filesystem" in t]
    assert "logs filesystem recovered*: back under 99.999% used" in recovered and "2 run(s)" in recovered


def test_a_bucket_writer_cannot_silence_a_firing_alert(run_dag, stack, slack, prefix, tmp_path, caplog):
    logs = tmp_path / "logs"
    logs.mkdir()
    over = {"vault_prefix": prefix, "logs_dir": str(logs), "disk_min_free_percent": 99}  # this disk is > 1 % used
    assert run_dag("gravitypm_log_rotation", over).xcom("check_disk_space")["status"] == "breach"
    stored = alert_state(stack, prefix, DISK_ALERT)
    assert stored["status"] == "firing" and stack.signer().problem(stored) == ""  # signed by the task

    # Without the key, "resolved" (or "posted just now") breaks the signature: the state is left out.
    silenced = {**stored, "status": "resolved"}
    stack.s3_client().put_object(Bucket=stack.vault_bucket, Key=f"{prefix}/alerts/{DISK_ALERT}.json",
                                 Body=json.dumps(silenced).encode())
    assert run_dag("gravitypm_log_rotation", over).xcom("check_disk_space")["status"] == "breach"
    assert len([t for t in slack.texts() if "logs filesystem is over" in t]) == 2  # posted again, not silenced
    assert "stored state left out (bad signature" in caplog.text
    assert stack.signer().problem(alert_state(stack, prefix, DISK_ALERT)) == ""  # and signed anew


def test_a_checklist_critical_alert_is_posted_once_and_recovered_once(run_dag, slack, prefix, tmp_path,
                                                                      tls_endpoint):
    (tmp_path / "logs").mkdir()
    expiring, ca = tls_endpoint(12)
    healthy, ca_healthy = tls_endpoint(90)
    overrides = {"vault_prefix": prefix, "logs_dir": str(tmp_path / "logs"),
                 "checklists": {"tls_endpoints": [f"localhost:{expiring.port}"], "tls_ca_file": ca}}

    for _ in range(2):
        run = run_dag("gravitypm_evening_checklist", overrides)
        assert run.xcom("ssl_certificate_validity", key="item")["outcome"] == "warning"
    [critical] = [t for t in slack.texts() if "[Critical]" in t and "expires in 12 days" in t]
    assert "• Task: `ssl_certificate_validity`" in critical

    slack.clear()
    renewed = {**overrides, "checklists": {"tls_endpoints": [f"localhost:{healthy.port}"], "tls_ca_file": ca_healthy}}
    assert run_dag("gravitypm_evening_checklist", renewed).xcom("ssl_certificate_validity", key="item")["outcome"] == (
        "passed")
    [recovered] = [t for t in slack.texts() if "recovered" in t and "ssl_certificate_validity" in t]
    assert "raises no Critical alert" in recovered and "2 run(s)" in recovered
