"""Human checklist items on a running `airflow standalone`: answered through the REST API (the
responder becomes the record's actor), and left unanswered until the response timeout (recorded
"missed", never "passed"). dag.test() cannot do this: it waits forever on a human step."""

import json
import os
import subprocess
import time
import urllib.error
import uuid

import pytest

from dev.airflow_api import AirflowAPI
from dev.stack import BIN, REPO, free_port, spawn, stop_process
from dev.up import airflow_env
from gravitypm_ops.audit import AuditLog
from gravitypm_ops.checklists import CHECKLISTS
from gravitypm_ops.vault import Vault

WEEKLY, MONTHLY = "gravitypm_weekly_maintenance", "gravitypm_monthly_maintenance"
QUARTERLY, DRILL = "gravitypm_quarterly_maintenance", "gravitypm_dr_drill"


@pytest.fixture
def standalone(stack, tmp_path):
    """airflow standalone on a free port, its own AIRFLOW_HOME, the suite's config on its own vault prefix."""
    port = free_port()
    prefix = f"hitl-{uuid.uuid4().hex[:8]}"
    env = airflow_env(tmp_path, stack, port)
    config = {**stack.ops_config(), "vault_prefix": prefix,
              "checklists": {"security_updates_command": ["true"]}}  # no apt run on the test machine
    env.update({
        "AIRFLOW_VAR_GRAVITYPM_OPS": json.dumps(config),
        "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",  # the HITL timeout sweep
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only our runs: unpausing starts no scheduled one
    })
    full_env = {**os.environ, **env}
    airflow = str(BIN / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=full_env, check=True, capture_output=True)
    subprocess.run([airflow, "pools", "import", str(REPO / "deploy" / "pools.json")], env=full_env, check=True,
                   capture_output=True)
    proc = spawn([airflow, "standalone"], tmp_path / "airflow.log", env)
    try:
        api = AirflowAPI(f"http://127.0.0.1:{port}")
        api.wait_healthy(alive=lambda: proc.poll() is None)
        api.password = AirflowAPI.standalone_password(tmp_path / "airflow")
        for dag_id in (WEEKLY, MONTHLY, QUARTERLY, DRILL):
            api.wait_for_dag(dag_id)
            api.unpause(dag_id)
        yield api, AuditLog(Vault(stack.vault_bucket, prefix, stack.s3_client()))
    finally:
        stop_process(proc, grace=30)


