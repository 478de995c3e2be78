"""DR drill against real servers: real backups restored into isolated targets by real DAG runs."""

import json
import os
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.backup import files as backup_files
from gravitypm_ops.backup import mongo as backup_mongo
from gravitypm_ops.checklists.audit import AuditLog
from gravitypm_ops.config import parse_config
from gravitypm_ops.drill import drill as drill_drill
from gravitypm_ops.vault import leases
from gravitypm_ops.vault.retention import delete_backup
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.verification.verify import verify_backup

DAG_ID = "gravitypm_dr_drill"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def prefix():
    return f"drill-{uuid.uuid4().hex[:8]}"


def make_backups(stack, prefix: str, database: str, kinds=("db", "fs", "config"), run_after=T0, verify=True):
    """Backups made by the backup engines themselves, verified like the verification DAG does."""
    vault = Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())
    cfg = parse_config({"mongo_databases": [database], "app_root": str(stack.app_root),
                        "vault_bucket": stack.vault_bucket, "vault_prefix": prefix})
    run_id = uuid.uuid4().hex
    made = {}
    for kind in kinds:
        if kind == "db":
            made[kind] = backup_mongo.run_backup(cfg, vault, stack.mongo_client(), dag_id="t", run_id=run_id,
                                              run_after=run_after)
        else:
            made[kind] = backup_files.run_backup(kind, cfg, vault, dag_id="t", run_id=run_id, run_after=run_after)
        if verify:
            record = verify_backup(vault, made[kind], mongo_client=stack.mongo_client(),
                                   production_databases=(database,))
            assert record["status"] == "passed", record["checks"]
    return vault, made


def overrides(prefix, database):
    return {"vault_prefix": prefix, "mongo_databases": [database]}


def vault_keys(stack, prefix: str, under: str) -> list[str]:
    listing = stack.s3_client().list_objects_v2(Bucket=stack.vault_bucket, Prefix=f"{prefix}/{under}")
    return [o["Key"] for o in listing.get("Contents", [])]


def read_json(stack, key: str) -> dict:
    return json.loads(stack.s3_client().get_object(Bucket=stack.vault_bucket, Key=key)["Body"].read())


def databases(stack) -> list[str]:
    return stack.mongo_client().list_database_names()


# --- full drills ------------------------------------------------------------------------------
def test_a_full_drill_restores_validates_reports_and_cleans_up(run_dag, stack, slack, prefix, small_db, tmp_path):
    vault, made = make_backups(stack, prefix, small_db)
    scratch_dir = tmp_path / "dr"
    scratch_dir.mkdir()

    result = run_dag(DAG_ID, overrides(prefix, small_db), run_conf={"scratch_dir": str(scratch_dir)})

    assert result.state == "success", result.task_states
    assert result.task_states["fail_run_if_any_check_failed"] == "skipped"
    report = result.xcom("write_report")
    assert report["verdict"] == "passed" and report["failures"] == []
    for kind in ("db", "fs", "config"):
        component = report["components"][kind]
        assert component["backup_id"] == made[kind]["backup_id"]
        assert component["restore"] == "passed" and component["rto_ok"] and component["rpo_ok"]
        assert 0 <= component["rpo_hours"] < 0.1  # committed moments before the drill (0.0 once rounded)
        assert component["rpo_target_hours"] == {"db": 7.0, "fs": 26.0, "config": 26.0}[kind]
        assert component["rto_minutes"] is not None and component["started"] < component["restore_finished"]
    assert "trial restore of 30 documents" in report["components"]["db"]["detail"]
    assert f"{made['fs']['content']['files']} files restored with matching sha256" in report["components"]["fs"]["detail"]
    assert report["total"]["rto_minutes"] >= max(c["rto_minutes"] for c in report["components"].values())
    # The report is in the vault, JSON and Markdown, under drills/<drill id>/.
    keys = sorted(vault_keys(stack, prefix, "drills/"))
    assert keys == [f"{prefix}/drills/{report['drill_id']}/report.json", f"{prefix}/drills/{report['drill_id']}/report.md"]
    stored = read_json(stack, keys[0])
    assert stored["verdict"] == "passed" and stored["components"]["config"]["backup_id"] == made["config"]["backup_id"]
    markdown = stack.s3_client().get_object(Bucket=stack.vault_bucket, Key=keys[1])["Body"].read().decode()
    assert "PASSED" in markdown and made["db"]["backup_id"] in markdown and "| fs |" in markdown
    head = stack.s3_client().head_object(Bucket=stack.vault_bucket, Key=keys[0])
    assert head.get("ServerSideEncryption") == "AES256"
    # Slack: one summary with verdict, RTO / RPO per component and the backup ids.
    summary = next(t for t in slack.texts() if "] DR drill `" in t)
    assert "PASSED" in summary and all(made[k]["backup_id"] in summary for k in made)
    assert f"RPO {report['components']['db']['rpo_hours']:.3g} h (target 7 h)" in summary
    # Audit history: one record for this run, chained and intact.
    audit = AuditLog(vault)
    records = [r for r in audit.records("dr_drill") if r["run_id"] == report["run_id"]]
    assert len(records) == 1 and records[0]["outcome"] == "passed" and records[0]["item_kind"] == "automated"
    assert records[0]["evidence"]["data"]["components"]["db"]["backup_id"] == made["db"]["backup_id"]
    assert audit.verify("dr_drill").ok
    # The lease was held during each restore and is gone afterwards.
    holder = f"{DAG_ID}/{report['run_id']}"
    assert all(result.xcom(f"drill_{k}", key="result")["lease"] == holder for k in made)
    assert all(leases.active(vault, k) == [] for k in made)
    # cleanup: nothing left in the scratch database or directory.
    assert "gravitypm_scratch_drill" not in databases(stack)
    assert os.listdir(scratch_dir) == []


