"""The runbook's maintenance checklists, as data.

One `Checklist` per DAG (dags/gravitypm_maintenance.py builds a DAG from each); one `Item` per
line of the runbook. Adding an item is one entry here, not a new DAG:

- `automated` items run an evidence collector (evidence.py) that decides passed / warning / failed;
- `human` items are an Airflow human-in-the-loop prompt ("Required Actions") with the item's
  instructions, and the collector's evidence when the item names one; a required comment;
  no answer within `human_response_hours` makes the item "missed";
- `trigger` names a DAG to run and wait for (the quarterly DR test runs `gravitypm_dr_drill`):
  the item's outcome is that run's state.

Also here: the `checklists` config key (`parse_checklist_settings`) and the audit periods.
Pure Python: the DAG file imports this at parse time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

AUTOMATED, HUMAN = "automated", "human"
CADENCES = ("daily", "weekly", "monthly", "quarterly")
# Collectors that read the application host (its logs, disks, packages): their tasks run on the
# host queue, like the other host-bound tasks.
HOST_COLLECTORS = frozenset({"access_logs", "security_updates", "disk_space", "capacity"})

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

    @property
    def dag_id(self) -> str:
        return f"gravitypm_{self.name}"

    def __post_init__(self):
        ids = [i.id for i in self.items]
        if len(ids) != len(set(ids)):
            raise ValueError(f"checklist {self.name}: duplicate item ids")
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


# --- periods --------------------------------------------------------------------------------------


def period_of(cadence: str, moment: datetime | date) -> str:
    """The audit period a run belongs to: 2026-11-27, 2026-W48 (ISO week), 2026-11, 2026-Q4.

    `moment` is the run's logical date (or run_after), already in the ops timezone."""
    day = moment.date() if isinstance(moment, datetime) else moment
    if cadence == "daily":
        return day.isoformat()
    if cadence == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if cadence == "monthly":
        return f"{day:%Y-%m}"
    if cadence == "quarterly":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    raise ValueError(f"unknown cadence {cadence!r}; expected one of {', '.join(CADENCES)}")


def period_start(cadence: str, period: str) -> date:
    """First day of a period string (inverse of period_of)."""
    try:
        if cadence == "daily":
            return date.fromisoformat(period)
        if cadence == "weekly":
            return date.fromisocalendar(int(period[:4]), int(period.split("-W")[1]), 1)
        if cadence == "monthly":
            return date(int(period[:4]), int(period[5:7]), 1)
        if cadence == "quarterly":
            return date(int(period[:4]), 3 * (int(period.split("-Q")[1]) - 1) + 1, 1)
    except (ValueError, IndexError):
        raise ValueError(f"{period!r} is not a {cadence} period") from None
    raise ValueError(f"unknown cadence {cadence!r}; expected one of {', '.join(CADENCES)}")


def periods_between(cadence: str, first: date, last: date) -> list[str]:
    """Every period from the one containing `first` to the one containing `last`, in order."""
    periods, day = [], first
    while day <= last:
        period = period_of(cadence, day)
        if not periods or periods[-1] != period:
            periods.append(period)
        day += timedelta(days=1)
    return periods


# --- the `checklists` config key ------------------------------------------------------------------
DEFAULT_SETTINGS: dict[str, Any] = {
    # "host" or "host:port"; empty: the hosts of the https health_urls, port 443.
    "tls_endpoints": [],
    # A PEM bundle trusted in addition to the system CAs (a private CA); empty: system CAs only.
    "tls_ca_file": "",
    "tls_warning_days": 30,  # runbook: certificate expiration (< 30 days) is a Critical alert
    "tls_timeout_seconds": 10.0,
    # Failed logins (401/403 on a login path) from one client within the window that make a spike.
    "failed_login_threshold": 20,
    "login_paths": ["/login", "/api/login", "/auth/login", "/api/auth/login"],
    # Runbook: error rate < 1 % (target); > 5 % is a Warning alert.
    "error_rate_warning_percent": 1.0,
    "error_rate_failure_percent": 5.0,
    "security_updates_command": ["apt", "list", "--upgradable"],
    "security_updates_timeout_seconds": 300.0,
    # How long a human item waits for an answer before it is recorded "missed" (fractions allowed).
    "human_response_hours": 24.0,
    # Capacity: warn when free disk is projected below disk_min_free_percent within this many days,
    # or a backup kind grew more than capacity_growth_warning_percent over the trend window.
    "capacity_horizon_days": 90,
    "capacity_window_days": 90,
    "capacity_growth_warning_percent": 50.0,
    # Compliance audit: the window searched for periods without a run and for missed items.
    "compliance_window_days": 92,
}


