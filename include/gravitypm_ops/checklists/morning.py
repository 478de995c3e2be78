"""Task bodies of the daily checklist DAGs: read config, run a check, report it.

A check publishes its result as the XCom key ``check`` *before* failing, so the
summary can describe red tasks too; a threshold breach raises AirflowFailException
(no retry: re-measuring a breach at once would only delay the alert).
"""

from __future__ import annotations

from datetime import UTC, datetime

from gravitypm_ops.config import load_config
from gravitypm_ops.host import checks as host_checks
from gravitypm_ops.names import BACKUP_KINDS

RESULT_KEY = "check"


def report(result: host_checks.CheckResult) -> dict:
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    payload = result.to_dict()
    get_current_context()["ti"].xcom_push(key=RESULT_KEY, value=payload)
    for finding in result.findings:
        print(f"[{finding.status.upper()}] {finding.subject}: {finding.detail}")
    if result.breaches():
        raise AirflowFailException(
            f"{result.check}: " + "; ".join(f"{f.subject}: {f.detail}" for f in result.breaches())
        )
    return payload


def service_health() -> dict:
    return report(host_checks.check_health(load_config().health_urls))


def disk_space() -> dict:
    cfg = load_config()
    return report(host_checks.check_disk(cfg.disk_paths, cfg.disk_min_free_percent))


def memory() -> dict:
    return report(host_checks.check_memory(load_config().memory_max_used_percent))


def backup_age() -> dict:
    from gravitypm_ops.vault.store import Vault

    cfg = load_config()
    vault = Vault.from_config(cfg)
    # Age of the newest *committed* backup ("did the backups run?"); whether they restore is the
    # verification DAG's audit.
    newest = {kind: vault.list_backups(kind)[-1:] for kind in BACKUP_KINDS}
    latest = {kind: datetime.fromisoformat(m[0]["finished"]) if m else None for kind, m in newest.items()}
    return report(host_checks.check_backup_age(latest, cfg.freshness_hours, datetime.now(UTC)))


def vault_hygiene() -> dict:
    from gravitypm_ops.vault.store import Vault

    cfg = load_config()
    return report(host_checks.check_vault_hygiene(Vault.from_config(cfg).bucket_settings(), cfg.vault_prefix))


def post_summary(title: str, check_task_ids) -> str:
    from airflow.sdk import get_current_context

    from gravitypm_ops.airflow.alerts import send_slack

    context = get_current_context()
    ti = context["ti"]
    results = {}
    for task_id in check_task_ids:
        data = ti.xcom_pull(task_ids=task_id, key=RESULT_KEY)
        results[task_id.removeprefix("check_")] = host_checks.CheckResult.from_dict(data) if data else None
    statuses = [r.status if r else host_checks.BREACH for r in results.values()]
    verdict = (
        f"{statuses.count(host_checks.BREACH)} failed" if host_checks.BREACH in statuses
        else f"all clear, {statuses.count(host_checks.WARNING)} warning(s)" if host_checks.WARNING in statuses
        else "all clear"
    )
    text = host_checks.summary_text(f"*{title}* ({ti.run_id}): {verdict}", results)
    send_slack(text)
    return text
