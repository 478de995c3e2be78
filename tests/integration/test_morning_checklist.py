"""gravitypm_morning_checklist, run for real (dag.test) against the local stack."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from gravitypm_ops.vault.layout import MANIFEST_NAME, backup_prefix

DAG_ID = "gravitypm_morning_checklist"
CHECKS = ("check_service_health", "check_disk_space", "check_memory", "check_backup_age", "check_vault_hygiene")


def secrets_of(stack) -> list[str]:
    s = stack.secrets
    return [s.mongo_password, s.aws_secret_access_key, s.slack_token, s.slack_token.rsplit("/", 1)[-1]]


def assert_no_secrets(stack, texts):
    blob = json.dumps(texts)
    for secret in secrets_of(stack):
        assert secret not in blob


def put_manifest(stack, kind: str, finished: datetime, backup_id: str) -> str:
    key = backup_prefix("production", kind, backup_id) + MANIFEST_NAME
    body = {"schema_version": 1, "kind": kind, "backup_id": backup_id, "finished": finished.isoformat()}
    stack.s3_client().put_object(Bucket=stack.vault_bucket, Key=key, Body=json.dumps(body).encode())
    return key


@pytest.fixture
def empty_vault(stack):
    s3 = stack.s3_client()
    for version in s3.list_object_versions(Bucket=stack.vault_bucket).get("Versions", []):
        s3.delete_object(Bucket=stack.vault_bucket, Key=version["Key"], VersionId=version["VersionId"])
    return s3


def test_healthy_run_posts_one_summary_with_no_backup_warnings(run_dag, slack, stack, empty_vault):
    result = run_dag(DAG_ID)

    assert result.state == "success"
    assert all(result.task_states[t] == "success" for t in CHECKS), result.task_states
    assert result.task_states["fail_run_if_any_check_failed"] == "skipped"
    health = result.xcom("check_service_health")
    assert {f["subject"] for f in health["findings"]} == {"application", "database", "cache"}
    backups = result.xcom("check_backup_age")
    assert backups["status"] == "warning"
    assert {f["detail"] for f in backups["findings"]} == {"no backup yet"}

    texts = slack.texts()
    assert len(texts) == 1, texts  # one summary, no failure alerts
    assert "Morning checklist" in texts[0] and "all clear, 1 warning(s)" in texts[0]
    assert "no backup yet" in texts[0]
    assert_no_secrets(stack, texts)


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
    summary = next(t for t in texts if "Morning checklist" in t)
    assert "1 failed" in summary and ":x: *service_health*: breach" in summary

    slack.clear()
    up = run_dag(DAG_ID)
    assert up.state == "success"
    recovered = [t for t in slack.texts() if "recovered" in t]
    assert len(recovered) == 1 and down.dag_run.run_id in recovered[0]
    assert_no_secrets(stack, texts + slack.texts())


def test_disk_threshold_crossed_fails_only_the_disk_task(run_dag, slack, empty_vault):
    # No real disk is 99.9 % free: the measured value crosses this threshold for real.
    result = run_dag(DAG_ID, {"disk_min_free_percent": 99.9})

    assert result.state == "failed"
    assert result.task_states["check_disk_space"] == "failed"
    assert result.task_states["check_service_health"] == "success"
    disk = result.xcom("check_disk_space", key="check")
    assert disk["status"] == "breach" and "needs > 99.9%" in disk["findings"][0]["detail"]
    assert any("[Warning]" in t and "check_disk_space" in t for t in slack.texts())


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
    findings = {f["subject"]: f for f in result.xcom("check_backup_age", key="check")["findings"]}
    assert findings["db"]["status"] == "ok" and "2.0 h ago" in findings["db"]["detail"]
    assert findings["fs"]["status"] == "breach"
    assert findings["config"]["detail"] == "no backup yet"
    assert findings["logs"]["detail"] == "no backup yet"


def test_vault_without_lifecycle_rules_fails_hygiene(run_dag, stack, empty_vault):
    from dev.stack import VAULT_LIFECYCLE

    empty_vault.delete_bucket_lifecycle(Bucket=stack.vault_bucket)
    try:
        result = run_dag(DAG_ID)
    finally:
        empty_vault.put_bucket_lifecycle_configuration(Bucket=stack.vault_bucket, LifecycleConfiguration=VAULT_LIFECYCLE)

    assert result.task_states["check_vault_hygiene"] == "failed"
    findings = {f["subject"]: f["status"] for f in result.xcom("check_vault_hygiene", key="check")["findings"]}
    assert findings == {
        "versioning": "ok", "abort_incomplete_multipart": "breach",
        "noncurrent_version_expiration": "breach", "object_lock": "ok",
    }
