"""
### GravityPM Airflow housekeeping (runbook: Performance review, Capacity planning — the control plane)

Every Sunday at 05:00 (`0 5 * * 0`, GRAVITYPM_OPS_TZ), and by hand, keeps Airflow's own metadata DB and
task-log folder from growing without bound. The suite's history does not live there: audit records and
backups are in the vault, so a clean never touches them.

1. `clean_metadata` — `airflow db clean` (Airflow's own command, run as a subprocess with the control
   plane's database settings: task code has no ORM access) on the run-history tables (dag_run,
   task_instance with its history, XComs and HITL rows, log, job, asset events, triggers, …; not `dag`)
   older than `keep_days` (param, else config `housekeeping.keep_days`, default 90), `--skip-archive`
   unless `housekeeping.archive`, with `--error-on-cleanup-failure`: a table that fails is a failed task
   naming the table, never a green run. Rows of DAG runs still queued or running are never removed.
   Row counts of the big tables and the DB size (Postgres `pg_database_size`, SQLite file size) before
   and after.
2. `clean_task_logs` — task-log files (`dag_id=…/…/*.log`) older than `housekeeping.log_keep_days`
   (default 30) out of Airflow's log folder (`[logging] base_log_folder`); symlinks are never followed.
   With remote logging to S3 the bucket needs a lifecycle rule expiring the logs (DEPLOY.md): without
   one this task fails.
3. `report` — the before/after figures in the task log, one Slack summary and one record in the audit
   history (checklist `airflow_housekeeping`), kept in the vault beside the other audit history.

Params: `dry_run` (report what would go, change nothing; Airflow's action log still records the
`airflow db clean` call, as it does for every CLI command), `keep_days` (empty: the config's).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, TriggerRule, dag, task

from gravitypm_ops.airflow.conventions import cron, dag_kwargs, fail_run_if_any_check_failed


@dag(
    dag_id="gravitypm_airflow_housekeeping",
    params={
        "dry_run": Param(
            False, type="boolean", title="Dry run",
            description="Report which metadata rows and log files would be removed; remove nothing.",
        ),
        "keep_days": Param(
            None, type=["null", "integer"], minimum=0, title="Keep days",
            description="Metadata rows older than this many days are removed. Empty: config housekeeping.keep_days "
                        "(default 90).",
        ),
    },
    **dag_kwargs(
        schedule=cron("0 5 * * 0"),
        doc_md=__doc__,
        extra_tags=("housekeeping",),
    ),
)
def gravitypm_airflow_housekeeping():
    @task(execution_timeout=timedelta(hours=2))  # runs on the control plane's executor: the DB is reachable there
    def clean_metadata(params=None):
        from gravitypm_ops.housekeeping import tasks as housekeeping_tasks

        return housekeeping_tasks.clean_metadata(bool(params["dry_run"]), params["keep_days"])

    @task(execution_timeout=timedelta(minutes=30))
    def clean_task_logs(params=None):
        from gravitypm_ops.housekeeping import tasks as housekeeping_tasks

        return housekeeping_tasks.clean_task_logs(bool(params["dry_run"]))

    @task(trigger_rule=TriggerRule.ALL_DONE, execution_timeout=timedelta(minutes=10))
    def report(params=None):
        from gravitypm_ops.housekeeping import tasks as housekeeping_tasks

        return housekeeping_tasks.report(bool(params["dry_run"]))

    cleanups = [clean_metadata(), clean_task_logs()]
    cleanups >> report()
    cleanups >> fail_run_if_any_check_failed()


gravitypm_airflow_housekeeping()