def test_cleanup_false_keeps_the_restores_where_the_report_says(run_dag, stack, prefix, small_db, tmp_path):
    make_backups(stack, prefix, small_db)
    scratch_db = "gravitypm_scratch_kept_" + uuid.uuid4().hex[:6]
    scratch_dir = tmp_path / "kept"
    try:
        result = run_dag(DAG_ID, overrides(prefix, small_db), run_conf={
            "cleanup": False, "scratch_database": scratch_db, "scratch_dir": str(scratch_dir)})

        assert result.state == "success", result.task_states
        report = result.xcom("write_report")
        assert report["components"]["db"]["target"] == [scratch_db] and report["components"]["db"]["kept"]
        assert stack.mongo_client()[scratch_db].items.count_documents({}) == 30
        fs_dir = scratch_dir / report["drill_id"] / "fs"
        assert report["components"]["fs"]["target"] == str(fs_dir) and report["components"]["fs"]["kept"]
        assert (fs_dir / "uploads" / "avatars" / "u001.png").read_bytes() == \
            (stack.app_root / "uploads" / "avatars" / "u001.png").read_bytes()
        assert (scratch_dir / report["drill_id"] / "config" / ".env").exists()
        markdown = stack.s3_client().get_object(
            Bucket=stack.vault_bucket, Key=report["report"]["md"])["Body"].read().decode()
        assert "Kept restores" in markdown and str(fs_dir) in markdown
    finally:
        stack.mongo_client().drop_database(scratch_db)


def test_as_of_picks_the_latest_backup_at_or_before_it(run_dag, stack, prefix, small_db):
    _, older = make_backups(stack, prefix, small_db, kinds=("db",), run_after=T0 - timedelta(hours=5))
    _, newer = make_backups(stack, prefix, small_db, kinds=("db",), run_after=T0)
    older_finished = datetime.fromisoformat(older["db"]["finished"])
    # Both finished moments ago; as_of between them picks the older (finish times are ordered).
    as_of = older_finished + (datetime.fromisoformat(newer["db"]["finished"]) - older_finished) / 2

    result = run_dag(DAG_ID, overrides(prefix, small_db), run_conf={"components": ["db"], "as_of": as_of.isoformat()})

    assert result.state == "success", result.task_states
    report = result.xcom("write_report")
    assert list(report["components"]) == ["db"]
    assert report["components"]["db"]["backup_id"] == older["db"]["backup_id"] != newer["db"]["backup_id"]
    assert report["rpo_reference"] == as_of.isoformat()  # RPO of a replayed moment is measured at that moment
    assert result.task_states["drill_fs"] == result.task_states["drill_config"] == "skipped"


def test_a_missed_rpo_target_fails_the_run_and_says_so(run_dag, stack, slack, prefix, small_db):
    make_backups(stack, prefix, small_db, kinds=("db", "config"))
    time.sleep(1)  # the backups are now older than the target of 0.36 s

    result = run_dag(DAG_ID, overrides(prefix, small_db),
                     run_conf={"components": ["db", "config"], "rpo_target_hours": 0.0001})

    assert result.state == "failed"
    assert result.task_states["drill_db"] == result.task_states["drill_config"] == "success"  # restores were fine
    assert result.task_states["judge_drill"] == "failed"
    report = result.xcom("write_report")
    assert report["verdict"] == "failed"
    assert any(re.match(r"db: RPO [0-9.e-]+ h > target 0.0001 h", f) for f in report["failures"]), report["failures"]
    assert any(f.startswith("config: RPO") for f in report["failures"])
    assert read_json(stack, report["report"]["json"])["verdict"] == "failed"
    summary = next(t for t in slack.texts() if "] DR drill `" in t)
    assert "FAILED" in summary and "RPO" in summary
    assert AuditLog(Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())).records("dr_drill")[-1]["outcome"] == "failed"


