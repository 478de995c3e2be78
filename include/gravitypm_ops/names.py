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
# Its password holds the HMAC key(s) that sign manifests and verification records (vault/signing.py).
SIGNING_KEY_CONN_ID = "gravitypm_signing_key"

# The single JSON Variable that overrides the runbook defaults (see config.py).
CONFIG_VARIABLE = "gravitypm_ops"

# Pools and the queue for tasks that must run on the application host.
DB_POOL = "gravitypm_db"  # 1 slot: a DB backup never overlaps a DB restore.
HOST_POOL = "gravitypm_host"
VAULT_POOL = "gravitypm_vault"  # 1 slot: verification and retention never run at the same time
HOST_QUEUE = "gravitypm_host"
# Set by a deployment whose host tasks run on an Edge worker on the production host (issue 15), e.g.
# "airflow.providers.edge3.executors.EdgeExecutor"; it must be one of [core] executors, or every DAG
# with a host task is an import error (UnknownExecutorException). Unset: the default executor.
HOST_EXECUTOR_ENV = "GRAVITYPM_OPS_HOST_EXECUTOR"

# The audit history of gravitypm_airflow_housekeeping (one record per run); the capacity item reads its sizes.
HOUSEKEEPING_CHECKLIST = "airflow_housekeeping"

# Backup kinds, in runbook order; each has one Asset.
BACKUP_KINDS = ("db", "fs", "config", "logs")
# Kinds whose backups each hold different data (not snapshots): retention keeps whole buckets.
INCREMENTAL_KINDS = ("logs",)
ASSET_URI_PREFIX = "gravitypm://vault/"
# What a restore's `backup_id` param accepts: an id (20261127T060000Z-0a1b2c3d4e), "latest" or
# "latest@<ISO time>" (vault.Vault.resolve), checked in the trigger form already.
# Bounded: a 100k-character ref must never reach the vault (S3 answers "414 URI Too Long").
BACKUP_REF_MAX_LENGTH = 64
BACKUP_REF_PATTERN = r"^(latest(@[^\s\u0000]{1,48})?|[0-9]{8}T[0-9]{6}Z-[0-9a-f]{1,40})$"

# MongoDB's own databases (users, roles, the oplog, sharding metadata): never restored from or
# into, never a drill's scratch database. MongoDB refuses names that differ only in case from an
# existing database, so every comparison of database names here is case-insensitive.
RESERVED_DATABASES = ("admin", "local", "config")
# A database name the restore and drill forms accept: 1-63 letters, digits, '_' or '-', and not
# a reserved one in any case (spelled out per letter: JSON-schema patterns have no (?i) flag).
DB_NAME_PATTERN = (
    r"^(?!(?:[Aa][Dd][Mm][Ii][Nn]|[Ll][Oo][Cc][Aa][Ll]|[Cc][Oo][Nn][Ff][Ii][Gg])$)[A-Za-z0-9_-]{1,63}$"
)
SCRATCH_DB_NAME_PATTERN = DB_NAME_PATTERN.replace("[A-Za-z0-9_-]", "[A-Za-z0-9_]")
# A collection name the restore form accepts: no system.* collection, no '$' or NUL.
COLLECTION_NAME_MAX_LENGTH = 120
COLLECTION_NAME_PATTERN = r"^(?!system\.)[^$\u0000]{1,120}$"
# Linux limits the restore plan checks target paths against (os.pathconf when it answers).
PATH_MAX = 4096
NAME_MAX = 255


def is_reserved_database(name: str) -> bool:
    return name.casefold() in RESERVED_DATABASES


def same_database(name: str, names) -> bool:
    """`name` is one of `names` as MongoDB sees it (case-insensitively)."""
    return name.casefold() in {n.casefold() for n in names}

DAG_ID_PREFIX = "gravitypm_"
OWNER = "gravitypm-ops"
TAG = "gravitypm"

# Schedules are cron expressions evaluated in this timezone (an IANA name).
TIMEZONE_ENV = "GRAVITYPM_OPS_TZ"


def host_placement() -> dict:
    """@task arguments of a task that must touch the production host (its files, its services): the
    host queue, and the host executor when the deployment names one (GRAVITYPM_OPS_HOST_EXECUTOR)."""
    executor = os.environ.get(HOST_EXECUTOR_ENV, "").strip()
    return {"queue": HOST_QUEUE, **({"executor": executor} if executor else {})}


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
