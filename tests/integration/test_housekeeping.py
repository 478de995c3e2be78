"""gravitypm_airflow_housekeeping for real: dag.test() runs whose clean-up acts on a real Airflow metadata DB
through the real `airflow db clean`, and on a real log folder.

The session's metadata DB is shared by every test, so the destructive runs act on a copy of it (SQLite's
backup API): the run itself is recorded in the session DB as usual, while its subprocesses get
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN pointing at the copy, exactly as they get the control plane's URL in
production. Old rows are made through Airflow's own models (runs of this DAG, dated 200 days back).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

HK = "gravitypm_airflow_housekeeping"
CONN = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
LOG_FOLDER = "AIRFLOW__LOGGING__BASE_LOG_FOLDER"


@pytest.fixture
def ops():
    return {"vault_prefix": f"housekeeping-{uuid.uuid4().hex[:8]}"}


def copy_metadata_db(dest: Path) -> str:
    source = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(dest)) as dst:
        src.backup(dst)
    return f"sqlite:///{dest}"


@contextmanager
def models_session(url: str):
    """An ORM session of Airflow's own models on the copy."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(url)
    try:
        with Session(engine) as session:
            yield session
            session.commit()
    finally:
        engine.dispose()


def age_run(url: str, run_id: str, days: int) -> None:
    """Date a run, its task instances, XComs and audit-log rows `days` back; add an old and a recent
    `log` row of our own."""
    from airflow.models.dagrun import DagRun
    from airflow.models.log import Log
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import update

    old = datetime.now(UTC) - timedelta(days=days)
    with models_session(url) as session:
        session.execute(update(DagRun).where(DagRun.dag_id == HK, DagRun.run_id == run_id)
                        .values(start_date=old, end_date=old, queued_at=old))
        session.execute(update(TaskInstance).where(TaskInstance.dag_id == HK, TaskInstance.run_id == run_id)
                        .values(start_date=old, end_date=old))
        session.execute(update(XComModel).where(XComModel.dag_id == HK, XComModel.run_id == run_id)
                        .values(timestamp=old))
        session.execute(update(Log).where(Log.dag_id == HK, Log.run_id == run_id).values(dttm=old))
        stale, fresh = Log(event="housekeeping-test-old", dag_id=HK), Log(event="housekeeping-test-recent", dag_id=HK)
        stale.dttm = old
        session.add_all([stale, fresh])


def set_run_state(url: str, run_id: str, state: str) -> None:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import update

    with models_session(url) as session:
        session.execute(update(DagRun).where(DagRun.dag_id == HK, DagRun.run_id == run_id).values(state=state))


def rows_of(url: str, run_id: str) -> dict:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import func, select

    with models_session(url) as session:
        def count(model, **where):
            return session.scalar(select(func.count()).select_from(model).filter_by(**where))

        return {"dag_run": count(DagRun, dag_id=HK, run_id=run_id),
                "task_instance": count(TaskInstance, dag_id=HK, run_id=run_id),
                "xcom": count(XComModel, dag_id=HK, run_id=run_id)}


def table_counts(url: str) -> dict:
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in names}


def log_events(url: str) -> set[str]:
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
        return {r[0] for r in db.execute("SELECT event FROM log WHERE event LIKE 'housekeeping-test-%'")}


def newest_log_event(url: str) -> str:
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
        return db.execute("SELECT event FROM log ORDER BY id DESC LIMIT 1").fetchone()[0]


def seed_log_folder(root: Path) -> dict[str, Path]:
    def write(relative: str, days: int) -> Path:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"a task log {days} days old\n" * 100)
        moment = (datetime.now(UTC) - timedelta(days=days)).timestamp()
        os.utime(path, (moment, moment))
        return path

    return {
        "old": write("dag_id=gravitypm_db_backup/run_id=scheduled__old/task_id=dump_to_vault/attempt=1.log", 45),
        "recent": write("dag_id=gravitypm_db_backup/run_id=scheduled__new/task_id=dump_to_vault/attempt=1.log", 3),
        "not_a_task_log": write("scheduler/2026-01-01/scheduler.log", 300),
    }


