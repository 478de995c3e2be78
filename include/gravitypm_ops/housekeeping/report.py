"""The housekeeping run's report: one text for the task log and Slack, one audit record for the trend.

The record goes to the audit history (checklist `airflow_housekeeping`, one record per run, item
`housekeeping`): the vault, not Airflow's DB, so it survives every clean and the monthly capacity
review can read sizes over months. It is not a catalogue checklist, so the compliance audit verifies its
chain but expects no period of it.
"""

from __future__ import annotations

from gravitypm_ops.names import HOUSEKEEPING_CHECKLIST

AUDIT_CHECKLIST = HOUSEKEEPING_CHECKLIST
AUDIT_ITEM = "housekeeping"
TITLE = "Airflow housekeeping"


def human_bytes(size: int | None) -> str:
    if size is None:
        return "n/a"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _top(rows: dict[str, int], n: int = 6) -> str:
    shown = sorted(((t, c) for t, c in rows.items() if c), key=lambda tc: (-tc[1], tc[0]))[:n]
    return ", ".join(f"{t} {c}" for t, c in shown) or "none"


def metadata_line(meta: dict | None) -> str:
    if not meta:
        return ":x: metadata DB: no report (the clean-up task failed before measuring; see its log)"
    verb = "would remove" if meta["dry_run"] else "removed"
    before, after = meta["before"], meta["after"]
    icon = ":x:" if meta.get("error") else ":white_check_mark:"
    rows_before, rows_after = sum(before["rows"].values()), sum(after["rows"].values())
    line = (f"{icon} metadata DB ({before['backend']}, rows older than {meta['cutoff'][:16]}): {verb} "
            f"{sum(meta['removed'].values())} row(s) ({_top(meta['removed'])}); big tables {rows_before} → "
            f"{rows_after} rows; DB size {human_bytes(before['db_bytes'])} → {human_bytes(after['db_bytes'])}")
    if meta.get("error"):
        line += f"\n    *{meta['error']}*"
    return line


def logs_line(logs: dict | None) -> str:
    if not logs:
        return ":x: task logs: no report (the log task failed before measuring; see its log)"
    local = logs["local"]
    icon = ":x:" if logs.get("error") else ":white_check_mark:"
    if not local["exists"]:
        line = f"{icon} task logs: no local log folder {local['folder']}"
    else:
        verb = "would remove" if local["dry_run"] else "removed"
        line = (f"{icon} task logs (older than {logs['log_keep_days']} days): {verb} {local['files']} file(s) "
                f"({human_bytes(local['bytes'])}); log folder {human_bytes(local['before_bytes'])} → "
                f"{human_bytes(local['after_bytes'])}")
        if local["errors"]:
            line += f"; {len(local['errors'])} could not be removed: {'; '.join(local['errors'][:3])}"
    if logs.get("remote"):
        line += f"\n    remote logs {logs['remote']['folder']}: {logs['remote']['detail']}"
    if logs.get("error"):
        line += f"\n    *{logs['error']}*"
    return line


def outcome(meta: dict | None, logs: dict | None) -> str:
    bad = not meta or not logs or meta.get("error") or logs.get("error") or logs["local"].get("errors")
    return "failed" if bad else "passed"


def summary_text(meta: dict | None, logs: dict | None, *, dag_id: str, run_id: str, dry_run: bool) -> str:
    head = f"*{TITLE}*{' (dry run: nothing changed)' if dry_run else ''} ({run_id}): {outcome(meta, logs)}"
    return "\n".join([head, metadata_line(meta), logs_line(logs)])


def evidence_data(meta: dict | None, logs: dict | None, *, dry_run: bool) -> dict:
    """The trend figures, kept small: sizes and counts, no paths and no command output."""
    data: dict = {"dry_run": dry_run}
    if meta:
        data["metadata"] = {
            "cutoff": meta["cutoff"], "keep_days": meta["keep_days"], "backend": meta["before"]["backend"],
            "db_bytes": {"before": meta["before"]["db_bytes"], "after": meta["after"]["db_bytes"]},
            "rows": {"before": meta["before"]["rows"], "after": meta["after"]["rows"]},
            "removed": meta["removed"], "error": meta.get("error"),
        }
    if logs:
        local = logs["local"]
        data["task_logs"] = {
            "folder": local["folder"], "log_keep_days": logs["log_keep_days"],
            "folder_bytes": {"before": local["before_bytes"], "after": local["after_bytes"]},
            "removed_files": local["files"], "removed_bytes": local["bytes"], "errors": local["errors"][:10],
            "remote": logs.get("remote"), "error": logs.get("error"),
        }
    return data


def audit_record(meta: dict | None, logs: dict | None, *, period: str, dag_id: str, run_id: str, dry_run: bool,
                 started_at, completed_at) -> dict:
    summary = "\n".join([metadata_line(meta), logs_line(logs)])
    return {
        "schema": 1, "checklist": AUDIT_CHECKLIST, "period": period, "run_id": run_id, "dag_id": dag_id,
        "item": AUDIT_ITEM, "title": TITLE, "item_kind": "automated", "outcome": outcome(meta, logs),
        "actor": "automation", "started_at": started_at, "completed_at": completed_at,
        "evidence": {"summary": summary[:2000], "links": [], "data": evidence_data(meta, logs, dry_run=dry_run)},
    }
