"""Evidence from the vault bucket's own settings (versioning, the lifecycle rules retention relies on) and
whether what the suite writes there is signed."""

from __future__ import annotations

import logging
from datetime import datetime

from gravitypm_ops.checklists.evidence.base import Evidence, from_check, s3_link

log = logging.getLogger(__name__)


def vault_hygiene(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.host.checks import check_vault_hygiene
    from gravitypm_ops.vault.hygiene import bucket_settings
    from gravitypm_ops.vault.store import Vault

    vault = Vault.from_config(cfg)
    settings = bucket_settings(vault)
    settings["signing_key_id"] = vault.signer.key_id if vault.signer else None
    settings["signing_placeholder"] = bool(vault.signer and vault.signer.placeholder)
    # What the last verification run left out (it lists every backup; this check reads one object).
    try:
        status = vault.read_status() or {}
    except ValueError:  # garbage status.json: the Backups page names it; not this check's finding
        status = {}
    settings["rejected_count"] = (status.get("signing") or {}).get("rejected_count", 0)
    evidence = from_check(check_vault_hygiene(settings, cfg.vault_prefix))
    evidence.links.append(s3_link(vault, f"{vault.prefix}/", "vault prefix"))
    return evidence
