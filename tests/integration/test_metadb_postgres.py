"""The local stack's own Postgres (dev/postgres.py; issue 15, docs/metadb.md): a second start reuses the cluster
and its data, and a stop leaves no postgres process. `make up` on it, end to end: test_up.py (the default)."""

from dev.postgres import Postgres
from tests.processes import postgres_pids


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
