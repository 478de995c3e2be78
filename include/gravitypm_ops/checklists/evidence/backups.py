"""Evidence from the vault: newest backups fresh (daily), verified (weekly), every retained backup verified
(monthly)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from gravitypm_ops.checklists.evidence.base import FAILED, PASSED, WARNING, Evidence, combine, from_check, s3_link
from gravitypm_ops.names import BACKUP_KINDS

log = logging.getLogger(__name__)


STALE_UNVERIFIED_HOURS = 3.0  # verification runs hourly and on every new backup


def judge_backup_summaries(summaries: dict[str, dict | None]) -> tuple[list[tuple[str, str]], dict]:
    """Per kind, from Vault.summary: the newest backup's verification state."""
    parts, data = [], {}
    for kind, s in summaries.items():
        if s is None:
            parts.append((WARNING, f"{kind}: no backup yet"))
            data[kind] = None
            continue
        data[kind] = {k: s[k] for k in ("latest_id", "age_hours", "verified", "latest_verified_id", "count")}
        last = s.get("last_verification")
        if last and last["status"] != "passed":
            failed = [c["name"] for c in last.get("checks", []) if c.get("status") != "passed"]
            parts.append((FAILED, f"{kind}: newest backup {s['latest_id']} FAILED verification"
                          + (f" ({', '.join(failed)})" if failed else "")))
        elif s["latest_verified_id"] is None:
            parts.append((WARNING, f"{kind}: no backup verified yet ({s['count']} committed)"))
        elif not s["verified"] and s["age_hours"] > STALE_UNVERIFIED_HOURS:
            parts.append((WARNING, f"{kind}: newest backup {s['latest_id']} still unverified after "
                          f"{s['age_hours']:.1f} h (latest verified: {s['latest_verified_id']})"))
        else:
            parts.append((PASSED, f"{kind}: verified {s['latest_verified_id']}"))
    return parts, data


def backup_integrity(cfg, options: dict, now: datetime) -> Evidence:
    """The newest backup of each kind verified and passed (the verification DAG's status)."""
    from gravitypm_ops.vault.layout import MANIFEST_NAME, backup_prefix
    from gravitypm_ops.vault.store import Vault

    vault = Vault.from_config(cfg)
    summaries = {kind: vault.summary(kind, now) for kind in BACKUP_KINDS}
    parts, data = judge_backup_summaries(summaries)
    links = [s3_link(vault, f"{vault.prefix}/status.json", "backup status")]
    for kind, s in summaries.items():
        if s and s["latest_verified_id"]:
            key = backup_prefix(vault.prefix, kind, s["latest_verified_id"]) + MANIFEST_NAME
            links.append(s3_link(vault, key, f"{kind} latest verified manifest"))
    return combine(parts, data, links)


def backup_age(cfg, options: dict, now: datetime) -> Evidence:
    """Runbook "Verify backup completion": the newest *committed* backup of each kind is younger than
    its freshness_hours ("did the backups run?"; whether they restore is backup_integrity's question).
    No backup of a kind yet is a warning (a new installation)."""
    from gravitypm_ops.host.checks import check_backup_age
    from gravitypm_ops.vault.layout import MANIFEST_NAME, backup_prefix
    from gravitypm_ops.vault.store import Vault

    vault = Vault.from_config(cfg)
    newest = {kind: (vault.list_backups(kind)[-1:] or [None])[0] for kind in BACKUP_KINDS}
    finished = {kind: datetime.fromisoformat(m["finished"]) if m else None for kind, m in newest.items()}
    evidence = from_check(check_backup_age(finished, cfg.freshness_hours, now))
    evidence.data["newest"] = {kind: m["backup_id"] if m else None for kind, m in newest.items()}
    evidence.links += [s3_link(vault, backup_prefix(vault.prefix, kind, m["backup_id"]) + MANIFEST_NAME,
                               f"{kind} newest manifest") for kind, m in newest.items() if m]
    return evidence


def judge_full_verification(backups_by_kind: dict[str, list[dict]], now: datetime) -> tuple[list, dict]:
    """Every retained backup verified at least once (young ones excepted), none failing its newest."""
    parts, data = [], {}
    for kind, backups in backups_by_kind.items():
        failed = [m["backup_id"] for m in backups if m["verification"] and m["verification"].get("status") != "passed"]
        never = [m["backup_id"] for m in backups if m["verification"] is None
                 and now - datetime.fromisoformat(m["finished"]) > timedelta(hours=STALE_UNVERIFIED_HOURS)]
        passed = sum(1 for m in backups if m["verification"] and m["verification"].get("status") == "passed")
        data[kind] = {"backups": len(backups), "passed": passed, "failed": failed[:20], "never_verified": never[:20]}
        if not backups:
            parts.append((WARNING, f"{kind}: no backups"))
        elif failed:
            parts.append((FAILED, f"{kind}: {len(failed)} backup(s) failed verification: {', '.join(failed[:5])}"))
        elif never:
            parts.append((WARNING, f"{kind}: {len(never)} backup(s) never verified: {', '.join(never[:5])}"))
        else:
            parts.append((PASSED, f"{kind}: all {len(backups)} backup(s) verified"))
    return parts, data


def full_backup_verification(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.vault.store import Vault

    vault = Vault.from_config(cfg)
    parts, data = judge_full_verification({k: vault.list_backups(k) for k in BACKUP_KINDS}, now)
    return combine(parts, data, [s3_link(vault, f"{vault.prefix}/status.json", "backup status")])
