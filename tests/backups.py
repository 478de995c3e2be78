"""Vault helpers for tests: small backups written straight through the vault API (for tests that need backups
but not a backup DAG), their verification records, and fresh buckets for second vaults."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta


def write_backup(vault, kind: str, run_after: datetime, payload: bytes) -> dict:
    """A committed backup of `kind` holding one artifact, `payload.bin`; its manifest."""
    writer = vault.begin_backup(kind, dag_id=f"gravitypm_{kind}_backup", run_id=f"scheduled__{run_after:%Y%m%dT%H}",
                                run_after=run_after)
    with writer.artifact("payload.bin", compression="none", format="bytes") as out:
        out.write(payload)
    return writer.commit(source={"host": "test"}, tools={}, content={"bytes": len(payload)})


def verification_record(manifest: dict, status: str, finished: datetime | None = None) -> dict:
    """A record as verify_backup writes it, `status` "passed" or "failed"."""
    finished = finished or datetime.fromisoformat(manifest["finished"]) + timedelta(seconds=1)
    return {
        "schema_version": 1, "kind": manifest["kind"], "backup_id": manifest["backup_id"], "status": status,
        "started": finished.isoformat(), "finished": finished.isoformat(),
        "checks": [{"name": "artifacts", "status": "passed", "detail": "ok", "seconds": 0.1},
                   {"name": "trial_restore", "status": status, "detail": "counts", "seconds": 0.2}],
        "verifier": {"dag_id": "gravitypm_backup_verification", "run_id": "manual__test"},
    }


def record_verification(vault, manifest: dict, status: str, finished: datetime | None = None) -> str:
    """Store a verification record for `manifest` through the vault (signed when the vault signs); its key."""
    return vault.record_verification(manifest, verification_record(manifest, status, finished))


def new_bucket(s3, *, lock: bool = False, region_name: str | None = None) -> str:
    """A new versioned bucket (Object Lock on request), e.g. for an off-site vault; its name."""
    name = f"gpm-offsite-{uuid.uuid4().hex[:10]}"
    args = {"ObjectLockEnabledForBucket": True} if lock else {}
    if region_name:
        args["CreateBucketConfiguration"] = {"LocationConstraint": region_name}
    s3.create_bucket(Bucket=name, **args)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name