def housekeeping_records(stack, prefix: str) -> list[dict]:
    from gravitypm_ops.checklists.audit import AuditLog
    from gravitypm_ops.housekeeping.report import AUDIT_CHECKLIST
    from gravitypm_ops.vault.store import Vault

    return AuditLog(Vault(stack.vault_bucket, prefix, stack.s3_client())).records(AUDIT_CHECKLIST)


def test_old_rows_and_logs_go_recent_ones_stay_and_a_dry_run_changes_nothing(run_dag, slack, stack, ops, tmp_path,
                                                                             monkeypatch):
    # Two real runs (dry runs on the session DB: nothing to clean there) give real rows to age.
    first = run_dag(HK, ops, run_conf={"dry_run": True})
    second = run_dag(HK, ops, run_conf={"dry_run": True})
    assert first.state == second.state == "success", (first.task_states, second.task_states)
    assert "dry run: nothing changed" in slack.texts()[-1]
    old_run, recent_run = first.dag_run.run_id, second.dag_run.run_id

    url = copy_metadata_db(tmp_path / "metadata.db")
    age_run(url, old_run, days=200)
    files = seed_log_folder(tmp_path / "logs")
    monkeypatch.setenv(CONN, url)
    monkeypatch.setenv(LOG_FOLDER, str(tmp_path / "logs"))
    old_rows, recent_rows, counts = rows_of(url, old_run), rows_of(url, recent_run), table_counts(url)
    assert old_rows["dag_run"] == 1 and old_rows["task_instance"] >= 3 and old_rows["xcom"] >= 1

    # A dry run: reports what would go, changes nothing.
    dry = run_dag(HK, ops, run_conf={"dry_run": True})
    assert dry.state == "success", dry.task_states
    meta = dry.xcom("clean_metadata", "report")
    assert meta["removed"]["dag_run"] >= 1 and meta["removed"]["log"] >= 1
    # The one row it adds is Airflow's own action log of the CLI call (every `airflow` command writes one).
    assert meta["after"]["rows"] == {**meta["before"]["rows"], "log": meta["before"]["rows"]["log"] + 1}
    assert table_counts(url) == {**counts, "log": counts["log"] + 1} and newest_log_event(url) == "cli_cleanup_tables"
    assert rows_of(url, old_run) == old_rows
    assert all(path.exists() for path in files.values())
    assert dry.xcom("clean_task_logs", "report")["local"]["files"] == 1

    # The real run.
    slack.clear()
    real = run_dag(HK, ops)
    assert real.state == "success", real.task_states
    assert rows_of(url, old_run) == {"dag_run": 0, "task_instance": 0, "xcom": 0}
    assert rows_of(url, recent_run) == recent_rows
    assert log_events(url) == {"housekeeping-test-recent"}
    assert table_counts(url)["dag"] == counts["dag"]  # DAG definitions are not history
    assert not files["old"].exists() and files["recent"].exists() and files["not_a_task_log"].exists()
    assert not files["old"].parent.exists()  # its emptied directories went too

    meta = real.xcom("clean_metadata", "report")
    assert meta["keep_days"] == 90 and meta["error"] is None
    assert meta["after"]["rows"]["dag_run"] == meta["before"]["rows"]["dag_run"] - 1
    assert meta["after"]["rows"]["task_instance"] <= meta["before"]["rows"]["task_instance"] - old_rows["task_instance"]
    assert meta["before"]["db_bytes"] > 0 and meta["after"]["db_bytes"] > 0
    assert meta["before"]["oldest_dag_run"] < meta["after"]["oldest_dag_run"]
    logs = real.xcom("clean_task_logs", "report")["local"]
    assert logs["files"] == 1 and logs["after_bytes"] == logs["before_bytes"] - logs["bytes"] > 0

    summary = slack.texts()[-1]
    assert summary.startswith("*Airflow housekeeping* (") and ": passed" in summary.splitlines()[0]
    assert "removed 1 file(s)" in summary and "DB size" in summary and "log folder" in summary

    records = housekeeping_records(stack, ops["vault_prefix"])
    assert [r["run_id"] for r in records] == [old_run, recent_run, dry.dag_run.run_id, real.dag_run.run_id]
    data = records[-1]["evidence"]["data"]
    assert data["dry_run"] is False and records[-2]["evidence"]["data"]["dry_run"] is True
    assert data["metadata"]["rows"]["before"]["dag_run"] - data["metadata"]["rows"]["after"]["dag_run"] == 1
    assert data["metadata"]["db_bytes"]["before"] > 0
    assert data["task_logs"]["folder_bytes"]["before"] > data["task_logs"]["folder_bytes"]["after"]


