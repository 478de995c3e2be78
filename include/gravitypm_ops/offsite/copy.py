"""Off-site copies: a second vault (another region or account) holding a copy of every backup.

The off-site vault has the primary's key layout under `offsite_prefix` (default `vault_prefix`)
in `offsite_bucket`, reached through the `gravitypm_aws_offsite` connection. It is off while
`offsite_bucket` is empty: every off-site step then logs that and does nothing.

Copying one backup (`Copier.copy_backup`), in this order:

1. leftovers of an interrupted copy of it (open multipart uploads) are aborted;
2. each artifact is copied (`vault.transfer`) and checked against the primary manifest's size and SHA-256:
   - *server-side* (CopyObject, or UploadPartCopy in parts for big objects) when one client
     reaches both vaults (same endpoint, same credentials); the copy is then re-read and hashed.
     S3's own copy checksum is not used instead: for a multipart copy it is a checksum of part
     checksums, not comparable with the manifest's whole-object SHA-256, and some S3-compatible
     stores accept checksums without checking them (moto does), so only our own hash proves it;
   - *streamed* otherwise: downloaded in a thread while the bytes are hashed and uploaded as a
     multipart upload (~20 MiB held whatever the size: one 8 MiB part and its copy, two 1 MiB
     read-ahead chunks); the upload is completed only if the bytes sent hash to the manifest's
     SHA-256, so a bad copy is never even assembled;
3. the backup's verification records are copied (byte for byte, same names, never overwritten):
   off-site, `latest`, restores and retention's "newest verified" then mean what they mean on
   the primary — the records prove the very bytes the copy was checked against;
4. the manifest is written last, never over an existing one, with artifact keys pointing into
   the off-site vault and an `offsite_copy` block (when, how, how checked). Until then the copy
   does not exist off-site: an interrupted copy is invisible there and redone by the next run.

A copy that fails before its manifest is written (an artifact failing its hash check, an
unreachable store, the backup leaving the primary) removes what it wrote off-site — the artifacts
and records of that backup, and its open multipart uploads — so no orphan bytes without a manifest
stay behind (`Copier.remove_partial`; reported as `cleanup`). Not when a manifest is there after all
(another run committed it) or cannot be checked: then nothing is deleted. On a versioned bucket
the removal places delete markers and the noncurrent-version lifecycle rule frees the bytes (an
Object-Locked, already-checked artifact only once its lock expires). A worker that dies mid-copy
cannot clean up: the next run overwrites the same keys. One copier at a time (the DAG's
max_active_runs is 1), so the clean-up never deletes another run's half-written copy.

Which backups: every committed primary backup that is not off-site yet — newest first, so the
off-site recovery point catches up first — except one whose newest verification failed (never
ship a known-bad backup) and one the off-site retention policy would delete at once (else
retention and copying would undo each other every hour). Verification records added later on
the primary are copied by later runs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from gravitypm_ops.redact import scrub
from gravitypm_ops.vault.layout import (
    MANIFEST_NAME,
    VERIFICATIONS_DIR,
    ObjectMissing,
    VaultError,
    backup_prefix,
    verified_ok,
)
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.vault.streams import PART_SIZE
from gravitypm_ops.vault.transfer import COPY_PART_SIZE, copy_in_store, copy_streamed

log = logging.getLogger(__name__)
OFF = "off-site copies are off (config key offsite_bucket is empty): nothing to do"


@dataclass(frozen=True)
class CopyPlan:
    copy: tuple[dict, ...]  # primary manifests, newest first
    skip: tuple[tuple[str, str], ...]  # (backup_id, why not copied)


def plan_copies(primary: list[dict], offsite: list[dict], policy, now: datetime) -> CopyPlan:
    """Which primary backups (manifests with `verification`) to copy, given what is off-site.

    A candidate is copied only if the off-site policy, applied to what is off-site plus every
    candidate, keeps it: what off-site retention would delete right away is never copied.
    """
    from gravitypm_ops.names import INCREMENTAL_KINDS
    from gravitypm_ops.vault.retention import apply_policy, retained_backup

    present = {m["backup_id"] for m in offsite}
    skip, candidates = [], []
    for m in primary:
        if m["backup_id"] in present:
            continue
        if m.get("verification") and not verified_ok(m):
            skip.append((m["backup_id"], "its newest verification on the primary failed"))
        else:
            candidates.append(m)
    everything = offsite + candidates
    whole_buckets = any(m.get("kind") in INCREMENTAL_KINDS for m in everything)  # one kind per call
    kept = {k.backup.backup_id
            for k in apply_policy([retained_backup(m) for m in everything], policy, now, whole_buckets=whole_buckets).keep}
    skip += [(m["backup_id"], "off-site retention would not keep it") for m in candidates if m["backup_id"] not in kept]
    copy = sorted((m for m in candidates if m["backup_id"] in kept), key=lambda m: m["backup_id"], reverse=True)
    return CopyPlan(tuple(copy), tuple(sorted(skip, reverse=True)))


def missing_records(primary_keys: list[str], offsite_keys: list[str]) -> list[str]:
    """Primary verification record keys whose file name is not off-site yet (names are kept as is)."""
    have = {k.rsplit("/", 1)[-1] for k in offsite_keys}
    return [k for k in primary_keys if k.rsplit("/", 1)[-1] not in have]


CLEANUP = "offsite_cleanup"  # set on the exception copy_backup raises: what remove_partial did


class BackupGone(VaultError):
    """The primary deleted the backup (retention) while it was being copied: nothing to copy."""


class Copier:
    """Copies committed backups from `primary` to `offsite` (see the module docstring)."""

    def __init__(self, primary: Vault, offsite: Vault, *, server_side: bool,
                 copy_part_size: int = COPY_PART_SIZE, upload_part_size: int = PART_SIZE):
        self.primary, self.offsite, self.server_side = primary, offsite, server_side
        self.copy_part_size, self.upload_part_size = copy_part_size, upload_part_size

    @property
    def method(self) -> str:
        return "server-side" if self.server_side else "streamed"

    def sync(self, kind: str, policy, now: datetime) -> dict:
        """Copy what `kind` misses off-site, then the verification records added since.

        One backup failing does not stop the others; the report lists it under `failed`.
        """
        primary_backups, offsite_backups = self.primary.list_backups(kind), self.offsite.list_backups(kind)
        plan = plan_copies(primary_backups, offsite_backups, policy, now)
        primary_inventory = self.primary.inventory(kind)
        report = {"kind": kind, "method": self.method, "copied": [], "failed": [], "records_copied": 0,
                  "skipped": [{"backup_id": b, "reason": r} for b, r in plan.skip]}
        for manifest in plan.copy:
            records = primary_inventory.get(manifest["backup_id"], {}).get("verifications", [])
            try:
                report["copied"].append(self.copy_backup(manifest, records))
            except BackupGone as err:
                report["skipped"].append({"backup_id": manifest["backup_id"], "reason": str(err),
                                          "cleanup": getattr(err, CLEANUP, None)})
            except Exception as err:
                log.exception("copying %s %s off-site failed", kind, manifest["backup_id"])
                report["failed"].append({"backup_id": manifest["backup_id"], "error": scrub(f"{type(err).__name__}: {err}"),
                                         "cleanup": getattr(err, CLEANUP, None)})
        # Records the primary added after an earlier copy (the verification DAG runs after backups).
        offsite_inventory = self.offsite.inventory(kind)
        for backup_id, entry in offsite_inventory.items():
            source = primary_inventory.get(backup_id)
            try:
                for key in missing_records(source["verifications"], entry["verifications"]) if source else []:
                    report["records_copied"] += self._copy_record(key, entry["prefix"], {"kind": kind, "backup_id": backup_id})
            except Exception as err:  # like a failed copy: reported, the other backups and kinds still go
                log.exception("copying %s %s verification records off-site failed", kind, backup_id)
                report["failed"].append({"backup_id": backup_id, "error": scrub(f"records: {type(err).__name__}: {err}")})
        return report

    def copy_backup(self, manifest: dict, record_keys: list[str]) -> dict:
        """Copy one committed backup: artifacts (each checked), records, manifest last."""
        started = time.monotonic()
        kind, backup_id = manifest["kind"], manifest["backup_id"]
        prefix = backup_prefix(self.offsite.prefix, kind, backup_id)
        self.offsite.discard_incomplete(prefix)
        stored = {k: v for k, v in manifest.items() if k != "verification"}
        copy = {
            **stored,
            "artifacts": [{**a, "key": prefix + a["name"]} for a in stored["artifacts"]],
            "protection": self.offsite.protection.describe(),  # what the copy has, not the primary's KMS key
            "offsite_copy": {
                "copied": None,  # set at commit
                "method": self.method,
                "checked": "sha256 of the copy re-read" if self.server_side else "sha256 of the bytes sent",
            },
        }
        written: list[str] = []  # off-site keys this attempt (may have) written, for the clean-up
        try:
            for source, target in zip(stored["artifacts"], copy["artifacts"], strict=True):
                written.append(target["key"])
                try:
                    if self.server_side:
                        version = copy_in_store(self.primary, self.offsite, source, target["key"],
                                                part_size=self.copy_part_size)
                    else:
                        version = copy_streamed(self.primary, self.offsite, source, target["key"],
                                                part_size=self.upload_part_size)
                except ObjectMissing:
                    raise BackupGone(f"{source['key']} left the primary vault during the copy") from None
                if self.server_side:
                    self.offsite.check_artifact(copy, target["name"])  # IntegrityError unless the copy hashes right
                self.offsite.protect(target["key"], version)  # locked only once checked: a bad copy stays deletable
            for key in record_keys:
                written.append(self._record_target(key, prefix))
                self._copy_record(key, prefix, manifest)
            copy["offsite_copy"]["copied"] = datetime.now(UTC).isoformat()
            committed = self.offsite.put_once(prefix + MANIFEST_NAME, self.offsite.sign(copy))  # keys changed: re-signed
        except Exception as err:
            setattr(err, CLEANUP, self.remove_partial(prefix, written))
            raise
        seconds = round(time.monotonic() - started, 3)
        size = sum(a["size"] for a in stored["artifacts"])
        log.info("%s %s copied off-site (%s, %d bytes, %.1f s)%s", kind, backup_id, self.method, size, seconds,
                 "" if committed else ": already committed there by another run")
        return {"backup_id": backup_id, "bytes": size, "seconds": seconds, "records": len(record_keys)}

    def remove_partial(self, prefix: str, keys: list[str]) -> str:
        """After a failed copy of the backup at off-site `prefix`: delete `keys` (what the copy wrote) and
        abort its multipart uploads, unless its manifest exists (committed after all, e.g. by another
        run) or cannot be checked. Never raises; returns what was done, for the report and the log."""
        try:
            if self.offsite.read_bytes(prefix + MANIFEST_NAME) is not None:
                outcome = "nothing removed: the backup's manifest is off-site (committed by another run)"
                log.warning("%s: %s", prefix, outcome)
                return outcome
        except Exception as err:  # noqa: BLE001 - unsure whether it is committed: delete nothing
            outcome = f"nothing removed: cannot tell whether {prefix}{MANIFEST_NAME} exists ({type(err).__name__})"
            log.warning("%s", scrub(outcome))
            return outcome
        removed, kept = 0, []
        try:
            self.offsite.discard_incomplete(prefix)
        except Exception as err:  # noqa: BLE001
            kept.append(f"open uploads ({type(err).__name__})")
        for key in dict.fromkeys(keys):
            try:
                refused = self.offsite.delete_key(key)
            except Exception as err:  # noqa: BLE001
                refused = type(err).__name__
            if refused:
                kept.append(f"{key.removeprefix(prefix)} ({refused})")
            else:
                removed += 1
        outcome = f"removed {removed} partial object(s)" + (f"; could not remove {', '.join(kept)}" if kept else "")
        log.warning("failed off-site copy %s: %s", prefix, outcome)
        return scrub(outcome)

    @staticmethod
    def _record_target(key: str, offsite_prefix: str) -> str:
        return offsite_prefix + VERIFICATIONS_DIR + key.rsplit("/", 1)[-1]

    def _copy_record(self, key: str, offsite_prefix: str, manifest: dict) -> bool:
        """One verification record, same name and bytes, never over an existing one. True when it was written.
        A record the primary leaves out (unsigned, badly signed: Vault.rejection) is not copied."""
        body = self.primary.read_bytes(key)
        if body is None:
            log.info("%s left the primary vault before it was copied", key)
            return False
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if self.primary.rejection(key, doc, manifest):
            return False
        target = self._record_target(key, offsite_prefix)
        written = self.offsite.put_once(target, body)
        if not written:
            log.info("%s already off-site", target)
        return written
