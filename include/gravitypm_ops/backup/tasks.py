"""Task bodies of the backup DAGs (db, fs, config): preflight, the backup into the vault, retention."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

from gravitypm_ops.airflow.glue import announce, check_vault, fail_fast, mongo_client
from gravitypm_ops.backup import files, mongo
from gravitypm_ops.config import load_config
from gravitypm_ops.names import MONGO_CONN_ID
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)


def apply_retention(kind: str, dry_run: bool) -> dict:
    from gravitypm_ops.vault.retention import apply_retention as run_policy

    cfg = load_config()
    report = run_policy(Vault.from_config(cfg), kind, cfg.retention[kind], datetime.now(UTC), dry_run=dry_run)
    log.info("retention %s (%s): kept %d, removed %s",
             kind, "dry run" if dry_run else "applied", len(report["kept"]), report["removed"])
    return report


def preflight_db() -> None:
    """Fail fast, without retries and with a clear reason, when the vault or MongoDB is unusable."""
    from pymongo.errors import PyMongoError

    check_vault(load_config())
    try:
        mongo_client().admin.command("ping")
    except PyMongoError as err:
        raise fail_fast(
            f"MongoDB ({MONGO_CONN_ID}) unusable: {type(err).__name__}: {str(err).splitlines()[0][:300]}"
        ) from None


def dump_db_to_vault(context) -> dict:
    """The dump task: back up, announce the Asset event with the manifest summary, return the summary."""
    cfg = load_config()
    dag_run = context["dag_run"]
    manifest = mongo.run_backup(
        cfg, Vault.from_config(cfg), mongo_client(),
        dag_id=dag_run.dag_id, run_id=dag_run.run_id, run_after=dag_run.run_after,
    )
    return announce(context, manifest)


def preflight_files(kind: str) -> None:
    """The vault is usable and every root exists: otherwise fail now, with the reason."""
    cfg = load_config()
    check_vault(cfg)
    roots, _ = files.plan(kind, cfg)
    missing = [r.source for r in roots if not os.path.exists(r.source)]
    if missing:
        raise fail_fast(f"{kind} backup: missing source path(s) {missing} (config: app_root / config_paths)")


def archive_files_to_vault(kind: str, context) -> dict:
    cfg = load_config()
    dag_run = context["dag_run"]
    manifest = files.run_backup(
        kind, cfg, Vault.from_config(cfg), dag_id=dag_run.dag_id, run_id=dag_run.run_id, run_after=dag_run.run_after
    )
    return announce(context, manifest)
