"""gravitypm_db_restore for real: moto S3, the mongoeco wire server, the dev host as the app,
the Slack receiver, and real DAG runs. Bad input is refused before anything changes."""

import json
import os
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.backup import mongo as backup_mongo
from gravitypm_ops.config import parse_config
from gravitypm_ops.vault import leases
from gravitypm_ops.vault.layout import SAFETY_PURPOSE
from gravitypm_ops.vault.retention import RetentionPolicy, apply_retention, delete_backup
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.verification.verify import verify_backup

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def app_health(stack) -> int:
    try:
        with urllib.request.urlopen(stack.url("host") + "/health", timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code


class Setup:
    """A 'production' database of its own, backed up and verified in a vault prefix of its own."""

    def __init__(self, stack):
        self.stack = stack
        self.client = stack.mongo_client()
        self.db = f"prod_{uuid.uuid4().hex[:8]}"
        self.prefix = f"restore-{uuid.uuid4().hex[:8]}"
        self.vault = Vault(stack.vault_bucket, self.prefix, stack.s3_client(), signer=stack.signer())
        self.overrides = {"vault_prefix": self.prefix, "mongo_databases": [self.db]}
        db = self.client[self.db]
        db.projects.insert_many([{"_id": i, "name": f"project {i}", "tags": ["a", "b"][: i % 3]} for i in range(40)])
        db.projects.create_index("name", unique=True, name="name_unique")
        db.tasks.insert_many([{"_id": i, "project": i % 40, "done": i % 2 == 0} for i in range(60)])
        self.backup = self.take_backup()

    def take_backup(self, run_after=T0) -> dict:
        cfg = parse_config({**self.stack.ops_config(), **self.overrides})
        manifest = backup_mongo.run_backup(cfg, self.vault, self.client, dag_id="t", run_id=uuid.uuid4().hex,
                                        run_after=run_after)
        record = verify_backup(self.vault, manifest, mongo_client=self.client, production_databases=(self.db,))
        assert record["status"] == "passed", record["checks"]
        return manifest

    def damage(self) -> None:
        db = self.client[self.db]
        db.projects.delete_many({"_id": {"$lt": 30}})
        db.tasks.update_many({}, {"$set": {"done": "corrupted"}})

    def counts(self, database=None) -> dict:
        db = self.client[database or self.db]
        return {c: db[c].count_documents({}) for c in sorted(db.list_collection_names())}

    def conf(self, **params) -> dict:
        return {"source_database": self.db, "target_database": self.db, "confirm": self.db,
                "require_approval": False, "dry_run": False, **params}  # the form's default is a dry run

    def safety_backups(self) -> list[dict]:
        return [m for m in self.vault.list_backups("db") if m.get("purpose") == SAFETY_PURPOSE]


@pytest.fixture
def setup(stack):
    s = Setup(stack)
    yield s
    s.client.drop_database(s.db)


def run_restore(run_dag, setup, **params):
    return run_dag("gravitypm_db_restore", setup.overrides, run_conf=setup.conf(**params))


def test_restore_replaces_damaged_data_after_a_safety_backup_and_restarts_the_app(stack, run_dag, setup, slack):
    setup.damage()
    damaged = setup.counts()

    result = run_restore(run_dag, setup)

    assert result.state == "success", result.task_states
    assert result.task_states["approve"] == "skipped"  # require_approval false
    assert setup.counts() == {"projects": 40, "tasks": 60}
    assert setup.client[setup.db].tasks.count_documents({"done": "corrupted"}) == 0
    assert [i["name"] for i in setup.client[setup.db].projects.list_indexes()] == ["_id_", "name_unique"]
    # The safety backup holds the damaged state and is never `latest`.
    [safety] = setup.safety_backups()
    assert safety["content"]["databases"][setup.db]["projects"]["documents"] == damaged["projects"]
    assert safety["safety_for"]["restoring"] == setup.backup["backup_id"]
    assert setup.vault.latest("db")["backup_id"] == setup.backup["backup_id"]
    # The app was stopped and started again, and is healthy.
    assert json.loads(result.xcom("stop_app")["stdout_tail"])["app_running"] is False
    assert json.loads(result.xcom("start_app")["stdout_tail"])["app_running"] is True
    assert app_health(stack) == 200
    report = result.xcom("report")
    assert report["outcome"] == "restored" and report["safety_backup"] == safety["backup_id"]
    assert report["validation"]["counts"]["projects"] == {"manifest": 40, "now": 40}
    [text] = slack.texts()
    assert "restored" in text and setup.backup["backup_id"] in text and safety["backup_id"] in text
    assert leases.active(setup.vault, "db") == []  # released at the end


def test_dry_run_shows_the_plan_and_changes_nothing(run_dag, setup):
    setup.damage()
    before = setup.counts()

    result = run_restore(run_dag, setup, dry_run=True, confirm="")

    assert result.state == "success", result.task_states
    plan = result.xcom("plan")
    assert plan["backup"]["backup_id"] == setup.backup["backup_id"] and plan["backup"]["verified"] is True
    assert plan["production"] is True and plan["collections"] == ["projects", "tasks"]
    assert plan["documents"] == {"projects": 40, "tasks": 60}
    for step in ("approve", "safety_backup", "stop_app", "restore", "start_app", "validate"):
        assert result.task_states[step] == "skipped", step
    assert setup.counts() == before and setup.safety_backups() == []
    assert result.xcom("report")["outcome"] == "dry run: nothing changed"


def test_a_subset_of_collections_into_another_database_needs_no_confirm_and_keeps_the_app_up(stack, run_dag, setup):
    other = f"staging_{uuid.uuid4().hex[:6]}"
    try:
        result = run_restore(run_dag, setup, target_database=other, confirm="", collections=["tasks"])

        assert result.state == "success", result.task_states
        assert setup.counts(other) == {"tasks": 60}
        # Nothing to stop: the host tasks are skipped by control-plane branches, so this restore needs no
        # host agent (DR from the backup site, test_dr_backup_site.py).
        assert result.task_states["needs_stop"] == result.task_states["needs_start"] == "success"
        assert result.task_states["stop_app"] == result.task_states["start_app"] == "skipped"
        assert result.task_states["restore"] == result.task_states["validate"] == "success"
        assert result.task_states["safety_backup"] == "success"
        assert result.xcom("safety_backup") is None  # the target was empty: nothing to keep
    finally:
        setup.client.drop_database(other)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"backup_id": "20260101T000000Z-deadbeef"}, "no committed db backup"),
        ({"confirm": ""}, "is production: type it exactly into `confirm`"),
        ({"confirm": "gravitypm_production"}, "is production: type it exactly"),
        ({"source_database": "not_in_backup"}, "has no database 'not_in_backup'"),
        ({"collections": ["tasks", "nope"]}, "collections not in"),
        # MongoDB refuses names differing only in case: the production database in other letters is
        # production too (type-to-confirm, approval, app stop), not a free target.
        ({"target_database": "UPPER", "confirm": ""}, "is production: type it exactly into `confirm`"),
    ],
)
def test_bad_requests_are_refused_before_anything_changes(stack, run_dag, setup, params, message, capfd):
    setup.damage()
    before = setup.counts()
    params = {k: setup.db.upper() if v == "UPPER" else v for k, v in params.items()}

    result = run_restore(run_dag, setup, **params)

    assert result.state == "failed"
    assert result.task_states["plan"] == "failed"
    assert message in capfd.readouterr().out
    assert setup.counts() == before and setup.safety_backups() == []
    assert result.task_states["stop_app"] == "upstream_failed" and result.task_states["start_app"] == "skipped"
    assert result.xcom("report")["outcome"] == "refused: nothing changed"
    assert app_health(stack) == 200


