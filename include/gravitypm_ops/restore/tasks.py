"""Task bodies of gravitypm_db_restore and gravitypm_fs_restore.

The DAGs are the runbook's recovery procedures; these functions are their steps. State passes
between steps as XCom (the plan, small reports), never as files: each step may run elsewhere.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from gravitypm_ops.airflow.glue import fail_fast
from gravitypm_ops.config import load_config
from gravitypm_ops.restore.plan import RestoreRefused

log = logging.getLogger(__name__)

STOPPED_KEY = "app_stop_attempted"  # pushed by stop_app before it acts: start_app's cue


def _vault(cfg, source: str):
    from gravitypm_ops.vault.open import open_vault

    try:
        return open_vault(cfg, source or "primary")
    except ValueError as err:
        raise fail_fast(str(err)) from None


def holder(context) -> str:
    return f"{context['dag_run'].dag_id}/{context['dag_run'].run_id}"


def plan(kind_of_restore: str, params, context) -> dict:
    """Validate everything before anything changes; hold a retention lease; log and return the plan."""
    from gravitypm_ops.restore import plan as restore_plan
    from gravitypm_ops.vault import leases

    cfg = load_config()
    vault = _vault(cfg, params.get("source"))
    now = datetime.now(UTC)
    try:
        if kind_of_restore == "db":
            result = restore_plan.plan_db_restore(cfg, vault, params, now)
        else:
            result = restore_plan.plan_file_restore(cfg, vault, params, now)
    except RestoreRefused as err:
        raise fail_fast(f"refused, nothing changed: {err}") from None
    result["source"] = params.get("source") or "primary"
    if not result["dry_run"]:
        # Retention must not delete this kind's backups (ours included) while we restore.
        leases.hold(vault, result["backup"]["kind"], holder(context))
    log.info("restore plan:\n%s", _plan_text(result))
    return result


def _plan_text(plan: dict) -> str:
    b = plan["backup"]
    lines = [
        (f"backup      {b['backup_id']} ({b['kind']}, {b['age_hours']} h old, {b['bytes']} bytes, "
         f"verified: {b['verified']}, from {plan['source']})"),
        f"target      {plan.get('target_database') or plan.get('target_path')}"
        + (" (PRODUCTION)" if plan["production"] else ""),
    ]
    if "collections" in plan:
        lines.append(f"collections {', '.join(plan['collections'])}")
    if "paths" in plan:
        lines.append(f"paths       {plan['paths'] or 'everything'}; mirror: {plan['mirror']}")
    if plan.get("artifact_checked"):
        lines.append(f"artifact    {plan['artifact_bytes']} bytes re-read: size and SHA-256 match the manifest")
    if "bytes_needed" in plan:
        lines.append(f"space       {plan['bytes_needed']} bytes of files to restore, {plan['bytes_free']} bytes free")
    lines.append(f"stop app    {plan['stop_app']}; dry run: {plan['dry_run']}")
    return "\n".join(lines)


def choose_path(plan: dict) -> str:
    """The branch after planning: report only (dry run), ask a human, or go."""
    if plan["dry_run"]:
        return "report"
    return "approve" if plan.get("needs_approval") else "safety_backup"


def take_safety_backup(plan: dict, context) -> dict | None:
    from gravitypm_ops.airflow.glue import manifest_summary, mongo_client
    from gravitypm_ops.restore.apply import safety_backup
    from gravitypm_ops.vault.store import Vault

    cfg = load_config()
    dag_run = context["dag_run"]
    manifest = safety_backup(cfg, Vault.from_config(cfg), mongo_client(), plan,
                             dag_id=dag_run.dag_id, run_id=dag_run.run_id, run_after=dag_run.run_after)
    return None if manifest is None else manifest_summary(manifest)


def pulled_plan(context) -> dict:
    return context["ti"].xcom_pull(task_ids="plan")


def choose_stop(context) -> str:
    """The branch before the restore: stop the app first (a host task) or go straight to the restore."""
    return "stop_app" if pulled_plan(context)["stop_app"] else "restore"


def choose_start(context) -> str | None:
    """The branch after the restore, whatever its outcome: start the app only if this run tried to stop it."""
    if context["ti"].xcom_pull(task_ids="stop_app", key=STOPPED_KEY):
        return "start_app"
    log.info("this run did not stop the app: nothing to start")
    return None


def stop_app(plan: dict, context) -> dict:
    """Stop the app when the plan says so. In the fs restore not stopping is a success, not a skip: the
    restore after it must still run (a skip would cascade); the DB restore branches around it instead."""
    from gravitypm_ops.host.service_control import run_service_action

    if not plan["stop_app"]:
        log.info("the target is not production (or stop_services is off): the app keeps running")
        return {"action": "stop_app", "not_needed": True}
    context["ti"].xcom_push(key=STOPPED_KEY, value=True)  # before acting: a half-done stop still gets a start
    return run_service_action(load_config(), "stop_app")


def start_app(context) -> dict:
    """Runs whatever happened upstream: if this run tried to stop the app, start it again."""
    from gravitypm_ops.host.service_control import run_service_action

    if not context["ti"].xcom_pull(task_ids="stop_app", key=STOPPED_KEY):
        log.info("this run did not stop the app: nothing to start")
        return {"action": "start_app", "not_needed": True}
    return run_service_action(load_config(), "start_app")


def restore_db(plan: dict) -> dict:
    from gravitypm_ops.airflow.glue import mongo_client
    from gravitypm_ops.restore.apply import restore_db as run

    cfg = load_config()
    return run(_vault(cfg, plan["source"]), mongo_client(), plan)


def restore_files(plan: dict) -> dict:
    from gravitypm_ops.restore.apply import restore_files as run

    cfg = load_config()
    return run(_vault(cfg, plan["source"]), plan)


def validate(plan: dict) -> dict:
    """Runbook "Validate Recovery": the health endpoints answer, and (db) the counts."""
    from gravitypm_ops.host import checks as host_checks

    cfg = load_config()
    health = host_checks.check_health(cfg.health_urls)
    result = {"health": health.to_dict()}
    if "target_database" in plan:
        from gravitypm_ops.airflow.glue import mongo_client
        from gravitypm_ops.restore.apply import count_drift

        result["counts"] = count_drift(mongo_client(), plan)
    if health.status == host_checks.BREACH:
        raise fail_fast("after the restore the health checks fail: " + "; ".join(
            f.detail for f in health.findings if f.status == host_checks.BREACH))
    return result


STEPS = ("plan", "approve", "safety_backup", "stop_app", "restore", "start_app", "validate")


def report(context) -> dict:
    """One summary of the run, whatever happened: Slack, and the rollback hint when it failed."""
    from gravitypm_ops.airflow.alerts import send_slack
    from gravitypm_ops.airflow.approval import DECISION_KEY
    from gravitypm_ops.vault import leases
    from gravitypm_ops.vault.open import open_vault

    ti, dag_run = context["ti"], context["dag_run"]
    states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id]).get(dag_run.run_id, {})
    pull = {step: ti.xcom_pull(task_ids=step) for step in STEPS}
    the_plan = pull["plan"]
    failed = [s for s in STEPS if states.get(s) == "failed"]  # not the upstream_failed ones after them
    approval = ti.xcom_pull(task_ids="approve", key=DECISION_KEY)
    result = {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "states": {s: states.get(s) for s in STEPS if s in states},
        "plan": the_plan,
        "approval": approval,
        "safety_backup": (pull["safety_backup"] or {}).get("backup_id"),
        "restore": pull["restore"],
        "validation": pull["validate"],
    }
    if the_plan is None:
        outcome = "refused: nothing changed"
    elif the_plan["dry_run"]:
        outcome = "dry run: nothing changed"
    elif failed == ["approve"]:
        outcome = "no approval in time: nothing changed"
    elif failed:
        outcome = "FAILED at " + ", ".join(failed)
    elif approval and approval["decision"] == "Reject":
        outcome = "rejected by the approver: nothing changed"
    elif states.get("restore") == "success":
        outcome = "restored"
    else:
        outcome = "not restored"
    result["outcome"] = outcome
    send_slack(_slack_text(result))
    if the_plan is not None and not the_plan["dry_run"]:
        cfg = load_config()
        leases.release(open_vault(cfg, the_plan["source"]), the_plan["backup"]["kind"], holder(context))
    log.info("restore outcome: %s", outcome)
    return result


def _slack_text(result: dict) -> str:
    from gravitypm_ops.airflow.alerts import Severity

    plan = result["plan"]
    failed = result["outcome"].startswith("FAILED")
    icon = Severity.CRITICAL.icon if failed else Severity.INFO.icon
    lines = [f"{icon} *{result['dag_id']}* ({result['run_id']}): {result['outcome']}"]
    if plan:
        b = plan["backup"]
        target = plan.get("target_database") or plan.get("target_path")
        lines.append(f"• backup `{b['backup_id']}` ({b['kind']}, {b['age_hours']} h old, verified: {b['verified']}) "
                     f"→ `{target}`" + (" (production)" if plan["production"] else ""))
    if result["approval"]:
        lines.append(f"• {result['approval']['decision']} by {result['approval']['by']} at {result['approval']['at']}")
    if result["safety_backup"]:
        lines.append(f"• safety backup of the target before the restore: `{result['safety_backup']}`")
    if failed:
        if result["safety_backup"]:
            lines.append(f"• to roll back, restore backup_id `{result['safety_backup']}` (allow_unverified if it "
                         "is not verified yet)")
        elif plan and plan.get("target_path"):
            lines.append("• the target was not changed unless the move into place had started; see the task log")
    return "\n".join(lines)
