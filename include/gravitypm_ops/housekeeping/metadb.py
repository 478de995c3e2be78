"""Airflow's metadata DB: its figures (row counts, size, oldest dag_run) and `airflow db clean`.

Task code in Airflow 3 has no ORM access: the task supervisor replaces the database URL in the task
process's environment with `airflow-db-not-allowed:///` (airflow.sdk.execution_time.supervisor
.block_orm_access). The housekeeping task runs on the control plane's executor (LocalExecutor, the
scheduler's machine), which was started with the real settings; `control_plane_env`
(airflow/control_plane.py) hands those to a subprocess: `airflow db clean` itself, and
`python -m gravitypm_ops.housekeeping.metadb` for the figures. Chosen over an endpoint in the console
plugin because the clean can run for minutes (a first clean of a big `log` table), which an API server
request should not, and because the CLI is the interface Airflow documents. In `dag.test()` the task runs
unblocked, so the environment is used as it is.

The API server (the /metrics plugin) has DB access and calls `api_server_figures` in-process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

# The control plane's DB settings for a subprocess (shared with the host agent watch); re-exported here.
from gravitypm_ops.airflow.control_plane import (  # noqa: F401
    BLOCKED_URL,
    CONN_VARS,
    control_plane_env,
    initial_environ,
    print_marked,
    run_marked,
)
from gravitypm_ops.airflow.control_plane import as_utc as _as_utc

# Row counts in the report: the tables that grow with every run (HITL answers included).
BIG_TABLES = (
    "dag_run", "task_instance", "task_instance_history", "xcom", "log", "job", "hitl_detail", "hitl_detail_history",
    "rendered_task_instance_fields", "task_reschedule", "asset_event", "trigger", "callback", "deadline",
    "dag_version", "serialized_dag",
)
# What `airflow db clean --tables` is given: every table it knows (Airflow 3.3) except `dag`. A DAG's own
# row is aged by its last parse, so a short keep_days would drop live DAGs between two parses; the rows of
# deleted DAGs are few and Airflow marks them stale. dag_run brings task_instance, task_state_store and
# deadline along; task_instance brings task_instance_history and xcom (and, by foreign key, HITL rows).
CLEAN_TABLES = (
    "_xcom_archive", "asset_event", "callback", "celery_taskmeta", "celery_tasksetmeta", "connection_test_request",
    "dag_run", "dag_version", "deadline", "import_error", "job", "log", "partitioned_asset_key_log",
    "revoked_token", "task_instance", "task_instance_history", "task_reschedule", "task_state_store", "trigger",
    "xcom",
)
CLEAN_BATCH_SIZE = 10_000  # rows per transaction: short locks on a busy Postgres
FIGURES_MARK = "GRAVITYPM_METADB_FIGURES "
PROBE_TIMEOUT_SECONDS = 600


class MetadataCleanError(RuntimeError):
    """`airflow db clean` did not clean every table: the message names the tables."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output  # the command's output (scrubbed), for the task log


# --- figures ---------------------------------------------------------------------------------------------
def database_bytes(connection) -> int | None:
    """Size of the metadata DB where the backend tells it: Postgres pg_database_size, SQLite the file's
    pages (its size on disk without the WAL), MySQL data + index length; else None."""
    from sqlalchemy import text

    dialect = connection.dialect.name
    if dialect == "postgresql":
        return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar())
    if dialect == "sqlite":
        pages = connection.execute(text("PRAGMA page_count")).scalar()
        return int(pages) * int(connection.execute(text("PRAGMA page_size")).scalar())
    if dialect == "mysql":
        size = connection.execute(text(
            "SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = DATABASE()"
        )).scalar()
        return None if size is None else int(size)
    return None


def oldest_dag_run(connection, states: tuple[str, ...] = ()) -> datetime | None:
    """The oldest dag_run by start_date (the column `airflow db clean` ages it by), optionally in `states`."""
    from sqlalchemy import bindparam, text

    if not states:
        return _as_utc(connection.execute(text("SELECT MIN(start_date) FROM dag_run")).scalar())
    query = text("SELECT MIN(start_date) FROM dag_run WHERE state IN :states").bindparams(
        bindparam("states", expanding=True))
    return _as_utc(connection.execute(query, {"states": list(states)}).scalar())