def _number(value, *, positive=True, integer=False):
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ValueError("must be a " + ("whole number" if integer else "number"))
    if positive and value <= 0:
        raise ValueError("must be > 0")
    return value if integer else float(value)


def _endpoint(value) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9.\-]+(:\d{1,5})?", value):
        raise ValueError(f"{value!r} is not 'host' or 'host:port'")
    if ":" in value and not 0 < int(value.rsplit(":", 1)[1]) < 65536:
        raise ValueError(f"{value!r}: port out of range")
    return value


def _list_of(value, check, example: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"must be a list, e.g. {example}")
    return [check(v) for v in value]


def _argv(value) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and a for a in value):
        raise ValueError('must be a command as a list of strings, e.g. ["apt", "list", "--upgradable"]')
    return list(value)


def _paths(value) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p.startswith("/") for p in value):
        raise ValueError('must be a non-empty list of URL paths, e.g. ["/login"]')
    return list(value)


def _ca_file(value) -> str:
    if value in ("", None):
        return ""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError("must be an absolute path to a PEM file (or empty)")
    return value


def _percent(value) -> float:
    value = _number(value)
    if value >= 100:
        raise ValueError("must be a percentage below 100")
    return value


_SETTING_CHECKERS = {
    "tls_endpoints": lambda v: _list_of(v, _endpoint, '["api.gravitypm.com", "gravitypm.com:443"]'),
    "tls_ca_file": _ca_file,
    "tls_warning_days": lambda v: _number(v, integer=True),
    "tls_timeout_seconds": _number,
    "failed_login_threshold": lambda v: _number(v, integer=True),
    "login_paths": _paths,
    "error_rate_warning_percent": _percent,
    "error_rate_failure_percent": _percent,
    "security_updates_command": _argv,
    "security_updates_timeout_seconds": _number,
    "human_response_hours": _number,
    "capacity_horizon_days": lambda v: _number(v, integer=True),
    "capacity_window_days": lambda v: _number(v, integer=True),
    "capacity_growth_warning_percent": _number,
    "compliance_window_days": lambda v: _number(v, integer=True),
}
assert set(_SETTING_CHECKERS) == set(DEFAULT_SETTINGS)


def parse_checklist_settings(value: Any) -> dict:
    """The `checklists` config key: an object of overrides of DEFAULT_SETTINGS (ValueError names the bad one)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError('must be an object, e.g. {"tls_warning_days": 30}')
    unknown = sorted(set(value) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(DEFAULT_SETTINGS)}")
    settings = {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_SETTINGS.items()}
    for key, raw in value.items():
        try:
            settings[key] = _SETTING_CHECKERS[key](raw)
        except (ValueError, TypeError) as err:
            raise ValueError(f"setting {key!r} {err}") from None
    if settings["error_rate_warning_percent"] > settings["error_rate_failure_percent"]:
        raise ValueError("setting 'error_rate_warning_percent' must not exceed 'error_rate_failure_percent'")
    return settings


def settings_of(cfg) -> dict:
    """The effective checklist settings of an OpsConfig (defaults when the key was not given)."""
    return cfg.checklists if cfg.checklists else parse_checklist_settings({})


def tls_endpoints(cfg) -> list[tuple[str, int]]:
    """(host, port) to check: the configured endpoints, else the hosts of the https health_urls."""
    from urllib.parse import urlsplit

    configured = settings_of(cfg)["tls_endpoints"]
    if configured:
        return [(e.rsplit(":", 1)[0], int(e.rsplit(":", 1)[1])) if ":" in e else (e, 443) for e in configured]
    found = []
    for url in cfg.health_urls.values():
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname and (parts.hostname, parts.port or 443) not in found:
            found.append((parts.hostname, parts.port or 443))
    return found
