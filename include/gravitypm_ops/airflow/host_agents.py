"""The host agents (Airflow Edge workers serving queue `gravitypm_host`) and the host tasks waiting for one.

What Airflow does alone (3.3.2, edge3 5.1.0): a host task queued while no agent is online stays `queued`;
after `[scheduler] task_queued_timeout` (600 s) the scheduler revokes it, sets it back to `scheduled`
(which resets `queued_dttm` and `scheduled_dttm`) and logs "stuck in queued reschedule"; after
`num_stuck_in_queued_retries` (2) of those it fails the task, about 30 min in, saying only that it was
requeued too often. The edge provider adds no timeout of its own for queued jobs; it only marks a silent
worker `unknown` after 5 x `[edge] heartbeat_interval`.

`watch` (the `gravitypm_host_agent_watch` DAG) is the smaller, louder rule: while no agent serving the
host queue is online, a host task that has waited `host_agent_timeout_minutes` — counted from when it was
first scheduled or queued for this try (through Airflow's requeues) and from when the last agent went
away — is failed, with a note and an audit-log entry that say why, and its queued edge job is dropped (as
the executor's own `revoke_task` does), so a returning agent does not pick up a failed task.

Reads and writes go to the metadata DB: the API server (the console's /metrics) calls `read_agents`
in-process; tasks on the control plane run this module as a subprocess with the scheduler's DB settings
(`python -m gravitypm_ops.airflow.host_agents agents|watch <minutes>`, see control_plane.py). Chosen over
the REST API because a task has no user credentials for it (an admin password in a connection would be a
new secret), and because the public API cannot drop the queued edge job along with the state change.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta

from gravitypm_ops.airflow.control_plane import as_utc
from gravitypm_ops.names import HOST_EXECUTOR_ENV, HOST_QUEUE

# EdgeWorkerState values of a worker that takes jobs now (the scheduler marks a silent one "unknown").
ONLINE_STATES = ("starting", "idle", "running")
# ... and of one that no longer heartbeats (stopped, or silent past 5 heartbeats). One in maintenance still
# heartbeats but takes no jobs: not online, and its heartbeat says nothing about when jobs stopped.
GONE_STATES = ("offline", "unknown", "offline maintenance")
WAITING_STATES = ("scheduled", "queued")
# airflow.jobs.scheduler_job_runner.TASK_STUCK_IN_QUEUED_RESCHEDULE_EVENT (Airflow 3.3)
REQUEUE_EVENT = "stuck in queued reschedule"
FAILED_EVENT = "gravitypm host agent timeout"  # the audit-log (`log` table) event of a task failed here
WATCH_DAG_ID = "gravitypm_host_agent_watch"
ALERT_KEY = "host_agent/offline"
SUBJECT = "host agent"
MARK = "GRAVITYPM_HOST_AGENTS "
PROBE_TIMEOUT_SECONDS = 90
NOTE_MAX = 1000  # task_instance_note.content


def host_executor() -> str:
    """The executor host tasks name (GRAVITYPM_OPS_HOST_EXECUTOR); empty on a single box: nothing to watch."""
    return os.environ.get(HOST_EXECUTOR_ENV, "").strip()


# --- reading -------------------------------------------------------------------------------------------
def _state(value) -> str:
    return str(getattr(value, "value", value))


def _iso(moment) -> str | None:
    moment = as_utc(moment)
    return moment.isoformat() if moment else None


def read_agents(session) -> list[dict] | None:
    """[{"worker", "state", "online", "last_heartbeat", "queues"}] of the Edge workers that serve the host
    queue (a worker started without queues serves every queue); None without the edge provider's tables."""
    from airflow.providers.edge3.models.edge_worker import EdgeWorkerModel
    from sqlalchemy import inspect, select

    if not inspect(session.get_bind()).has_table(EdgeWorkerModel.__tablename__):
        return None
    workers = session.scalars(select(EdgeWorkerModel).order_by(EdgeWorkerModel.worker_name)).all()
    return [
        {"worker": w.worker_name, "state": _state(w.state), "online": _state(w.state) in ONLINE_STATES,
         "last_heartbeat": _iso(w.last_update), "queues": w.queues}
        for w in workers if not w.queues or HOST_QUEUE in w.queues
    ]