def hitl_path(dag_id: str, run_id: str, task_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"


def wait_for_prompt(api, dag_id: str, run_id: str, task_id: str, timeout: float = 180) -> dict:
    path = hitl_path(dag_id, run_id, task_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return api.get(path)
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise
        time.sleep(1)
    raise TimeoutError(f"{task_id} never asked (states: {api.task_states(dag_id, run_id)})")


def answer(api, run_id: str, task_id: str, option: str, comment: str) -> None:
    """Answer like the UI does; SQLite under load sometimes answers 500 ("database is locked")."""
    # Airflow 3.3.2 races when an answer lands before the executor has reported the exit of the
    # workload that parked the task (the resumed try is then failed as "finished with state success,
    # but the task instance's state attribute is queued"). People answer minutes later; the test
    # waits until the task is parked and a few seconds more.
    deadline = time.monotonic() + 60
    while api.task_states(WEEKLY, run_id)[task_id] != "awaiting_input" and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(5)
    body = {"chosen_options": [option], "params_input": {"comment": comment}}
    for attempt in range(5):
        try:
            api._request("PATCH", hitl_path(WEEKLY, run_id, task_id), body)
            return
        except urllib.error.HTTPError as err:
            if err.code == 409:  # the previous attempt was stored after all
                return
            if err.code != 500 or attempt == 4:
                raise
            time.sleep(2)


def test_answers_are_recorded_with_the_responder_and_a_timeout_is_missed(standalone):
    api, audit = standalone
    # All at once (each DAG allows one active run): the weekly one is answered; nobody answers the
    # monthly and quarterly ones, whose human items time out after ~14 s. The quarterly DR test runs
    # the real drill, which fails on this empty vault.
    answered = api.trigger(WEEKLY, {"human_response_hours": 1})
    ignored = api.trigger(MONTHLY, {"human_response_hours": 0.004})
    quarterly = api.trigger(QUARTERLY, {"human_response_hours": 0.004})

    # 1. Answered in time: the comment and the responder go into the audit record.
    prompt = wait_for_prompt(api, WEEKLY, answered, "review_monitoring_dashboards")
    assert prompt["subject"] == "Weekly maintenance: Review monitoring dashboards"
    assert "p95 response time < 500 ms" in prompt["body"]  # the instructions …
    assert "Evidence gathered automatically" in prompt["body"] and "application" in prompt["body"]  # … and evidence
    assert "Done" in prompt["options"] and "comment" in prompt["params"]
    answer(api, answered, "review_monitoring_dashboards", "Done", "All dashboards green, p95 310 ms")
    wait_for_prompt(api, WEEKLY, answered, "test_failover_procedures")
    answer(api, answered, "test_failover_procedures", "Waived (say why)", "Staging is down for the DB upgrade")
    run = api.wait_for_run(WEEKLY, answered, timeout=240)
    assert run["state"] == "success", api.task_states(WEEKLY, answered)

    weekly = audit.records("weekly_maintenance")
    assert [r["item"] for r in weekly] == [i.id for i in CHECKLISTS["weekly_maintenance"].items]
    by_item = {r["item"]: r for r in weekly}
    dashboards, failover = by_item["review_monitoring_dashboards"], by_item["test_failover_procedures"]
    assert (dashboards["outcome"], dashboards["actor"], dashboards["item_kind"]) == ("passed", "admin", "human")
    assert dashboards["evidence"]["data"]["comment"] == "All dashboards green, p95 310 ms"
    assert (failover["outcome"], failover["actor"]) == ("waived", "admin")
    assert (by_item["update_security_patches"]["outcome"], by_item["update_security_patches"]["actor"]) == (
        "passed", "automation")
    assert {r["period"] for r in weekly} == {weekly[0]["period"]} and weekly[0]["period"].startswith("2026-W")

    # 2. Nobody answered: after the response timeout the human items are "missed" and the run is red.
    run = api.wait_for_run(MONTHLY, ignored, timeout=240)
    states = api.task_states(MONTHLY, ignored)
    assert run["state"] == "failed" and states["record_audit"] == "success", states
    assert states["security_assessment"] == states["performance_review"] == "failed"
    monthly = audit.records("monthly_maintenance")
    assert [r["item"] for r in monthly] == [i.id for i in CHECKLISTS["monthly_maintenance"].items]
    missed = [r for r in monthly if r["item_kind"] == "human"]
    assert [(r["item"], r["outcome"], r["actor"]) for r in missed] == [
        ("security_assessment", "missed", "automation"), ("performance_review", "missed", "automation")]
    assert all("no answer within 0.004 h" in r["evidence"]["summary"] for r in missed)

    # 3. The DR test's outcome is the drill run's state.
    run = api.wait_for_run(QUARTERLY, quarterly, timeout=240)
    drill_run = api.get(f"/api/v2/dags/{DRILL}/dagRuns/quarterly_maintenance__{quarterly}")
    assert run["state"] == "failed" and drill_run["state"] == "failed"
    records = audit.records("quarterly_maintenance")
    assert [(r["item"], r["outcome"]) for r in records] == [
        ("disaster_recovery_test", "failed"), ("load_testing", "missed"), ("architecture_review", "missed"),
        ("team_training", "missed")]
    assert records[0]["evidence"]["data"]["drill_state"] == "failed"
    for name, count in (("weekly_maintenance", 5), ("monthly_maintenance", 5), ("quarterly_maintenance", 4)):
        report = audit.verify(name)
        assert report.ok and report.records == count, report.problems
