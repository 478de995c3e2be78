"""
### GravityPM host agent watch (split deployments: host tasks run on an Edge worker on the production host)

Every 5 minutes (`*/5 * * * *`), on the control plane's own executor. Host tasks (queue `gravitypm_host`:
file and config backups, log rotation, fs restores, `stop_app` / `start_app`, disk and memory checks) run
on the host agent, an Edge worker on the production host. With no agent online they wait in `queued`,
and Airflow alone requeues them silently after `[scheduler] task_queued_timeout` and fails them after
two requeues, about 30 minutes in, without saying why.

`watch_host_agents` reads the edge provider's worker table and the waiting host tasks from the
metadata DB (a subprocess with the scheduler's DB settings: task code has no ORM access). While no agent
serving `gravitypm_host` is online, every host task that has waited `host_agent_timeout_minutes`
(config, default 15; counted through Airflow's requeues, and from when the last agent went away) is
failed, with a task note and an audit-log entry saying so, and its queued edge job is dropped.
Then one **Critical** Slack alert names the tasks and the agents' last heartbeats; it is not repeated
while it keeps firing (a reminder every `alerts.repeat_hours` while more tasks fail), and "Host agent back
online" is posted once an agent is online again. Failed tasks stay failed: clear them to run them.

Single box (`GRAVITYPM_OPS_HOST_EXECUTOR` unset): every task runs on this executor, so the task logs that
there is nothing to watch and succeeds. The morning checklist's service health shows the agents' state too.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task

from gravitypm_ops.airflow.conventions import NO_RETRY, cron, dag_kwargs


@dag(
    dag_id="gravitypm_host_agent_watch",
    **dag_kwargs(schedule=cron("*/5 * * * *"), doc_md=__doc__, extra_tags=("host-agent",)),
)
def gravitypm_host_agent_watch():
    # No retries: the next run is 5 minutes away. A few seconds of work (one DB subprocess, Slack).
    @task(execution_timeout=timedelta(minutes=3), **NO_RETRY)
    def watch_host_agents():
        from gravitypm_ops.airflow import tasks as airflow_tasks

        return airflow_tasks.watch_host_agents()

    watch_host_agents()


gravitypm_host_agent_watch()
