"""Collector name (an Item's `collector`) → the function that gathers and judges its evidence."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from gravitypm_ops.checklists.evidence.access_logs import access_logs
from gravitypm_ops.checklists.evidence.backups import backup_age, backup_integrity, full_backup_verification
from gravitypm_ops.checklists.evidence.base import Evidence
from gravitypm_ops.checklists.evidence.capacity import capacity
from gravitypm_ops.checklists.evidence.compliance import compliance
from gravitypm_ops.checklists.evidence.host import disk_space, memory, service_health
from gravitypm_ops.checklists.evidence.tls import tls_expiry
from gravitypm_ops.checklists.evidence.updates import security_updates
from gravitypm_ops.checklists.evidence.vault import vault_hygiene

log = logging.getLogger(__name__)


COLLECTORS = {
    "backup_age": backup_age,
    "backup_integrity": backup_integrity,
    "full_backup_verification": full_backup_verification,
    "capacity": capacity,
    "disk_space": disk_space,
    "memory": memory,
    "service_health": service_health,
    "vault_hygiene": vault_hygiene,
    "access_logs": access_logs,
    "tls_expiry": tls_expiry,
    "security_updates": security_updates,
    "compliance": compliance,
}


def collect(name: str, cfg, options: dict | None = None, now: datetime | None = None) -> Evidence:
    if name not in COLLECTORS:
        raise ValueError(f"unknown evidence collector {name!r}; known: {', '.join(COLLECTORS)}")
    return COLLECTORS[name](cfg, options or {}, now or datetime.now(UTC))
