"""The drill report: JSON + Markdown in the vault, the Slack summary and the audit record."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime

from gravitypm_ops.airflow.alerts import Severity
from gravitypm_ops.drill.drill import DRILLS_DIR
from gravitypm_ops.vault.layout import WriteConflict
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)


def _fmt(minutes: float | None) -> str:
    return "-" if minutes is None else f"{minutes:.2f}"


def _mark(ok: bool) -> str:
    return "ok" if ok else "**MISSED**"


def render_markdown(report: dict) -> str:
    rto_target = report["targets"]["rto_minutes"]
    lines = [
        f"# DR drill {report['drill_id']}: {report['verdict'].upper()}",
        "",
        f"- Run: `{report['dag_id']}` / `{report['run_id']}`",
        f"- Started: {report['started']} — finished: {report['finished']}",
        f"- Source vault: {report['source']}; backups as of: {report['as_of'] or 'latest verified'}; "
        f"RPO measured at: {report['rpo_reference']}",
        f"- Targets: RTO {rto_target:g} min; RPO "
        + ", ".join(f"{k} {v:g} h" for k, v in report["targets"]["rpo_hours"].items()),
        f"- Isolated targets: database `{report['scratch_database'] or '-'}`, directory "
        f"`{report['scratch_dir'] or 'temporary'}`; cleanup: {'yes' if report['cleanup'] else 'no (kept)'}",
        "",
        "| component | backup | verified | RPO (h) | RPO | RTO (min) | RTO | restore + validation | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, c in report["components"].items():
        lines.append(
            f"| {kind} | `{c['backup_id']}` | {'yes' if c['verified'] else 'no'} | {c['rpo_hours']:.3g} "
            f"(≤ {c['rpo_target_hours']:g}) | {_mark(c['rpo_ok'])} | {_fmt(c['rto_minutes'])} | {_mark(c['rto_ok'])} | "
            f"{c['restore']}: {c['detail'].replace('|', '/')} | {c['status']} |"
        )
    total = report["total"]
    lines += ["", f"Total RTO (first restore start to last validation end): {_fmt(total['rto_minutes'])} min "
              f"(target {rto_target:g}) — {_mark(total['rto_ok'])}"]
    kept = [f"- {kind}: `{', '.join(c['target']) if isinstance(c['target'], list) else c['target']}`"
            for kind, c in report["components"].items() if c["kept"]]
    if kept:
        lines += ["", "Kept restores (cleanup false; remove them when done):", *kept]
    if report["failures"]:
        lines += ["", "## Failures", *[f"- {f}" for f in report["failures"]]]
    return "\n".join(lines) + "\n"


def report_keys(vault: Vault, drill_id: str) -> dict[str, str]:
    base = f"{vault.prefix}/{DRILLS_DIR}/{drill_id}/"
    return {"json": base + "report.json", "md": base + "report.md"}


def write_report(vault: Vault, report: dict) -> dict[str, str]:
    """report.json and report.md under <prefix>/drills/<drill id>/, never overwritten (a retry of
    the same run finds them written and keeps them)."""
    keys = report_keys(vault, report["drill_id"])
    bodies = {
        "json": (json.dumps(report, indent=2, sort_keys=True, default=str).encode(), "application/json"),
        "md": (render_markdown(report).encode(), "text/markdown; charset=utf-8"),
    }
    for name, (body, content_type) in bodies.items():
        try:
            written = vault.put_once(keys[name], body, content_type)
        except WriteConflict:  # another attempt of this run is writing it right now
            written = False
        if not written:
            log.info("%s already written by this run: kept", keys[name])
    return keys


PRIMARY_UNREACHABLE = "primary vault unreachable"


def write_reports(source_vault: Vault, source: str, report: dict, primary=None) -> dict[str, dict]:
    """The report in the vault the drill restored from — the one left standing in a real disaster —
    and, for a drill from the off-site copy, in the primary vault too when it can be reached.

    `primary` opens the primary vault (called only when `source` is not "primary"). Returns
    {vault name: {"bucket", "keys"}}; a primary that cannot be written gets `"keys": None` and
    `"error"`, and the drill still reports. A failure to write the source vault raises.
    """
    from gravitypm_ops.redact import scrub

    copies = {source: {"bucket": source_vault.bucket, "keys": write_report(source_vault, report)}}
    if source != "primary" and primary is not None:
        try:
            vault = primary()
            copies["primary"] = {"bucket": vault.bucket, "keys": write_report(vault, report)}
        except Exception as err:  # noqa: BLE001 - the primary's region may be the one that is gone
            error = scrub(f"{PRIMARY_UNREACHABLE}: {type(err).__name__}: {err}")
            log.warning("drill %s: report not written to the primary vault (%s); it is in the %s vault",
                        report["drill_id"], error, source)
            copies["primary"] = {"bucket": None, "keys": None, "error": error}
    return copies


def slack_summary(report: dict, links: Mapping[str, str]) -> str:
    passed = report["verdict"] == "passed"
    severity = Severity.INFO if passed else Severity.WARNING
    lines = [
        f"{severity.icon} *[{severity.value}] DR drill `{report['drill_id']}` {report['verdict'].upper()}* — "
        f"total RTO {_fmt(report['total']['rto_minutes'])} min (target {report['targets']['rto_minutes']:g}), "
        f"source {report['source']}, backups as of {report['as_of'] or 'latest verified'}",
    ]
    for kind, c in report["components"].items():
        lines.append(
            f"• {kind} `{c['backup_id']}`: restore {c['restore']}, RTO {_fmt(c['rto_minutes'])} min, "
            f"RPO {c['rpo_hours']:.3g} h (target {c['rpo_target_hours']:g} h) → {c['status']}"
        )
    lines += [f"• ✗ {f}" for f in report["failures"][:10]]
    lines.append("Report: " + ", ".join(f"`{key}`" for key in links.values())
                 + (f" (bucket `{report['bucket']}`)" if report.get("bucket") else ""))
    primary = (report.get("copies") or {}).get("primary") or {}
    if primary.get("error"):
        lines.append(f"• not in the primary vault: {primary['error']}")
    return "\n".join(lines)


def audit_record(report: dict, links: Mapping[str, str], bucket: str) -> dict:
    """The drill's record in the checklist audit history (checklist `dr_drill`)."""
    started = datetime.fromisoformat(report["started"])
    return {
        "period": f"{started.year}-Q{(started.month - 1) // 3 + 1}",
        "run_id": report["run_id"],
        "dag_id": report["dag_id"],
        "item": "dr_drill",
        "title": "Disaster-recovery drill: restore " + ", ".join(report["components"]) + " into isolated targets",
        "item_kind": "automated",
        "outcome": report["verdict"],
        "actor": "automation",
        "started_at": report["started"],
        "completed_at": report["finished"],
        "evidence": {
            "summary": "; ".join([f"DR drill {report['drill_id']} {report['verdict']}: total RTO "
                                  f"{_fmt(report['total']['rto_minutes'])} min", *report["failures"][:5]]),
            "links": [{"label": f"report.{name}", "url": f"s3://{bucket}/{key}"} for name, key in links.items()],
            "data": {
                "drill_id": report["drill_id"],
                "source": report["source"],
                "as_of": report["as_of"],
                "total_rto_minutes": report["total"]["rto_minutes"],
                "components": {
                    kind: {k: c[k] for k in ("backup_id", "status", "rto_minutes", "rpo_hours")}
                    for kind, c in report["components"].items()
                },
            },
        },
    }