def figures(connection) -> dict:
    """Everything the housekeeping report needs from the metadata DB (JSON-able)."""
    from sqlalchemy import inspect, text

    existing = set(inspect(connection).get_table_names())
    rows = {t: int(connection.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar()) for t in BIG_TABLES if t in existing}
    table_bytes = {}
    if connection.dialect.name == "postgresql":
        table_bytes = {t: int(connection.execute(text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar())
                       for t in rows}
    oldest, oldest_active = oldest_dag_run(connection), oldest_dag_run(connection, ("running", "queued"))
    return {
        "backend": connection.dialect.name,
        "db_bytes": database_bytes(connection),
        "rows": rows,
        "table_bytes": table_bytes,
        "oldest_dag_run": oldest.isoformat() if oldest else None,
        "oldest_active_dag_run": oldest_active.isoformat() if oldest_active else None,
    }


def _probe_main() -> None:
    """`python -m gravitypm_ops.housekeeping.metadb`: the figures as one marked JSON line on stdout."""
    from airflow.configuration import conf
    from sqlalchemy import create_engine

    engine = create_engine(conf.get_mandatory_value("database", "sql_alchemy_conn"))
    try:
        with engine.connect() as connection:
            print_marked(FIGURES_MARK, figures(connection))
    finally:
        engine.dispose()


def probe(env: Mapping[str, str], timeout: float = PROBE_TIMEOUT_SECONDS) -> dict:
    """The figures of the metadata DB the control plane uses (a subprocess with `env`)."""
    return run_marked("gravitypm_ops.housekeeping.metadb", [], env, mark=FIGURES_MARK, timeout=timeout,
                      what="reading the metadata DB's figures")


def api_server_figures() -> dict:
    """Size and oldest dag_run for /metrics, in-process: the API server has DB access (cheap queries,
    no row counts)."""
    from airflow import settings

    with settings.engine.connect() as connection:
        oldest = oldest_dag_run(connection)
        return {"db_bytes": database_bytes(connection), "oldest_dag_run": oldest.isoformat() if oldest else None}


# --- airflow db clean ------------------------------------------------------------------------------------
def db_clean_argv(cutoff: datetime, *, skip_archive: bool, dry_run: bool, tables=CLEAN_TABLES) -> list[str]:
    argv = [sys.executable, "-m", "airflow", "db", "clean",
            "--clean-before-timestamp", cutoff.astimezone(UTC).isoformat(),
            "--tables", ",".join(tables), "--batch-size", str(CLEAN_BATCH_SIZE),
            "--error-on-cleanup-failure", "--yes"]  # exit non-zero when a table fails (apache/airflow#65239)
    if skip_archive:
        argv.append("--skip-archive")
    if dry_run:
        argv.append("--dry-run")
    return argv


_CHECKING = re.compile(r"^Checking table (\S+)\s*$")
_FOUND = re.compile(r"^Found (\d+) rows meeting deletion criteria\.")
_TABLE_FAILED = re.compile(r"Encountered error when attempting to clean table '([^']+)'")
_FAILED_LIST = re.compile(r"did not clean them: \[([^\]]*)\]")


def parse_clean_output(output: str) -> dict:
    """Per table the rows found older than the cut-off (deleted, or would be in a dry run), and the tables
    whose clean failed."""
    rows, failed, table = {}, [], None
    for line in output.splitlines():
        line = line.strip()
        if match := _CHECKING.match(line):
            table = match.group(1)
        elif (match := _FOUND.match(line)) and table:
            rows[table] = int(match.group(1))
        for match in _TABLE_FAILED.finditer(line):
            failed.append(match.group(1))
        for match in _FAILED_LIST.finditer(line):
            failed.extend(name.strip().strip("'\"") for name in match.group(1).split(",") if name.strip())
    return {"rows": rows, "failed_tables": sorted(set(failed)), "last_table": table}


def run_db_clean(env: Mapping[str, str], cutoff: datetime, *, skip_archive: bool, dry_run: bool,
                 timeout: float, tables=CLEAN_TABLES) -> dict:
    """`airflow db clean` in a subprocess; MetadataCleanError naming the tables when any failed (also when
    the command exits 0 and only its output says so)."""
    from gravitypm_ops.redact import scrub

    argv = db_clean_argv(cutoff, skip_archive=skip_archive, dry_run=dry_run, tables=tables)
    try:
        done = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:  # the child is killed; what it printed says where it was
        output = scrub(err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else err.stdout or "")
        last = parse_clean_output(output)["last_table"]
        raise MetadataCleanError(f"airflow db clean did not finish within {timeout:.0f} s"
                                 + (f" (it was cleaning table {last})" if last else ""), output) from None
    output = scrub(done.stdout + "\n" + done.stderr)
    parsed = parse_clean_output(output)
    result = {"command": " ".join(argv[1:]), "exit_code": done.returncode, **parsed, "output": output}
    if parsed["failed_tables"]:
        raise MetadataCleanError(
            f"airflow db clean failed on table(s) {', '.join(parsed['failed_tables'])} (exit {done.returncode}); "
            "the other tables were cleaned. See the task log for the command's output.", output)
    if done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-8:])
        where = f" while cleaning table {parsed['last_table']}" if parsed["last_table"] else ""
        raise MetadataCleanError(f"airflow db clean exited {done.returncode}{where}: {tail}", output)
    return result


if __name__ == "__main__":
    _probe_main()
