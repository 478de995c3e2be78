"""Open the primary or the off-site vault from the config and its Airflow connection."""

from __future__ import annotations

import logging

from gravitypm_ops.names import AWS_CONN_ID, AWS_OFFSITE_CONN_ID
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.vault.streams import Protection

log = logging.getLogger(__name__)

SOURCES = ("primary", "offsite")
NOT_CONFIGURED = "off-site vault is not configured (offsite_bucket is empty)"


def open_vault(cfg, source: str) -> Vault:
    """The vault a restore or drill reads from: "primary" or "offsite".

    Raises ValueError for an unknown source, and for "offsite" while offsite_bucket is empty.
    """
    if source == "primary":
        return Vault.from_config(cfg, AWS_CONN_ID)
    if source != "offsite":
        raise ValueError(f"unknown vault source {source!r}; expected one of {', '.join(SOURCES)}")
    if not cfg.offsite_enabled:
        raise ValueError(NOT_CONFIGURED)
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return Vault(
        cfg.offsite_bucket,
        cfg.offsite_key_prefix,
        S3Hook(aws_conn_id=AWS_OFFSITE_CONN_ID).get_conn(),
        offsite_protection(cfg),
    )


def offsite_protection(cfg) -> Protection:
    """SSE-S3 off-site: a KMS key belongs to one region and account, so the primary's `kms_key_id`
    cannot encrypt there (the bucket's default encryption may still name a key of its own).
    Object Lock days are the primary's: an immutable vault wants an immutable copy."""
    return Protection(object_lock_days=cfg.object_lock_days)
