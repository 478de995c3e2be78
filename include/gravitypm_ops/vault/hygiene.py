"""Bucket hygiene: the bucket settings the morning checklist judges, and encryption actually applied."""

from __future__ import annotations

from gravitypm_ops.vault.layout import VaultError
from gravitypm_ops.vault.objects import error_code
from gravitypm_ops.vault.store import Vault


def bucket_settings(vault: Vault) -> dict:
    """The bucket facts vault hygiene is judged on (see host.checks.check_vault_hygiene)."""
    s3 = vault.s3

    def get(call, pick, missing_codes):
        try:
            return pick(call(Bucket=vault.bucket))
        except s3.exceptions.ClientError as err:
            if error_code(err) in missing_codes:
                return None
            raise

    return {
        "versioning": get(s3.get_bucket_versioning, lambda r: r.get("Status"), ()),
        "lifecycle_rules": get(
            s3.get_bucket_lifecycle_configuration, lambda r: r.get("Rules", []),
            ("NoSuchLifecycleConfiguration",),
        ) or [],
        "object_lock": get(
            s3.get_object_lock_configuration,
            lambda r: r.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled"),
            ("ObjectLockConfigurationNotFoundError",),
        ),
        # Not a bucket setting but the same question (can the bucket alone reveal a backup?): config, no I/O.
        "client_encryption": {"recipients": len(vault.encryption.recipients), "kinds": list(vault.encryption.kinds)},
    }


def require_encryption(vault: Vault, keys: list[str]) -> None:
    """Refuse (VaultError) unless the store reports every object encrypted at rest.

    Some S3-compatible stores accept SSE headers and silently ignore them: for backups full of
    secrets (config) that must fail the backup, not pass unnoticed.
    """
    for key in keys:
        sse = vault.s3.head_object(Bucket=vault.bucket, Key=key).get("ServerSideEncryption")
        if not sse:
            raise VaultError(f"{key}: the store did not encrypt it at rest; refusing to commit this backup")
