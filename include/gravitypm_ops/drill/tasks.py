"""Task bodies of gravitypm_dr_drill."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from gravitypm_ops.drill.drill import CHECKLIST, DrillRefused, judge, plan_drill, restore_component
from gravitypm_ops.drill.report import audit_record, slack_summary, write_reports
from gravitypm_ops.vault import leases
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)


def _holder(context) -> str:
    return f"{context['dag_run'].dag_id}/{context['dag_run'].run_id}"


def plan_task(params: Mapping, context) -> dict:
    from gravitypm_ops.airflow.glue import fail_fast
    from gravitypm_ops.config import load_config
    from gravitypm_ops.vault.open import open_vault

    cfg, run = load_config(), context["dag_run"]
    try:
        vault = open_vault(cfg, params.get("source", "primary"))
        plan = plan_drill(params, cfg, vault, dag_id=run.dag_id, run_id=run.run_id, now=datetime.now(UTC))
    except (DrillRefused, ValueError) as err:
        raise fail_fast(f"DR drill refused, nothing written: {err}") from None
    log.info("drill %s plan: %s", plan["drill_id"], json.dumps(plan["backups"], sort_keys=True))
    return plan


def hold_task(plan: dict, context) -> list[str]:
    """A retention lease per component's kind on the source vault, for the drill's duration."""
    from gravitypm_ops.config import load_config
    from gravitypm_ops.vault.open import open_vault

    vault = open_vault(load_config(), plan["source"])
    return [leases.hold(vault, kind, _holder(context)) for kind in plan["components"]]


def component_task(kind: str, plan: dict, context) -> dict:
    """Restore + validate one component. The result goes to XCom key `result` also when the
    component fails (the task then fails too), so the report can say why."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from gravitypm_ops.airflow.glue import scratch_mongo_client
    from gravitypm_ops.config import load_config
    from gravitypm_ops.vault.open import open_vault

    if kind not in plan["components"]:
        raise AirflowSkipException(f"{kind} is not among this drill's components")
    cfg = load_config()
    vault = open_vault(cfg, plan["source"])
    holder = _holder(context)
    if not any(lease["holder"] == holder for lease in leases.active(vault, kind)):
        raise AirflowFailException(f"no retention lease on {kind} for {holder}: retention could remove the "
                                   "backup during the restore")
    client = scratch_mongo_client() if kind == "db" else None
    try:
        result = restore_component(kind, plan, cfg, vault, mongo_client=client)
    finally:
        if client is not None:
            client.close()
    result["lease"] = holder
    context["ti"].xcom_push(key="result", value=result)
    if result["status"] != "passed":
        raise AirflowFailException(f"{kind} backup {result['backup_id']}: restore failed: {result['detail']}")
    return result


def release_task(context) -> list[str]:
    """Release the leases (runs whatever happened before)."""
    from gravitypm_ops.config import load_config
    from gravitypm_ops.vault.open import open_vault

    plan = context["ti"].xcom_pull(task_ids="plan_drill")
    if not plan:
        return []  # refused before any lease was taken
    vault = open_vault(load_config(), plan["source"])
    for kind in plan["components"]:
        leases.release(vault, kind, _holder(context))
    return plan["components"]


def report_task(context) -> dict:
    from airflow.sdk.exceptions import AirflowSkipException

    from gravitypm_ops.config import load_config
    from gravitypm_ops.vault.open import open_vault

    ti = context["ti"]
    plan = ti.xcom_pull(task_ids="plan_drill")
    if not plan:
        raise AirflowSkipException("the drill was refused: nothing to report (see plan_drill)")
    results = {kind: ti.xcom_pull(task_ids=f"drill_{kind}", key="result") for kind in plan["components"]}
    report = judge(plan, results, datetime.now(UTC))
    cfg = load_config()
    # Written where the drill restored from first: a drill from the off-site copy rehearses losing the
    # primary, so its evidence must not depend on it; the primary gets a copy when it answers.
    source = plan.get("source", "primary")
    source_vault = Vault.from_config(cfg) if source == "primary" else open_vault(cfg, source)
    copies = write_reports(source_vault, source, report, primary=lambda: Vault.from_config(cfg))
    report["report"], report["bucket"] = copies[source]["keys"], copies[source]["bucket"]
    report["copies"] = copies
    log.info("drill %s %s; report s3://%s/%s%s", report["drill_id"], report["verdict"], report["bucket"],
             report["report"]["json"], "".join(f"; {name}: s3://{c['bucket']}/{c['keys']['json']}"
                                               for name, c in copies.items() if name != source and c["keys"]))
    return report


def post_summary_task(report: dict) -> None:
    from gravitypm_ops.airflow.alerts import send_slack

    send_slack(slack_summary(report, report["report"]))


def record_audit_task(report: dict) -> dict:
    """One record per drill run in the `dr_drill` audit chain (a retry finds it and adds none)."""
    from airflow.sdk.exceptions import AirflowFailException

    from gravitypm_ops.checklists.audit import AuditLog
    from gravitypm_ops.config import load_config
    from gravitypm_ops.redact import scrub

    audit = AuditLog.from_config(load_config())
    try:
        existing = [r for r in audit.records(CHECKLIST) if r.get("run_id") == report["run_id"]]
    except Exception as err:
        if report.get("source", "primary") == "primary":
            raise
        # A drill from the off-site copy with the primary gone: the audit chain lives in the primary.
        raise AirflowFailException(
            f"audit record not written: the primary vault (which holds the audit history) cannot be read "
            f"({scrub(f'{type(err).__name__}: {err}')}); the drill report is in s3://{report['bucket']}/"
            f"{report['report']['json']}. Clear this task once the primary answers: it records the drill then."
        ) from None
    if existing:
        return {"seq": existing[-1]["seq"], "hash": existing[-1]["hash"]}
    stored = audit.append(CHECKLIST, [audit_record(report, report["report"], report["bucket"])])[0]
    return {"seq": stored["seq"], "hash": stored["hash"]}


def judge_task(report: dict) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    if report["verdict"] != "passed":
        raise AirflowFailException("DR drill failed: " + "; ".join(report["failures"]))
    return report["verdict"]
