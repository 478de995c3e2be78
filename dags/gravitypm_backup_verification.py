"""
### GravityPM backup verification (a backup counts only once it is proven restorable)

Runs when any backup Asset (`gravitypm://vault/db|fs|config|logs`) gets a new event — each new
backup is verified within minutes of its commit — and every hour (`0 * * * *`), because a backup
that never ran emits no event and only the clock notices.

1. `verify_backups` — every committed backup not yet verified, plus per kind the one verified
   longest ago (corruption at rest), or what the `backup_id` param names (`all` = everything):
   artifacts re-read with size + SHA-256; db: trial restore into a scratch database
   (`gravitypm_mongo_scratch`, else `gravitypm_mongo` with `scratch_database_prefix` names; never a
   configured production database), counts / indexes / options vs the manifest and a byte-for-byte
   document sample, scratch dropped after; fs/config: restore to a temp dir with every sha256
   checked against the index. Each result is an append-only record beside the manifest. A failure
   posts a **Critical** Slack alert naming the backup and the failed check.
2. `audit_freshness` — the newest *verified* backup of each kind is younger than `freshness_hours`
   (db 7, fs 26, config 26, logs 26); otherwise the task fails and Slack gets a Warning. With an
   off-site vault (`offsite_bucket`), the newest off-site copy of each kind is held to the same limit.
3. `write_status` — `<vault_prefix>/status.json`: per kind latest id, age, size, verified, last
   result, and whether the newest backup has an off-site copy.

Verification and retention share pool `gravitypm_vault` (1 slot): they never run at the same time.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, Param, TriggerRule, dag, task

from gravitypm_ops.airflow.conventions import cron, dag_kwargs, fail_run_if_any_check_failed
from gravitypm_ops.names import VAULT_POOL, any_backup_asset

ANY_BACKUP = any_backup_asset()


@dag(
    dag_id="gravitypm_backup_verification",
    params={
        "backup_id": Param(
            None, type=["null", "string"], title="Backup to re-verify",
            description="Empty: new backups plus a rotating older one. A backup id, or `all`.",
        )
    },
    **dag_kwargs(
        schedule=AssetOrTimeSchedule(
            timetable=cron("0 * * * *"), assets=ANY_BACKUP
        ),
        doc_md=__doc__,
        extra_tags=("backup", "verification"),
    ),
)
def gravitypm_backup_verification():
    # A run verifies the new backups plus one older backup per kind: a trial restore of the
    # database (a db backup itself may take up to 2 h) and the file restores. 3 h bounds a hung
    # check (a crafted archive, a stalled read) so it cannot hold the one-slot vault pool for good.
    @task(pool=VAULT_POOL, execution_timeout=timedelta(hours=3))
    def verify_backups(params=None, **context):
        from gravitypm_ops.verification import tasks as verification_tasks

        return verification_tasks.verify(params["backup_id"], context)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def audit_freshness():
        from gravitypm_ops.verification import tasks as verification_tasks

        return verification_tasks.audit_freshness()

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def write_status():
        from gravitypm_ops.verification import tasks as verification_tasks

        return verification_tasks.write_status()

    verify, audit = verify_backups(), audit_freshness()
    verify >> audit >> write_status()
    [verify, audit] >> fail_run_if_any_check_failed()  # else the green status leaf hides red steps


gravitypm_backup_verification()
