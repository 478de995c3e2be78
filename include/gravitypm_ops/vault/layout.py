"""Where things live in the vault (keys, ids, manifest fields) and the vault's errors."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from gravitypm_ops.names import BACKUP_KINDS

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
VERIFICATIONS_DIR = "verifications/"  # beside the manifest: one JSON record per verification, never overwritten
MANIFEST_SCHEMA_VERSION = 1
LEASES_DIR = "leases"  # <prefix>/leases/<kind>/<holder>.json: a restore or drill of that kind is running
SAFETY_PURPOSE = "safety"  # manifest "purpose" of the backup a restore takes of its target first


class VaultError(RuntimeError):
    """The vault cannot be used as asked (missing bucket, bad credentials, unknown backup, …)."""


class IntegrityError(VaultError):
    """An artifact read back does not match the size or SHA-256 its manifest recorded."""


class ObjectMissing(VaultError):
    """The key is not in the store (deleted, or never written)."""


class WriteConflict(VaultError):
    """Another writer is writing the same write-once key right now (S3 ConditionalRequestConflict):
    its outcome is unknown; callers that race by design treat the key as taken."""


class StoreError(VaultError):
    """The store refused a request; `code` is its error code (e.g. "AccessDenied")."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


def verified_ok(manifest: dict) -> bool:
    """True when the backup's newest verification passed (see Vault.list_backups)."""
    return bool(manifest.get("verification")) and manifest["verification"].get("status") == "passed"


def backup_id_for(dag_id: str, run_id: str, run_after: datetime) -> str:
    digest = hashlib.sha256(f"{dag_id}/{run_id}".encode()).hexdigest()[:10]
    return f"{run_after.astimezone(UTC):%Y%m%dT%H%M%SZ}-{digest}"


def backup_time(backup_id: str) -> datetime:
    return datetime.strptime(backup_id.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def backup_prefix(vault_prefix: str, kind: str, backup_id: str) -> str:
    if kind not in BACKUP_KINDS:
        raise ValueError(f"unknown backup kind {kind!r}; expected one of {', '.join(BACKUP_KINDS)}")
    return f"{vault_prefix.strip('/')}/{kind}/{backup_time(backup_id):%Y/%m/%d}/{backup_id}/"


@dataclass(frozen=True)
class Artifact:
    name: str  # relative to the backup prefix
    key: str
    size: int
    sha256: str
    compression: str
    format: str
    # {"format": "age", "recipients": [...]} when client-side encrypted (size and sha256 are then the ciphertext's)
    encryption: dict | None = None
