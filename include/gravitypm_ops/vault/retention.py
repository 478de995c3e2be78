"""Backup retention: which backups to keep and which to delete, as a pure function.

Modelled on restic's `ApplyPolicy` (internal/data/snapshot_policy.go, formerly
internal/restic/snapshot_policy.go). Backups are walked newest -> oldest; each rule
keeps a backup whose bucket (hour/day/ISO week/month/year, in UTC) differs from the
bucket of the last backup that rule kept, until the rule's count is used up. "last N"
keeps the N newest. `within_days` is restic's `--keep-within Nd`: every backup finished
strictly after (newest backup's time - N days) is kept — counted from the newest backup, not
from `now`, so backups that stop for a while do not empty the vault; a backup exactly N days
older than the newest is outside. One backup may be kept for several reasons.

Deliberate differences from restic: no -1 ("keep all") counts, keep-within in whole days only
(no hours/months, no keep-within-daily/...), no tags, and
no "oldest snapshot" rule (restic >= 0.17 also keeps the oldest snapshot while a rule has
counts left); here each rule keeps at most one backup per bucket. Instead, three
protections always win: the newest backup, the newest verified backup, and a safety
backup (taken before a restore) until its `safety_until`.

The policy is pure. `apply_retention` (at the end) runs it on a vault: it deletes
`Decision.remove` (manifest first, then artifacts), keeps what a lease holds, and reports
Object Lock refusals as "kept: locked".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from gravitypm_ops.names import INCREMENTAL_KINDS
from gravitypm_ops.vault.layout import SAFETY_PURPOSE, verified_ok

if TYPE_CHECKING:
    from gravitypm_ops.vault.store import Vault


def _utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(timezone.utc)


@dataclass(frozen=True)
class RetainedBackup:
    backup_id: str
    finished: datetime  # aware; normalised to UTC
    verified: bool = False
    safety_until: datetime | None = None  # a pre-restore "safety" backup: keep until then

    def __post_init__(self) -> None:
        if not self.backup_id:
            raise ValueError("backup_id must be a non-empty string")
        object.__setattr__(self, "finished", _utc(self.finished, f"{self.backup_id}: finished"))
        if self.safety_until is not None:
            object.__setattr__(self, "safety_until", _utc(self.safety_until, f"{self.backup_id}: safety_until"))


def retained_backup(manifest: dict) -> RetainedBackup:
    """What the retention policy needs to know of a backup (a manifest with its `verification`)."""
    return RetainedBackup(
        backup_id=manifest["backup_id"],
        finished=datetime.fromisoformat(manifest["finished"]),
        # "newest verified" protects what `latest` resolves to, which a safety backup never is
        verified=verified_ok(manifest) and manifest.get("purpose") != SAFETY_PURPOSE,
        safety_until=datetime.fromisoformat(manifest["safety_until"]) if manifest.get("safety_until") else None,
    )


@dataclass(frozen=True)
class RetentionPolicy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within_days: int = 0  # restic --keep-within: everything newer than (newest - N days)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"retention {f.name!r}: must be a non-negative integer, got {value!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetentionPolicy:
        if not isinstance(d, Mapping):
            raise ValueError(f"retention policy must be an object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise ValueError(f"unknown retention key {key!r}; expected some of {', '.join(sorted(known))}")
        return cls(**d)

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def is_empty(self) -> bool:
        return not any(self.to_dict().values())


@dataclass(frozen=True)
class KeptBackup:
    backup: RetainedBackup
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    keep: tuple[KeptBackup, ...]  # newest first
    remove: tuple[RetainedBackup, ...]  # newest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "keep": [
                {"backup_id": k.backup.backup_id, "finished": k.backup.finished.isoformat(), "reasons": list(k.reasons)}
                for k in self.keep
            ],
            "remove": [{"backup_id": b.backup_id, "finished": b.finished.isoformat()} for b in self.remove],
        }


# Bucket functions, as restic's ymdh/ymd/yw/ym/y: equal values = same bucket.
_BUCKETS: tuple[tuple[str, Callable[[datetime], tuple[int, ...]]], ...] = (
    ("hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", lambda t: tuple(t.isocalendar())[:2]),  # ISO year + week: 2024-12-30 is 2025-W01
    ("monthly", lambda t: (t.year, t.month)),
    ("yearly", lambda t: (t.year,)),
)


def apply_policy(backups: Iterable[RetainedBackup], policy: RetentionPolicy, now: datetime, *,
                 whole_buckets: bool = False) -> Decision:
    """Split `backups` into keep (with reasons) and remove; input order does not matter.

    whole_buckets: a kept bucket keeps every backup in it, for kinds whose backups each hold
    different data (`logs`: a newer backup of the same day does not replace an older one)."""
    now = _utc(now, "now")
    # Newest first; equal timestamps ordered by backup_id (descending), so "newest" is unique.
    ordered = sorted(backups, key=lambda b: (b.finished, b.backup_id), reverse=True)
    ids = [b.backup_id for b in ordered]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate backup_id(s): {', '.join(dupes)}")

    reasons: dict[str, list[str]] = {b.backup_id: [] for b in ordered}

    if policy.is_empty:
        for b in ordered:
            reasons[b.backup_id].append("policy is empty")
    else:
        if policy.within_days and ordered:
            # restic: latest.AddDate(0, 0, -N) and cur.Time.After(cutoff) -> strictly after
            cutoff = ordered[0].finished - timedelta(days=policy.within_days)
            for b in ordered:
                if b.finished <= cutoff:
                    break  # newest first: every later one is older still
                reasons[b.backup_id].append(f"within {policy.within_days} days")
        for b in ordered[: policy.last]:
            reasons[b.backup_id].append(f"last {policy.last}")
        for name, bucket_of in _BUCKETS:
            left = getattr(policy, name)
            last_bucket = None
            for b in ordered:
                bucket = bucket_of(b.finished)
                if bucket != last_bucket:
                    if left == 0:
                        break
                    reasons[b.backup_id].append(name)
                    last_bucket = bucket
                    left -= 1
                elif whole_buckets:
                    reasons[b.backup_id].append(name)

    # Protections: always kept, whatever the policy says.
    if ordered:
        reasons[ordered[0].backup_id].append("newest backup")
    newest_verified = next((b for b in ordered if b.verified), None)
    if newest_verified is not None:
        reasons[newest_verified.backup_id].append("newest verified")
    for b in ordered:
        if b.safety_until is not None and b.safety_until > now:
            reasons[b.backup_id].append(f"safety backup until {b.safety_until.isoformat()}")

    keep = tuple(KeptBackup(b, tuple(reasons[b.backup_id])) for b in ordered if reasons[b.backup_id])
    remove = tuple(b for b in ordered if not reasons[b.backup_id])
    return Decision(keep=keep, remove=remove)


# Defaults per backup kind (names.BACKUP_KINDS; runbook schedules). Counts are buckets, not backups.
DEFAULT_RETENTION: dict[str, RetentionPolicy] = {
    # DB every 6 h: the last 4 cover the last day at full resolution (fine-grained
    # point-in-time choice after a bad deploy), then a week of dailies, a month of
    # weeklies and half a year of monthlies.
    "db": RetentionPolicy(last=4, daily=7, weekly=4, monthly=6),
    # Files and config are backed up daily, so "last" would only duplicate "daily".
    "fs": RetentionPolicy(daily=7, weekly=4, monthly=6),
    "config": RetentionPolicy(daily=7, weekly=4, monthly=6),
    # Logs: the runbook's logrotate keeps 30 days (`rotate 30`); the archive matches it by age
    # (every logs backup of the 30 days before the newest one), not by a count of days that
    # happen to have a backup.
    "logs": RetentionPolicy(within_days=30),
}


# --- running the policy on a vault ---------------------------------------------------------------
def delete_backup(vault: Vault, manifest: dict) -> str | None:
    """Delete one backup: manifest first (it stops existing), then its artifacts.

    Returns None when deleted, or the reason it was kept (Object Lock, legal hold, or the
    store refusing the delete). On a versioned bucket this places delete markers; the
    lifecycle rule for noncurrent versions frees the space.
    """
    from gravitypm_ops.vault.layout import MANIFEST_NAME, backup_prefix

    key = backup_prefix(vault.prefix, manifest["kind"], manifest["backup_id"]) + MANIFEST_NAME
    locked = vault.locked_until(key)
    if locked:
        return f"locked ({locked})"
    refused = vault.delete_key(key)
    if refused:
        return f"locked (delete refused: {refused})"
    for artifact in manifest["artifacts"]:
        vault.delete_key(artifact["key"])
    return None


def apply_retention(vault: Vault, kind: str, policy: RetentionPolicy, now: datetime, *,
                    dry_run: bool = False) -> dict:
    """Decide with the policy, then delete what it removes (unless dry_run).

    A backup the store refuses to delete (Object Lock, legal hold, IAM) is kept and
    reported as "kept: locked (…)"; while a lease is held on the kind nothing is deleted.
    """
    from gravitypm_ops.vault import leases

    manifests = {m["backup_id"]: m for m in vault.list_backups(kind)}
    decision = apply_policy([retained_backup(m) for m in manifests.values()], policy, now,
                            whole_buckets=kind in INCREMENTAL_KINDS)
    report = {
        "kind": kind,
        "dry_run": dry_run,
        "policy": policy.to_dict(),
        "kept": [{"backup_id": k.backup.backup_id, "reasons": list(k.reasons)} for k in decision.keep],
        "removed": [],
    }
    for backup in decision.remove:
        if dry_run:
            report["removed"].append(backup.backup_id)
            continue
        # Asked again before each delete: a restore may have started since the decision.
        holders = [lease["holder"] for lease in leases.active(vault, kind)]
        if holders:
            report["kept"].append({"backup_id": backup.backup_id, "reasons": [f"kept: in use by {', '.join(holders)}"]})
            continue
        refused = delete_backup(vault, manifests[backup.backup_id])
        if refused:
            report["kept"].append({"backup_id": backup.backup_id, "reasons": [f"kept: {refused}"]})
        else:
            report["removed"].append(backup.backup_id)
    return report
