"""Disaster recovery from the backup site (issue 15), end to end on `make up`'s split topology: the production
host's agent is gone and its backups exist only in the off-site vault. Through the REST API: the DR drill
(source off-site) succeeds on the control plane alone; an fs restore waits for a host until a new host's agent
(`python -m dev.up agent --name gravitypm-host-2`, a second Edge worker with a fresh, empty tree) registers and
runs it: the files land in the new tree. A DB restore of the off-site copy into a new database succeeds while
no agent is online: a non-production target stops nothing, so its host steps (stop_app / start_app) are
skipped by the control plane's branches and every step that runs runs there.

The primary vault stays up: the drill's audit chain lives there (record_audit fails, by design, without it;
test_dr_drill.py covers that case). The backups themselves are deleted from the primary after the off-site
copy, so only the copy can serve these restores."""

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from dev.airflow_api import AirflowAPI
from dev.stack import REPO
from dev.up import HOST_AGENT_NAME, clean_env, dr_hosts_dir
from tests import up_launcher
from tests.processes import cmdline, read_until
from tests.ui_browser import stack_env

start_up = up_launcher.start_up  # the fixture (shared with test_up.py)

NEW_HOST = "gravitypm-host-2"
DRILL, DB_RESTORE, FS_RESTORE = "gravitypm_dr_drill", "gravitypm_db_restore", "gravitypm_fs_restore"
SOURCE_DB, DR_DATABASE = "gravitypm_dr_source", "gravitypm_dr_site"
WAITING = ("scheduled", "queued")  # a host task with no agent online to pull it


def seed_offsite_only_backups(state: Path, monkeypatch) -> dict[str, dict]:
    """Verified db and fs backups made by the suite's engines in the primary vault, copied off-site by the
    off-site copy code, then deleted from the primary (its site is lost): only the copy can serve."""
    from gravitypm_ops.backup import files as backup_files
    from gravitypm_ops.backup import mongo as backup_mongo
    from gravitypm_ops.config import load_config
    from gravitypm_ops.offsite.copy import Copier
    from gravitypm_ops.vault.open import open_vault
    from gravitypm_ops.vault.retention import RetentionPolicy, delete_backup
    from gravitypm_ops.verification.verify import verify_backup

    for name, value in stack_env(state).items():  # the connections and Variable the API server has
        monkeypatch.setenv(name, value)
    cfg = load_config()
    primary, offsite = open_vault(cfg, "primary"), open_vault(cfg, "offsite")
    client, now = mongo_client(), datetime.now(UTC)
    # A small database of its own: the seeded production one (~2,300 documents) takes a minute per restore into
    # the local stack's SQLite-backed MongoDB, and this scenario restores it three times (verify, drill, restore).
    client[SOURCE_DB].projects.insert_many([{"_id": i, "name": f"project {i}"} for i in range(40)])
    client[SOURCE_DB].tasks.insert_many([{"_id": i, "project": i % 40, "done": i % 3 == 0} for i in range(60)])
    made = {
        "db": backup_mongo.run_backup(cfg, primary, client, dag_id="t", run_id=uuid.uuid4().hex, run_after=now,
                                      databases=[SOURCE_DB]),
        "fs": backup_files.run_backup("fs", cfg, primary, dag_id="t", run_id=uuid.uuid4().hex, run_after=now),
    }
    for kind, manifest in made.items():
        record = verify_backup(primary, manifest, mongo_client=client,
                               production_databases=(*cfg.mongo_databases, SOURCE_DB))
        assert record["status"] == "passed", record["checks"]
        copied = Copier(primary, offsite, server_side=True).sync(kind, RetentionPolicy(last=10), datetime.now(UTC))
        assert copied["failed"] == [], copied
        delete_backup(primary, manifest)
        assert manifest["backup_id"] not in primary.inventory(kind)
        assert manifest["backup_id"] in offsite.inventory(kind)
    return made


def stop_production_agent(proc, state: Path, api: AirflowAPI) -> None:
    """The production host is gone: its Edge worker stops (SIGTERM, as on a host shutdown)."""
    worker_pid = int((state / "host-agent" / "worker.pid").read_text())
    assert "edge worker" in cmdline(worker_pid)
    os.kill(worker_pid, signal.SIGTERM)
    read_until(proc, f"!! host agent {HOST_AGENT_NAME} exited", timeout=60)  # the control plane keeps running
    assert online_agents(api) == set()


def online_agents(api: AirflowAPI) -> set[str]:
    return {w["worker_name"] for w in api.get("/edge_worker/ui/worker")["workers"] if w["state"] in ("idle", "running")}


def task_instances(api: AirflowAPI, dag_id: str, run_id: str) -> dict[str, dict]:
    tis = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {ti["task_id"]: ti for ti in tis}


def wait_for_state(api: AirflowAPI, dag_id: str, run_id: str, task_id: str, states, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state := api.task_states(dag_id, run_id).get(task_id)) in states:
            return state
        time.sleep(1)
    raise AssertionError(f"{dag_id}.{task_id} not in {states} within {timeout:.0f}s: {api.task_states(dag_id, run_id)}")


