from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.host import checks as host_checks


def test_disk_breach_at_or_below_threshold():
    usage = {"/a": (100, 85, 15), "/b": (100, 70, 30), "/c": (100, 80, 20)}
    result = host_checks.check_disk(["/a", "/b", "/c"], 20, usage=lambda p: usage[p])
    assert [f.status for f in result.findings] == ["breach", "ok", "breach"]  # "> 20% free" is strict
    assert result.status == "breach"
    assert "15.0% free" in result.findings[0].detail


def test_disk_missing_path_is_a_breach_not_a_crash():
    def usage(path):
        raise FileNotFoundError(path)

    result = host_checks.check_disk(["/nope"], 20, usage=usage)
    assert result.status == "breach" and "does not exist" in result.findings[0].detail


def test_memory_threshold():
    assert host_checks.check_memory(85, used_percent=84.9).status == "ok"
    assert host_checks.check_memory(85, used_percent=85.0).status == "breach"


def test_backup_age_fresh_stale_and_missing():
    now = datetime(2026, 11, 27, 8, tzinfo=UTC)
    latest = {"db": now - timedelta(hours=6), "fs": now - timedelta(hours=30), "config": None}
    result = host_checks.check_backup_age(latest, {"db": 7, "fs": 26, "config": 26}, now)
    by_kind = {f.subject: f for f in result.findings}
    assert by_kind["db"].status == "ok"
    assert by_kind["fs"].status == "breach" and "30.0 h ago" in by_kind["fs"].detail
    assert by_kind["config"].status == "warning" and by_kind["config"].detail == "no backup yet"
    assert result.status == "breach"


def test_only_missing_backups_is_a_warning():
    now = datetime(2026, 11, 27, tzinfo=UTC)
    assert host_checks.check_backup_age({"db": None}, {"db": 7}, now).status == "warning"


def test_result_as_published_to_xcom_names_its_worst_status():
    result = host_checks.CheckResult("x", (host_checks.Finding("a", "ok", "fine"), host_checks.Finding("b", "warning", "hm")))
    assert result.to_dict() == {"check": "x", "status": "warning", "findings": [
        {"subject": "a", "status": "ok", "detail": "fine"}, {"subject": "b", "status": "warning", "detail": "hm"}]}


def test_report_publishes_before_failing_on_a_breach(monkeypatch):
    import airflow.sdk
    from airflow.sdk.exceptions import AirflowFailException

    class TI:
        pushed = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    ti = TI()
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: {"ti": ti})
    assert host_checks.report(host_checks.check_memory(85, used_percent=10))["status"] == "ok"
    with pytest.raises(AirflowFailException, match="memory: 90.0% used"):
        host_checks.report(host_checks.check_memory(85, used_percent=90))
    assert ti.pushed[host_checks.RESULT_KEY]["status"] == "breach"


def test_vault_hygiene_rules_must_cover_the_prefix():
    rule = {"Status": "Enabled", "Filter": {"Prefix": "other/"}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}
    settings = {"versioning": "Enabled", "lifecycle_rules": [rule], "object_lock": None}
    assert host_checks.check_vault_hygiene(settings, "production").status == "breach"
    covering = {**rule, "Filter": {"Prefix": "production/"}}
    assert host_checks.check_vault_hygiene({**settings, "lifecycle_rules": [covering]}, "production").status == "ok"
    disabled = {**covering, "Status": "Disabled"}
    assert host_checks.check_vault_hygiene({**settings, "lifecycle_rules": [disabled]}, "production").status == "breach"


def test_unsigned_vault_and_rejected_objects_are_warnings_not_failures():
    rule = {"Status": "Enabled", "Filter": {}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}
    settings = {"versioning": "Enabled", "lifecycle_rules": [rule], "object_lock": None}
    unsigned = host_checks.check_vault_hygiene({**settings, "signing_key_id": None}, "production")
    assert unsigned.status == "warning"
    assert "forged backup look verified" in {f.subject: f.detail for f in unsigned.findings}["signing"]
    signed = host_checks.check_vault_hygiene({**settings, "signing_key_id": "0123abcd", "rejected_count": 0}, "production")
    assert signed.status == "ok"
    example = host_checks.check_vault_hygiene({**settings, "signing_key_id": "0123abcd", "signing_placeholder": True},
                                              "production")
    assert example.status == "warning" and "example key" in example.findings[-1].detail
    forged = host_checks.check_vault_hygiene({**settings, "signing_key_id": "0123abcd", "rejected_count": 2}, "production")
    assert forged.status == "warning" and "2 manifest(s) or record(s)" in forged.findings[-1].detail


def test_unversioned_vault_is_a_breach_and_needs_no_noncurrent_rule():
    rule = {"Status": "Enabled", "Filter": {}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
    result = host_checks.check_vault_hygiene({"versioning": None, "lifecycle_rules": [rule]}, "production")
    assert {f.subject: f.status for f in result.findings} == {
        "versioning": "breach", "abort_incomplete_multipart": "ok", "object_lock": "ok"
    }
