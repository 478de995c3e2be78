"""`status.json` of both vaults and the freshness (RPO) findings read from it."""

from __future__ import annotations

import logging
from datetime import datetime

from gravitypm_ops.names import BACKUP_KINDS
from gravitypm_ops.redact import scrub
from gravitypm_ops.vault.layout import verified_ok
from gravitypm_ops.vault.open import open_vault
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)


def copy_state(offsite: Vault, kind: str, newest_primary_id: str | None, now: datetime) -> dict:
    """The status entry of one kind off-site: has the primary's newest backup a copy? how old is
    the newest copy (by its backup's finish time)?"""
    inventory = offsite.inventory(kind)
    if not inventory:
        return {"copied": False, "count": 0, "latest_id": None, "age_hours": None, "verified": None}
    newest = offsite.resolve(kind, list(inventory)[-1])
    return {
        "copied": newest_primary_id in inventory,
        "count": len(inventory),
        "latest_id": newest["backup_id"],
        "age_hours": round((now - datetime.fromisoformat(newest["finished"])).total_seconds() / 3600, 2),
        "verified": verified_ok(newest),
    }


def status_fields(cfg, summaries: dict[str, dict | None], now: datetime) -> dict:
    """Adds `offsite` to each kind's status entry (Vault.summary) and returns the top-level
    `offsite` entry. An unreachable off-site vault is reported, not raised: the primary's status
    must still be written (the freshness audit fails on it instead)."""
    if not cfg.offsite_enabled:
        return {"enabled": False}
    top = {"enabled": True, "bucket": cfg.offsite_bucket, "prefix": cfg.offsite_key_prefix}
    try:
        offsite = open_vault(cfg, "offsite")
        states = {kind: copy_state(offsite, kind, (entry or {}).get("latest_id"), now)
                  for kind, entry in summaries.items()}
    except Exception as err:
        log.warning("off-site status unavailable: %s", err)
        return {**top, "error": scrub(f"{type(err).__name__}: {err}")}
    for kind, entry in summaries.items():
        if entry is not None:
            entry["offsite"] = states[kind]
    return top


def freshness_findings(cfg, now: datetime) -> tuple:
    """Per kind "<kind> off-site": the newest off-site copy is younger than freshness_hours (the
    kind's interval plus grace), like the primary's RPO audit. Empty while off-site is off."""
    from gravitypm_ops.host import checks as host_checks

    if not cfg.offsite_enabled:
        return ()
    try:
        offsite = open_vault(cfg, "offsite")
        newest = {}
        for kind in BACKUP_KINDS:
            inventory = offsite.inventory(kind)
            newest[kind] = (datetime.fromisoformat(offsite.resolve(kind, list(inventory)[-1])["finished"])
                            if inventory else None)
    except Exception as err:
        return (host_checks.Finding("off-site", host_checks.BREACH, scrub(f"off-site vault unreachable: {type(err).__name__}: {err}")),)
    result = host_checks.check_backup_age(newest, cfg.freshness_hours, now, missing_is_breach=True)
    return tuple(host_checks.Finding(f"{f.subject} off-site", f.status, f.detail.replace("backup", "off-site copy"))
                 for f in result.findings)


def write_primary(cfg, vault: Vault, now: datetime) -> dict:
    """Per kind: latest id, age, size, verified?, last verification result, off-site copy — to
    <prefix>/status.json of the primary vault."""
    doc = {"written": now.isoformat(), "kinds": {kind: vault.summary(kind, now) for kind in BACKUP_KINDS}}
    doc["offsite"] = status_fields(cfg, doc["kinds"], now)
    doc["signing"] = vault.signing_report()  # after listing every kind: what was left out, and why
    doc["key"] = vault.write_status(doc)
    return doc


def write_offsite(cfg, offsite: Vault, now: datetime) -> dict:
    """The off-site vault's own status.json, readable from the backup site when the primary region is gone."""
    doc = {"written": now.isoformat(), "copy_of": cfg.vault_prefix,
           "kinds": {kind: offsite.summary(kind, now) for kind in BACKUP_KINDS}}
    doc["signing"] = offsite.signing_report()
    doc["key"] = offsite.write_status(doc)
    return doc
