"""Task bodies of gravitypm_airflow_housekeeping.

Each clean-up task pushes its report (sizes before and after) under the XCom key `report` before it
fails or returns, so the `report` task can tell the whole story of a red run too.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

REPORT_KEY = "report"
# `airflow db clean` gets this long; the task's execution_timeout is a little longer (the two probes).
CLEAN_TIMEOUT = timedelta(hours=1, minutes=45)


def _push(report: dict) -> dict:
    from airflow.sdk import get_current_context

    get_current_context()["ti"].xcom_push(key=REPORT_KEY, value=report)
    return report


def clean_metadata(dry_run: bool, keep_days: int | None) -> dict:
    """`airflow db clean` of the run-history tables older than keep_days (param, else housekeeping.keep_days),
    between two measurements of the metadata DB. Never a row of a DAG run still queued or running: the
    cut-off is moved back to the oldest such run's start (this run included)."""
    from gravitypm_ops.airflow.glue import fail_fast
    from gravitypm_ops.config import load_config
    from gravitypm_ops.housekeeping import metadb

    settings = load_config().housekeeping
    keep_days = settings["keep_days"] if keep_days is None else int(keep_days)
    env = metadb.control_plane_env()
    before = metadb.probe(env)
    cutoff = datetime.now(UTC) - timedelta(days=keep_days)
    if before["oldest_active_dag_run"]:  # a second before it: SQLite compares timestamps as text
        cutoff = min(cutoff, datetime.fromisoformat(before["oldest_active_dag_run"]) - timedelta(seconds=1))
    log.info("metadata DB before (%s, %s bytes): %s", before["backend"], before["db_bytes"], before["rows"])
    report = {"dry_run": dry_run, "keep_days": keep_days, "cutoff": cutoff.isoformat(), "archive": settings["archive"],
              "before": before, "removed": {}, "after": before, "error": None}
    try:
        result = metadb.run_db_clean(env, cutoff, skip_archive=not settings["archive"], dry_run=dry_run,
                                     timeout=CLEAN_TIMEOUT.total_seconds())
        log.info("%s\n%s", result["command"], result["output"])
        report["removed"] = result["rows"]
    except metadb.MetadataCleanError as err:
        log.error("%s", err.output)
        report["error"] = str(err)
        report["removed"] = metadb.parse_clean_output(err.output)["rows"]  # the tables that were cleaned
    report["after"] = metadb.probe(env)
    log.info("metadata DB after (%s bytes): %s; %s rows %s: %s", report["after"]["db_bytes"], report["after"]["rows"],
             sum(report["removed"].values()), "would go (dry run)" if dry_run else "removed", report["removed"])
    _push(report)
    if report["error"]:
        # Not retried at once: a table that fails keeps failing (schema, locks held for hours); a human
        # looks, and the next weekly run tries again.
        raise fail_fast(report["error"])
    return report


def remote_logs_check(log_keep_days: int) -> dict | None:
    """With remote logging to S3: is a lifecycle rule expiring the logs there? (None: logs are local only)."""
    from airflow.configuration import conf

    from gravitypm_ops.housekeeping.logs import judge_lifecycle, split_s3_url

    if not conf.getboolean("logging", "remote_logging", fallback=False):
        return None
    folder = conf.get("logging", "remote_base_log_folder", fallback="")
    if not folder.startswith("s3://"):
        return {"folder": folder, "ok": True, "days": None,
                "detail": "not in S3: expire old logs with the store's own retention (not checked here)"}
    from gravitypm_ops.vault.objects import error_code, s3_client

    bucket, prefix = split_s3_url(folder)
    s3 = s3_client(conf.get("logging", "remote_log_conn_id", fallback="") or "aws_default")
    try:  # only s3:GetLifecycleConfiguration is needed on the log bucket
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except s3.exceptions.ClientError as err:
        if error_code(err) != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    return {"folder": folder, **judge_lifecycle(rules, prefix, log_keep_days)}


def clean_task_logs(dry_run: bool) -> dict:
    """Task-log files older than housekeeping.log_keep_days out of Airflow's log folder; with S3 remote
    logging, a failed task when no lifecycle rule expires the remote copies."""
    from pathlib import Path

    from airflow.configuration import conf

    from gravitypm_ops.airflow.glue import fail_fast
    from gravitypm_ops.config import load_config
    from gravitypm_ops.housekeeping.logs import apply_log_retention

    days = load_config().housekeeping["log_keep_days"]
    root = Path(conf.get("logging", "base_log_folder")).expanduser()
    local = apply_log_retention(root, datetime.now(UTC) - timedelta(days=days), dry_run=dry_run)
    for path in local.pop("paths"):
        log.info("%s %s", "would remove" if dry_run else "removed", path)
    log.info("log folder %s: %s bytes → %s bytes; %s file(s) (%s bytes) %s", root, local["before_bytes"],
             local["after_bytes"], local["files"], local["bytes"], "would go (dry run)" if dry_run else "removed")
    report = {"log_keep_days": days, "local": local, "remote": None, "error": None}
    problems = [f"{len(local['errors'])} log file(s) could not be removed: {'; '.join(local['errors'][:3])}"
                if local["errors"] else ""]
    report["remote"] = remote_logs_check(days)
    if report["remote"]:
        log.info("remote task logs %s: %s", report["remote"]["folder"], report["remote"]["detail"])
        if not report["remote"]["ok"]:
            problems.append(report["remote"]["detail"])
    report["error"] = "; ".join(p for p in problems if p) or None
    _push(report)
    if report["error"]:
        raise fail_fast(report["error"])
    return report


def report(dry_run: bool) -> dict:
    """The run's report from both clean-up tasks: task log, one audit record (checklist
    airflow_housekeeping), one Slack summary."""
    from zoneinfo import ZoneInfo

    from airflow.sdk import get_current_context

    from gravitypm_ops.airflow.alerts import send_slack
    from gravitypm_ops.checklists.audit import AuditLog
    from gravitypm_ops.checklists.periods import period_of
    from gravitypm_ops.config import load_config
    from gravitypm_ops.housekeeping.report import AUDIT_CHECKLIST, audit_record, summary_text
    from gravitypm_ops.names import schedule_timezone

    context = get_current_context()
    ti, dag_run = context["ti"], context["dag_run"]
    meta = ti.xcom_pull(task_ids="clean_metadata", key=REPORT_KEY)
    logs = ti.xcom_pull(task_ids="clean_task_logs", key=REPORT_KEY)
    text = summary_text(meta, logs, dag_id=dag_run.dag_id, run_id=dag_run.run_id, dry_run=dry_run)
    print(text)
    moment = (dag_run.logical_date or dag_run.run_after).astimezone(ZoneInfo(schedule_timezone()))
    record = audit_record(meta, logs, period=period_of("weekly", moment), dag_id=dag_run.dag_id,
                          run_id=dag_run.run_id, dry_run=dry_run, started_at=dag_run.start_date or datetime.now(UTC),
                          completed_at=datetime.now(UTC))
    audit = AuditLog.from_config(load_config())
    if not any(r.get("run_id") == dag_run.run_id for r in audit.tail(AUDIT_CHECKLIST, 1)):  # a retry: once
        audit.append(AUDIT_CHECKLIST, [record])
    send_slack(text)
    return {"outcome": record["outcome"], "period": record["period"]}
