"""Compliance evidence: every audit chain verifies; periods without a run, items missed."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from gravitypm_ops.checklists.evidence.base import FAILED, PASSED, WARNING, Evidence, combine
from gravitypm_ops.config.checklists import settings_of

log = logging.getLogger(__name__)


def compliance_findings(chains: dict[str, dict], records: dict[str, list[dict]], expected: dict[str, list[str]]):
    """Chains that do not verify (failed); periods with no run and missed items (warning)."""
    shown = {name: {**r, "problems": r["problems"][:10]} for name, r in chains.items()}  # evidence stays small
    parts, data = [], {"chains": shown, "gaps": {}, "missed": []}
    for name, report in sorted(chains.items()):
        if not report["ok"]:
            parts.append((FAILED, f"{name}: audit chain does not verify: {'; '.join(report['problems'][:3])}"))
        else:
            parts.append((PASSED, f"{name}: chain of {report['records']} record(s) verifies"))
    for name, periods in expected.items():
        seen = {r["period"] for r in records.get(name, [])}
        gaps = [p for p in periods if p not in seen]
        if gaps:
            data["gaps"][name] = gaps[:100]
            parts.append((WARNING, f"{name}: no run for {', '.join(gaps[:6])}" + (" …" if len(gaps) > 6 else "")))
    for name, found in records.items():
        for r in found:
            if r["outcome"] == "missed":
                data["missed"].append({"checklist": name, "period": r["period"], "item": r["item"]})
    if data["missed"]:
        shown = ", ".join(f"{m['checklist']} {m['period']} {m['item']}" for m in data["missed"][:6])
        parts.append((WARNING, f"{len(data['missed'])} missed item(s): {shown}"))
    data["missed"] = data["missed"][:100]
    return parts, data


def compliance(cfg, options: dict, now: datetime) -> Evidence:
    """Verify every audit chain; find periods without a run and missed items in the window."""
    from zoneinfo import ZoneInfo

    from gravitypm_ops.checklists.audit import AuditLog
    from gravitypm_ops.checklists.catalog import CHECKLISTS
    from gravitypm_ops.checklists.periods import period_of, period_start, periods_between
    from gravitypm_ops.names import schedule_timezone

    settings = settings_of(cfg)
    audit = AuditLog.from_config(cfg)
    # Every defined checklist too: a wiped chain is no longer listed, but its delete markers are found.
    names = sorted(set(audit.checklists()) | set(CHECKLISTS))
    chains = {name: audit.verify(name).to_dict() for name in names}
    tz = ZoneInfo(schedule_timezone())
    today = now.astimezone(tz).date()
    window_start = today - timedelta(days=settings["compliance_window_days"])
    # The history begins with its oldest record: periods before it are not gaps (a new installation).
    firsts = [audit.first(name) for name in names]
    began = min((datetime.fromisoformat(r["completed_at"]).astimezone(tz).date() for r in firsts if r), default=today)
    start = max(window_start, began)
    records, expected = {}, {}
    for checklist in CHECKLISTS.values():
        records[checklist.name] = audit.records(checklist.name, since=datetime.combine(start, datetime.min.time(), tz))
        current = period_of(checklist.cadence, today)
        expected[checklist.name] = [
            p for p in periods_between(checklist.cadence, start, today)
            if p != current and period_start(checklist.cadence, p) >= start
        ]
    parts, data = compliance_findings(chains, records, expected)
    data["window"] = {"from": start.isoformat(), "to": today.isoformat()}
    root = f"{audit.root}"
    return combine(parts, data, [{"label": "audit history", "url": f"s3://{audit.vault.bucket}/{root}"}])
