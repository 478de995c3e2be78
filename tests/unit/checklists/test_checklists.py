"""Checklist definitions, settings, periods, outcome mapping and evidence judging (pure logic)."""

from datetime import UTC, date, datetime, timedelta

import pytest

from gravitypm_ops.checklists.catalog import AUTOMATED, CHECKLISTS, HUMAN, HUMAN_OPTIONS, Item
from gravitypm_ops.checklists.evidence import access_logs as evidence_access_logs
from gravitypm_ops.checklists.evidence import backups as evidence_backups
from gravitypm_ops.checklists.evidence import base as evidence_base
from gravitypm_ops.checklists.evidence import capacity as evidence_capacity
from gravitypm_ops.checklists.evidence import compliance as evidence_compliance
from gravitypm_ops.checklists.evidence import registry as evidence_registry
from gravitypm_ops.checklists.evidence import tls as evidence_tls
from gravitypm_ops.checklists.evidence import updates as evidence_updates
from gravitypm_ops.checklists.periods import period_of, period_start, periods_between
from gravitypm_ops.checklists.prompt import human_result, prompt_body
from gravitypm_ops.checklists.tasks import not_yet_recorded, outcome_without_result, with_gathered_evidence
from gravitypm_ops.config import ConfigError, parse_config
from gravitypm_ops.config.checklists import DEFAULT_SETTINGS, parse_checklist_settings, tls_endpoints

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


# --- definitions ------------------------------------------------------------------------------------
def test_the_runbook_checklists_are_defined_item_by_item():
    titles = {name: [i.title for i in c.items] for name, c in CHECKLISTS.items()}
    assert titles["weekly_maintenance"] == [
        "Review monitoring dashboards", "Check backup integrity", "Update security patches", "Review access logs",
        "Test failover procedures"]
    assert titles["monthly_maintenance"] == [
        "Full backup verification", "Security assessment", "Performance review", "Capacity planning",
        "Compliance audit"]
    assert titles["quarterly_maintenance"] == [
        "Disaster recovery test", "Load testing", "Architecture review", "Team training"]
    assert titles["morning_checklist"] == [
        "Service health", "Disk space (> 20 % free)", "Memory usage (< 85 %)", "Backup completion", "Vault hygiene"]
    assert [c.cadence for c in CHECKLISTS.values()] == ["weekly", "monthly", "quarterly", "daily", "daily"]
    dr = CHECKLISTS["quarterly_maintenance"].items[0]
    assert dr.trigger == "gravitypm_dr_drill" and dr.kind == AUTOMATED
    for checklist in CHECKLISTS.values():
        for item in checklist.items:
            assert item.owner and item.instructions, item.id
            if item.collector:
                assert item.collector in evidence_registry.COLLECTORS, item.id


def test_the_morning_checklist_keeps_its_dag_task_ids_and_critical_health_alert():
    from gravitypm_ops.airflow.alerts import Severity
    from gravitypm_ops.checklists.catalog import HOST_COLLECTORS

    morning = CHECKLISTS["morning_checklist"]
    assert (morning.dag_id, morning.schedule, morning.summary_task_id) == (
        "gravitypm_morning_checklist", "0 8 * * *", "post_summary")
    assert [i.id for i in morning.items] == [
        "check_service_health", "check_disk_space", "check_memory", "check_backup_age", "check_vault_hygiene"]
    assert all(i.kind == AUTOMATED for i in morning.items)
    assert {i.id: i.failure_alert for i in morning.items if i.failure_alert} == {"check_service_health": Severity.CRITICAL}
    assert [i.id for i in morning.items if i.collector in HOST_COLLECTORS] == ["check_disk_space", "check_memory"]
    assert {c.summary_task_id for c in CHECKLISTS.values() if c is not morning} == {"record_audit"}


