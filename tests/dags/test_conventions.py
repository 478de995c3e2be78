"""Every gravitypm_* DAG follows the house conventions (see include/gravitypm_ops/airflow/conventions.py)."""

import pytest
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

from gravitypm_ops.airflow.alerts import FailureAlert, RecoveryAlert
from gravitypm_ops.airflow.conventions import WATCHER_TASK_ID
from gravitypm_ops.names import DAG_ID_PREFIX, OWNER, TAG

# Tasks whose only job is to turn the run red; they alert through the tasks they watch.
WATCHERS = {WATCHER_TASK_ID}


@pytest.fixture(scope="module")
def dags(dagbag):
    assert dagbag.dags, "no DAGs found"
    return list(dagbag.dags.values())


def test_dag_ids_prefix_docs_and_tags(dags):
    for dag in dags:
        assert dag.dag_id.startswith(DAG_ID_PREFIX), dag.dag_id
        assert dag.doc_md and len(dag.doc_md.strip()) > 80, f"{dag.dag_id}: doc_md missing or too short"
        assert TAG in dag.tags, dag.dag_id
        assert dag.owner == OWNER, dag.dag_id
        assert dag.catchup is False, dag.dag_id


def test_schedules_are_cron_in_the_ops_timezone(dags):
    for dag in dags:
        if dag.schedule is None:
            continue
        # Asset-or-time schedules keep their clock part in `timetable`.
        clock = dag.schedule.timetable if isinstance(dag.schedule, AssetOrTimeSchedule) else dag.schedule
        assert isinstance(clock, CronTriggerTimetable), dag.dag_id
        assert str(clock.timezone) == "UTC", dag.dag_id  # GRAVITYPM_OPS_TZ is unset in tests


def test_ops_timezone_comes_from_the_environment(monkeypatch):
    from gravitypm_ops.airflow.conventions import cron

    monkeypatch.setenv("GRAVITYPM_OPS_TZ", "Europe/Berlin")
    assert str(cron("0 8 * * *").timezone) == "Europe/Berlin"


def test_retries_are_explicit_and_failures_alert(dags):
    for dag in dags:
        assert "retries" in dag.default_args, f"{dag.dag_id}: default_args must set retries explicitly"
        for task in dag.tasks:
            if task.task_id in WATCHERS:
                continue
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert any(isinstance(c, FailureAlert) for c in callbacks), f"{dag.dag_id}.{task.task_id}: no Slack alert"
            if task.retries:
                assert task.retry_exponential_backoff, f"{dag.dag_id}.{task.task_id}: retries without backoff"


def test_recovery_is_announced_by_the_task_that_alerted(dags):
    # Task-level: a task recovers even while another task keeps its DAG run red (issue 14 item 11).
    for dag in dags:
        assert not dag.on_success_callback, f"{dag.dag_id}: recovery is per task, not per DAG run"
        for task in dag.tasks:
            if task.task_id in WATCHERS:
                continue
            callbacks = task.on_success_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert any(isinstance(c, RecoveryAlert) for c in callbacks), f"{dag.dag_id}.{task.task_id}: no recovery"


def test_a_failed_task_always_turns_the_run_red(dags):
    """Airflow judges a run by its leaves: a leaf that runs all_done (a report, a summary) ends it green
    even after a failure. Each such DAG has a watcher, and every task that is not a leaf is upstream of it."""
    for dag in dags:
        lenient = [t.task_id for t in dag.leaves if t.trigger_rule != "all_success" and t.task_id not in WATCHERS]
        if not lenient:
            continue
        watchers = [t for t in dag.leaves if t.task_id in WATCHERS]
        assert watchers, f"{dag.dag_id}: {lenient} can end a run with a failed task green, and no watcher"
        watched = set().union(*({t.task_id for t in w.get_flat_relatives(upstream=True)} for w in watchers))
        unwatched = sorted(set(dag.task_dict) - watched - {t.task_id for t in dag.leaves})
        assert not unwatched, f"{dag.dag_id}: a failure of {unwatched} would not turn the run red"


def test_no_task_that_skips_can_skip_a_watcher(dags):
    """A branch, short-circuit or approval task skips the direct downstream tasks it does not choose (with
    ignore_downstream_trigger_rules, everything downstream). A watcher there is skipped whenever that task
    runs before it fires, and a run with a failed task ends green: a DB restore whose plan failed did, when
    needs_start (all_done) ran first."""
    from airflow.sdk.bases.skipmixin import SkipMixin

    for dag in dags:
        for task in dag.tasks:
            if task.task_id not in WATCHERS:
                continue
            for upstream in task.get_flat_relatives(upstream=True):
                direct = upstream.task_id in task.upstream_task_ids
                if isinstance(upstream, SkipMixin) and (direct or getattr(upstream, "ignore_downstream_trigger_rules", False)):
                    raise AssertionError(f"{dag.dag_id}: {upstream.task_id} can skip {task.task_id}")
