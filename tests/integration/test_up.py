"""`make up` end to end: the real launcher, airflow standalone, the scheduler, real DAG runs, then one
SIGINT and nothing left running. By default the split topology (issue 15): host tasks leave the control
plane for the Edge worker `gravitypm-host-1`, and once it is stopped a waiting host task is failed and
alerted Critical within `host_agent_timeout_minutes` (1 here) while the morning checklist shows the agent
offline; the metadata DB is the stack's own Postgres. `--single` (the one-box mode): test_up_single.py.
The slowest test (~3 min), and the one that proves the start command works."""

import json
import os
import signal
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta

from dev.airflow_api import AirflowAPI
from dev.stack import BIN
from dev.up import HOST_AGENT_NAME, clean_env, read_env_file
from tests import up_launcher
from tests.console_pages import parse_exposition
from tests.processes import cmdline, descendants, postgres_pids, read_until

BANNER = "== GravityPM Ops is up"
FS_BACKUP = up_launcher.FS_BACKUP
MORNING = "gravitypm_morning_checklist"
WATCH = "gravitypm_host_agent_watch"
EDGE = "airflow.providers.edge3.executors.EdgeExecutor"
start_up = up_launcher.start_up  # the fixture (shared with test_up_single.py and test_dr_backup_site.py)
run_fs_backup, stop_with_one_sigint = up_launcher.run_fs_backup, up_launcher.stop_with_one_sigint


def slack_texts(state) -> list[str]:
    return [json.loads(line)["payload"]["text"] for line in (state / "slack" / "messages.jsonl").read_text().splitlines()]


