"""Parse-time constants shared by DAGs, the library, deployment files and tests.

These names are public: users, connections and other DAGs rely on them.
Nothing here does I/O; reading one environment variable is the only lookup.
"""

from __future__ import annotations

import os

# Airflow connections.
MONGO_CONN_ID = "gravitypm_mongo"
MONGO_SCRATCH_CONN_ID = "gravitypm_mongo_scratch"
AWS_CONN_ID = "gravitypm_aws"
AWS_OFFSITE_CONN_ID = "gravitypm_aws_offsite"
SLACK_CONN_ID = "gravitypm_slack"
METRICS_CONN_ID = "gravitypm_metrics"  # optional: its password is a static bearer token for /metrics

# The single JSON Variable that overrides the runbook defaults (see config.py).
CONFIG_VARIABLE = "gravitypm_ops"

# Pools and the queue for tasks that must run on the application host.
DB_POOL = "gravitypm_db"  # 1 slot: a DB backup never overlaps a DB restore.
HOST_POOL = "gravitypm_host"
VAULT_POOL = "gravitypm_vault"  # 1 slot: verification and retention never run at the same time
HOST_QUEUE = "gravitypm_host"

# Backup kinds, in runbook order; each has one Asset.
BACKUP_KINDS = ("db", "fs", "config", "logs")
# Kinds whose backups each hold different data (not snapshots): retention keeps whole buckets.
INCREMENTAL_KINDS = ("logs",)
ASSET_URI_PREFIX = "gravitypm://vault/"
# What a restore's `backup_id` param accepts: an id (20261127T060000Z-0a1b2c3d4e), "latest" or
# "latest@<ISO time>" (vault.Vault.resolve), checked in the trigger form already.
BACKUP_REF_PATTERN = r"^(latest(@\S+)?|[0-9]{8}T[0-9]{6}Z-[0-9a-f]+)$"

DAG_ID_PREFIX = "gravitypm_"
OWNER = "gravitypm-ops"
TAG = "gravitypm"

# Schedules are cron expressions evaluated in this timezone (an IANA name).
TIMEZONE_ENV = "GRAVITYPM_OPS_TZ"


def schedule_timezone() -> str:
    return os.environ.get(TIMEZONE_ENV, "UTC") or "UTC"


def asset_uri(kind: str) -> str:
    """`gravitypm://vault/<kind>`: the asset a backup DAG updates (never the bucket name)."""
    if kind not in BACKUP_KINDS:
        raise ValueError(f"unknown backup kind {kind!r}; expected one of {BACKUP_KINDS}")
    return ASSET_URI_PREFIX + kind


def asset_name(kind: str) -> str:
    return f"gravitypm_{kind}_backup"


def backup_asset(kind: str):
    """The Airflow Asset announced when a backup of `kind` is committed."""
    from airflow.sdk import Asset

    return Asset(name=asset_name(kind), uri=asset_uri(kind))


def any_backup_asset():
    """Any backup kind's Asset (an AssetAny): for DAGs that run after every new backup."""
    from functools import reduce
    from operator import or_

    return reduce(or_, (backup_asset(kind) for kind in BACKUP_KINDS))
