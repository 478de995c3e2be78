"""Small nested config blocks: `alerts` and `housekeeping` (defaults + checkers)."""

from __future__ import annotations

from typing import Any

from gravitypm_ops.overrides import apply_overrides, boolean, positive_number, whole_number

# Alertmanager's semantics: a firing alert is posted once, reminded every repeat_hours while it
# keeps firing, and "recovered" is posted when it clears.
ALERT_DEFAULTS: dict[str, Any] = {"repeat_hours": 4.0}

# gravitypm_airflow_housekeeping: Airflow's own metadata rows and task logs older than these go.
HOUSEKEEPING_DEFAULTS: dict[str, Any] = {
    "keep_days": 90,  # `airflow db clean` cut-off
    "archive": False,  # False = `--skip-archive` (no _airflow_deleted__* copies of cleaned rows)
    "log_keep_days": 30,  # task-log files in the Airflow log folder
}


def parse_alert_settings(value: Any) -> dict:
    return apply_overrides({} if value is None else value, {"repeat_hours": positive_number}, ALERT_DEFAULTS,
                           path="alerts", noun="setting")


def parse_housekeeping_settings(value: Any) -> dict:
    checkers = {"keep_days": whole_number(0), "archive": boolean, "log_keep_days": whole_number(0)}
    return apply_overrides({} if value is None else value, checkers, HOUSEKEEPING_DEFAULTS,
                           path="housekeeping", noun="setting")
