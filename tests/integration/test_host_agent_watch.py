"""gravitypm_host_agent_watch and the morning checklist's "host agent online", for real: dag.test() runs
over the session's metadata DB (the edge provider's tables added to it), with a real gravitypm_fs_backup
run whose host task instances are put back to waiting, and the local Slack receiver. The split topology
end to end (a real Edge worker stopped): tests/integration/test_up.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.airflow.host_agents import FAILED_EVENT, REQUEUE_EVENT
from gravitypm_ops.names import HOST_EXECUTOR_ENV, HOST_QUEUE

WATCH = "gravitypm_host_agent_watch"
FS = "gravitypm_fs_backup"
MORNING = "gravitypm_morning_checklist"
EDGE = "airflow.providers.edge3.executors.EdgeExecutor"
AGENT = "gravitypm-host-1"


@pytest.fixture
def ops():
    return {"vault_prefix": f"agent-watch-{uuid.uuid4().hex[:8]}"}  # the alert state of this test alone


@pytest.fixture
def edge_tables(airflow_db):
    """The edge provider's tables in the session DB (the split control plane has them); emptied, or dropped
    when this fixture made them, afterwards."""
    from airflow import settings
    from airflow.providers.edge3.models.edge_base import edge_metadata
    from sqlalchemy import inspect

    made = not inspect(settings.engine).has_table("edge_worker")
    edge_metadata.create_all(settings.engine)
    yield
    if made:
        edge_metadata.drop_all(settings.engine)
    else:
        with settings.engine.begin() as connection:
            for table in ("edge_job", "edge_worker"):
                connection.exec_driver_sql(f"DELETE FROM {table}")


def set_agent(state: str, heartbeat_minutes_ago: float) -> None:
    from airflow.providers.edge3.models.edge_worker import EdgeWorkerModel
    from airflow.utils.session import create_session

    with create_session() as session:
        worker = session.get(EdgeWorkerModel, AGENT) or EdgeWorkerModel(AGENT, state, [HOST_QUEUE])
        worker.update_state(state)
        worker.last_update = datetime.now(UTC) - timedelta(minutes=heartbeat_minutes_ago)
        session.add(worker)


def wait_again(run_id: str, task_id: str, *, state: str = "queued", queued_minutes_ago: float | None = None,
               scheduled_minutes_ago: float | None = None, requeued_minutes_ago: float | None = None,
               edge_job: bool = False) -> None:
    """Put a finished task instance of `run_id` back to waiting on the host queue, as an absent agent
    leaves it: `queued` (with its queued edge job) or `scheduled` after Airflow's requeue."""
    from airflow.models.dagrun import DagRun
    from airflow.models.log import Log
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.providers.edge3.models.edge_job import EdgeJobModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    now = datetime.now(UTC)

    def ago(minutes):
        return None if minutes is None else now - timedelta(minutes=minutes)

    with create_session() as session:
        session.execute(update(DagRun).where(DagRun.dag_id == FS, DagRun.run_id == run_id).values(state="running"))
        ti = session.scalar(select(TI).where(TI.dag_id == FS, TI.run_id == run_id, TI.task_id == task_id))
        ti.state, ti.queue, ti.start_date, ti.end_date = state, HOST_QUEUE, None, None
        ti.queued_dttm, ti.scheduled_dttm = ago(queued_minutes_ago), ago(scheduled_minutes_ago)
        if requeued_minutes_ago is not None:
            entry = Log(event=REQUEUE_EVENT, task_instance=ti.key, extra="Task was in queued state for longer ...")
            entry.dttm = ago(requeued_minutes_ago)
            session.add(entry)
        if edge_job:
            session.add(EdgeJobModel(FS, task_id, run_id, ti.map_index, ti.try_number, "queued", HOST_QUEUE, 1,
                                     "{}", queued_dttm=ti.queued_dttm, task_instance_id=str(ti.id)))


def task_instance(run_id: str, task_id: str) -> dict:
    from airflow.models.log import Log
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.providers.edge3.models.edge_job import EdgeJobModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        ti = session.scalar(select(TI).where(TI.dag_id == FS, TI.run_id == run_id, TI.task_id == task_id))
        audit = session.scalars(select(Log.extra).where(Log.event == FAILED_EVENT, Log.dag_id == FS,
                                                        Log.run_id == run_id, Log.task_id == task_id)).all()
        jobs = session.scalar(select(func.count()).select_from(EdgeJobModel).where(
            EdgeJobModel.dag_id == FS, EdgeJobModel.run_id == run_id, EdgeJobModel.task_id == task_id))
        return {"state": str(ti.state), "note": ti.note, "audit": list(audit), "edge_jobs": jobs}


