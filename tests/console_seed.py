"""What the console tests show: backups with their verifications and two checklists' audit chains, written
through the vault API (seed), shared by the console's integration and browser tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gravitypm_ops.checklists.audit import AuditLog
from gravitypm_ops.vault.store import Vault
from tests.backups import record_verification, write_backup

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


@dataclass
class Seeded:
    """What seed() wrote, for the assertions."""

    db_ids: list[str]
    logs_id: str
    failed_db_id: str
    weekly: list[dict]
    evening: list[dict]


def audit_item(name: str, outcome: str, completed: datetime, period: str, run: str, actor: str = "automation") -> dict:
    return {
        "period": period, "run_id": run, "dag_id": "gravitypm_weekly_maintenance", "item": name,
        "title": name.replace("_", " ").capitalize(), "item_kind": "human" if actor != "automation" else "automated",
        "outcome": outcome, "actor": actor, "started_at": completed - timedelta(minutes=1), "completed_at": completed,
        "evidence": {"summary": f"{name}: evidence <ok>", "links": [
            {"label": "task log", "url": f"http://127.0.0.1:8080/dags/x/runs/{run}/tasks/{name}"},
            {"label": "vault object", "url": "s3://gravitypm-vault/production/status.json"}]},
    }


def seed(vault: Vault) -> Seeded:
    """Three db backups (sizes growing; verified passed, passed, failed), one logs backup never verified,
    and two checklists' audit chains across two periods."""
    db = [write_backup(vault, "db", T0 + timedelta(hours=6 * i), b"d" * (1000 * (i + 1))) for i in range(3)]
    for manifest, status in zip(db, ("passed", "passed", "failed"), strict=True):
        record_verification(vault, manifest, status)
    logs = write_backup(vault, "logs", T0 + timedelta(hours=1), b"l" * 700)
    audit = AuditLog(vault)
    day1, day2 = T0 + timedelta(hours=2), T0 + timedelta(days=2, hours=2)
    weekly = audit.append("weekly_maintenance", [
        audit_item("review_dashboards", "passed", day1, "2026-W47", "scheduled__1"),
        audit_item("check_backup_integrity", "failed", day1 + timedelta(minutes=2), "2026-W47", "scheduled__1"),
        audit_item("test_failover", "missed", day1 + timedelta(minutes=9), "2026-W47", "scheduled__1"),
    ])
    weekly += audit.append("weekly_maintenance", [
        audit_item("review_dashboards", "passed", day2, "2026-W48", "scheduled__2"),
        audit_item("review_access_logs", "warning", day2 + timedelta(minutes=3), "2026-W48", "scheduled__2", actor="ana"),
    ])
    evening = audit.append("evening_checklist", [audit_item("disk_space", "passed", day2, "2026-11-27", "scheduled__3")])
    return Seeded([m["backup_id"] for m in db], logs["backup_id"], db[2]["backup_id"], weekly, evening)
