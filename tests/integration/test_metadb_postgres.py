"""`make up --metadb postgres` (issue 15, docs/metadb.md): the project starts its own Postgres cluster in the
state dir, Airflow's metadata lives there (no SQLite file at all), a host task runs on the Edge worker, and
one SIGINT leaves no postgres process behind; a second start reuses the cluster and its data."""

import os
import signal
import subprocess

from dev.airflow_api import AirflowAPI
from dev.postgres import Postgres
from dev.stack import BIN
from dev.up import HOST_AGENT_NAME, read_env_file
from tests import up_launcher
from tests.processes import alive, cmdline, descendants, read_until

FS_BACKUP = "gravitypm_fs_backup"
start_up = up_launcher.start_up  # the fixture (tests/up_launcher.py)


def postgres_pids(data_dir) -> list[int]:
    """Every live process serving this data dir (the postmaster and its children carry no -D: the
    postmaster's children are found through it)."""
    leaders = [int(p) for p in os.listdir("/proc") if p.isdigit() and f"-D {data_dir} " in cmdline(int(p)) + " "]
    return [pid for pid in {*leaders, *(c for pid in leaders for c in descendants(pid))} if alive(pid)]


def test_up_with_postgres_runs_a_host_task_keeps_its_metadata_in_postgres_and_stops_clean(start_up):
    proc, port, state = start_up("--metadb", "postgres", "--no-smoke")
    output = read_until(proc, "== running;", timeout=300)
    assert "metadata DB:    Postgres 127.0.0.1:" in output, output

    # Airflow's own CLI, with the settings `make up` hands a shell, reads its DB URL from the project's Postgres.
    env = {**up_launcher.clean_env(), **read_env_file(state / "stack.env")}
    conn = subprocess.run([str(BIN / "airflow"), "config", "get-value", "database", "sql_alchemy_conn"], env=env,
                          capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    assert conn.startswith("postgresql+psycopg2://airflow:") and "@127.0.0.1:" in conn
    assert (state / "postgres_password").read_text() not in (state / "stack.env").read_text()  # a _CMD reads it
    assert not (state / "airflow" / "airflow.db").exists()  # nothing fell back to SQLite
    serving = postgres_pids(state / "postgres")
    assert serving and set(serving) <= descendants(proc.pid)  # started by `up`, in the state dir

    # A host task on the Edge worker and the rest on the control plane, scheduled through Postgres.
    api = AirflowAPI(f"http://127.0.0.1:{port}", password=AirflowAPI.standalone_password(state / "airflow"))
    api.wait_for_dag(FS_BACKUP)
    api.unpause(FS_BACKUP)
    run_id = api.trigger(FS_BACKUP)
    assert api.wait_for_run(FS_BACKUP, run_id)["state"] == "success"
    tis = {ti["task_id"]: ti for ti in api.get(f"/api/v2/dags/{FS_BACKUP}/dagRuns/{run_id}/taskInstances")[
        "task_instances"]}
    assert tis["archive_to_vault"]["hostname"] == HOST_AGENT_NAME

    proc.send_signal(signal.SIGINT)  # Ctrl-C
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 0 and "nothing left running" in rest, rest
    assert postgres_pids(state / "postgres") == []
    assert "database system is shut down" in (state / "logs" / "postgres.log").read_text()  # a clean shutdown


def test_the_cluster_is_created_once_and_reused_with_its_data(tmp_path):
    first = Postgres(tmp_path)
    first.start()
    try:
        _sql(first, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('across restarts')")
    finally:
        first.stop()
    assert postgres_pids(tmp_path / "postgres") == []

    again = Postgres(tmp_path)  # another port, the same cluster and password
    again.start()
    try:
        assert _sql(again, "SELECT v FROM kept") == [("across restarts",)]
    finally:
        again.stop()
    assert postgres_pids(tmp_path / "postgres") == []


def _sql(pg: Postgres, statement: str):
    import psycopg2

    # As Airflow connects: TCP with the airflow login's password.
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user="airflow", password=pg.password(), dbname="airflow")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()