def test_a_table_that_fails_to_clean_fails_the_run_naming_it(run_dag, slack, stack, ops, tmp_path, monkeypatch):
    url = copy_metadata_db(tmp_path / "metadata.db")
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:  # schema drift: the clean's query fails
        db.execute("ALTER TABLE log RENAME COLUMN dttm TO dttm_moved")
        db.commit()
    monkeypatch.setenv(CONN, url)
    monkeypatch.setenv(LOG_FOLDER, str(tmp_path / "logs"))
    result = run_dag(HK, ops)
    assert result.state == "failed"
    assert result.task_states["clean_metadata"] == "failed"
    assert result.task_states["clean_task_logs"] == result.task_states["report"] == "success"
    error = result.xcom("clean_metadata", "report")["error"]
    assert "airflow db clean failed on table(s) log" in error
    summary = next(t for t in slack.texts() if t.startswith("*Airflow housekeeping*"))
    assert ": failed" in summary.splitlines()[0] and "failed on table(s) log" in summary
    assert housekeeping_records(stack, ops["vault_prefix"])[-1]["outcome"] == "failed"


def test_keep_days_0_spares_running_runs_and_the_vault_history(run_dag, stack, ops, tmp_path, monkeypatch):
    from gravitypm_ops.checklists.audit import AuditLog
    from gravitypm_ops.housekeeping.report import AUDIT_CHECKLIST
    from gravitypm_ops.vault.store import Vault

    finished = run_dag(HK, ops, run_conf={"dry_run": True})
    running = run_dag(HK, ops, run_conf={"dry_run": True})
    audit = AuditLog(Vault(stack.vault_bucket, ops["vault_prefix"], stack.s3_client()))
    history = audit.records(AUDIT_CHECKLIST)
    assert len(history) == 2

    url = copy_metadata_db(tmp_path / "metadata.db")
    set_run_state(url, running.dag_run.run_id, "running")  # still going, as far as the copy knows
    kept_rows, counts = rows_of(url, running.dag_run.run_id), table_counts(url)
    monkeypatch.setenv(CONN, url)
    monkeypatch.setenv(LOG_FOLDER, str(tmp_path / "logs"))
    result = run_dag(HK, ops, run_conf={"keep_days": 0})
    assert result.state == "success", result.task_states
    meta = result.xcom("clean_metadata", "report")
    active_start = datetime.fromisoformat(meta["before"]["oldest_active_dag_run"])
    assert meta["keep_days"] == 0 and datetime.fromisoformat(meta["cutoff"]) == active_start - timedelta(seconds=1)
    assert rows_of(url, finished.dag_run.run_id)["dag_run"] == 0
    assert rows_of(url, running.dag_run.run_id) == kept_rows
    assert table_counts(url)["dag"] == counts["dag"]

    # The history lives in the vault: untouched by the clean, chain intact, one more record.
    after = audit.records(AUDIT_CHECKLIST)
    assert after[:2] == history and len(after) == 3
    assert audit.verify(AUDIT_CHECKLIST).ok

    # The monthly compliance audit verifies this chain too, and expects no periods of it (not a catalogue
    # checklist): no gap is reported for it.
    from gravitypm_ops.checklists.evidence.compliance import compliance
    from gravitypm_ops.config import parse_config

    evidence = compliance(parse_config({**stack.ops_config(), **ops}), {}, datetime.now(UTC))
    assert evidence.data["chains"][AUDIT_CHECKLIST]["ok"] is True
    assert AUDIT_CHECKLIST not in evidence.data["gaps"]
    assert f"{AUDIT_CHECKLIST}: chain of 3 record(s) verifies" in evidence.summary


