"""The views the plugin serves: (HTTP status, body) for each page, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import datetime

from gravitypm_ops.console.backups import load_backups, render_backups
from gravitypm_ops.console.history import (
    FilterError,
    HistoryFilter,
    csv_filename,
    load_history,
    records_csv,
    render_checklists,
    render_filter_form,
)
from gravitypm_ops.console.html import error_box, page
from gravitypm_ops.names import METRICS_CONN_ID

log = logging.getLogger(__name__)


VAULT_DOWN = "The vault cannot be read (S3 unreachable, wrong credentials or bucket?)"


def _vault_failure(err: Exception) -> str:
    from gravitypm_ops.redact import scrub

    log.warning("ops console: %s: %s", VAULT_DOWN, scrub(f"{type(err).__name__}: {err}"))
    return error_box(VAULT_DOWN, err)


def _log_problems(problems) -> None:
    from gravitypm_ops.redact import scrub

    for p in problems:
        log.warning("ops console: vault object %s cannot be used: %s", p.key, scrub(p.detail))


def checklists_view(query: Mapping[str, str], open_vault, now: datetime) -> tuple[int, str]:
    """The Checklists page. `open_vault()` gives the Vault (reading the config may fail too)."""
    try:
        f = HistoryFilter.from_query(query, now.date())
    except FilterError as err:
        body = error_box("Bad filter", str(err)) + render_filter_form(HistoryFilter(), [])
        return 400, page("Checklists", "checklists", body)
    try:
        records, chains, names, problems = load_history(open_vault(), f)
    except Exception as err:  # noqa: BLE001 - shown as an error box, logged scrubbed
        return 503, page("Checklists", "checklists", _vault_failure(err) + render_filter_form(f, []))
    _log_problems(problems)
    return 200, page("Checklists", "checklists", render_checklists(records, chains, f, names, problems))


def checklists_csv_view(query: Mapping[str, str], open_vault, now: datetime) -> tuple[int, dict, Iterator[str]]:
    """The CSV export of what the Checklists page shows with the same filters: (status, headers, body)."""
    try:
        f = HistoryFilter.from_query(query, now.date())
        from gravitypm_ops.checklists.audit import AuditLog

        records = AuditLog(open_vault()).records(**f.records_args())
    except FilterError as err:
        return 400, {"Content-Type": "text/plain; charset=utf-8"}, iter([f"Bad filter: {err}\n"])
    except Exception as err:  # noqa: BLE001
        from gravitypm_ops.redact import scrub

        _vault_failure(err)
        return 503, {"Content-Type": "text/plain; charset=utf-8"}, iter([f"{VAULT_DOWN}: {scrub(str(err))}\n"])
    headers = {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{csv_filename(f, now.date())}"',
    }
    return 200, headers, records_csv(records)


def backups_view(open_vault, now: datetime) -> tuple[int, str]:
    try:
        by_kind, status, problems = load_backups(open_vault())
    except Exception as err:  # noqa: BLE001
        return 503, page("Backups", "backups", _vault_failure(err))
    _log_problems(problems)
    return 200, page("Backups", "backups", render_backups(by_kind, status, now, problems))


def scrape_token() -> str | None:
    """The static bearer token for /metrics: the password of connection METRICS_CONN_ID, if it exists."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(METRICS_CONN_ID).password or None
    except AirflowNotFoundException:
        return None
