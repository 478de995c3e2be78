"""Task bodies of gravitypm_offsite_copy."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from gravitypm_ops.names import BACKUP_KINDS
from gravitypm_ops.offsite.copy import OFF, Copier
from gravitypm_ops.vault import retention
from gravitypm_ops.vault.layout import VaultError
from gravitypm_ops.vault.open import check_offsite_access, one_client_reaches_both, open_vault
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)


def copy_missing() -> dict:
    """Copy every backup the off-site vault misses (all kinds); fail the task if any copy failed."""
    from gravitypm_ops.airflow.glue import check_vault, fail_fast
    from gravitypm_ops.config import load_config

    cfg = load_config()
    if not cfg.offsite_enabled:
        log.info(OFF)
        return {"enabled": False}
    primary = check_vault(cfg)
    offsite = open_vault(cfg, "offsite")
    try:
        check_offsite_access(offsite)
    except VaultError as err:
        raise fail_fast(str(err)) from None
    copier = Copier(primary, offsite, server_side=one_client_reaches_both())
    now = datetime.now(UTC)
    reports = [copier.sync(kind, cfg.offsite_policy(kind), now) for kind in BACKUP_KINDS]
    for r in reports:
        log.info("%s: copied %s, skipped %s, records %d, failed %s", r["kind"], [c["backup_id"] for c in r["copied"]],
                 [(s["backup_id"], s["reason"]) for s in r["skipped"]], r["records_copied"], r["failed"])
    failed = [f"{r['kind']} {f['backup_id']} ({f['error']})" for r in reports for f in r["failed"]]
    if failed:
        raise RuntimeError(f"{len(failed)} off-site copy(ies) failed (the next run retries them): " + "; ".join(failed))
    return {"enabled": True, "method": copier.method, "kinds": {r["kind"]: r for r in reports}}


def apply_retention(dry_run: bool) -> dict:
    """The off-site policy per kind (offsite_retention, else the primary's) on the off-site vault."""
    from gravitypm_ops.config import load_config

    cfg = load_config()
    if not cfg.offsite_enabled:
        log.info(OFF)
        return {"enabled": False}
    offsite, now = open_vault(cfg, "offsite"), datetime.now(UTC)
    reports = {}
    for kind in BACKUP_KINDS:
        reports[kind] = retention.apply_retention(offsite, kind, cfg.offsite_policy(kind), now, dry_run=dry_run)
        log.info("off-site retention %s (%s): kept %d, removed %s", kind, "dry run" if dry_run else "applied",
                 len(reports[kind]["kept"]), reports[kind]["removed"])
    return {"enabled": True, "kinds": reports}


def write_status() -> dict:
    """The primary's status.json (with its off-site fields) and the off-site vault's own status.json,
    readable from the backup site when the primary region is gone."""
    from gravitypm_ops import status
    from gravitypm_ops.config import load_config

    cfg = load_config()
    if not cfg.offsite_enabled:
        log.info(OFF)
        return {"enabled": False}
    now = datetime.now(UTC)
    return {"primary": status.write_primary(cfg, Vault.from_config(cfg), now),
            "offsite": status.write_offsite(cfg, open_vault(cfg, "offsite"), now)}
