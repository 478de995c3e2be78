"""Task bodies every backup DAG shares: vault preflight, Asset announcement, retention."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from gravitypm_ops.config import load_config
from gravitypm_ops.vault import Vault, VaultError

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


def apply_retention(kind: str, dry_run: bool) -> dict:
    cfg = load_config()
    report = Vault.from_config(cfg).apply_retention(kind, cfg.retention[kind], datetime.now(UTC), dry_run=dry_run)
    log.info("retention %s (%s): kept %d, removed %s",
             kind, "dry run" if dry_run else "applied", len(report["kept"]), report["removed"])
    return report
