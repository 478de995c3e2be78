"""Checklist evidence against real inputs (a live TLS endpoint with a short-lived certificate, seeded
access logs, a real command, vault contents in moto, real audit chains) and the all-automated
evening checklist run for real with dag.test()."""

import json
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.checklists.audit import AuditLog
from gravitypm_ops.checklists.evidence import registry as evidence_registry
from gravitypm_ops.checklists.evidence import tls as evidence_tls
from gravitypm_ops.config import parse_config
from gravitypm_ops.vault.store import Vault
from tests.access_logs import seed_logs

NOW = datetime.now(UTC)


def test_certificate_read_from_the_live_endpoint(tls_endpoint):
    server, ca = tls_endpoint(60)
    found = evidence_tls.fetch_certificate("localhost", server.port, ca_file=ca, timeout=5)
    assert found["valid"] and found["error"] is None and found["subject"] == "localhost"
    # made a moment ago, expiring in 60 days (the certificate holds whole seconds)
    assert abs(datetime.fromisoformat(found["not_after"]) - (datetime.now(UTC) + timedelta(days=60))) < timedelta(seconds=5)


def test_tls_collector_warns_and_alerts_under_the_warning_days(tls_endpoint):
    healthy, ca_healthy = tls_endpoint(90)
    expiring, ca_expiring = tls_endpoint(10)
    bundle = os.path.join(os.path.dirname(ca_healthy), "bundle.pem")
    with open(bundle, "w") as out:
        out.write(open(ca_healthy).read() + open(ca_expiring).read())
    cfg = parse_config({"checklists": {"tls_endpoints": [f"localhost:{healthy.port}", f"localhost:{expiring.port}"],
                                       "tls_ca_file": bundle}})
    result = evidence_registry.collect("tls_expiry", cfg)
    assert result.outcome == "warning", result.summary
    assert f"localhost:{expiring.port}: expires in 10 days, under 30" in result.summary
    assert f"localhost:{healthy.port}: valid for 90 more days" in result.summary
    assert result.alert and "Critical" in result.alert
    cfg = parse_config({"checklists": {"tls_endpoints": [f"localhost:{expiring.port}"], "tls_ca_file": ca_expiring,
                                       "tls_warning_days": 7}})
    assert evidence_registry.collect("tls_expiry", cfg).outcome == "passed"


def test_expired_untrusted_and_unreachable_endpoints_fail(tls_endpoint):
    expired, ca_expired = tls_endpoint(-2)
    found = evidence_tls.fetch_certificate("localhost", expired.port, ca_file=ca_expired, timeout=5)
    assert not found["valid"] and "expired" in found["error"]
    assert datetime.fromisoformat(found["not_after"]) < NOW  # read without trusting it, to say when
    trusted, _ = tls_endpoint(60)
    untrusted = evidence_tls.fetch_certificate("localhost", trusted.port, timeout=5)  # system CAs only
    assert not untrusted["valid"] and "self-signed" in untrusted["error"]
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert "unreachable" in evidence_tls.fetch_certificate("127.0.0.1", port, timeout=2)["error"]
    cfg = parse_config({"checklists": {"tls_endpoints": [f"localhost:{expired.port}"], "tls_ca_file": ca_expired}})
    result = evidence_registry.collect("tls_expiry", cfg)
    assert result.outcome == "failed" and result.alert


# --- vault contents (moto) --------------------------------------------------------------------------
@pytest.fixture
def vault_cfg(stack):
    prefix = f"chk-{uuid.uuid4().hex[:8]}"
    cfg = parse_config({**stack.ops_config(), "vault_prefix": prefix})
    return cfg, Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())


