"""
### GravityPM file backups (runbook: Backup Schedule, "File System: Daily at 2 AM", "Configuration: Daily at 3 AM")

Two DAGs, one engine (`include/gravitypm_ops/backup/files.py`):

| DAG | schedule | what |
|---|---|---|
| `gravitypm_fs_backup` | `0 2 * * *` | `app_root` (uploads, app files), minus `logs_dir` and `fs_excludes` |
| `gravitypm_config_backup` | `0 3 * * *` | `config_paths`: compose files, nginx config, `.env`, app config |

Tasks: `preflight` (vault usable, sources exist; fails at once with the reason) →
`archive_to_vault` (a tar archive, zstd or gzip per `compression`, plus a JSON-lines file index
with each file's sha256, both streamed into the vault; runs on queue/pool `gravitypm_host`, i.e.
a worker on the application host; announces `gravitypm://vault/fs` or `…/config`) →
`apply_retention` (per-kind policy; `retention_dry_run: true` only reports).

A file that changes while it is read is recorded as a warning in the manifest; a file that
cannot be read fails the backup. The config backup must be encrypted at rest (SSE-S3, or
SSE-KMS with `kms_key_id`) or it is not committed; no file content is ever logged.
Restoring by hand with `aws`/`zstd`/`tar`: see the README.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from gravitypm_ops.airflow.alerts import Severity
from gravitypm_ops.airflow.conventions import NO_RETRY, cron, dag_kwargs
from gravitypm_ops.names import HOST_POOL, VAULT_POOL, backup_asset, host_placement

FILE_BACKUPS = {
    # kind: (dag_id, schedule, what it backs up)
    "fs": ("gravitypm_fs_backup", "0 2 * * *", "the application file system"),
    "config": ("gravitypm_config_backup", "0 3 * * *", "the configuration files"),
}


def file_backup_dag(kind: str, dag_id: str, schedule: str, what: str):
    @dag(
        dag_id=dag_id,
        params={
            "retention_dry_run": Param(
                False, type="boolean", title="Retention dry run",
                description="Report what retention would delete; delete nothing.",
            )
        },
        **dag_kwargs(
            schedule=cron(schedule),
            doc_md=f"**Backs up {what}.**\n" + __doc__,
            severity=Severity.WARNING,  # runbook: "Backup failures" are Warning alerts
            extra_tags=("backup", kind),
        ),
    )
    def file_backup():
        @task(**host_placement(), **NO_RETRY)  # the source paths are on the host
        def preflight():
            from gravitypm_ops.backup import tasks as backup_tasks

            backup_tasks.preflight_files(kind)

        @task(**host_placement(), pool=HOST_POOL, outlets=[backup_asset(kind)])
        def archive_to_vault(**context):
            from gravitypm_ops.backup import tasks as backup_tasks

            return backup_tasks.archive_files_to_vault(kind, context)

        @task(pool=VAULT_POOL)  # never beside a verification
        def apply_retention(params=None):
            from gravitypm_ops.backup import tasks as backup_tasks

            return backup_tasks.apply_retention(kind, bool(params["retention_dry_run"]))

        preflight() >> archive_to_vault() >> apply_retention()

    return file_backup()


for _kind, (_dag_id, _schedule, _what) in FILE_BACKUPS.items():
    file_backup_dag(_kind, _dag_id, _schedule, _what)
