"""
### GravityPM off-site copies (runbook: disaster recovery — "restore from off-site backups")

Keeps a copy of every committed backup in a second vault in another region or account
(`offsite_bucket` / `offsite_prefix`, connection `gravitypm_aws_offsite`). Off while
`offsite_bucket` is empty: every task then logs that and succeeds.

Runs when any backup Asset (`gravitypm://vault/db|fs|config|logs`) gets a new event — a new
backup is copied minutes after its commit — and every hour at half past (`30 * * * *`), half an
hour after the verification DAG's hourly run, so new verification records follow quickly.

1. `copy_backups` — every primary backup not off-site yet, newest first: artifacts first, each
   checked against the manifest's SHA-256 (server-side copy re-read, or streamed and hashed on
   the way), then its verification records, the manifest last. A copy interrupted half-way is
   invisible off-site and redone by the next run. Skipped: a backup whose newest verification
   failed, and one the off-site retention would delete at once. One failed copy fails the task
   (Warning in Slack) after the others were copied.
2. `apply_offsite_retention` — `offsite_retention` per kind (default: the primary's policy); the
   newest backup, the newest verified backup and leased backups (a restore or drill reading the
   off-site vault) are always kept. `retention_dry_run: true` only reports.
3. `write_status` — the primary's `status.json` (per kind: does the newest backup have an
   off-site copy, how old is the newest copy) and the off-site vault's own `status.json`.

The freshness audit of `gravitypm_backup_verification` fails when the newest off-site copy of a
kind is older than the kind's `freshness_hours`.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, Param, TriggerRule, dag, task

from gravitypm_ops.airflow.conventions import cron, dag_kwargs, fail_run_if_any_check_failed
from gravitypm_ops.names import any_backup_asset

ANY_BACKUP = any_backup_asset()


@dag(
    dag_id="gravitypm_offsite_copy",
    params={
        "retention_dry_run": Param(
            False, type="boolean", title="Off-site retention dry run",
            description="Report what off-site retention would delete; delete nothing.",
        )
    },
    **dag_kwargs(
        schedule=AssetOrTimeSchedule(timetable=cron("30 * * * *"), assets=ANY_BACKUP),
        doc_md=__doc__,
        extra_tags=("backup", "offsite"),
    ),
)
def gravitypm_offsite_copy():
    @task
    def copy_backups():
        from gravitypm_ops.offsite import tasks as offsite_tasks

        return offsite_tasks.copy_missing()

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def apply_offsite_retention(params=None):
        from gravitypm_ops.offsite import tasks as offsite_tasks

        return offsite_tasks.apply_retention(params["retention_dry_run"])

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def write_status():
        from gravitypm_ops.offsite import tasks as offsite_tasks

        return offsite_tasks.write_status()

    copy, retention = copy_backups(), apply_offsite_retention()
    copy >> retention >> write_status()
    [copy, retention] >> fail_run_if_any_check_failed()


gravitypm_offsite_copy()
