"""
### GravityPM log rotation (runbook: Log Rotation, "Logs: Continuous with rotation")

Every day at 00:00 (`0 0 * * *`, GRAVITYPM_OPS_TZ) the runbook's logrotate block is applied to
every `*.log` in `logs_dir` by our engine (`include/gravitypm_ops/log_rotation/`, tested
directive by directive against logrotate 3.21's man page):

```
daily · rotate 30 · compress · missingok · notifempty · create 0644 www-data www-data
postrotate: restart logging (service_control action `restart_logging`) — once per run
```

Tasks (the two host tasks run on queue/pool `gravitypm_host`, i.e. a worker on the application host):

1. `check_disk_space` — logs_dir's filesystem over 80 % used (`disk_min_free_percent`) is said in
   the task log and in Slack (Warning); rotation still runs, it is what frees space.
2. `rotate_and_ship` — rename each due, non-empty log to `.1`, create the new one (0644,
   www-data), run postrotate once so the writer reopens, then gzip -6 the old versions, ship every
   rotated file the vault does not hold yet as one `logs` backup (with a manifest listing each
   file's source name and SHA-256), and only then remove versions past `rotate`. A failing
   postrotate fails the task (Slack) and leaves the rotated files uncompressed and unshipped, so
   no line is lost; the next run retries it. An unknown `create` user or group fails before any
   file is touched.
3. `announce_backup` — the `gravitypm://vault/logs` Asset event (verification runs on it);
   skipped when nothing new was shipped.
4. `apply_retention` — after the shipping, the `retention.logs` policy on the vault's `logs`
   backups (default: `within_days` 30 — every logs backup of the 30 days before the newest, matching
   `rotate 30`); pool `gravitypm_vault`, so never beside a
   verification. Trigger with `retention_dry_run: true` to only report.

Params: `force` rotates now even if the logs were rotated today (`logrotate -f`);
`retention_dry_run`. Overrides of single directives: config key `log_rotation` (README).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from gravitypm_ops.airflow.alerts import Severity
from gravitypm_ops.airflow.conventions import NO_RETRY, cron, dag_kwargs
from gravitypm_ops.names import HOST_POOL, VAULT_POOL, backup_asset, host_placement


@dag(
    dag_id="gravitypm_log_rotation",
    params={
        "force": Param(
            False, type="boolean", title="Force rotation",
            description="Rotate every non-empty log now, even one already rotated today (logrotate -f).",
        ),
        "retention_dry_run": Param(
            False, type="boolean", title="Retention dry run",
            description="Report what retention would delete; delete nothing.",
        ),
    },
    **dag_kwargs(
        schedule=cron("0 0 * * *"),
        doc_md=__doc__,
        severity=Severity.WARNING,  # runbook: backup failures and resource usage are Warnings
        extra_tags=("logs", "backup"),
    ),
)
def gravitypm_log_rotation():
    @task(**host_placement(), pool=HOST_POOL, **NO_RETRY)
    def check_disk_space():
        from gravitypm_ops.log_rotation import tasks as log_rotation_tasks

        return log_rotation_tasks.disk_guard()

    @task(**host_placement(), pool=HOST_POOL)
    def rotate_and_ship(params=None, **context):
        from gravitypm_ops.log_rotation import tasks as log_rotation_tasks

        return log_rotation_tasks.rotate_and_ship(bool(params["force"]), context)

    @task(outlets=[backup_asset("logs")], **NO_RETRY)
    def announce_backup(report, **context):
        from gravitypm_ops.log_rotation import tasks as log_rotation_tasks

        return log_rotation_tasks.announce(report, context)

    @task(pool=VAULT_POOL)  # never beside a verification
    def apply_retention(params=None):
        from gravitypm_ops.backup import tasks as backup_tasks

        return backup_tasks.apply_retention("logs", bool(params["retention_dry_run"]))

    check_disk_space()
    shipped = rotate_and_ship()
    announce_backup(shipped)
    shipped >> apply_retention()  # not after announce_backup: that one is skipped when nothing is new


gravitypm_log_rotation()