def wait_for(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


def the_stopped_agent_is_reported(api: AirflowAPI, proc, state) -> None:
    """The Edge worker stops: the morning checklist's service health fails on it at once, and a host task
    left waiting is failed and alerted Critical once it has waited host_agent_timeout_minutes (1)."""
    worker_pid = int((state / "host-agent" / "worker.pid").read_text())
    assert "edge worker" in cmdline(worker_pid)
    os.kill(worker_pid, signal.SIGTERM)  # the agent says goodbye: offline at once
    read_until(proc, f"!! host agent {HOST_AGENT_NAME} exited", timeout=60)  # the control plane keeps running
    # The waits below are generous: they end as soon as their state is reached, and the task that judges
    # the agent starts a probe process that imports Airflow (a CI run under load 13 took 44 s for it).
    wait_for("agent offline", lambda: {w["worker_name"]: w["state"] for w in api.get("/edge_worker/ui/worker")[
        "workers"]}.get(HOST_AGENT_NAME) not in ("idle", "running", "starting"), timeout=90)
    backup_run, morning_run = api.trigger(FS_BACKUP), api.trigger(MORNING)
    triggered = time.monotonic()

    wait_for("service health judged", lambda: api.task_states(MORNING, morning_run).get("check_service_health") in (
        "success", "failed"), timeout=240)
    assert api.task_states(MORNING, morning_run)["check_service_health"] == "failed"
    findings = {f["subject"]: f for f in api.xcom(MORNING, morning_run, "check_service_health", "item")["data"][
        "findings"]}
    assert findings["host agent"]["outcome"] == "failed", findings
    assert findings["host agent"]["detail"].startswith(f"offline: {HOST_AGENT_NAME} offline, last heartbeat")
    assert findings["application"]["outcome"] == "passed"

    # Waiting for an agent. The scheduler may reach the backup run after the checklist's task has run (a CI
    # run saw its preflight still in state None), and the wait is counted from when it was scheduled.
    wait_for("preflight scheduled or queued", lambda: api.task_states(FS_BACKUP, backup_run).get(
        "preflight") in ("scheduled", "queued"), timeout=120)
    # host_agent_timeout_minutes is 1, counted from when the task started waiting (the earlier of its
    # scheduled and queued times, host_agents.waiting_since): only the rest of that minute is waited here.
    preflight = api.get(f"/api/v2/dags/{FS_BACKUP}/dagRuns/{backup_run}/taskInstances/preflight")
    waiting_since = min(datetime.fromisoformat(preflight[k]) for k in ("scheduled_when", "queued_when") if preflight[k])
    time.sleep(max(0.0, (waiting_since + timedelta(seconds=65) - datetime.now(UTC)).total_seconds()))
    watch_run = api.trigger(WATCH)  # its */5 schedule may beat us to it: either run does the same
    assert api.wait_for_run(WATCH, watch_run, timeout=300)["state"] == "success"
    preflight = api.get(f"/api/v2/dags/{FS_BACKUP}/dagRuns/{backup_run}/taskInstances/preflight")
    assert preflight["state"] == "failed", preflight
    assert preflight["note"].startswith(f"Failed by {WATCH}: no host agent online for queue gravitypm_host")
    critical = [t for t in slack_texts(state) if "*[Critical] No host agent online*" in t]
    assert len(critical) == 1, critical
    assert f"`{FS_BACKUP}.preflight` (run `{backup_run}`" in critical[0]
    assert f"Agents: {HOST_AGENT_NAME} offline, last heartbeat" in critical[0]
    print(f"agent stopped → Critical in {time.monotonic() - triggered:.0f}s after the host task was triggered")


def the_metadata_db_is_the_stacks_postgres(output: str, state) -> None:
    """`make up`'s default metadata DB (docs/metadb.md): the stack's own Postgres, never a SQLite fallback; the
    `airflow` CLI with the settings `up` hands a shell reads it through a _CMD (no password in stack.env)."""
    assert "metadata DB:    Postgres 127.0.0.1:" in output, output
    env = {**clean_env(), **read_env_file(state / "stack.env")}
    conn = subprocess.run([str(BIN / "airflow"), "config", "get-value", "database", "sql_alchemy_conn"], env=env,
                          capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    assert conn.startswith("postgresql+psycopg2://airflow:") and "@127.0.0.1:" in conn
    assert (state / "postgres_password").read_text() not in (state / "stack.env").read_text()
    assert not (state / "airflow" / "airflow.db").exists()


def test_up_runs_the_split_suite_host_tasks_on_the_edge_worker_and_one_sigint_stops_everything(start_up):
    proc, port, state = start_up("--host-agent-timeout", "1")
    output = read_until(proc, "== running;", timeout=300)
    print(next(line.strip() for line in output.splitlines() if "started in" in line))  # the start-up time

    assert BANNER in output and f"http://127.0.0.1:{port}" in output and "login: admin / " in output
    assert f"split: host tasks run on the Edge worker {HOST_AGENT_NAME}" in output
    assert "smoke run success" in output, output
    the_metadata_db_is_the_stacks_postgres(output, state)
    api = AirflowAPI(f"http://127.0.0.1:{port}", password=AirflowAPI.standalone_password(state / "airflow"))
    dags = {d["dag_id"] for d in api.get("/api/v2/dags?limit=100")["dags"]}
    assert "gravitypm_morning_checklist" in dags
    assert not any(d.startswith("example_") for d in dags)  # examples off
    assert api.get("/api/v2/importErrors")["total_entries"] == 0  # the DAGs parse with the Edge executor named
    pools = {p["name"]: p["slots"] for p in api.get("/api/v2/pools")["pools"]}
    assert pools.get("gravitypm_db") == 1 and "gravitypm_host" in pools
    # The smoke run's summary reached the local Slack receiver.
    messages = [json.loads(line) for line in (state / "slack" / "messages.jsonl").read_text().splitlines()]
    assert any("Morning checklist" in m["payload"]["text"] for m in messages)

    # The host agent registered with the API server, serving only the host queue.
    workers = {w["worker_name"]: w for w in api.get("/edge_worker/ui/worker")["workers"]}
    assert workers[HOST_AGENT_NAME]["state"] in ("idle", "running") and workers[HOST_AGENT_NAME]["queues"] == [
        "gravitypm_host"]
    # The ops console's /metrics sees it too (the API server reads the edge provider's table).
    scrape = urllib.request.Request(api.base_url + "/gravitypm/metrics", headers={"Authorization": f"Bearer {api.token()}"})
    with urllib.request.urlopen(scrape, timeout=60) as answer:
        m = parse_exposition(answer.read().decode())
    assert m[("gravitypm_host_agent_online", (("worker", HOST_AGENT_NAME),))] == 1
    assert m[("gravitypm_host_agents_online", ())] == 1
    # The runbook's file backup: the archive is written on the host, retention (S3 only) on the control plane.
    tis = run_fs_backup(api)
    archive, retention = tis["archive_to_vault"], tis["apply_retention"]
    assert (archive["hostname"], archive["executor"], archive["queue"]) == (HOST_AGENT_NAME, EDGE, "gravitypm_host")
    assert tis["preflight"]["hostname"] == HOST_AGENT_NAME
    assert retention["executor"] in (None, "LocalExecutor") and retention["hostname"] not in ("", HOST_AGENT_NAME)
    # The agent ran in an AIRFLOW_HOME of its own (its task logs are there), and none of the stack's
    # credentials reached its files: it fetched connections through the API server, in memory.
    agent_home = state / "host-agent"
    agent_files = [f for f in agent_home.rglob("*") if f.is_file()]
    assert (agent_home / "airflow.cfg") in agent_files
    assert any(f.parts[-2] == "task_id=archive_to_vault" for f in agent_files if f.name.endswith(".log")), agent_files
    stack_secrets = [v for k, v in json.loads((state / "secrets.json").read_text()).items() if k != "mongo_user"]
    assert [f for f in agent_files if any(v.encode() in f.read_bytes() for v in stack_secrets)] == []

    started = descendants(proc.pid)
    assert len(started) >= 6  # 4 stack services + airflow standalone and its children + the Edge worker
    assert any("edge worker" in cmdline(pid) for pid in started)
    assert postgres_pids(state / "postgres") and set(postgres_pids(state / "postgres")) <= started
    the_stopped_agent_is_reported(api, proc, state)
    stop_with_one_sigint(proc, started, state)
    assert "database system is shut down" in (state / "logs" / "postgres.log").read_text()  # a clean shutdown
