"""
### GravityPM log rotation (runbook: Log Rotation, "Logs: Continuous with rotation")

Every day at 00:00 (`0 0 * * *`, GRAVITYPM_OPS_TZ) the runbook's logrotate block is applied to
every `*.log` in `logs_dir` by our engine (`include/gravitypm_ops/log_rotation.py`, tested
directive by directive against logrotate 3.21's man page):

```
daily · rotate 30 · compress · missingok · notifempty · create 0644 www-data www-data
postrotate: restart logging (service_control action `restart_logging`) — once per run
```

Tasks (both host tasks run on queue/pool `gravitypm_host`, i.e. a worker on the application host):

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

Params: `force` rotates now even if the logs were rotated today (`logrotate -f`). Overrides of
single directives: config key `log_rotation` (README).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from gravitypm_ops.airflow.alerts import Severity
from gravitypm_ops.airflow.conventions import NO_RETRY, cron, dag_kwargs
from gravitypm_ops.names import HOST_POOL, HOST_QUEUE, backup_asset


@dag(
    dag_id="gravitypm_log_rotation",
    params={
        "force": Param(
            False, type="boolean", title="Force rotation",
            description="Rotate every non-empty log now, even one already rotated today (logrotate -f).",
        )
    },
    **dag_kwargs(
        schedule=cron("0 0 * * *"),
        doc_md=__doc__,
        severity=Severity.WARNING,  # runbook: backup failures and resource usage are Warnings
        extra_tags=("logs", "backup"),
    ),
)
def gravitypm_log_rotation():
    @task(queue=HOST_QUEUE, pool=HOST_POOL, **NO_RETRY)
    def check_disk_space():
        from gravitypm_ops.log_rotation import tasks as log_rotation_tasks

        return log_rotation_tasks.disk_guard()

    @task(queue=HOST_QUEUE, pool=HOST_POOL)
    def rotate_and_ship(params=None, **context):
        from gravitypm_ops.log_rotation import tasks as log_rotation_tasks

        return log_rotation_tasks.rotate_and_ship(bool(params["force"]), context)

    @task(outlets=[backup_asset("logs")], **NO_RETRY)
    def announce_backup(report, **context):
        from gravitypm_ops.log_rotation import tasks as log_rotation_tasks

        return log_rotation_tasks.announce(report, context)

    check_disk_space()
    announce_backup(rotate_and_ship())


gravitypm_log_rotation()