def waiting_host_tasks(session) -> list[dict]:
    """The host-queue task instances in `scheduled` or `queued`, with when each was scheduled, queued and
    first requeued by the scheduler in this try."""
    from airflow.models.log import Log
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import func, select

    waiting = []
    for ti in session.scalars(select(TI).where(TI.queue == HOST_QUEUE, TI.state.in_(WAITING_STATES))):
        requeued = session.scalar(select(func.min(Log.dttm)).where(
            Log.event == REQUEUE_EVENT, Log.dag_id == ti.dag_id, Log.task_id == ti.task_id, Log.run_id == ti.run_id,
            Log.map_index == ti.map_index, Log.try_number == ti.try_number))
        waiting.append({"id": str(ti.id), "dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id,
                        "map_index": ti.map_index, "try_number": ti.try_number, "state": _state(ti.state),
                        "scheduled": _iso(ti.scheduled_dttm), "queued": _iso(ti.queued_dttm),
                        "first_requeue": _iso(requeued)})
    return waiting


# --- deciding (pure) -----------------------------------------------------------------------------------
def _moment(iso: str | None) -> datetime | None:
    return as_utc(iso) if iso else None


def waiting_since(task: dict, requeue_after: timedelta) -> datetime | None:
    """When the task started waiting in this try: a requeue resets its scheduled/queued times, but it was
    queued `requeue_after` (task_queued_timeout) before its first requeue."""
    first_requeue = _moment(task.get("first_requeue"))
    moments = [_moment(task.get("scheduled")), _moment(task.get("queued")),
               first_requeue - requeue_after if first_requeue else None]
    return min((m for m in moments if m), default=None)


def agents_gone_since(agents: list[dict]) -> datetime | None:
    """The last heartbeat of any stopped or silent agent: before it, that agent could have run the task."""
    gone = (_moment(a.get("last_heartbeat")) for a in agents if a["state"] in GONE_STATES)
    return max((m for m in gone if m), default=None)


