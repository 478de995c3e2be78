"""Task bodies of gravitypm_db_backup: preflight and the dump into the vault (retention: backup_tasks)."""

from __future__ import annotations

from datetime import datetime

from gravitypm_ops.backup_tasks import announce, check_vault, fail_fast
from gravitypm_ops.config import load_config
from gravitypm_ops.names import MONGO_CONN_ID
from gravitypm_ops.vault import Vault

KIND = "db"
SERVER_SELECTION_TIMEOUT_MS = 10_000  # fail fast when MongoDB is unreachable


def mongo_client(conn_id: str = MONGO_CONN_ID):
    """A PyMongo client from the Airflow connection (credentials never leave the hook)."""
    from airflow.providers.mongo.hooks.mongo import MongoHook

    hook = MongoHook(mongo_conn_id=conn_id)
    hook.extras.setdefault("serverSelectionTimeoutMS", SERVER_SELECTION_TIMEOUT_MS)
    return hook.get_conn()


def describe_source(client, databases) -> dict:
    """Where the dump came from: host and databases, never credentials."""
    hello = client.admin.command("hello")
    host, port = client.address or ("?", 0)
    return {
        "host": f"{host}:{port}",
        "replica_set": hello.get("setName"),
        "read_preference": "secondaryPreferred",
        "databases": list(databases),
    }


def preflight() -> None:
    """Fail fast, without retries and with a clear reason, when the vault or MongoDB is unusable."""
    from pymongo.errors import PyMongoError

    check_vault(load_config())
    try:
        mongo_client().admin.command("ping")
    except PyMongoError as err:
        raise fail_fast(
            f"MongoDB ({MONGO_CONN_ID}) unusable: {type(err).__name__}: {str(err).splitlines()[0][:300]}"
        ) from None


def run_backup(
    cfg, vault: Vault, client, *, dag_id: str, run_id: str, run_after: datetime,
    databases: list[str] | None = None, extra: dict | None = None,
) -> dict:
    """Dump `databases` (default `cfg.mongo_databases`) into a new vault backup and commit it;
    returns the manifest. `extra` fields go into the manifest (e.g. a safety backup's purpose).

    If this run already committed a backup, that manifest is returned and nothing is written.
    On any failure the partial backup is aborted: no manifest, no open multipart upload.
    """
    from importlib.metadata import version

    from gravitypm_ops import __version__, mongo_backup

    databases = list(databases or cfg.mongo_databases)
    writer = vault.begin_backup(KIND, dag_id=dag_id, run_id=run_id, run_after=run_after)
    if isinstance(writer, dict):
        return writer
    try:
        with writer.artifact(mongo_backup.ARTIFACT_NAME, compression="gzip", format=mongo_backup.ARTIFACT_FORMAT) as out:
            content = mongo_backup.dump(client, databases, out)
        return writer.commit(
            source=describe_source(client, databases),
            tools={"gravitypm_ops": __version__, "pymongo": version("pymongo"), "format": "mongodump archive, gzip"},
            content=content,
            extra=extra,
        )
    except BaseException:
        writer.abort()
        raise


def backup_to_vault(context) -> dict:
    """The dump task: back up, announce the Asset event with the manifest summary, return the summary."""
    cfg = load_config()
    dag_run = context["dag_run"]
    manifest = run_backup(
        cfg, Vault.from_config(cfg), mongo_client(),
        dag_id=dag_run.dag_id, run_id=dag_run.run_id, run_after=dag_run.run_after,
    )
    return announce(context, manifest)
