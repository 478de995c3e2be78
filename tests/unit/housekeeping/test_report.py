"""The run's summary and its audit record: what a reader of Slack and of the history sees."""

from __future__ import annotations

from gravitypm_ops.checklists.audit import validate_record
from gravitypm_ops.housekeeping.report import AUDIT_CHECKLIST, audit_record, human_bytes, outcome, summary_text

FIGURES = {"backend": "postgresql", "db_bytes": 3 * 1024**3, "rows": {"dag_run": 900, "log": 50_000}}
META = {"dry_run": False, "keep_days": 90, "cutoff": "2026-09-02T05:00:00+00:00", "before": FIGURES,
        "after": {**FIGURES, "rows": {"dag_run": 400, "log": 1000}}, "removed": {"dag_run": 500, "log": 49_000},
        "error": None}
LOGS = {"log_keep_days": 30, "error": None, "remote": None,
        "local": {"folder": "/opt/airflow/logs", "exists": True, "dry_run": False, "files": 120, "bytes": 5 * 1024**2,
                  "before_bytes": 9 * 1024**2, "after_bytes": 4 * 1024**2, "errors": []}}


def test_summary_names_rows_sizes_and_files():
    text = summary_text(META, LOGS, dag_id="d", run_id="scheduled__1", dry_run=False)
    assert text.splitlines()[0] == "*Airflow housekeeping* (scheduled__1): passed"
    assert "removed 49500 row(s) (log 49000, dag_run 500)" in text
    assert "big tables 50900 → 1400 rows; DB size 3.0 GiB → 3.0 GiB" in text
    assert "removed 120 file(s) (5.0 MiB); log folder 9.0 MiB → 4.0 MiB" in text


def test_a_failed_table_makes_the_run_failed_and_is_named():
    failed = {**META, "error": "airflow db clean failed on table(s) log (exit 1)"}
    assert outcome(failed, LOGS) == "failed" and outcome(None, LOGS) == "failed"
    assert "failed on table(s) log" in summary_text(failed, LOGS, dag_id="d", run_id="r", dry_run=False)


def test_a_dry_run_says_would_remove():
    dry = {**META, "dry_run": True}
    text = summary_text(dry, {**LOGS, "local": {**LOGS["local"], "dry_run": True}}, dag_id="d", run_id="r",
                        dry_run=True)
    assert "dry run: nothing changed" in text and text.count("would remove") == 2


def test_the_audit_record_is_valid_and_carries_the_trend():
    record = audit_record(META, LOGS, period="2026-W49", dag_id="gravitypm_airflow_housekeeping", run_id="r",
                          dry_run=False, started_at="2026-12-06T05:00:00+00:00",
                          completed_at="2026-12-06T05:03:00+00:00")
    clean = validate_record(AUDIT_CHECKLIST, record)
    data = clean["evidence"]["data"]
    assert data["metadata"]["db_bytes"] == {"before": 3 * 1024**3, "after": 3 * 1024**3}
    assert data["metadata"]["rows"]["after"] == {"dag_run": 400, "log": 1000}
    assert data["task_logs"]["folder_bytes"] == {"before": 9 * 1024**2, "after": 4 * 1024**2}
    assert clean["outcome"] == "passed" and clean["item"] == "housekeeping"


def test_human_bytes():
    assert [human_bytes(n) for n in (None, 512, 2048, 5 * 1024**3)] == ["n/a", "512 B", "2.0 KiB", "5.0 GiB"]
