"""Open the primary or the off-site vault from the config and its Airflow connection: the one
place S3 clients are made (through the Amazon provider's S3Hook, so credentials stay in Airflow)."""

from __future__ import annotations

import logging

from gravitypm_ops.names import AWS_CONN_ID, AWS_OFFSITE_CONN_ID
from gravitypm_ops.vault.layout import VaultError
from gravitypm_ops.vault.objects import s3_client
from gravitypm_ops.vault.signing import signer_from_connection
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
    return Vault(cfg.offsite_bucket, cfg.offsite_key_prefix, s3_client(AWS_OFFSITE_CONN_ID), offsite_protection(cfg),
                 signer_from_connection())  # the same key: a copy is checked like the original


def offsite_protection(cfg) -> Protection:
    """SSE-S3 off-site: a KMS key belongs to one region and account, so the primary's `kms_key_id`
    cannot encrypt there (the bucket's default encryption may still name a key of its own).
    Object Lock days are the primary's: an immutable vault wants an immutable copy."""
    return Protection(object_lock_days=cfg.object_lock_days)


def one_client_reaches_both() -> bool:
    """True when the two connections name the same S3 endpoint and the same credentials: then one
    client can read the primary and write off-site, and copies stay inside S3 (no bytes through
    the worker). Different regions of one account qualify (CopyObject works across regions)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    primary, offsite = S3Hook(aws_conn_id=AWS_CONN_ID), S3Hook(aws_conn_id=AWS_OFFSITE_CONN_ID)
    if primary.conn_config.get_service_endpoint_url("s3") != offsite.conn_config.get_service_endpoint_url("s3"):
        return False
    a, b = primary.get_credentials(), offsite.get_credentials()
    return (a.access_key, a.secret_key, a.token) == (b.access_key, b.secret_key, b.token)


def check_offsite_access(vault: Vault) -> None:
    """Fail fast, naming the off-site config key and connection, when the bucket cannot be used."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        vault.s3.head_bucket(Bucket=vault.bucket)
        vault.s3.list_objects_v2(Bucket=vault.bucket, Prefix=vault.prefix + "/", MaxKeys=1)
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code"))
        what = "does not exist" if code in ("404", "NoSuchBucket") else f"cannot be used ({code})"
        raise VaultError(f"off-site bucket {vault.bucket!r} {what}: check config key offsite_bucket and "
                         f"the {AWS_OFFSITE_CONN_ID} connection") from None
    except BotoCoreError as err:
        raise VaultError(f"off-site vault unreachable ({type(err).__name__}): check the "
                         f"{AWS_OFFSITE_CONN_ID} connection") from None