def test_a_damaged_backup_fails_its_component_and_the_run_and_leases_are_released(run_dag, stack, prefix, small_db):
    vault, made = make_backups(stack, prefix, small_db, kinds=("fs",))
    archive = next(a for a in made["fs"]["artifacts"] if a["name"].startswith("files."))
    s3 = stack.s3_client()
    data = bytearray(s3.get_object(Bucket=stack.vault_bucket, Key=archive["key"])["Body"].read())
    data[len(data) // 2] ^= 0x01
    s3.put_object(Bucket=stack.vault_bucket, Key=archive["key"], Body=bytes(data))

    result = run_dag(DAG_ID, overrides(prefix, small_db), run_conf={"components": ["fs"]})

    assert result.state == "failed"
    assert result.task_states["drill_fs"] == "failed" and result.task_states["release_leases"] == "success"
    report = result.xcom("write_report")
    assert report["components"]["fs"]["restore"] == "failed" and archive["name"] in report["components"]["fs"]["detail"]
    assert report["failures"][0].startswith("fs: restore failed")
    assert leases.active(vault, "fs") == []


def test_a_component_failing_before_extraction_still_cleans_up_its_directory(stack, prefix, small_db, tmp_path):
    vault, made = make_backups(stack, prefix, small_db, kinds=("fs",), verify=False)
    index = next(a for a in made["fs"]["artifacts"] if a["name"] == made["fs"]["tools"]["index"])
    stack.s3_client().delete_object(Bucket=stack.vault_bucket, Key=index["key"])  # fails before extraction
    cfg = parse_config({"app_root": str(stack.app_root)})
    scratch = tmp_path / "scratch"
    plan = {"backups": {"fs": {"backup_id": made["fs"]["backup_id"]}}, "cleanup": True,
            "scratch_dir": str(scratch), "drill_id": "d1"}

    result = drill_drill.restore_component("fs", plan, cfg, vault)

    assert result["status"] == "failed" and result["target"] == str(scratch / "d1" / "fs")
    assert not (scratch / "d1").exists()


def _offsite_drill_setup(stack, prefix, small_db, monkeypatch):
    """db and config backups copied off-site, then deleted from the primary: only the copy can serve."""
    from gravitypm_ops.offsite.copy import Copier
    from gravitypm_ops.vault.retention import RetentionPolicy

    primary, made = make_backups(stack, prefix, small_db, kinds=("db", "config"))
    s3 = stack.s3_client()
    bucket = f"gpm-drill-offsite-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    offsite = Vault(bucket, prefix + "-dr", s3, signer=stack.signer())
    for kind in made:
        assert Copier(primary, offsite, server_side=True).sync(kind, RetentionPolicy(), datetime.now(UTC))["failed"] == []
        delete_backup(primary, made[kind])  # the primary lost them: only the copy can serve the drill
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS_OFFSITE", json.dumps(stack.connections()["gravitypm_aws"]))
    config = {**overrides(prefix, small_db), "offsite_bucket": bucket, "offsite_prefix": prefix + "-dr"}
    return offsite, made, config


def _offsite_report_keys(stack, offsite) -> list[str]:
    listing = stack.s3_client().list_objects_v2(Bucket=offsite.bucket, Prefix=f"{offsite.prefix}/drills/")
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_a_drill_from_the_offsite_copy_reads_only_the_offsite_vault(run_dag, stack, prefix, small_db, monkeypatch):
    offsite, made, config = _offsite_drill_setup(stack, prefix, small_db, monkeypatch)

    result = run_dag(DAG_ID, config, run_conf={"components": ["db", "config"], "source": "offsite"})

    assert result.state == "success", result.task_states
    report = result.xcom("write_report")
    assert report["source"] == "offsite"
    assert {k: c["backup_id"] for k, c in report["components"].items()} == {k: m["backup_id"] for k, m in made.items()}
    assert leases.active(offsite, "db") == leases.active(offsite, "config") == []
    # The evidence lands in the vault the drill restored from (the one left in a disaster) ...
    base = f"{offsite.prefix}/drills/{report['drill_id']}/"
    assert report["report"] == {"json": base + "report.json", "md": base + "report.md"}
    assert report["bucket"] == offsite.bucket
    assert _offsite_report_keys(stack, offsite) == [base + "report.json", base + "report.md"]
    stored = json.loads(offsite.read_bytes(base + "report.json"))
    assert stored["drill_id"] == report["drill_id"] and stored["source"] == "offsite"
    # ... and in the primary too, since it is reachable here.
    assert vault_keys(stack, prefix, "drills/") == [f"{prefix}/drills/{report['drill_id']}/report.json",
                                                      f"{prefix}/drills/{report['drill_id']}/report.md"]
    assert report["copies"]["primary"]["keys"]["json"] == f"{prefix}/drills/{report['drill_id']}/report.json"
    assert report["copies"]["offsite"] == {"bucket": offsite.bucket, "keys": report["report"]}


def test_a_drill_from_the_offsite_copy_still_reports_when_the_primary_is_unreachable(
        run_dag, stack, slack, prefix, small_db, monkeypatch):
    from dev.stack import free_port

    offsite, _, config = _offsite_drill_setup(stack, prefix, small_db, monkeypatch)
    dead = stack.connections()["gravitypm_aws"]  # the primary's connection: its region is gone
    dead["extra"] = {**dead["extra"], "endpoint_url": f"http://127.0.0.1:{free_port()}",
                     "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS", json.dumps(dead))

    result = run_dag(DAG_ID, config, run_conf={"components": ["db", "config"], "source": "offsite"})

    states = result.task_states
    assert states["write_report"] == states["drill_db"] == states["drill_config"] == "success", states
    assert states["post_summary"] == states["judge_drill"] == "success", states
    report = result.xcom("write_report")
    assert report["verdict"] == "passed" and report["bucket"] == offsite.bucket
    assert _offsite_report_keys(stack, offsite) == sorted(report["report"].values())
    assert report["copies"]["primary"]["keys"] is None
    assert "primary vault unreachable" in report["copies"]["primary"]["error"]
    assert vault_keys(stack, prefix, "drills/") == []
    summary = next(t for t in slack.texts() if "DR drill" in t and report["drill_id"] in t)
    assert report["report"]["json"] in summary
    # The audit chain lives in the primary: that step fails, saying why (a rerun records it later).
    assert states["record_audit"] == "failed" and result.state == "failed"


# --- refusals: a clear reason, nothing written ------------------------------------------------
@pytest.mark.parametrize(
    "case", ["production_db", "unprefixed_db", "dir_in_app_root", "as_of_before_backups", "offsite_not_configured"]
)
def test_unsafe_or_impossible_drills_are_refused_and_write_nothing(run_dag, stack, slack, prefix, small_db, case):
    vault, made = make_backups(stack, prefix, small_db, kinds=("db", "config"), verify=False)
    conf, expected = {
        "production_db": ({"scratch_database": small_db}, f"scratch_database {small_db!r} is a production database"),
        "unprefixed_db": ({"scratch_database": "other_scratch"}, "must start with scratch_database_prefix"),
        "dir_in_app_root": ({"scratch_dir": str(stack.app_root / "uploads" / "drill")}, "inside the production tree"),
        "as_of_before_backups": ({"as_of": (T0 - timedelta(days=30)).isoformat()}, "no committed db backup as of"),
        "offsite_not_configured": ({"source": "offsite"}, "off-site vault is not configured"),
    }[case]
    before_dbs = set(databases(stack))

    result = run_dag(DAG_ID, overrides(prefix, small_db), run_conf=conf)

    assert result.state == "failed"
    assert result.task_states["plan_drill"] == "failed"
    assert result.task_states["hold_leases"] == "upstream_failed"
    assert {result.task_states[f"drill_{k}"] for k in ("db", "fs", "config")} == {"upstream_failed"}
    assert result.task_states["write_report"] == "skipped"
    alert = next(t for t in slack.texts() if "plan_drill" in t)
    assert "DR drill refused, nothing written" in alert and expected in alert
    assert vault_keys(stack, prefix, "drills/") == [] and vault_keys(stack, prefix, "leases/") == []
    assert vault_keys(stack, prefix, "audit/") == []
    assert set(databases(stack)) == before_dbs
    assert not (stack.app_root / "uploads" / "drill").exists()


def test_an_unknown_component_is_refused_at_trigger_time_and_by_the_plan(run_dag, stack, slack, prefix, small_db):
    from airflow.sdk.definitions.param import ParamValidationError

    from gravitypm_ops.config import OpsConfig

    with pytest.raises(ParamValidationError, match="components"):
        run_dag(DAG_ID, overrides(prefix, small_db), run_conf={"components": ["db", "logs"]})
    assert slack.texts() == [] and vault_keys(stack, prefix, "") == []  # no run, nothing written
    # The plan refuses it too (a trigger that skips the form), before reading or writing anything.
    with pytest.raises(drill_drill.DrillRefused, match=r"unknown component\(s\) 'logs'; expected db, fs, config"):
        drill_drill.plan_drill({"components": ["db", "logs"]}, OpsConfig(), None, dag_id="d", run_id="r", now=T0)




