"""The metadata-DB side without a running Airflow: settings handed to the subprocess, the db clean
command line and its output, and the figures of a real (SQLite) database."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

from gravitypm_ops.console.metrics import Metrics, metadb_metrics
from gravitypm_ops.housekeeping import metadb

CONN = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"


def test_a_blocked_url_is_replaced_by_the_one_the_process_started_with():
    blocked = {CONN: metadb.BLOCKED_URL, "AIRFLOW__CORE__SQL_ALCHEMY_CONN": metadb.BLOCKED_URL, "KEEP": "1"}
    env = metadb.control_plane_env(blocked, initial={CONN: "postgresql://airflow:pw@db/airflow"})
    assert env[CONN] == "postgresql://airflow:pw@db/airflow"
    assert "AIRFLOW__CORE__SQL_ALCHEMY_CONN" not in env  # not set at start: airflow.cfg / _CMD / _SECRET decide
    assert env["KEEP"] == "1"
    assert env["PYTHONPATH"].split(":")[0].endswith("include")  # the subprocess imports gravitypm_ops


def test_an_unblocked_environment_is_used_as_it_is():
    env = metadb.control_plane_env({CONN: "sqlite:////tmp/x.db"}, initial={CONN: "other"})
    assert env[CONN] == "sqlite:////tmp/x.db"


def test_initial_environ_is_what_the_process_started_with():
    # In a fresh interpreter: a pytest-xdist worker's own start-up environment is execnet's business.
    code = ("import json, os; os.environ['SET_LATER'] = '1'; from gravitypm_ops.housekeeping import metadb; "
            "e = metadb.initial_environ(); print(json.dumps([e.get('SET_AT_START'), e.get('SET_LATER')]))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "SET_AT_START": "yes"},
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert json.loads(out.splitlines()[-1]) == ["yes", None]  # Linux: /proc/self/environ, not os.environ


WORKER_THEN_TASK = """
import json, os, setproctitle
setproctitle.setproctitle("airflow worker -- LocalExecutor: " + "x" * 4000)  # as Airflow names it: over its environ
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "airflow-db-not-allowed:///"  # the supervisor's block
child = os.fork()
if child == 0:  # the task process, forked from the worker
    from gravitypm_ops.housekeeping import metadb
    env = metadb.control_plane_env()
    print(json.dumps([env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")]), flush=True)
    os._exit(0)
os.waitpid(child, 0)
"""


def test_the_url_is_found_when_the_workers_process_title_wrote_over_its_environment():
    """A LocalExecutor worker's setproctitle overwrites its /proc environ (and its forked task's copy); the
    scheduler above it still has the URL. Seen on Postgres, where airflow.cfg's fallback is a wrong DB."""
    url = "postgresql+psycopg2://airflow:pw@db:5432/airflow"
    scheduler = {**os.environ, CONN: url}  # this subprocess plays the scheduler that starts the worker
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {WORKER_THEN_TASK!r}], check=True)"
    out = subprocess.run([sys.executable, "-c", code], env=scheduler, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert json.loads(out.splitlines()[-1]) == [url]


def test_db_clean_command_line():
    cutoff = datetime(2026, 9, 1, tzinfo=UTC)
    argv = metadb.db_clean_argv(cutoff, skip_archive=True, dry_run=False)
    assert argv[:5] == [sys.executable, "-m", "airflow", "db", "clean"]
    assert argv[argv.index("--clean-before-timestamp") + 1] == "2026-09-01T00:00:00+00:00"
    assert {"--error-on-cleanup-failure", "--yes", "--skip-archive"} <= set(argv) and "--dry-run" not in argv
    archive_dry = metadb.db_clean_argv(cutoff, skip_archive=False, dry_run=True)
    assert "--skip-archive" not in archive_dry and "--dry-run" in archive_dry


def test_the_tables_cleaned_are_airflows_own_names_without_dag():
    from airflow.utils.db_cleanup import config_dict

    assert set(metadb.CLEAN_TABLES) <= set(config_dict)  # a table Airflow renamed would be skipped silently
    assert "dag" not in metadb.CLEAN_TABLES
    assert {"dag_run", "task_instance", "xcom", "log", "job"} <= set(metadb.CLEAN_TABLES)


OUTPUT = """
Checking table dag_run
Found 12 rows meeting deletion criteria.
Performing Delete...
Finished Performing Delete

Checking table log
2026-12-01T15:54:23Z [warning  ] Encountered error when attempting to clean table 'log'.  [airflow.utils.db_cleanup]
RuntimeError: airflow db clean encountered errors on the following tables and did not clean them: ['log', 'xcom']. \
Check the logs above for details.
"""


def test_clean_output_gives_rows_per_table_and_every_failed_table():
    parsed = metadb.parse_clean_output(OUTPUT)
    assert parsed["rows"] == {"dag_run": 12}
    assert parsed["failed_tables"] == ["log", "xcom"]
    assert parsed["last_table"] == "log"


def test_figures_of_a_sqlite_database(tmp_path):
    from sqlalchemy import create_engine

    path = tmp_path / "airflow.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE dag_run (id INTEGER PRIMARY KEY, state TEXT, start_date TIMESTAMP)")
        db.executemany("INSERT INTO dag_run (state, start_date) VALUES (?, ?)", [
            ("success", "2026-05-01 10:00:00.000000"), ("running", "2026-11-30 08:00:00.000000"),
            ("queued", None)])
        db.execute("CREATE TABLE log (id INTEGER PRIMARY KEY)")
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        found = metadb.figures(connection)
    engine.dispose()
    assert found["backend"] == "sqlite" and found["rows"] == {"dag_run": 3, "log": 0}
    assert found["db_bytes"] == path.stat().st_size
    assert found["oldest_dag_run"] == "2026-05-01T10:00:00+00:00"
    assert found["oldest_active_dag_run"] == "2026-11-30T08:00:00+00:00"


def test_metrics_of_the_metadata_db():
    now = datetime(2026, 12, 1, tzinfo=UTC)
    metrics = Metrics()
    metadb_metrics(metrics, lambda: {"db_bytes": 4096, "oldest_dag_run": "2026-11-30T00:00:00+00:00"}, now)
    text = metrics.text()
    assert "gravitypm_airflow_metadb_up 1" in text
    assert "gravitypm_airflow_metadb_size_bytes 4096" in text
    assert "gravitypm_airflow_oldest_dag_run_age_seconds 86400" in text

    def down():
        raise ConnectionError("could not connect to postgresql://airflow:hunter2@db/airflow")

    broken = Metrics()
    metadb_metrics(broken, down, now)
    assert broken.text().splitlines()[-1] == "gravitypm_airflow_metadb_up 0"