def test_an_unverified_backup_needs_the_override(run_dag, setup, capfd):
    unverified = backup_mongo.run_backup(
        parse_config({**setup.stack.ops_config(), **setup.overrides}), setup.vault, setup.client,
        dag_id="t", run_id="unverified", run_after=T0 + timedelta(hours=1),
    )

    refused = run_restore(run_dag, setup, backup_id=unverified["backup_id"])
    assert refused.state == "failed" and "was never verified" in capfd.readouterr().out

    allowed = run_restore(run_dag, setup, backup_id=unverified["backup_id"], allow_unverified=True)
    assert allowed.state == "success", allowed.task_states
    assert allowed.xcom("plan")["backup"]["verified"] is False

    now = datetime.now(UTC).isoformat()
    setup.vault.record_verification(unverified, {"kind": "db", "backup_id": unverified["backup_id"],
                                                 "status": "failed", "checks": [], "started": now, "finished": now})
    failed = run_restore(run_dag, setup, backup_id=unverified["backup_id"])
    assert failed.state == "failed" and "FAILED its newest verification" in capfd.readouterr().out


def alter_artifact(stack, setup) -> None:
    key = setup.backup["artifacts"][0]["key"]
    s3 = stack.s3_client()
    data = bytearray(s3.get_object(Bucket=stack.vault_bucket, Key=key)["Body"].read())
    data[-20] ^= 0x01  # the gzip trailer: every document still decodes; only the SHA-256 catches it
    s3.put_object(Bucket=stack.vault_bucket, Key=key, Body=bytes(data))


