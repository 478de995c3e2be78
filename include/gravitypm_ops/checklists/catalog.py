"""The runbook's checklists (daily, weekly, monthly, quarterly), as data.

One `Checklist` per DAG (dags/gravitypm_checklists.py builds a DAG from each); one `Item` per
line of the runbook. Adding an item (or a checklist) is one entry here, not a new DAG file:

- `automated` items run an evidence collector (evidence/registry.py) that decides passed / warning / failed;
- `human` items are an Airflow human-in-the-loop prompt ("Required Actions") with the item's
  instructions, and the collector's evidence when the item names one; a required comment;
  no answer within `human_response_hours` makes the item "missed";
- `trigger` names a DAG to run and wait for (the quarterly DR test runs `gravitypm_dr_drill`):
  the item's outcome is that run's state.

No I/O: the DAG file imports this at parse time.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from gravitypm_ops.airflow.alerts import Severity
from gravitypm_ops.checklists.periods import CADENCES

log = logging.getLogger(__name__)

AUTOMATED, HUMAN = "automated", "human"
# Collectors that read the application host (its logs, disks, memory, packages): their tasks run on the
# host queue, like the other host-bound tasks.
HOST_COLLECTORS = frozenset({"access_logs", "security_updates", "disk_space", "memory", "capacity"})

# Human answers and the outcome each records. A timeout records "missed", never "passed".
HUMAN_OPTIONS = {
    "Done": "passed",
    "Done, with concerns": "warning",
    "Not done / problem found": "failed",
    "Waived (say why)": "waived",
}


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    kind: str  # AUTOMATED | HUMAN
    owner: str
    instructions: str
    collector: str | None = None  # an evidence.COLLECTORS name
    options: dict[str, Any] = field(default_factory=dict)  # passed to the collector (e.g. a time window)
    trigger: str | None = None  # a DAG id to run and wait for; the outcome is its run's state
    failure_alert: Severity | None = None  # the task's failure alert when it outranks the DAG's (Warning)

    def __post_init__(self):
        if self.kind not in (AUTOMATED, HUMAN):
            raise ValueError(f"item {self.id}: kind must be {AUTOMATED!r} or {HUMAN!r}")
        if self.kind == AUTOMATED and not (self.collector or self.trigger):
            raise ValueError(f"item {self.id}: an automated item needs a collector or a trigger")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.id):
            raise ValueError(f"item id {self.id!r}: lowercase letters, digits and '_' (it is the task id)")

    @property
    def evidence_task_id(self) -> str:
        """The task that collects evidence for a human item (the prompt shows it)."""
        return f"{self.id}__evidence"


@dataclass(frozen=True)
class Checklist:
    name: str  # the audit chain's name; the DAG id is gravitypm_<name>
    title: str
    cadence: str  # daily | weekly | monthly | quarterly
    schedule: str  # cron, in GRAVITYPM_OPS_TZ
    runbook: str
    items: tuple[Item, ...]
    # The final task: records the audit and posts the Slack summary (the morning checklist keeps
    # the id its users know).
    summary_task_id: str = "record_audit"

    @property
    def dag_id(self) -> str:
        return f"gravitypm_{self.name}"

    def __post_init__(self):
        ids = [i.id for i in self.items]
        if len(ids) != len(set(ids)):
            raise ValueError(f"checklist {self.name}: duplicate item ids")
        if self.summary_task_id in ids:
            raise ValueError(f"checklist {self.name}: summary_task_id {self.summary_task_id!r} is an item id")
        if self.cadence not in CADENCES:
            raise ValueError(f"checklist {self.name}: cadence must be one of {', '.join(CADENCES)}")


OPS = "ops-oncall"
LEAD = "engineering-lead"

CHECKLISTS: dict[str, Checklist] = {
    c.name: c
    for c in (
        Checklist(
            "weekly_maintenance", "Weekly maintenance", "weekly", "0 6 * * 1",
            "Maintenance Procedures → Weekly Tasks",
            (
                Item("review_monitoring_dashboards", "Review monitoring dashboards", HUMAN, OPS,
                     "Open the Grafana dashboards for the past week. Check against the runbook's targets: "
                     "p95 response time < 500 ms, error rate < 1 %, availability > 99.9 %, CPU < 80 %, "
                     "memory < 85 %, disk < 80 %, DB query time < 100 ms, replication lag < 30 s. "
                     "Note every breach and the ticket you opened for it.",
                     collector="service_health"),
                Item("check_backup_integrity", "Check backup integrity", AUTOMATED, OPS,
                     "Every backup kind has a newest backup whose verification passed.",
                     collector="backup_integrity"),
                Item("update_security_patches", "Update security patches", AUTOMATED, OPS,
                     "No security update is pending on the application host (configured command, "
                     "default `apt list --upgradable`). Pending ones: apply them in a maintenance window.",
                     collector="security_updates"),
                Item("review_access_logs", "Review access logs", AUTOMATED, OPS,
                     "access.log of the past 7 days: 401/403/5xx counts, 5xx rate, failed-login spikes.",
                     collector="access_logs", options={"window_hours": 168}),
                Item("test_failover_procedures", "Test failover procedures", HUMAN, OPS,
                     "Fail over one component (e.g. restart the app container behind the load balancer, or "
                     "promote the MongoDB secondary in staging) and confirm the service stays healthy. "
                     "Record what you failed over, how long recovery took, and any alert that fired."),
            ),
        ),
        Checklist(
            "monthly_maintenance", "Monthly maintenance", "monthly", "0 6 1 * *",
            "Maintenance Procedures → Monthly Tasks",
            (
                Item("full_backup_verification", "Full backup verification", AUTOMATED, OPS,
                     "Every retained backup of every kind has been verified, and none failed its newest "
                     "verification.",
                     collector="full_backup_verification"),
                Item("security_assessment", "Security assessment", HUMAN, LEAD,
                     "Review pending security updates (evidence below), access grants (least privilege, "
                     "MFA for every admin), WAF/IDS alerts and the month's access-log findings. Record "
                     "findings and tickets.",
                     collector="security_updates"),
                Item("performance_review", "Performance review", HUMAN, LEAD,
                     "Review the month's p95 response time, throughput and error rate against the runbook "
                     "targets (evidence below: the access log's error rates). Record regressions and actions.",
                     collector="access_logs", options={"window_hours": 720}),
                Item("capacity_planning", "Capacity planning", AUTOMATED, LEAD,
                     "Trend of DB and backup sizes in the vault; free disk on the host projected forward.",
                     collector="capacity"),
                Item("compliance_audit", "Compliance audit", AUTOMATED, LEAD,
                     "Every checklist's audit chain verifies; no period without a run; no missed items.",
                     collector="compliance"),
            ),
        ),
        Checklist(
            "quarterly_maintenance", "Quarterly maintenance", "quarterly", "0 6 1 1,4,7,10 *",
            "Maintenance Procedures → Quarterly Tasks",
            (
                Item("disaster_recovery_test", "Disaster recovery test", AUTOMATED, OPS,
                     "Runs gravitypm_dr_drill and waits for its verdict.", trigger="gravitypm_dr_drill"),
                Item("load_testing", "Load testing", HUMAN, LEAD,
                     "Run the load test against staging at 1000 req/s (the runbook's upper throughput). "
                     "Record p95 latency, error rate and the saturation point."),
                Item("architecture_review", "Architecture review", HUMAN, LEAD,
                     "Review the architecture against the quarter's incidents, capacity trend and roadmap. "
                     "Record decisions and follow-up tickets."),
                Item("team_training", "Team training", HUMAN, LEAD,
                     "Walk the on-call team through the runbook's incident response and a restore. "
                     "Record who attended and what was practised."),
            ),
        ),
        Checklist(
            "morning_checklist", "Morning checklist", "daily", "0 8 * * *",
            "Daily Operations → Morning Checklist",
            (
                Item("check_service_health", "Service health", AUTOMATED, OPS,
                     "`curl -f` each of `health_urls`: failed when one is unreachable or not 2xx "
                     "(a Critical alert). Also \"host agent online\": in a split deployment, failed when no "
                     "Edge worker serving gravitypm_host is online; \"not used\" on a single box.",
                     collector="service_health", options={"host_agent": True}, failure_alert=Severity.CRITICAL),
                Item("check_disk_space", "Disk space (> 20 % free)", AUTOMATED, OPS,
                     "The filesystems of app_root and logs_dir: failed at or below disk_min_free_percent free.",
                     collector="disk_space"),
                Item("check_memory", "Memory usage (< 85 %)", AUTOMATED, OPS,
                     "Used memory on the application host: failed at or above memory_max_used_percent.",
                     collector="memory"),
                Item("check_backup_age", "Backup completion", AUTOMATED, OPS,
                     "The newest committed backup of each kind, from the vault: failed when older than its "
                     "freshness_hours; no backup of a kind yet is a warning.",
                     collector="backup_age"),
                Item("check_vault_hygiene", "Vault hygiene", AUTOMATED, OPS,
                     "The vault bucket: failed without versioning, or without the lifecycle rules that abort "
                     "incomplete multipart uploads and expire noncurrent versions (README \"Vault bucket settings\").",
                     collector="vault_hygiene"),
            ),
            summary_task_id="post_summary",
        ),
        Checklist(
            "evening_checklist", "Evening checklist", "daily", "0 18 * * *",
            "Daily Operations → Evening Checklist",
            (
                Item("backup_verification_state", "Backup verification", AUTOMATED, OPS,
                     "Every backup kind's newest verification passed.", collector="backup_integrity"),
                Item("disk_space", "Disk space (> 20 % free)", AUTOMATED, OPS,
                     "The filesystems of app_root and the logs keep more than disk_min_free_percent free.",
                     collector="disk_space"),
                Item("failed_logins_and_access_logs", "Failed logins and access-log review", AUTOMATED, OPS,
                     "access.log of the past 24 h: failed-login spikes, 401/403/5xx counts and 5xx rate.",
                     collector="access_logs", options={"window_hours": 24}),
                Item("ssl_certificate_validity", "SSL certificate validity", AUTOMATED, OPS,
                     "Each TLS endpoint presents a valid certificate for more than tls_warning_days "
                     "(alert under 30 days).",
                     collector="tls_expiry"),
            ),
        ),
    )
}


def find_item(checklist: str, item_id: str) -> tuple[Checklist, Item]:
    chk = CHECKLISTS[checklist]
    return chk, next(i for i in chk.items if i.id == item_id)