def test_remote_logs_in_s3_need_a_lifecycle_rule(stack, monkeypatch):
    from gravitypm_ops.housekeeping.tasks import remote_logs_check

    s3, bucket = stack.s3_client(), f"airflow-logs-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "True")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", f"s3://{bucket}/airflow/logs")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "gravitypm_aws")
    missing = remote_logs_check(30)
    assert missing["ok"] is False and "no enabled lifecycle rule expires objects under airflow/logs/" in missing["detail"]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "expire-task-logs", "Status": "Enabled", "Filter": {"Prefix": "airflow/logs/"},
         "Expiration": {"Days": 30}}]})
    assert remote_logs_check(30) == {"folder": f"s3://{bucket}/airflow/logs", "ok": True, "days": 30,
                                     "detail": "lifecycle rule expires remote task logs after 30 days"}
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "False")
    assert remote_logs_check(30) is None


def test_metrics_show_the_metadata_db_size_and_the_oldest_dag_run(run_dag, stack, ops, monkeypatch):
    import json

    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    from gravitypm_ops.housekeeping.metadb import api_server_figures
    from tests.console_pages import parse_exposition

    run = run_dag(HK, ops, run_conf={"dry_run": True})  # at least one dag_run in the session DB
    figures = api_server_figures()  # in-process, as in the API server
    assert figures["db_bytes"] > 0
    assert datetime.fromisoformat(figures["oldest_dag_run"]) <= run.dag_run.start_date

    # Through Airflow's API server app and the plugin, as Prometheus scrapes it.
    scrape = "scrape-" + uuid.uuid4().hex
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_METRICS", json.dumps({"conn_type": "generic", "password": scrape}))
    monkeypatch.setenv("AIRFLOW_VAR_GRAVITYPM_OPS", json.dumps({**stack.ops_config(), **ops}))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", uuid.uuid4().hex * 2)
    with TestClient(create_app("core"), base_url="http://airflow.test:8080") as api:
        answer = api.get("/gravitypm/metrics", headers={"Authorization": f"Bearer {scrape}"})
    assert answer.status_code == 200, answer.text
    m = parse_exposition(answer.text)
    assert m[("gravitypm_vault_up", ())] == 1 and m[("gravitypm_airflow_metadb_up", ())] == 1
    assert m[("gravitypm_airflow_metadb_size_bytes", ())] > 0
    oldest_age = (datetime.now(UTC) - datetime.fromisoformat(figures["oldest_dag_run"])).total_seconds()
    assert abs(m[("gravitypm_airflow_oldest_dag_run_age_seconds", ())] - oldest_age) < 120


def test_under_a_real_scheduler_the_task_reaches_the_metadata_db(standalone):
    # LocalExecutor task processes run with the ORM blocked (the database URL replaced in their
    # environment): the clean and the figures still reach the DB the scheduler uses.
    api = standalone.api
    api.wait_for_dag(HK)
    api.unpause(HK)
    run_id = api.trigger(HK, {"dry_run": False})
    run = api.wait_for_run(HK, run_id, timeout=300)
    assert run["state"] == "success", api.task_states(HK, run_id)
    meta = api.xcom(HK, run_id, "clean_metadata", "report")
    assert meta["error"] is None and meta["before"]["backend"] == "sqlite" and meta["before"]["db_bytes"] > 0
    assert meta["before"]["rows"]["dag_run"] >= 1 and meta["before"]["oldest_active_dag_run"]  # this very run
    assert "dag_run" in meta["removed"]  # the clean ran over the tables (nothing is 90 days old here)


def test_a_url_given_in_the_environment_survives_airflows_orm_block(airflow_db, tmp_path):
    # The compose file sets AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: in a task process Airflow's own
    # block_orm_access() overwrites it; the subprocess still gets the URL the process started with.
    import json
    import subprocess
    import sys

    url = copy_metadata_db(tmp_path / "metadata.db")
    script = (
        "import json, os\n"
        "import airflow.settings\n"
        "from airflow.sdk.execution_time.supervisor import block_orm_access\n"
        "block_orm_access()\n"
        "from gravitypm_ops.housekeeping import metadb\n"
        f"assert os.environ[{CONN!r}] == metadb.BLOCKED_URL\n"
        "print(json.dumps(metadb.probe(metadb.control_plane_env())))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, CONN: url}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["backend"] == "sqlite" and figures["db_bytes"] == (tmp_path / "metadata.db").stat().st_size