def test_an_altered_artifact_is_refused_by_the_plan_before_the_safety_backup_and_the_app_stop(
    stack, run_dag, setup, capfd
):
    setup.damage()
    before = setup.counts()
    alter_artifact(stack, setup)

    result = run_restore(run_dag, setup)

    assert result.state == "failed" and result.task_states["plan"] == "failed"
    assert "does not match its manifest" in capfd.readouterr().out
    assert result.task_states["safety_backup"] == "upstream_failed" and setup.safety_backups() == []
    assert result.task_states["stop_app"] == "upstream_failed" and result.task_states["start_app"] == "skipped"
    assert setup.counts() == before and app_health(stack) == 200
    assert result.xcom("report")["outcome"] == "refused: nothing changed"


def test_a_restore_failing_midway_leaves_the_target_as_it_was_restarts_the_app_and_names_the_safety_backup(
    stack, run_dag, setup, slack, monkeypatch
):
    setup.damage()
    before = setup.counts()
    # Altered after the plan checked it (the plan's re-read passes): the restore's own hash check,
    # before the swap, is the last line.
    monkeypatch.setattr(Vault, "check_artifact", lambda self, manifest, name, chunk=1 << 20: 0)
    alter_artifact(stack, setup)

    result = run_restore(run_dag, setup)

    assert result.state == "failed"
    assert result.task_states["restore"] == "failed"
    assert setup.counts() == before  # staged collections dropped, nothing swapped in
    assert not [c for c in setup.client[setup.db].list_collection_names() if c.startswith("__gravitypm")]
    assert result.task_states["start_app"] == "success" and app_health(stack) == 200
    [safety] = setup.safety_backups()
    [text] = [t for t in slack.texts() if "gravitypm_db_restore* (" in t]  # the report; the alert is separate
    assert "FAILED at restore" in text and f"to roll back, restore backup_id `{safety['backup_id']}`" in text


def test_retention_keeps_every_backup_of_a_kind_while_a_restore_holds_it(setup):
    setup.take_backup(run_after=T0 + timedelta(minutes=5))  # newer: `last 1` would remove setup.backup
    policy = RetentionPolicy.from_dict({"last": 1})
    leases.hold(setup.vault, "db", "gravitypm_db_restore/manual__1")

    held = apply_retention(setup.vault, "db", policy, datetime.now(UTC))

    assert held["removed"] == []
    assert {"backup_id": setup.backup["backup_id"],
            "reasons": ["kept: in use by gravitypm_db_restore/manual__1"]} in held["kept"]
    leases.release(setup.vault, "db", "gravitypm_db_restore/manual__1")
    assert apply_retention(setup.vault, "db", policy, datetime.now(UTC))["removed"] == [setup.backup["backup_id"]]


def test_restore_from_the_offsite_copy_when_the_primary_lost_the_backup(stack, run_dag, setup, monkeypatch):
    from gravitypm_ops.offsite.copy import Copier
    from tests.backups import new_bucket

    s3 = stack.s3_client()
    offsite = Vault(new_bucket(s3), "dr", s3, signer=stack.signer())
    Copier(setup.vault, offsite, server_side=True).sync("db", RetentionPolicy(last=10), datetime.now(UTC))
    delete_backup(setup.vault, setup.backup)  # the primary region lost it
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS_OFFSITE", os.environ["AIRFLOW_CONN_GRAVITYPM_AWS"])
    setup.overrides.update(offsite_bucket=offsite.bucket, offsite_prefix="dr")
    setup.damage()

    result = run_restore(run_dag, setup, source="offsite")

    assert result.state == "success", result.task_states
    assert result.xcom("plan")["source"] == "offsite"
    assert setup.counts() == {"projects": 40, "tasks": 60}
    assert [m["backup_id"] for m in setup.safety_backups()]  # the safety backup goes to the primary
    assert leases.active(offsite, "db") == []


def test_retention_after_a_restore_keeps_the_backup_latest_points_to(setup):
    from gravitypm_ops.restore.apply import safety_backup

    cfg = parse_config({**setup.stack.ops_config(), **setup.overrides})
    plan = {"target_database": setup.db, "backup": {"backup_id": setup.backup["backup_id"]}}
    safety = safety_backup(cfg, setup.vault, setup.client, plan, dag_id="gravitypm_db_restore", run_id="r1",
                           run_after=T0 + timedelta(minutes=10))
    verify_backup(setup.vault, safety, mongo_client=setup.client, production_databases=(setup.db,))
    assert setup.vault.latest("db")["backup_id"] == setup.backup["backup_id"]

    report = apply_retention(setup.vault, "db", RetentionPolicy.from_dict({"daily": 1}), datetime.now(UTC))

    kept = {k["backup_id"]: k["reasons"] for k in report["kept"]}
    assert "newest verified" in kept[setup.backup["backup_id"]] and report["removed"] == []
    assert any(r.startswith("safety backup until") for r in kept[safety["backup_id"]])