def test_a_summary_task_id_must_not_be_an_item_id():
    from gravitypm_ops.checklists.catalog import Checklist

    item = Item("record_audit", "X", HUMAN, "ops", "do it")
    with pytest.raises(ValueError, match="summary_task_id 'record_audit' is an item id"):
        Checklist("x", "X", "daily", "0 8 * * *", "r", (item,))


def test_an_item_definition_is_checked():
    with pytest.raises(ValueError, match="needs a collector or a trigger"):
        Item("x", "X", AUTOMATED, "ops", "do it")
    with pytest.raises(ValueError, match="kind must be"):
        Item("x", "X", "robot", "ops", "do it")
    with pytest.raises(ValueError, match="task id"):
        Item("Bad-Id", "X", HUMAN, "ops", "do it")


# --- periods ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("cadence, moment, period", [
    ("daily", datetime(2026, 11, 27, 18, 0), "2026-11-27"),
    ("weekly", date(2026, 11, 23), "2026-W48"),
    ("weekly", date(2026, 1, 1), "2026-W01"),  # a Thursday: ISO week 1 of 2026
    ("weekly", date(2027, 1, 1), "2026-W53"),  # a Friday: still ISO week 53 of 2026
    ("monthly", date(2026, 11, 30), "2026-11"),
    ("quarterly", date(2026, 10, 1), "2026-Q4"),
    ("quarterly", date(2026, 3, 31), "2026-Q1"),
])
def test_period_of_and_its_start(cadence, moment, period):
    assert period_of(cadence, moment) == period
    start = period_start(cadence, period)
    assert period_of(cadence, start) == period and period_of(cadence, start - timedelta(days=1)) != period