def add_backup(vault, kind, run_after, payload: bytes, *, verified: str | None, content=None) -> dict:
    writer = vault.begin_backup(kind, dag_id="gravitypm_test", run_id=f"r-{run_after.isoformat()}",
                                run_after=run_after)
    with writer.artifact("payload.bin", compression="none", format="bytes") as out:
        out.write(payload)
    manifest = writer.commit(source={}, tools={}, content=content or {})
    if verified:
        vault.record_verification(manifest, {"kind": manifest["kind"], "backup_id": manifest["backup_id"],
                                             "status": verified, "finished": datetime.now(UTC).isoformat(),
                                             "checks": [{"name": "sha256", "status": verified, "detail": ""}]})
    return manifest


def test_backup_integrity_and_full_verification_from_the_vault(vault_cfg):
    cfg, vault = vault_cfg
    for i, kind in enumerate(("db", "fs", "config", "logs")):
        add_backup(vault, kind, NOW - timedelta(days=2, hours=i), b"x" * 100, verified="passed")
    result = evidence_registry.collect("backup_integrity", cfg)
    assert result.outcome == "passed", result.summary
    assert {link["label"] for link in result.links} >= {"backup status", "db latest verified manifest"}
    assert evidence_registry.collect("full_backup_verification", cfg).outcome == "passed"

    add_backup(vault, "config", NOW - timedelta(days=1), b"y" * 100, verified="failed")
    broken = evidence_registry.collect("backup_integrity", cfg)
    assert broken.outcome == "failed" and "config: newest backup" in broken.summary and "(sha256)" in broken.summary
    full = evidence_registry.collect("full_backup_verification", cfg)
    assert full.outcome == "failed" and full.data["config"]["failed"]


def test_capacity_from_the_trend_of_db_and_backup_sizes(vault_cfg, stack, tmp_path):
    _, vault = vault_cfg
    cfg = parse_config({**stack.ops_config(), "vault_prefix": vault.prefix, "app_root": str(tmp_path)})
    for day in range(5):  # the DB grows ~1 TB a day: far faster than any test disk can absorb
        bson = 10**12 * (day + 1)
        add_backup(vault, "db", NOW - timedelta(days=8 - 2 * day), b"z" * (1000 * (day + 1)), verified="passed",
                   content={"databases": {"gravitypm_production": {"projects": {"bson_bytes": bson}}}})
    result = evidence_registry.collect("capacity", cfg)
    db = result.data["backup_trends"]["db"]
    assert db["points"] == 5 and db["growth_percent"] == 400.0 and db["bytes_per_day"] == pytest.approx(500.0)
    assert result.data["host_data_trends"]["db"]["bytes_per_day"] == pytest.approx(5e11)
    assert result.data["days_until_disk_threshold"] < 90
    assert result.outcome == "warning" and "backup size grew 400 %" in result.summary


# --- compliance over real audit chains --------------------------------------------------------------
def record(period, item, outcome, when):
    return {"period": period, "run_id": f"scheduled__{period}", "dag_id": "gravitypm_weekly_maintenance",
            "item": item, "title": item, "item_kind": "human", "outcome": outcome, "actor": "alice",
            "started_at": when, "completed_at": when, "evidence": {"summary": "s"}}


