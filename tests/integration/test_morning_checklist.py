"""gravitypm_morning_checklist, run for real (dag.test) against the local stack: a catalogue checklist
whose run leaves one audit record per check in the `morning_checklist` chain."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.checklists.audit import AuditLog
from gravitypm_ops.vault.layout import MANIFEST_NAME, backup_prefix
from gravitypm_ops.vault.store import Vault

DAG_ID = "gravitypm_morning_checklist"
CHECKS = ("check_service_health", "check_disk_space", "check_memory", "check_backup_age", "check_vault_hygiene")


def secrets_of(stack) -> list[str]:
    s = stack.secrets
    return [s.mongo_password, s.aws_secret_access_key, s.slack_token, s.slack_token.rsplit("/", 1)[-1], s.signing_key,
            s.age_ops_identity, s.age_recovery_identity]


def assert_no_secrets(stack, texts):
    blob = json.dumps(texts)
    for secret in secrets_of(stack):
        assert secret not in blob


def put_manifest(stack, kind: str, finished: datetime, backup_id: str) -> str:
    key = backup_prefix("production", kind, backup_id) + MANIFEST_NAME
    body = stack.signer().sign({"schema_version": 1, "kind": kind, "backup_id": backup_id,
                                "finished": finished.isoformat()})
    stack.s3_client().put_object(Bucket=stack.vault_bucket, Key=key, Body=json.dumps(body).encode())
    return key


def audit_records(stack, run) -> list[dict]:
    """The run's records in the vault's `morning_checklist` chain (the stack's prefix), after checking the chain."""
    audit = AuditLog(Vault(stack.vault_bucket, "production", stack.s3_client(), signer=stack.signer()))
    assert audit.verify("morning_checklist").ok
    return [r for r in audit.records("morning_checklist") if r["run_id"] == run.dag_run.run_id]


def outcomes(records) -> dict[str, str]:
    return {r["item"]: r["outcome"] for r in records}


@pytest.fixture
def empty_vault(stack):
    s3 = stack.s3_client()
    for version in s3.list_object_versions(Bucket=stack.vault_bucket).get("Versions", []):
        s3.delete_object(Bucket=stack.vault_bucket, Key=version["Key"], VersionId=version["VersionId"])
    return s3


def test_healthy_run_posts_one_summary_and_records_each_check(run_dag, slack, stack, empty_vault):
    result = run_dag(DAG_ID)

    assert result.state == "success"
    assert all(result.task_states[t] == "success" for t in CHECKS), result.task_states
    assert result.task_states["post_summary"] == "success"
    assert result.task_states["fail_run_if_any_check_failed"] == "skipped"
    health = result.xcom("check_service_health")
    assert health["outcome"] == "passed"
    assert {f["subject"] for f in health["data"]["findings"]} == {"application", "database", "cache", "host agent"}
    assert "host agent: not used (single box" in health["summary"]  # no Edge executor in dag.test()
    backups = result.xcom("check_backup_age")
    assert backups["outcome"] == "warning"  # no backup yet: a warning, the task stays green
    assert {f["detail"] for f in backups["data"]["findings"]} == {"no backup yet"}

    records = audit_records(stack, result)
    assert [r["item"] for r in records] == list(CHECKS)  # one per check, in catalogue order
    assert outcomes(records) == {"check_service_health": "passed", "check_disk_space": "passed",
                                 "check_memory": "passed", "check_backup_age": "warning",
                                 "check_vault_hygiene": "passed"}
    assert {r["period"] for r in records} == {result.dag_run.run_after.date().isoformat()}
    assert all(r["checklist"] == "morning_checklist" and r["dag_id"] == DAG_ID for r in records)
    assert records[0]["evidence"]["links"][0]["url"].endswith("/tasks/check_service_health")

    texts = slack.texts()
    assert len(texts) == 1, texts  # one summary, no failure alerts
    assert texts[0].startswith("*Morning checklist* ") and "4 passed, 1 warning" in texts[0]
    assert "no backup yet" in texts[0]
    assert_no_secrets(stack, texts + [records])


def test_app_down_fails_health_critical_and_recovery_is_announced(run_dag, slack, stack, empty_vault):
    stack.stop("host")
    try:
        down = run_dag(DAG_ID)
    finally:
        stack.start("host")

    assert down.state == "failed"
    assert down.task_states["check_service_health"] == "failed"
    assert down.task_states["check_disk_space"] == "success"
    assert down.task_states["post_summary"] == "success"
    texts = slack.texts()
    alert = next(t for t in texts if "[Critical]" in t)
    assert f"{DAG_ID} failed* at task `check_service_health`" in alert
    assert down.dag_run.run_id in alert and "(failed on try 1)" in alert
    assert f"/dags/{DAG_ID}/runs/" in alert and "/tasks/check_service_health" in alert  # log link
    assert "unreachable" in alert
    summaries = [t for t in texts if "*Morning checklist*" in t]
    assert len(summaries) == 1 and "1 failed" in summaries[0]
    assert ":x: *Service health* (automation): application:" in summaries[0]
    failed = audit_records(stack, down)
    assert outcomes(failed)["check_service_health"] == "failed"
    assert "unreachable" in failed[0]["evidence"]["summary"]

    slack.clear()
    up = run_dag(DAG_ID)
    assert up.state == "success"
    recovered = [t for t in slack.texts() if "recovered" in t]
    assert len(recovered) == 1 and down.dag_run.run_id in recovered[0]
    assert outcomes(audit_records(stack, up))["check_service_health"] == "passed"  # same chain, appended
    assert_no_secrets(stack, texts + slack.texts())


def test_disk_threshold_crossed_fails_only_the_disk_task(run_dag, slack, stack, empty_vault):
    # No real disk is 99.9 % free: the measured value crosses this threshold for real.
    result = run_dag(DAG_ID, {"disk_min_free_percent": 99.9})

    assert result.state == "failed"
    assert result.task_states["check_disk_space"] == "failed"
    assert result.task_states["check_service_health"] == "success"
    disk = result.xcom("check_disk_space", key="item")
    assert disk["outcome"] == "failed" and "needs > 99.9%" in disk["data"]["findings"][0]["detail"]
    assert any("[Warning]" in t and "check_disk_space" in t for t in slack.texts())
    assert outcomes(audit_records(stack, result))["check_disk_space"] == "failed"


def test_memory_threshold_crossed_fails_the_memory_task(run_dag, stack, empty_vault):
    result = run_dag(DAG_ID, {"memory_max_used_percent": 0.1})  # any real host uses more

    assert result.task_states["check_memory"] == "failed" and result.state == "failed"
    memory = result.xcom("check_memory", key="item")
    assert memory["outcome"] == "failed" and "must stay < 0.1%" in memory["summary"]
    assert outcomes(audit_records(stack, result))["check_memory"] == "failed"


def test_backup_age_reads_the_vault(run_dag, slack, stack, empty_vault):
    now = datetime.now(UTC)
    put_manifest(stack, "db", now - timedelta(hours=2), "20261127T060000Z-a")
    put_manifest(stack, "db", now - timedelta(days=3), "20261124T060000Z-b")  # older: not the latest
    put_manifest(stack, "fs", now - timedelta(hours=40), "20261125T020000Z-c")  # stale (> 26 h)
    # An uncommitted backup (artifacts, no manifest) must not count.
    stack.s3_client().put_object(
        Bucket=stack.vault_bucket, Key=backup_prefix("production", "config", "20261127T030000Z-x") + "config.tar.zst", Body=b"x"
    )

    result = run_dag(DAG_ID)

    assert result.task_states["check_backup_age"] == "failed"
    evidence = result.xcom("check_backup_age", key="item")
    findings = {f["subject"]: f for f in evidence["data"]["findings"]}
    assert findings["db"]["outcome"] == "passed" and "2.0 h ago" in findings["db"]["detail"]
    assert findings["fs"]["outcome"] == "failed"
    assert findings["config"]["detail"] == "no backup yet" and findings["config"]["outcome"] == "warning"
    assert findings["logs"]["detail"] == "no backup yet"
    assert evidence["data"]["newest"] == {"db": "20261127T060000Z-a", "fs": "20261125T020000Z-c",
                                          "config": None, "logs": None}
    assert any(link["url"].endswith("/20261127T060000Z-a/" + MANIFEST_NAME) for link in evidence["links"])
    (record,) = [r for r in audit_records(stack, result) if r["item"] == "check_backup_age"]
    assert record["outcome"] == "failed" and record["evidence"]["summary"].startswith("fs: last backup 40.0 h ago")


def test_vault_without_lifecycle_rules_fails_hygiene(run_dag, stack, empty_vault):
    from dev.stack import VAULT_LIFECYCLE

    empty_vault.delete_bucket_lifecycle(Bucket=stack.vault_bucket)
    try:
        result = run_dag(DAG_ID)
    finally:
        empty_vault.put_bucket_lifecycle_configuration(Bucket=stack.vault_bucket, LifecycleConfiguration=VAULT_LIFECYCLE)

    assert result.task_states["check_vault_hygiene"] == "failed"
    findings = result.xcom("check_vault_hygiene", key="item")["data"]["findings"]
    assert {f["subject"]: f["outcome"] for f in findings} == {
        "versioning": "passed", "abort_incomplete_multipart": "failed",
        "noncurrent_version_expiration": "failed", "object_lock": "passed", "signing": "passed",
        "client_encryption": "passed",  # the stack configures two age recipients
    }
    assert outcomes(audit_records(stack, result))["check_vault_hygiene"] == "failed"
