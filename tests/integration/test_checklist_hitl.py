"""Human checklist items on a running `airflow standalone`: answered through the REST API (the
responder becomes the record's actor), and left unanswered until the response timeout (recorded
"missed", never "passed"). dag.test() cannot do this: it waits forever on a human step."""

import urllib.error

import pytest

from gravitypm_ops.checklists.audit import AuditLog
from gravitypm_ops.checklists.catalog import CHECKLISTS
from tests.upstream_races import blame_upstream_defer_race, wait_until_defer_exit_drained

WEEKLY, MONTHLY = "gravitypm_weekly_maintenance", "gravitypm_monthly_maintenance"
QUARTERLY, DRILL = "gravitypm_quarterly_maintenance", "gravitypm_dr_drill"


@pytest.fixture(scope="module")
def checklists_on(standalone):
    """The session's standalone (tests/conftest.py) with the checklist DAGs and the drill unpaused."""
    for dag_id in (WEEKLY, MONTHLY, QUARTERLY, DRILL):
        standalone.api.wait_for_dag(dag_id)
        standalone.api.unpause(dag_id)
    return standalone.api, AuditLog(standalone.vault), standalone.log


def answer(api, log, run_id: str, task_id: str, option: str, comment: str) -> None:
    """Answer like the UI does, once the scheduler has taken in the deferring try's exit (tests/upstream_races.py).
    The client tries a 500 ("database is locked") again; a 409 then means the earlier attempt was stored after all."""
    wait_until_defer_exit_drained(log, WEEKLY, run_id, task_id)
    try:
        api.answer(WEEKLY, run_id, task_id, option, {"comment": comment})
    except urllib.error.HTTPError as err:
        if err.code != 409:
            raise


@pytest.mark.flaky(reruns=1, only_rerun=["UpstreamDeferRace"])  # Airflow's defer race only (tests/upstream_races.py)
def test_answers_are_recorded_with_the_responder_and_a_timeout_is_missed(checklists_on):
    api, audit, log = checklists_on
    # All at once (each DAG allows one active run): the weekly one is answered; nobody answers the
    # monthly and quarterly ones, whose human items time out after ~14 s. The quarterly DR test runs
    # the real drill, which fails on this empty vault.
    with blame_upstream_defer_race(api) as runs:
        answered = api.trigger(WEEKLY, {"human_response_hours": 1})
        ignored = api.trigger(MONTHLY, {"human_response_hours": 0.004})
        quarterly = api.trigger(QUARTERLY, {"human_response_hours": 0.004})
        runs += [(WEEKLY, answered), (MONTHLY, ignored), (QUARTERLY, quarterly)]

        # 1. Answered in time: the comment and the responder go into the audit record.
        prompt = api.wait_for_prompt(WEEKLY, answered, "review_monitoring_dashboards")
        assert prompt["subject"] == "Weekly maintenance: Review monitoring dashboards"
        assert "p95 response time < 500 ms" in prompt["body"]  # the instructions …
        assert "Evidence gathered automatically" in prompt["body"] and "application" in prompt["body"]  # … and evidence
        assert "Done" in prompt["options"] and "comment" in prompt["params"]
        answer(api, log, answered, "review_monitoring_dashboards", "Done", "All dashboards green, p95 310 ms")
        api.wait_for_prompt(WEEKLY, answered, "test_failover_procedures")
        answer(api, log, answered, "test_failover_procedures", "Waived (say why)", "Staging is down for the DB upgrade")
        run = api.wait_for_run(WEEKLY, answered, timeout=240)

        weekly = [r for r in audit.records("weekly_maintenance") if r["run_id"] == answered]
        # Both human items answered: the run is red only if an automated item failed (the shared vault).
        assert run["state"] == ("failed" if any(r["outcome"] == "failed" for r in weekly) else "success"), weekly
        assert [r["item"] for r in weekly] == [i.id for i in CHECKLISTS["weekly_maintenance"].items]
        by_item = {r["item"]: r for r in weekly}
        dashboards, failover = by_item["review_monitoring_dashboards"], by_item["test_failover_procedures"]
        assert (dashboards["outcome"], dashboards["actor"], dashboards["item_kind"]) == ("passed", "admin", "human")
        assert dashboards["evidence"]["data"]["comment"] == "All dashboards green, p95 310 ms"
        assert "application" in dashboards["evidence"]["data"]["gathered_evidence"]["summary"]  # what they were shown
        assert (failover["outcome"], failover["actor"]) == ("waived", "admin")
        assert (by_item["update_security_patches"]["outcome"], by_item["update_security_patches"]["actor"]) == (
            "passed", "automation")
        assert {r["period"] for r in weekly} == {weekly[0]["period"]} and weekly[0]["period"].startswith("2026-W")

        # 2. Nobody answered: after the response timeout the human items are "missed" and the run is red.
        run = api.wait_for_run(MONTHLY, ignored, timeout=240)
        states = api.task_states(MONTHLY, ignored)
        assert run["state"] == "failed" and states["record_audit"] == "success", states
        assert states["security_assessment"] == states["performance_review"] == "failed"
        monthly = [r for r in audit.records("monthly_maintenance") if r["run_id"] == ignored]
        assert [r["item"] for r in monthly] == [i.id for i in CHECKLISTS["monthly_maintenance"].items]
        missed = [r for r in monthly if r["item_kind"] == "human"]
        assert [(r["item"], r["outcome"], r["actor"]) for r in missed] == [
            ("security_assessment", "missed", "automation"), ("performance_review", "missed", "automation")]
        assert all("no answer within 0.004 h" in r["evidence"]["summary"] for r in missed)

        # 3. The DR test's outcome is the drill run's state (whatever the shared vault lets the drill do).
        run = api.wait_for_run(QUARTERLY, quarterly, timeout=300)
        drill = api.get(f"/api/v2/dags/{DRILL}/dagRuns/quarterly_maintenance__{quarterly}")["state"]
        assert run["state"] == "failed" and drill in ("success", "failed")
        records = [r for r in audit.records("quarterly_maintenance") if r["run_id"] == quarterly]
        assert [(r["item"], r["outcome"]) for r in records] == [
            ("disaster_recovery_test", {"success": "passed", "failed": "failed"}[drill]), ("load_testing", "missed"),
            ("architecture_review", "missed"), ("team_training", "missed")]
        assert records[0]["evidence"]["data"]["drill_state"] == drill
        for name in ("weekly_maintenance", "monthly_maintenance", "quarterly_maintenance"):
            report = audit.verify(name)
            assert report.ok, report.problems
