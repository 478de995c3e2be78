"""Helpers the task bodies share: fail fast, vault preflight, the Asset announcement, MongoDB clients from the hooks."""

from __future__ import annotations

import logging

from gravitypm_ops.names import MONGO_CONN_ID, MONGO_SCRATCH_CONN_ID
from gravitypm_ops.vault.layout import VaultError
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)


def fail_fast(message: str):
    """Fail the task now, without retries: retrying will not fix a configuration problem."""
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(message)


def check_vault(cfg) -> Vault:
    vault = Vault.from_config(cfg)
    try:
        vault.check_access()
    except VaultError as err:
        raise fail_fast(str(err)) from None
    return vault


def manifest_summary(manifest: dict) -> dict:
    """The small, secret-free description of a backup that goes into XCom and Asset events."""
    return {
        "kind": manifest["kind"],
        "backup_id": manifest["backup_id"],
        "finished": manifest["finished"],
        "bytes": sum(a["size"] for a in manifest["artifacts"]),
        "artifacts": [a["key"] for a in manifest["artifacts"]],
        "documents": manifest["content"].get("documents"),
        "files": manifest["content"].get("files"),
        "dag_id": manifest["dag_id"],
        "run_id": manifest["run_id"],
    }


def announce(context, manifest: dict) -> dict:
    """Attach the manifest summary to this task's Asset event and return it (the XCom)."""
    from gravitypm_ops.names import backup_asset

    summary = manifest_summary(manifest)
    context["outlet_events"][backup_asset(manifest["kind"])].extra = summary
    log.info("backup %s committed: %s", summary["backup_id"], summary)
    return summary
SERVER_SELECTION_TIMEOUT_MS = 10_000  # fail fast when MongoDB is unreachable


def mongo_client(conn_id: str = MONGO_CONN_ID):
    """A PyMongo client from the Airflow connection (credentials never leave the hook)."""
    from airflow.providers.mongo.hooks.mongo import MongoHook

    hook = MongoHook(mongo_conn_id=conn_id)
    hook.extras.setdefault("serverSelectionTimeoutMS", SERVER_SELECTION_TIMEOUT_MS)
    return hook.get_conn()


def scratch_mongo_client():
    """`gravitypm_mongo_scratch` when it exists, else `gravitypm_mongo` (scratch database names only)."""
    from airflow.sdk.exceptions import AirflowNotFoundException


    try:
        return mongo_client(MONGO_SCRATCH_CONN_ID)
    except AirflowNotFoundException:
        return mongo_client(MONGO_CONN_ID)
