"""Retention leases: retention keeps every backup of a kind while a restore or drill of it runs.

    <vault_prefix>/leases/<kind>/<sha256(holder)[:16]>.json   {"kind", "holder", "until"}

A lease lapses by itself at `until`, so a crashed restore cannot block retention for ever. Leases
are renewed and deleted, so unlike backups they are plain overwritable objects, never locked.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from gravitypm_ops.vault.layout import LEASES_DIR
from gravitypm_ops.vault.store import Vault


def lease_key(vault: Vault, kind: str, holder: str) -> str:
    return f"{vault.prefix}/{LEASES_DIR}/{kind}/{hashlib.sha256(holder.encode()).hexdigest()[:16]}.json"


def hold(vault: Vault, kind: str, holder: str, *, hours: float = 12.0) -> str:
    """Take (or renew) a lease on `kind` for `holder` (e.g. "<dag_id>/<run_id>") for `hours`."""
    key = lease_key(vault, kind, holder)
    until = datetime.now(UTC) + timedelta(hours=hours)
    vault.put(key, {"kind": kind, "holder": holder, "until": until.isoformat()})
    return key


def release(vault: Vault, kind: str, holder: str) -> None:
    vault.delete_key(lease_key(vault, kind, holder))


def active(vault: Vault, kind: str, now: datetime | None = None) -> list[dict]:
    """The unexpired leases on `kind`."""
    now = now or datetime.now(UTC)
    found = []
    for key in vault.list_keys(f"{vault.prefix}/{LEASES_DIR}/{kind}/"):
        lease = vault.read_json(key)
        if lease and datetime.fromisoformat(lease["until"]) > now:
            found.append(lease)
    return found
