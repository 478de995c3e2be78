"""The human approval of a production DB restore, on a running standalone (dag.test() waits for
ever on a human step): Approve goes on and records who; Reject changes nothing."""

import uuid
from datetime import UTC, datetime

import pytest

from gravitypm_ops.backup import mongo as backup_mongo
from gravitypm_ops.config import parse_config
from gravitypm_ops.verification.verify import verify_backup
from tests.upstream_races import blame_upstream_defer_race, wait_until_defer_exit_drained

DAG = "gravitypm_db_restore"
CHANGES = ("safety_backup", "stop_app", "restore", "start_app", "validate")


@pytest.mark.flaky(reruns=1, only_rerun=["UpstreamDeferRace"])  # Airflow's defer race only (tests/upstream_races.py)
def test_a_production_restore_waits_for_approval_and_records_the_approver(stack, standalone):
    api, client = standalone.api, stack.mongo_client()
    db = client[standalone.database]
    db.items.drop()  # a re-run starts from the same 25 documents
    db.items.insert_many([{"_id": i, "v": i} for i in range(25)])
    cfg = parse_config({**stack.ops_config(), "vault_prefix": standalone.prefix,
                        "mongo_databases": [standalone.database]})
    backup = backup_mongo.run_backup(cfg, standalone.vault, client, dag_id="t", run_id=uuid.uuid4().hex,
                                  run_after=datetime.now(UTC))
    assert verify_backup(standalone.vault, backup, mongo_client=client,
                         production_databases=(standalone.database,))["status"] == "passed"
    api.wait_for_dag(DAG)
    api.unpause(DAG)
    conf = {"source_database": standalone.database, "target_database": standalone.database,
            "confirm": standalone.database, "dry_run": False}  # the form's default is a dry run

    # Reject: nothing changes, no safety backup, the report says so.
    db.items.delete_many({"_id": {"$gte": 5}})
    with blame_upstream_defer_race(api) as runs:
        rejected = api.trigger(DAG, conf)
        runs.append((DAG, rejected))
        prompt = api.wait_for_prompt(DAG, rejected, "approve")
        assert standalone.database in prompt["subject"] and backup["backup_id"] in prompt["body"]
        assert prompt["options"] == ["Approve", "Reject"]
        wait_until_defer_exit_drained(standalone.log, DAG, rejected, "approve")  # as a person: not at once
        api.answer(DAG, rejected, "approve", "Reject")
        run = api.wait_for_run(DAG, rejected)
        assert run["state"] == "success", (api.task_states(DAG, rejected), api.xcom(DAG, rejected, "report"))
        assert db.items.count_documents({}) == 5
        assert [m for m in standalone.vault.list_backups("db") if m.get("purpose") == "safety"] == []
        report = api.xcom(DAG, rejected, "report")
        assert report["outcome"] == "rejected by the approver: nothing changed", report
        states = api.task_states(DAG, rejected)  # no trigger rule lets a step run after a Reject
        assert {t: states[t] for t in CHANGES} == dict.fromkeys(CHANGES, "skipped"), states

        # Approve: restored, and the report names the approver.
        approved = api.trigger(DAG, conf)
        runs.append((DAG, approved))
        api.wait_for_prompt(DAG, approved, "approve")
        wait_until_defer_exit_drained(standalone.log, DAG, approved, "approve")
        api.answer(DAG, approved, "approve", "Approve")
        run = api.wait_for_run(DAG, approved)
        assert run["state"] == "success", api.task_states(DAG, approved)
        assert db.items.count_documents({}) == 25
        report = api.xcom(DAG, approved, "report")
        assert report["outcome"] == "restored"
        states = api.task_states(DAG, approved)
        assert {t: states[t] for t in CHANGES} == dict.fromkeys(CHANGES, "success"), states  # production: app stopped
        assert report["approval"]["decision"] == "Approve" and report["approval"]["by"] == "admin"
        assert report["safety_backup"]