def start_agent(state: Path, name: str) -> subprocess.Popen:
    """`python -m dev.up agent --name NAME` against the running `up`: the new host's Edge worker."""
    return subprocess.Popen(
        [sys.executable, "-m", "dev.up", "agent", "--state-dir", str(state), "--name", name],
        cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def files_below(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def mongo_client():
    from gravitypm_ops.airflow.glue import mongo_client as from_connection

    return from_connection()  # the gravitypm_mongo connection seed_offsite_only_backups put in the environment


def test_the_backup_site_alone_drills_restores_the_db_and_restores_files_onto_a_new_host(start_up, monkeypatch):
    started = time.monotonic()

    def lap(what: str) -> None:  # where the wall time goes
        print(f"{time.monotonic() - started:5.0f}s {what}", flush=True)

    # A high watch timeout: the fs restore must be left waiting for the new host, not failed.
    proc, port, state = start_up("--offsite", "--no-smoke", "--host-agent-timeout", "30")
    output = read_until(proc, "== running;", timeout=300)
    lap("up")
    assert ", off-site bucket gravitypm-vault-offsite" in output
    api = AirflowAPI(f"http://127.0.0.1:{port}", password=AirflowAPI.standalone_password(state / "airflow"))
    made = seed_offsite_only_backups(state, monkeypatch)
    production_tree = state / "host" / "opt" / "gravitypm" / "production"
    lap("seeded")
    stop_production_agent(proc, state, api)
    lap("agent stopped")

    for dag_id in (DRILL, DB_RESTORE, FS_RESTORE):
        api.wait_for_dag(dag_id)
        api.unpause(dag_id)
    new_tree = dr_hosts_dir(state) / NEW_HOST / "opt" / "gravitypm" / "production"
    drill = api.trigger(DRILL, {"source": "offsite", "components": ["db", "fs"]})
    db_restore = api.trigger(DB_RESTORE, {"source": "offsite", "source_database": SOURCE_DB,
                                          "target_database": DR_DATABASE, "dry_run": False})
    fs_restore = api.trigger(FS_RESTORE, {"source": "offsite", "target_path": str(new_tree), "dry_run": False})
    triggered = time.monotonic()

    # The drill needs no host: it restores the off-site copies into scratch targets on the control plane.
    assert api.wait_for_run(DRILL, drill, timeout=240)["state"] == "success", api.task_states(DRILL, drill)
    lap("drill done")
    report = api.xcom(DRILL, drill, "write_report")
    assert report["verdict"] == "passed" and report["source"] == "offsite"
    assert {k: c["backup_id"] for k, c in report["components"].items()} == {k: m["backup_id"] for k, m in made.items()}
    assert report["bucket"] == "gravitypm-vault-offsite"  # the evidence is where the restores came from

    # The DB restore of the off-site copy into a new database: on the control plane alone.
    assert api.wait_for_run(DB_RESTORE, db_restore, timeout=180)["state"] == "success", \
        api.task_states(DB_RESTORE, db_restore)
    lap("db restore done")
    assert online_agents(api) == set()  # it never needed one
    db_states = api.task_states(DB_RESTORE, db_restore)
    assert db_states["stop_app"] == db_states["start_app"] == "skipped", db_states
    db_tis = task_instances(api, DB_RESTORE, db_restore)
    ran = {task for task, ti in db_tis.items() if ti["state"] == "success"}
    assert {"plan", "safety_backup", "restore", "validate", "report"} <= ran
    assert all(db_tis[task]["executor"] in (None, "LocalExecutor") for task in ran), db_tis
    assert api.xcom(DB_RESTORE, db_restore, "plan")["backup"]["backup_id"] == made["db"]["backup_id"]
    backed_up = {c: meta["documents"] for c, meta in made["db"]["content"]["databases"][SOURCE_DB].items()
                 if meta["type"] == "collection"}
    dr_db = mongo_client()[DR_DATABASE]
    assert {c: dr_db[c].count_documents({}) for c in dr_db.list_collection_names()} == backed_up
    assert backed_up == {"projects": 40, "tasks": 60}

    # The fs restore's first step looks at the target host's files: it has waited for a host agent all along.
    assert wait_for_state(api, FS_RESTORE, fs_restore, "plan", WAITING, timeout=60)
    assert online_agents(api) == set()
    assert not new_tree.exists()  # the new host starts from nothing

    agent = start_agent(state, NEW_HOST)
    try:
        read_until(agent, f"== host agent {NEW_HOST} online; tree {new_tree}", timeout=120)
        assert online_agents(api) == {NEW_HOST}
        lap("new agent online")
        print(f"the fs restore waited {time.monotonic() - triggered:.0f}s for {NEW_HOST}")

        assert api.wait_for_run(FS_RESTORE, fs_restore, timeout=180)["state"] == "success", \
            api.task_states(FS_RESTORE, fs_restore)
        lap("fs restore done")
        tis = task_instances(api, FS_RESTORE, fs_restore)
        assert tis["plan"]["hostname"] == tis["restore"]["hostname"] == NEW_HOST
        plan = api.xcom(FS_RESTORE, fs_restore, "plan")
        assert plan["source"] == "offsite" and plan["backup"]["backup_id"] == made["fs"]["backup_id"]
        assert plan["production"] is False  # the new tree, not gravitypm-host-1's app_root
        # The files landed in the new host's fresh tree, with the backup's content (the production tree's).
        restored = files_below(new_tree)
        assert len(restored) == made["fs"]["content"]["files"] > 0
        source = files_below(production_tree)
        assert {path: source.get(path) for path in restored} == restored
        assert "uploads/avatars/u001.png" in restored

    finally:
        up_launcher.stop_with_sigint(agent)
    assert agent.returncode == 0
    lap("agent stopped")
    up_launcher.stop_with_sigint(proc)
    assert proc.returncode == 0
    print(f"DR from the backup site: {time.monotonic() - started:.0f}s")