def test_periods_between_lists_each_period_once_in_order():
    assert periods_between("weekly", date(2026, 11, 1), date(2026, 11, 20)) == [
        "2026-W44", "2026-W45", "2026-W46", "2026-W47"]
    assert periods_between("quarterly", date(2026, 2, 1), date(2026, 11, 1)) == [
        "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    assert periods_between("daily", date(2026, 11, 2), date(2026, 11, 1)) == []
    with pytest.raises(ValueError, match="not a monthly period"):
        period_start("monthly", "2026-W48")


# --- settings ---------------------------------------------------------------------------------------
def test_settings_default_and_override_through_the_config_key():
    assert parse_checklist_settings({}) == DEFAULT_SETTINGS
    cfg = parse_config({"checklists": {"tls_warning_days": 14, "human_response_hours": 0.01,
                                       "security_updates_command": ["/usr/bin/true"]}})
    assert cfg.checklists["tls_warning_days"] == 14 and cfg.checklists["human_response_hours"] == 0.01
    assert cfg.checklists["failed_login_threshold"] == DEFAULT_SETTINGS["failed_login_threshold"]
    assert DEFAULT_SETTINGS["security_updates_command"] == ["apt", "list", "--upgradable"]


def test_settings_lists_stay_lists_and_the_defaults_stay_untouched():
    s = parse_checklist_settings({"login_paths": ["/signin"], "tls_endpoints": ["a.example:8443"], "tls_ca_file": None})
    assert (s["login_paths"], s["tls_endpoints"], s["tls_ca_file"]) == (["/signin"], ["a.example:8443"], "")
    parse_checklist_settings(None)["security_updates_command"].append("--oops")
    assert DEFAULT_SETTINGS["security_updates_command"] == ["apt", "list", "--upgradable"]


@pytest.mark.parametrize("value, message", [
    ({"tls_warn_days": 3}, "unknown setting"),
    ({"tls_warning_days": 2.5}, r"checklists\.tls_warning_days must be a whole number >= 1"),
    ({"human_response_hours": 0}, r"checklists\.human_response_hours must be a number > 0"),
    ({"human_response_hours": True}, "must be a number"),
    ({"security_updates_command": "apt list --upgradable"}, "list of strings"),
    ({"tls_endpoints": ["https://x.example"]}, "is not 'host' or 'host:port'"),
    ({"tls_endpoints": "x.example"}, "must be a list"),
    ({"tls_endpoints": ["x.example:70000"]}, "port out of range"),
    ({"tls_ca_file": "certs/ca.pem"}, "absolute path"),
    ({"login_paths": ["login"]}, "'login' is not a URL path"),
    ({"login_paths": []}, "non-empty list of URL paths"),
    ({"error_rate_warning_percent": 100}, r"error_rate_warning_percent must be a number between 0 and 100"),
    ([], "must be an object of setting -> value"),
    ({"error_rate_warning_percent": 10, "error_rate_failure_percent": 5}, r"\(10\) must not exceed"),
])
def test_bad_settings_fail_with_the_key_named(value, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_config({"checklists": value})
    assert "'checklists'" in str(err.value)


def test_tls_endpoints_default_to_the_https_health_url_hosts():
    cfg = parse_config({"health_urls": {"a": "https://api.example.com/health", "b": "https://api.example.com/db",
                                        "c": "https://www.example.com:8443/health", "d": "http://plain.example/health"}})
    assert tls_endpoints(cfg) == [("api.example.com", 443), ("www.example.com", 8443)]
    cfg = parse_config({"checklists": {"tls_endpoints": ["localhost:9443", "example.org"]}})
    assert tls_endpoints(cfg) == [("localhost", 9443), ("example.org", 443)]


# --- human outcomes ---------------------------------------------------------------------------------
def answer(option, comment="checked grafana", user="alice"):
    return {"chosen_options": [option], "params_input": {"comment": comment},
            "responded_by_user": {"id": user, "name": user}, "responded_at": NOW}


@pytest.mark.parametrize("option, outcome", list(HUMAN_OPTIONS.items()))
def test_each_answer_maps_to_its_outcome_with_the_responder_as_actor(option, outcome):
    result = human_result(answer(option), "2026-11-27T17:00:00+00:00")
    assert (result["outcome"], result["actor"]) == (outcome, "alice")
    assert result["completed_at"] == NOW.isoformat() and result["data"]["comment"] == "checked grafana"


def test_an_answer_without_comment_is_not_accepted():
    result = human_result(answer("Done", comment="   "), "2026-11-27T17:00:00+00:00")
    assert result["outcome"] == "failed" and "without the required comment" in result["summary"]


@pytest.mark.parametrize("option, comment, fails", [
    ("Done", "checked grafana", False), ("Not done / problem found", "disk 91 %", True), ("Done", " ", True)])
def test_a_failed_answer_fails_the_prompt_task_after_publishing_its_result(option, comment, fails):
    from airflow.sdk.exceptions import AirflowFailException

    from gravitypm_ops.checklists.prompt import RESULT_KEY, ChecklistPrompt

    class TI:
        start_date, pushed = NOW, {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    prompt, ti = ChecklistPrompt(checklist="weekly_maintenance", item="test_failover_procedures"), TI()
    if fails:  # a red task, so fail_run_if_any_check_failed makes the run red
        with pytest.raises(AirflowFailException):
            prompt.execute_complete({"ti": ti}, answer(option, comment))
    else:
        assert prompt.execute_complete({"ti": ti}, answer(option, comment))["chosen_options"] == [option]
    assert ti.pushed[RESULT_KEY]["outcome"] == ("failed" if fails else "passed")


def test_an_item_without_result_is_never_passed():
    human = CHECKLISTS["weekly_maintenance"].items[0]
    automated = CHECKLISTS["weekly_maintenance"].items[1]
    for state in ("failed", "upstream_failed", "skipped", "success", None):
        assert outcome_without_result(human, state)["outcome"] == "missed"
        assert outcome_without_result(automated, state)["outcome"] == "failed"


def test_the_prompt_shows_instructions_evidence_and_the_deadline():
    item = CHECKLISTS["monthly_maintenance"].items[1]
    body = prompt_body(item, item.owner, {"outcome": "failed", "summary": "2 security update(s) pending: openssl",
                                          "links": [{"label": "log", "url": "http://x/y"}]}, 0.5)
    assert item.instructions in body and "2 security update(s) pending: openssl" in body
    assert "[log](http://x/y)" in body and "within 0.5 h" in body and "missed" in body
    assert "_Not available" in prompt_body(item, item.owner, None, 24)


def test_a_human_record_keeps_the_evidence_the_responder_saw():
    gathered = {"outcome": "failed", "summary": "1 security update pending", "data": {"security": 1},
                "links": [{"label": "status", "url": "s3://b/k"}]}
    result = with_gathered_evidence(human_result(answer("Done"), "t0"), gathered)
    assert result["outcome"] == "passed" and result["data"]["comment"] == "checked grafana"
    assert result["data"]["gathered_evidence"] == {"outcome": "failed", "summary": "1 security update pending",
                                                   "data": {"security": 1}}
    assert result["links"] == [{"label": "status", "url": "s3://b/k"}]
    assert with_gathered_evidence(human_result(answer("Done"), "t0"), None)["data"]["gathered_evidence"] is None


def test_oversized_evidence_data_is_replaced_by_a_note_not_a_failed_record():
    from gravitypm_ops.checklists.audit import validate_record
    from gravitypm_ops.checklists.tasks import build_record

    checklist = CHECKLISTS["evening_checklist"]
    result = {"outcome": "passed", "summary": "ok", "links": [], "data": {"blob": "x" * 100_000},
              "actor": "automation", "started_at": NOW.isoformat(), "completed_at": NOW.isoformat()}
    record = build_record(checklist, checklist.items[0], result, period="2026-11-27", dag_id="d", run_id="r")
    assert "truncated" in record["evidence"]["data"]
    assert validate_record("evening_checklist", record)["outcome"] == "passed"


def test_a_retried_record_task_appends_only_what_is_missing():
    records = [{"item": i, "run_id": "r2"} for i in ("a", "b", "c")]
    tail = [{"item": "c", "run_id": "r1"}, {"item": "a", "run_id": "r2"}]  # the first try stored "a"
    assert not_yet_recorded(records, tail, "r2") == records[1:]
    assert not_yet_recorded(records, [{"item": "a", "run_id": "r1"}], "r2") == records


def test_the_summary_still_goes_out_when_the_audit_cannot_be_written_on_the_last_try(monkeypatch):
    import airflow.sdk

    import gravitypm_ops.airflow.alerts
    import gravitypm_ops.config
    from gravitypm_ops.checklists import audit as checklists_audit
    from gravitypm_ops.checklists import tasks as checklists_tasks

    class TI:
        max_tries = 2

        def get_task_states(self, dag_id, task_ids, run_ids):
            return {"r1": dict.fromkeys(task_ids, "success")}

        def xcom_pull(self, task_ids, key):
            return {"outcome": "warning" if task_ids == "check_backup_age" else "passed", "summary": f"{task_ids} ok",
                    "links": [], "data": {}, "actor": "automation", "started_at": NOW.isoformat(),
                    "completed_at": NOW.isoformat()}

    class DagRun:
        dag_id, run_id, logical_date, run_after = "gravitypm_morning_checklist", "r1", NOW, NOW

    def vault_down(cfg):
        raise ConnectionError("vault unreachable")

    sent, ti = [], TI()
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: {"ti": ti, "dag_run": DagRun()})
    monkeypatch.setattr(gravitypm_ops.config, "load_config", lambda: None)
    monkeypatch.setattr(checklists_audit.AuditLog, "from_config", classmethod(lambda cls, cfg: vault_down(cfg)))
    monkeypatch.setattr(gravitypm_ops.airflow.alerts, "send_slack", sent.append)
    ti.try_number = 1  # a retry follows: no summary yet
    with pytest.raises(ConnectionError):
        checklists_tasks.record_audit("morning_checklist")
    assert sent == []
    ti.try_number = 3  # the last try
    with pytest.raises(ConnectionError):
        checklists_tasks.record_audit("morning_checklist")
    (text,) = sent
    assert text.startswith("*Morning checklist* 2026-11-27 (r1): 4 passed, 1 warning")
    assert ":warning: *Backup completion* (automation): check_backup_age ok" in text
    assert text.endswith("*audit records NOT written*: ConnectionError: vault unreachable")


def test_host_probe_results_become_evidence_in_the_checklist_vocabulary():
    from gravitypm_ops.host import checks as host_checks

    now = datetime(2026, 11, 27, 8, tzinfo=UTC)
    probe = host_checks.check_backup_age({"db": now - timedelta(hours=9), "fs": None, "config": now}, {
        "db": 7, "fs": 26, "config": 26}, now)
    evidence = evidence_base.from_check(probe)
    assert evidence.outcome == "failed"
    assert evidence.summary.startswith("db: last backup 9.0 h ago (limit 7 h); fs: no backup yet; config:")
    assert [(f["subject"], f["outcome"]) for f in evidence.data["findings"]] == [
        ("db", "failed"), ("fs", "warning"), ("config", "passed")]
    assert evidence_base.from_check(host_checks.check_memory(85, used_percent=40)).outcome == "passed"
    missing_only = host_checks.check_backup_age({"db": None}, {"db": 7}, now)
    assert evidence_base.from_check(missing_only).outcome == "warning"  # no backup yet: not a failure


# --- access logs ------------------------------------------------------------------------------------
def test_access_lines_in_combined_and_iso_format():
    combined = '203.0.113.9 - - [27/Nov/2026:17:59:01 +0000] "POST /api/auth/login?next=/x HTTP/1.1" 401 12 "-" "curl"'
    request = evidence_access_logs.parse_access_line(combined)
    assert request == evidence_access_logs.Request(datetime(2026, 11, 27, 17, 59, 1, tzinfo=UTC), "203.0.113.9", "POST",
                                       "/api/auth/login", 401)
    dev = '127.0.0.1 - - [2026-11-27T17:00:00.5+00:00] "GET /api/projects HTTP/1.1" 200 560'
    assert evidence_access_logs.parse_access_line(dev).status == 200
    assert evidence_access_logs.parse_access_line("garbage line") is None
    assert evidence_access_logs.parse_access_line('1.2.3.4 - - [yesterday] "GET / HTTP/1.1" 200 1') is None


def line(ip, status, path="/api/projects", minutes_ago=10):
    t = NOW - timedelta(minutes=minutes_ago)
    return f'{ip} - - [{t:%d/%b/%Y:%H:%M:%S %z}] "GET {path} HTTP/1.1" {status} 10 "-" "ua"'


def judge(lines, **settings):
    stats = evidence_access_logs.scan_access_lines(lines, NOW - timedelta(hours=24), NOW, DEFAULT_SETTINGS["login_paths"])
    return evidence_access_logs.judge_access(stats, {**DEFAULT_SETTINGS, **settings}, 24)


def test_a_quiet_log_passes_and_counts_by_status():
    result = judge([line("10.0.0.1", 200)] * 97 + [line("10.0.0.2", 403), line("10.0.0.3", 401), line("x", 500)])
    assert result.outcome == "passed"
    assert (result.data["requests"], result.data["401"], result.data["403"], result.data["5xx"]) == (100, 1, 1, 1)


def test_lines_outside_the_window_are_ignored():
    result = judge([line("10.0.0.1", 500, minutes_ago=25 * 60)] + [line("10.0.0.1", 200)] * 10)
    assert result.data["requests"] == 10 and result.outcome == "passed"


def test_failed_login_spike_from_one_client_fails():
    attack = [line("198.51.100.7", 401, "/api/auth/login")] * 20
    result = judge(attack + [line("10.0.0.1", 200)] * 500)
    assert result.outcome == "failed" and "198.51.100.7 20×" in result.summary
    assert result.data["top_failed_login_clients"] == {"198.51.100.7": 20}
    spread = [line(f"198.51.100.{n}", 401, "/login") for n in range(25)]
    assert judge(spread + [line("10.0.0.1", 200)] * 500).outcome == "warning"
    not_logins = [line("198.51.100.7", 401, "/api/projects")] * 30  # 401s off the login paths are no spike
    assert judge(not_logins + [line("10.0.0.1", 200)] * 5000).data["failed_logins"] == 0


@pytest.mark.parametrize("errors, outcome", [(0, "passed"), (2, "warning"), (6, "failed")])
def test_5xx_rate_against_the_runbook_thresholds(errors, outcome):
    result = judge([line("10.0.0.1", 502, "/api/slow")] * errors + [line("10.0.0.1", 200)] * (100 - errors))
    assert result.outcome == outcome
    if errors:
        assert result.data["top_5xx_paths"] == {"/api/slow": errors}


def test_an_empty_or_unreadable_log_is_a_warning():
    assert judge([]).outcome == "warning"
    result = judge(["not a log line"] * 3)
    assert result.outcome == "warning" and "3 line(s) not in common/combined log format" in result.summary


# --- TLS, updates, backups, capacity, compliance ----------------------------------------------------
def cert(days, valid=True, error=None):
    return {"host": "h", "port": 443, "valid": valid, "error": error,
            "not_after": (NOW + timedelta(days=days)).isoformat() if days is not None else None}


def test_certificates_judged_against_the_warning_days():
    assert evidence_tls.judge_certificates([cert(90)], 30, NOW).outcome == "passed"
    soon = evidence_tls.judge_certificates([cert(90), cert(12)], 30, NOW)
    assert soon.outcome == "warning" and "expires in 12 days" in soon.summary and "Critical" in soon.alert
    bad = evidence_tls.judge_certificates([cert(-2, False, "certificate not valid: certificate has expired")], 30, NOW)
    assert bad.outcome == "failed" and bad.alert
    assert evidence_tls.judge_certificates([cert(None, False, "unreachable: refused")], 30, NOW).outcome == "failed"
    assert evidence_tls.judge_certificates([], 30, NOW).outcome == "warning"


APT = """Listing...
openssl/stable-security 3.0.15-1~deb12u1 amd64 [upgradable from: 3.0.14-1~deb12u2]
libssl3/stable-security,stable 3.0.15-1~deb12u1 amd64 [upgradable from: 3.0.14-1~deb12u2]
tzdata/stable-updates 2025b-0+deb12u1 all [upgradable from: 2025a-0+deb12u1]
"""


def test_apt_output_is_parsed_and_security_updates_fail():
    pending = evidence_updates.parse_upgradable(APT)
    assert [(p["package"], p["security"]) for p in pending] == [
        ("openssl", True), ("libssl3", True), ("tzdata", False)]
    result = evidence_updates.judge_updates(pending)
    assert result.outcome == "failed" and "2 security update(s) pending: openssl, libssl3" in result.summary
    only_regular = evidence_updates.judge_updates(evidence_updates.parse_upgradable(APT.splitlines()[-1]))
    assert only_regular.outcome == "passed" and "1 other update" in only_regular.summary


def summary(**kw):
    base = {"count": 3, "latest_id": "b3", "age_hours": 1.0, "verified": True, "latest_verified_id": "b3",
            "last_verification": {"status": "passed", "checks": []}}
    return {**base, **kw}


def test_backup_summaries_judged_per_kind():
    parts, _ = evidence_backups.judge_backup_summaries({
        "db": summary(), "fs": None,
        "config": summary(verified=False, last_verification={"status": "failed", "checks": [
            {"name": "sha256", "status": "failed"}]}),
        "logs": summary(verified=False, latest_verified_id=None, last_verification=None),
    })
    assert [o for o, _ in parts] == ["passed", "warning", "failed", "warning"]
    assert "config: newest backup b3 FAILED verification (sha256)" in parts[2][1]
    late, _ = evidence_backups.judge_backup_summaries({"db": summary(verified=False, age_hours=5, latest_verified_id="b2",
                                                             last_verification=None)})
    assert late[0][0] == "warning" and "still unverified" in late[0][1]


def test_trend_is_a_least_squares_slope():
    points = [(NOW - timedelta(days=d), 1000 + 10 * (30 - d)) for d in range(30, -1, -1)]
    found = evidence_capacity.trend(points)
    assert found["bytes_per_day"] == pytest.approx(10.0) and found["growth_percent"] == 30.0
    assert evidence_capacity.trend(points[:1]) is None
    assert evidence_capacity.trend([(NOW, 1), (NOW + timedelta(hours=2), 2)]) is None


def test_capacity_reads_the_metadata_db_size_from_housekeeping_records():
    def record(days_ago: int, size: int, dry_run: bool = False) -> dict:
        return {"completed_at": (NOW - timedelta(days=days_ago)).isoformat(),
                "evidence": {"data": {"dry_run": dry_run, "metadata": {"db_bytes": {"before": size * 2, "after": size}}}}}

    found = evidence_capacity.metadb_trend([record(28, 1000), record(14, 1500), record(7, 9999, dry_run=True),
                                            record(0, 2000)])
    assert found["points"] == 3 and found["first_bytes"] == 1000 and found["last_bytes"] == 2000  # dry runs left out
    status, text = evidence_capacity.judge_metadb(found, growth_warning_percent=50)
    assert status == "warning" and "grew 100 %" in text
    assert evidence_capacity.judge_metadb(found, growth_warning_percent=150)[0] == "passed"
    assert evidence_capacity.judge_metadb(evidence_capacity.metadb_trend([record(0, 5)]), 50) is None  # one run: no trend


def test_capacity_warns_when_disk_headroom_runs_out_within_the_horizon():
    grow = {"points": 5, "first_bytes": 100, "last_bytes": 110, "bytes_per_day": 1e6, "growth_percent": 10.0}
    parts, data = evidence_capacity.judge_capacity({"db": grow}, {"db": grow}, headroom_bytes=30e6, horizon_days=90,
                                          growth_warning_percent=50)
    assert evidence_base.worst(o for o, _ in parts) == "warning" and data["days_until_disk_threshold"] == 30.0
    parts, _ = evidence_capacity.judge_capacity({"db": grow}, {"db": grow}, 300e6, 90, 50)
    assert evidence_base.worst(o for o, _ in parts) == "passed"
    parts, _ = evidence_capacity.judge_capacity({"db": {**grow, "growth_percent": 80.0}}, {}, 300e6, 90, 50)
    assert evidence_base.worst(o for o, _ in parts) == "warning"
    parts, _ = evidence_capacity.judge_capacity({"db": grow}, {}, -1, 90, 50)
    assert evidence_base.worst(o for o, _ in parts) == "failed"


def test_compliance_reports_broken_chains_gaps_and_missed_items():
    chains = {"weekly_maintenance": {"ok": True, "records": 10, "problems": []},
              "dr_drill": {"ok": False, "records": 2, "problems": ["seq 2: content does not match its hash"]}}
    records = {"weekly_maintenance": [{"period": "2026-W46", "outcome": "passed", "item": "a"},
                                      {"period": "2026-W47", "outcome": "missed", "item": "b"}]}
    parts, data = evidence_compliance.compliance_findings(chains, records, {"weekly_maintenance": ["2026-W45", "2026-W46",
                                                                                        "2026-W47"]})
    assert evidence_base.worst(o for o, _ in parts) == "failed"
    assert data["gaps"] == {"weekly_maintenance": ["2026-W45"]}
    assert data["missed"] == [{"checklist": "weekly_maintenance", "period": "2026-W47", "item": "b"}]
    chains["dr_drill"]["ok"] = True
    parts, _ = evidence_compliance.compliance_findings(chains, records, {"weekly_maintenance": ["2026-W46", "2026-W47"]})
    assert evidence_base.worst(o for o, _ in parts) == "warning"  # the missed item