def test_on_a_single_box_there_is_nothing_to_watch(run_dag, slack, ops, monkeypatch):
    monkeypatch.delenv(HOST_EXECUTOR_ENV, raising=False)
    result = run_dag(WATCH, ops)
    assert result.state == "success", result.task_states
    assert result.xcom("watch_host_agents") == {"mode": "single box", "failed": []}
    assert slack.texts() == []


def test_host_tasks_waiting_without_an_agent_are_failed_critical_once_and_recovery_is_announced(
        run_dag, slack, stack, ops, edge_tables, monkeypatch):
    backup = run_dag(FS, ops)  # a real run: its task instances are real rows
    assert backup.state == "success", backup.task_states
    run_id = backup.dag_run.run_id
    monkeypatch.setenv(HOST_EXECUTOR_ENV, EDGE)  # the split control plane (the DAGs are parsed already)
    set_agent("offline", heartbeat_minutes_ago=30)
    wait_again(run_id, "archive_to_vault", queued_minutes_ago=20, scheduled_minutes_ago=20, edge_job=True)
    # Requeued by Airflow 11 min ago after 10 min in queued: its times were reset a minute ago.
    wait_again(run_id, "preflight", state="scheduled", scheduled_minutes_ago=1, requeued_minutes_ago=11)
    wait_again(run_id, "apply_retention", queued_minutes_ago=2)  # not long enough yet
    slack.clear()

    first = run_dag(WATCH, ops)
    assert first.state == "success", first.task_states
    assert sorted(first.xcom("watch_host_agents")["failed"]) == [f"{FS}.archive_to_vault {run_id}",
                                                                 f"{FS}.preflight {run_id}"]
    archive = task_instance(run_id, "archive_to_vault")
    assert archive["state"] == "failed" and archive["edge_jobs"] == 0  # no agent will pick it up later
    assert archive["note"].startswith(f"Failed by {WATCH}: no host agent online for queue {HOST_QUEUE}; "
                                      "this task waited 20 min (queued), host_agent_timeout_minutes is 15")
    assert f"{AGENT} offline, last heartbeat" in archive["note"] and archive["audit"] == [archive["note"]]
    assert task_instance(run_id, "preflight")["state"] == "failed"
    assert task_instance(run_id, "apply_retention")["state"] == "queued"
    texts = slack.texts()
    assert len(texts) == 1, texts
    assert texts[0].startswith(":red_circle: *[Critical] No host agent online*: 2 host task(s) waited more than 15 min")
    assert f"`{FS}.archive_to_vault` (run `{run_id}`, waited 20 min queued)" in texts[0]
    assert f"`{FS}.preflight` (run `{run_id}`, waited 21 min scheduled)" in texts[0]
    assert f"• Agents: {AGENT} offline, last heartbeat" in texts[0] and first.dag_run.run_id in texts[0]

    # Another task fails the same way on the next run: the alert is firing already, no second message.
    wait_again(run_id, "apply_retention", queued_minutes_ago=16)
    second = run_dag(WATCH, ops)
    assert second.xcom("watch_host_agents")["failed"] == [f"{FS}.apply_retention {run_id}"]
    assert task_instance(run_id, "apply_retention")["state"] == "failed"
    assert len(slack.texts()) == 1

    # The agent is back: "recovered" once, then quiet.
    set_agent("idle", heartbeat_minutes_ago=0)
    third, fourth = run_dag(WATCH, ops), run_dag(WATCH, ops)
    assert third.state == fourth.state == "success"
    texts = slack.texts()[1:]
    assert len(texts) == 1, texts
    assert texts[0].startswith(f":large_blue_circle: *[Info] Host agent back online*: {AGENT} serve(s) queue "
                               f"`{HOST_QUEUE}` again, after 2 run(s) firing since")
    assert {k: v for k, v in third.xcom("watch_host_agents").items() if k != "waiting"} == {
        "mode": "split", "online": [AGENT], "failed": []}


def test_morning_service_health_fails_critical_while_no_host_agent_is_online(run_dag, slack, stack, ops,
                                                                               edge_tables, monkeypatch):
    monkeypatch.setenv(HOST_EXECUTOR_ENV, EDGE)
    set_agent("unknown", heartbeat_minutes_ago=3)
    result = run_dag(MORNING, ops)
    assert result.state == "failed"
    assert result.task_states["check_service_health"] == "failed", result.task_states
    assert result.task_states["check_disk_space"] == "success"  # in dag.test() host tasks run in-process
    health = result.xcom("check_service_health", key="item")
    findings = {f["subject"]: f for f in health["data"]["findings"]}
    assert findings["host agent"]["outcome"] == "failed"
    assert findings["host agent"]["detail"].startswith(f"offline: {AGENT} unknown, last heartbeat ")
    assert findings["application"]["outcome"] == "passed"  # the app itself is fine
    alert = next(t for t in slack.texts() if "[Critical]" in t)
    assert f"{MORNING} failed* at task `check_service_health`" in alert and f"host agent: offline: {AGENT}" in alert
