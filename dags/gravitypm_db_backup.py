"""
### GravityPM MongoDB backup (runbook: Backup and Recovery → Backup Schedule, "Database: Every 6 hours")

Every 6 hours (`0 */6 * * *` in `GRAVITYPM_OPS_TZ`), one run at a time:

1. `preflight` — the vault bucket is reachable with the `gravitypm_aws` credentials and MongoDB
   (`gravitypm_mongo`) answers; otherwise the run fails at once with the reason (no retries).
2. `dump_to_vault` — dumps every collection of `mongo_databases` (reading from a secondary when
   there is one) as a gzip'd **mongodump archive**, streamed into the vault while hashed; the
   manifest is written last and commits the backup. Re-running the same run returns its committed
   backup instead of writing another. Runs in pool `gravitypm_db` (never beside a DB restore) and
   announces the Asset `gravitypm://vault/db` with the manifest summary.
3. `apply_retention` — the `retention.db` policy (default: last 4, daily 7, weekly 4, monthly 6);
   trigger with `retention_dry_run: true` to only report.

Restoring without Airflow: `mongorestore --gzip --archive=mongodump.archive.gz --drop` (README).
Late or missed backups: a hung `dump_to_vault` try is stopped after 2 h (execution timeout; the
failure alert goes to Slack once retries are spent), and the hourly `audit_freshness` of
`gravitypm_backup_verification` fails with a Slack warning once the newest verified db backup is
older than `freshness_hours.db` (default 7 h), which also catches runs that never started. No
DeadlineAlert: on Airflow 3.3.2 `airflow dags test` crashes on one after every task succeeded.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from gravitypm_ops.airflow.alerts import FailureAlert, Severity
from gravitypm_ops.airflow.conventions import NO_RETRY, cron, dag_kwargs
from gravitypm_ops.names import DB_POOL, VAULT_POOL, backup_asset


@dag(
    dag_id="gravitypm_db_backup",
    params={
        "retention_dry_run": Param(
            False, type="boolean", title="Retention dry run", description="Report what retention would delete; delete nothing."
        )
    },
    **dag_kwargs(schedule=cron("0 */6 * * *"), doc_md=__doc__, extra_tags=("backup", "mongodb")),
)
def gravitypm_db_backup():
    @task(on_failure_callback=FailureAlert(Severity.CRITICAL), **NO_RETRY)
    def preflight():
        from gravitypm_ops.backup import tasks as backup_tasks

        backup_tasks.preflight_db()

    @task(pool=DB_POOL, outlets=[backup_asset("db")], execution_timeout=timedelta(hours=2))
    def dump_to_vault(**context):
        from gravitypm_ops.backup import tasks as backup_tasks

        return backup_tasks.dump_db_to_vault(context)

    @task(pool=VAULT_POOL)  # never beside a verification
    def apply_retention(params=None):
        from gravitypm_ops.backup import tasks as backup_tasks

        return backup_tasks.apply_retention("db", bool(params["retention_dry_run"]))

    preflight() >> dump_to_vault() >> apply_retention()


gravitypm_db_backup()
