"""
### GravityPM morning checklist (runbook: Daily Operations → Morning Checklist)

Every day at 08:00 (`GRAVITYPM_OPS_TZ`), one task per check:

| task | runbook step | fails (red) when |
|---|---|---|
| `check_service_health` | `curl -f` the health endpoints | an endpoint is down or not 2xx (**Critical**) |
| `check_disk_space` | Check disk space (> 20% free) | a configured path's filesystem has ≤ `disk_min_free_percent` free |
| `check_memory` | Monitor memory usage (< 85%) | used memory ≥ `memory_max_used_percent` |
| `check_backup_age` | Verify backup completion | the newest backup of a kind is older than `freshness_hours` |
| `check_vault_hygiene` | (backups stay recoverable) | the vault bucket lacks versioning or the lifecycle rules that abort failed uploads and expire old versions |

"No backup yet" for a kind is a warning in the summary, not a failure.
`post_summary` always runs and posts one message to Slack; `fail_run_if_any_check_failed`
makes the run itself red when any check failed.

Settings: the `gravitypm_ops` Variable (`health_urls`, `app_root`, `logs_dir`,
`disk_min_free_percent`, `memory_max_used_percent`, `freshness_hours`, `vault_*`).
"""

from __future__ import annotations

from airflow.sdk import TriggerRule, dag, task
from gravitypm_ops.airflow.alerts import FailureAlert, Severity
from gravitypm_ops.airflow.conventions import (
    cron,
    dag_kwargs,
    fail_run_if_any_check_failed,
)
from gravitypm_ops.names import HOST_POOL, HOST_QUEUE

CHECK_TASKS = (
    "check_service_health", "check_disk_space", "check_memory", "check_backup_age", "check_vault_hygiene"
)


@dag(
    dag_id="gravitypm_morning_checklist",
    **dag_kwargs(schedule=cron("0 8 * * *"), doc_md=__doc__, extra_tags=("checklist", "daily")),
)
def gravitypm_morning_checklist():
    @task(on_failure_callback=FailureAlert(Severity.CRITICAL))
    def check_service_health():
        from gravitypm_ops.checklists import morning as checklists_morning

        return checklists_morning.service_health()

    @task(queue=HOST_QUEUE, pool=HOST_POOL)
    def check_disk_space():
        from gravitypm_ops.checklists import morning as checklists_morning

        return checklists_morning.disk_space()

    @task(queue=HOST_QUEUE, pool=HOST_POOL)
    def check_memory():
        from gravitypm_ops.checklists import morning as checklists_morning

        return checklists_morning.memory()

    @task
    def check_backup_age():
        from gravitypm_ops.checklists import morning as checklists_morning

        return checklists_morning.backup_age()

    @task
    def check_vault_hygiene():
        from gravitypm_ops.checklists import morning as checklists_morning

        return checklists_morning.vault_hygiene()

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def post_summary():
        from gravitypm_ops.checklists import morning as checklists_morning

        return checklists_morning.post_summary("Morning checklist", CHECK_TASKS)

    checks = [check_service_health(), check_disk_space(), check_memory(), check_backup_age(), check_vault_hygiene()]
    checks >> post_summary()
    checks >> fail_run_if_any_check_failed()  # else the green summary leaf hides red checks


gravitypm_morning_checklist()