def overdue(waiting: list[dict], agents: list[dict] | None, *, now: datetime, timeout: timedelta,
            requeue_after: timedelta) -> list[dict]:
    """The waiting host tasks to fail: none while an agent is online; else each that has waited `timeout`
    both since it started waiting and since the last agent went away. Each with `waited_minutes`."""
    agents = agents or []
    if any(a["online"] for a in agents):
        return []
    gone = agents_gone_since(agents)
    due = []
    for task in waiting:
        since = waiting_since(task, requeue_after)
        if since is None:
            continue
        waited = now - max(since, gone) if gone else now - since
        if waited >= timeout:
            due.append({**task, "waited_minutes": int(waited.total_seconds() // 60)})
    return due


def _when(iso: str | None) -> str:
    moment = _moment(iso)
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"


def describe_agents(agents: list[dict] | None) -> str:
    """One line for messages: each agent serving the host queue with its state and last heartbeat."""
    if not agents:
        return f"no host agent has registered for queue {HOST_QUEUE}"
    return "; ".join(f"{a['worker']} {a['state']}" + ("" if a["online"] else f", last heartbeat {_when(a['last_heartbeat'])}")
                     for a in agents)


def agent_status(agents: list[dict] | None) -> tuple[bool, str]:
    """(online, detail) for the morning checklist's service health: online when any agent takes jobs."""
    online = [a for a in agents or [] if a["online"]]
    if online:
        return True, "online: " + describe_agents(agents)
    return False, "offline: " + describe_agents(agents) + " (host tasks wait in queued)"


def failure_note(task: dict, agents: list[dict] | None, timeout_minutes: int) -> str:
    """Why the watch failed a task: its note in the UI and its audit-log entry."""
    text = (f"Failed by {WATCH_DAG_ID}: no host agent online for queue {HOST_QUEUE}; this task waited "
            f"{task['waited_minutes']} min ({task['state']}), host_agent_timeout_minutes is {timeout_minutes}. "
            f"Agents: {describe_agents(agents)}. Start the host agent (deploy/DEPLOY.md \"Run the host agent\"), "
            "then clear this task to run it.")
    return text[:NOTE_MAX]


# --- acting --------------------------------------------------------------------------------------------
def _drop_edge_jobs(session, ti) -> None:
    """Delete the task's queued edge job, as EdgeExecutor.revoke_task does."""
    from airflow.providers.edge3.models.edge_job import EdgeJobModel
    from sqlalchemy import delete, inspect

    if not inspect(session.get_bind()).has_table(EdgeJobModel.__tablename__):
        return
    session.execute(delete(EdgeJobModel).where(
        EdgeJobModel.dag_id == ti.dag_id, EdgeJobModel.task_id == ti.task_id, EdgeJobModel.run_id == ti.run_id,
        EdgeJobModel.map_index == ti.map_index, EdgeJobModel.try_number == ti.try_number,
        EdgeJobModel.state == "queued"))


def fail_tasks(session, due: list[dict], agents: list[dict] | None, timeout_minutes: int) -> list[dict]:
    """Fail each task of `due` that is still waiting (an agent may have taken it meanwhile): state
    failed, the reason as its note (after any note a person wrote) and in the audit log, its edge job gone.
    No failure callback runs: the watch posts the one Critical alert for all of them."""
    from uuid import UUID

    from airflow.models.log import Log
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.state import TaskInstanceState

    failed = []
    for task in due:
        ti = session.get(TI, UUID(task["id"]))
        if ti is None or _state(ti.state) not in WAITING_STATES:
            continue
        note = failure_note(task, agents, timeout_minutes)
        ti.set_state(TaskInstanceState.FAILED, session=session)
        ti.note = (f"{ti.note}\n\n{note}" if ti.note else note)[-NOTE_MAX:]
        session.add(Log(event=FAILED_EVENT, task_instance=ti.key, owner=WATCH_DAG_ID, extra=note))
        _drop_edge_jobs(session, ti)
        failed.append({**task, "state": "failed", "was": task["state"], "note": note})
    session.flush()
    return failed


def watch(session, *, timeout_minutes: int, now: datetime, requeue_after: timedelta) -> dict:
    """Read the agents and the waiting host tasks; fail those overdue. JSON-able."""
    agents = read_agents(session)
    waiting = waiting_host_tasks(session)
    due = overdue(waiting, agents, now=now, timeout=timedelta(minutes=timeout_minutes), requeue_after=requeue_after)
    failed = fail_tasks(session, due, agents, timeout_minutes)
    return {"agents": agents, "waiting": waiting, "failed": failed, "timeout_minutes": timeout_minutes,
            "checked_at": now.isoformat()}


# --- from a control-plane task: a subprocess with the scheduler's DB settings --------------------------
def probe_agents() -> list[dict] | None:
    from gravitypm_ops.airflow.control_plane import control_plane_env, run_marked

    return run_marked(__name__, ["agents"], control_plane_env(), mark=MARK, timeout=PROBE_TIMEOUT_SECONDS,
                      what="reading the host agents' state from the metadata DB")["agents"]


def probe_watch(timeout_minutes: int) -> dict:
    from gravitypm_ops.airflow.control_plane import control_plane_env, run_marked

    return run_marked(__name__, ["watch", str(timeout_minutes)], control_plane_env(), mark=MARK,
                      timeout=PROBE_TIMEOUT_SECONDS, what="checking the host tasks against the host agents")


def _main(argv: list[str]) -> None:
    from airflow.configuration import conf
    from airflow.utils.session import create_session

    from gravitypm_ops.airflow.control_plane import print_marked

    with create_session() as session:  # commits on leaving: print only after that
        if argv[:1] == ["agents"]:
            answer = {"agents": read_agents(session)}
        elif argv[:1] == ["watch"] and len(argv) == 2:
            answer = watch(session, timeout_minutes=int(argv[1]), now=datetime.now(UTC),
                           requeue_after=timedelta(seconds=conf.getfloat("scheduler", "task_queued_timeout")))
        else:
            raise SystemExit("usage: python -m gravitypm_ops.airflow.host_agents agents | watch <timeout minutes>")
    print_marked(MARK, answer)


if __name__ == "__main__":
    _main(sys.argv[1:])
