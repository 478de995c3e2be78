"""The backup vault: an S3 bucket + prefix, reached through the `gravitypm_aws` connection.

Key layout (one for every kind):
    <vault_prefix>/<kind>/<YYYY>/<MM>/<DD>/<backup_id>/<artifacts…>
    <vault_prefix>/<kind>/<YYYY>/<MM>/<DD>/<backup_id>/manifest.json   (written last: commits the backup)

A prefix without a manifest is not a backup. This module is the one place that knows
the layout; the backup, verification and restore code meet it through manifests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from gravitypm_ops.names import AWS_CONN_ID, BACKUP_KINDS

MANIFEST_NAME = "manifest.json"


class VaultError(RuntimeError):
    """The vault cannot be read or written (missing bucket, bad credentials, …)."""


@dataclass(frozen=True)
class BackupRef:
    kind: str
    backup_id: str
    manifest_key: str
    finished: datetime


def backup_prefix(vault_prefix: str, kind: str, backup_id: str, when: datetime) -> str:
    if kind not in BACKUP_KINDS:
        raise ValueError(f"unknown backup kind {kind!r}; expected one of {', '.join(BACKUP_KINDS)}")
    return f"{vault_prefix}/{kind}/{when:%Y/%m/%d}/{backup_id}/"


class Vault:
    def __init__(self, bucket: str, prefix: str, s3_client):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.s3 = s3_client

    @classmethod
    def from_connection(cls, bucket: str, prefix: str, aws_conn_id: str = AWS_CONN_ID) -> Vault:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return cls(bucket, prefix, S3Hook(aws_conn_id=aws_conn_id).get_conn())

    def _manifest_keys(self, kind: str):
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/{kind}/"):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/" + MANIFEST_NAME):
                        yield obj["Key"]
        except self.s3.exceptions.NoSuchBucket:
            raise VaultError(f"vault bucket {self.bucket!r} does not exist (check vault_bucket)") from None

    def read_manifest(self, key: str) -> dict:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        with body:
            return json.loads(body.read())

    def latest(self, kind: str) -> BackupRef | None:
        """The newest committed backup of `kind`, or None when there is none yet.

        Keys sort by date then by backup_id (which sorts by time), so the last key is the newest.
        """
        newest = max(self._manifest_keys(kind), default=None)
        if newest is None:
            return None
        manifest = self.read_manifest(newest)
        return BackupRef(
            kind=kind,
            backup_id=manifest["backup_id"],
            manifest_key=newest,
            finished=datetime.fromisoformat(manifest["finished"]),
        )
