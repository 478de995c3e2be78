"""Conventions every gravitypm_* DAG follows (tests/dags/test_conventions.py enforces them).

- owner, tags and doc_md on every DAG; schedules are cron in GRAVITYPM_OPS_TZ;
- retries are always explicit: idempotent steps retry with exponential backoff,
  steps that must not repeat (stopping the app, restoring, human prompts) use NO_RETRY;
- every task failure goes to Slack with the runbook severity of what the task guards, once per
  change of state (reminders every `alerts.repeat_hours`), and "recovered" when that task succeeds again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import CronTriggerTimetable

from gravitypm_ops.airflow.alerts import FailureAlert, RecoveryAlert, Severity
from gravitypm_ops.names import OWNER, TAG, schedule_timezone

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)

# For steps that must never run twice on their own: a human decides what happens next.
NO_RETRY = {"retries": 0}


def default_args(severity: Severity = Severity.WARNING, **overrides) -> dict:
    args = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=15),
        "on_failure_callback": FailureAlert(severity),
        # Task-level, not DAG-level: a task recovers even while another task keeps its DAG run red.
        "on_success_callback": RecoveryAlert(),
    }
    args.update(overrides)
    return args


def cron(expression: str) -> CronTriggerTimetable:
    """A cron schedule evaluated in the ops timezone (GRAVITYPM_OPS_TZ, default UTC)."""
    return CronTriggerTimetable(expression, timezone=schedule_timezone())


def dag_kwargs(*, schedule, doc_md: str | None, severity: Severity = Severity.WARNING, extra_tags=(), **overrides):
    """The keyword arguments every gravitypm_* @dag shares."""
    if not doc_md:
        raise ValueError("every gravitypm DAG needs doc_md (the module docstring)")
    kwargs = {
        "schedule": schedule,
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": default_args(severity),
        "tags": [TAG, *extra_tags],
        "doc_md": doc_md,
    }
    kwargs.update(overrides)
    return kwargs


WATCHER_TASK_ID = "fail_run_if_any_check_failed"


def fail_run_if_any_check_failed():
    """The watcher pattern: a leaf that fails the run when any upstream check failed.

    Without it a run whose last task is an `all_done` summary stays green with red tasks in it.
    It sends no alert of its own: the failed checks already did.
    """
    from airflow.sdk import TriggerRule, task

    @task(task_id=WATCHER_TASK_ID, trigger_rule=TriggerRule.ONE_FAILED, on_failure_callback=None, **NO_RETRY)
    def watcher():
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a check of this run failed: see the red task(s) and Slack")

    return watcher()