def test_compliance_audit_verifies_chains_and_reports_gaps_and_missed_items(vault_cfg, stack):
    from gravitypm_ops.checklists.periods import period_of

    cfg, vault = vault_cfg
    audit = AuditLog(vault)
    weeks = [NOW - timedelta(weeks=n) for n in (5, 4, 2, 1)]  # the week 3 weeks ago has no run
    for when in weeks:
        outcome = "missed" if when == weeks[-1] else "passed"
        audit.append("weekly_maintenance", [record(period_of("weekly", when), "test_failover_procedures", outcome,
                                                   when)])
    drill = audit.append("dr_drill", [record("2026-Q4", "drill", "passed", weeks[-1])])
    result = evidence_registry.collect("compliance", cfg, now=NOW)
    gap = period_of("weekly", NOW - timedelta(weeks=3))
    assert result.outcome == "warning", result.summary
    assert result.data["gaps"]["weekly_maintenance"] == [gap]
    assert result.data["missed"] == [{"checklist": "weekly_maintenance", "period": period_of("weekly", weeks[-1]),
                                      "item": "test_failover_procedures"}]
    assert result.data["chains"]["dr_drill"]["ok"]
    # Every catalogue checklist is audited, the morning one too: a day without its run is a gap.
    morning = result.data["chains"]["morning_checklist"]
    assert morning["ok"] and morning["records"] == 0
    assert period_of("daily", NOW - timedelta(days=1)) in result.data["gaps"]["morning_checklist"]

    key = f"{vault.prefix}/audit/dr_drill/0000000001.json"
    stack.s3_client().put_object(Bucket=vault.bucket, Key=key, Body=json.dumps({**drill[0], "outcome": "failed"}))
    tampered = evidence_registry.collect("compliance", cfg, now=NOW)
    assert tampered.outcome == "failed" and "dr_drill: audit chain does not verify" in tampered.summary

    s3 = stack.s3_client()  # the whole weekly history deleted: gone from the listing, not from the versions
    for listed in s3.list_objects_v2(Bucket=vault.bucket, Prefix=f"{vault.prefix}/audit/weekly_maintenance/")["Contents"]:
        s3.delete_object(Bucket=vault.bucket, Key=listed["Key"])
    wiped = evidence_registry.collect("compliance", cfg, now=NOW)
    assert wiped.outcome == "failed" and "weekly_maintenance: audit chain does not verify" in wiped.summary


# --- the evening checklist, run for real ------------------------------------------------------------
def test_evening_checklist_run_records_every_item_in_order(run_dag, stack, slack, tls_endpoint, tmp_path):
    expiring, ca = tls_endpoint(12)
    seed_logs(tmp_path / "logs", attack=40, now=NOW)
    prefix = f"evening-{uuid.uuid4().hex[:8]}"
    vault = Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())
    add_backup(vault, "db", NOW - timedelta(hours=2), b"db" * 50, verified="passed")
    overrides = {
        "vault_prefix": prefix, "logs_dir": str(tmp_path / "logs"),
        "checklists": {"tls_endpoints": [f"localhost:{expiring.port}"], "tls_ca_file": ca},
    }
    result = run_dag("gravitypm_evening_checklist", overrides)

    assert result.task_states["record_audit"] == "success"
    assert result.task_states["failed_logins_and_access_logs"] == "failed"  # the seeded spike
    assert result.state == "failed"  # the watcher makes the run red
    audit = AuditLog(vault)
    records = audit.records("evening_checklist")
    assert [r["item"] for r in records] == [
        "backup_verification_state", "disk_space", "failed_logins_and_access_logs", "ssl_certificate_validity"]
    assert [r["outcome"] for r in records] == ["warning", "passed", "failed", "warning"]
    assert {r["period"] for r in records} == {result.dag_run.run_after.date().isoformat()}
    assert all(r["actor"] == "automation" and r["item_kind"] == "automated" for r in records)
    assert all(r["run_id"] == result.dag_run.run_id for r in records)
    assert "203.0.113.66 40×" in records[2]["evidence"]["summary"]
    assert records[3]["evidence"]["data"]["endpoints"][0]["days_left"] == pytest.approx(12, abs=0.1)
    assert records[0]["evidence"]["links"][0]["url"].endswith("/tasks/backup_verification_state")
    assert audit.verify("evening_checklist").ok

    texts = slack.texts()
    assert any("[Critical]" in t and "expires in 12 days" in t for t in texts), texts
    summary = next(t for t in texts if "*Evening checklist*" in t)
    assert "1 passed" in summary and "1 failed" in summary and "2 warning" in summary
    blob = json.dumps([texts, records])
    for secret in (stack.secrets.aws_secret_access_key, stack.secrets.mongo_password, stack.secrets.slack_token,
                   stack.secrets.signing_key):
        assert secret not in blob

    again = run_dag("gravitypm_evening_checklist", overrides)
    assert again.task_states["record_audit"] == "success"
    report = audit.verify("evening_checklist")
    assert report.ok and report.records == 8
