"""Task bodies of the DAGs that watch Airflow's own deployment: gravitypm_host_agent_watch."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

MAX_LISTED = 10  # failed tasks named in one Slack message


def alert_text(failed: list[dict], agents: list[dict] | None, timeout_minutes: int, run_id: str) -> str:
    from gravitypm_ops.airflow.alerts import Severity
    from gravitypm_ops.airflow.host_agents import describe_agents
    from gravitypm_ops.names import HOST_QUEUE

    head = (f"{Severity.CRITICAL.icon} *[Critical] No host agent online*: {len(failed)} host task(s) waited more "
            f"than {timeout_minutes} min for queue `{HOST_QUEUE}` and were failed")
    lines = [head, f"• Agents: {describe_agents(agents)}"]
    lines += [f"• Failed: `{t['dag_id']}.{t['task_id']}` (run `{t['run_id']}`, waited {t['waited_minutes']} min "
              f"{t['was']})" for t in failed[:MAX_LISTED]]
    if len(failed) > MAX_LISTED:
        lines.append(f"• … and {len(failed) - MAX_LISTED} more (the watch run's log lists them)")
    lines.append("• Start the host agent on the production host (deploy/DEPLOY.md \"Run the host agent\"), then "
                 "clear the failed tasks to run them.")
    lines.append(f"• Watch run: `{run_id}`")
    return "\n".join(lines)


def watch_host_agents() -> dict:
    """Fail the host tasks that waited `host_agent_timeout_minutes` with no host agent online, and alert
    Critical (once, reminders every `alerts.repeat_hours` while more keep failing); "recovered" once an
    agent is online again. On a single box (no host executor) there is nothing to watch."""
    from airflow.sdk import get_current_context

    from gravitypm_ops.airflow import host_agents
    from gravitypm_ops.airflow.alerts import Severity, clear, fire, recovered_since
    from gravitypm_ops.config import load_config
    from gravitypm_ops.names import HOST_EXECUTOR_ENV, HOST_QUEUE

    if not host_agents.host_executor():
        print(f"single box: {HOST_EXECUTOR_ENV} is not set, so host tasks run on this control plane's own "
              "executor; there is no host agent to watch")
        return {"mode": "single box", "failed": []}
    cfg = load_config()
    timeout = cfg.host_agent_timeout_minutes
    found = host_agents.probe_watch(timeout)
    agents, waiting, failed = found["agents"], found["waiting"], found["failed"]
    run_id = get_current_context()["run_id"]
    print(f"host agents: {host_agents.describe_agents(agents)}")
    print(f"{len(waiting)} host task(s) waiting (scheduled or queued) for queue {HOST_QUEUE}")
    for task in failed:
        print(f"FAILED {task['dag_id']}.{task['task_id']} run {task['run_id']}: {task['note']}")
    online = [a["worker"] for a in agents or [] if a["online"]]
    if failed:
        fire(host_agents.ALERT_KEY, alert_text(failed, agents, timeout, run_id), cfg=cfg,
             reason=f"no host agent online for queue {HOST_QUEUE}",
             facts={"severity": Severity.CRITICAL.value, "last_run": run_id})
    elif online:
        clear(host_agents.ALERT_KEY, lambda state: (
            f"{Severity.INFO.icon} *[Info] Host agent back online*: {', '.join(online)} serve(s) queue `{HOST_QUEUE}` "
            f"again, after {recovered_since(state)}. Tasks failed meanwhile stay failed: clear them to run them."),
            cfg=cfg, facts={"recovered_run": run_id})
    else:
        print(f"no host agent online: waiting host tasks are failed once they have waited {timeout} min"
              if waiting else "no host agent online, and no host task waits for one")
    return {"mode": "split", "online": online, "waiting": len(waiting),
            "failed": [f"{t['dag_id']}.{t['task_id']} {t['run_id']}" for t in failed]}
