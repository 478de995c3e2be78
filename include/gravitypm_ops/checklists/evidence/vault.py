"""Evidence from the vault bucket's own settings: versioning and the lifecycle rules retention relies on."""

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
    evidence = from_check(check_vault_hygiene(bucket_settings(vault), cfg.vault_prefix))
    evidence.links.append(s3_link(vault, f"{vault.prefix}/", "vault prefix"))
    return evidence
