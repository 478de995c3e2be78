"""
### GravityPM checklists (runbook: Daily Operations → Morning / Evening Checklist; Maintenance Procedures)

One DAG per checklist of the catalogue, `gravitypm_ops.checklists.catalog.CHECKLISTS` (the checklists
are data: adding an item, or a checklist, is one entry there):

| DAG | schedule (`GRAVITYPM_OPS_TZ`) | period |
|---|---|---|
| `gravitypm_morning_checklist` | daily 08:00 | `2026-11-27` |
| `gravitypm_evening_checklist` | daily 18:00 | `2026-11-27` |
| `gravitypm_weekly_maintenance` | Mondays 06:00 | ISO week, `2026-W48` |
| `gravitypm_monthly_maintenance` | 1st of the month 06:00 | `2026-11` |
| `gravitypm_quarterly_maintenance` | 1st of Jan/Apr/Jul/Oct 06:00 | `2026-Q4` |

One task per item (the item's id; the table below says what each one checks):
- **automated** — collects evidence (`checklists/evidence/`) and decides passed / warning / failed;
  a failed item is a red task and a Slack alert (Warning, or the item's own severity: the morning
  service health check alerts **Critical**). A warning (e.g. no backup of a kind yet) stays green.
  An SSL certificate under `tls_warning_days` also sends a Critical alert. Items reading the
  application host (disk, memory, logs, packages) run on the host queue and pool.
- **human** — a prompt in *Required Actions* (`<item>__evidence` gathers evidence first when the
  item has a collector) with the instructions and evidence; choose an outcome and write the
  required comment. No answer within `checklists.human_response_hours` (or the run's
  `human_response_hours` param) records **missed**, never passed, and fails the task; so does an
  answer recorded **failed** (*Not done / problem found*, or no comment).
- **trigger** — the quarterly disaster-recovery test starts `gravitypm_dr_drill` and waits; the
  outcome is the drill run's state.

The final task (`record_audit`; in the morning checklist `post_summary`; all_done) appends one record
per item, in item order, to the audit history in the vault (`<vault_prefix>/audit/<checklist>/`,
hash-chained, append-only; see README "Audit history") and posts the run's one summary to Slack.
`fail_run_if_any_check_failed` makes the run red when an item failed or was missed.

Settings: the `gravitypm_ops` Variable (`health_urls`, `app_root`, `logs_dir`, `disk_min_free_percent`,
`memory_max_used_percent`, `freshness_hours`, `vault_*`, `checklists`).
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, TriggerRule, dag, task

from gravitypm_ops.airflow.alerts import FailureAlert
from gravitypm_ops.airflow.conventions import NO_RETRY, cron, dag_kwargs, fail_run_if_any_check_failed
from gravitypm_ops.checklists.catalog import CHECKLISTS, HOST_COLLECTORS, HUMAN, Checklist
from gravitypm_ops.checklists.prompt import RESPONSE_HOURS_PARAM, ChecklistPrompt
from gravitypm_ops.checklists.tasks import DRILL_DAG_ID, DRILL_RUN_PREFIX
from gravitypm_ops.names import HOST_POOL, host_placement

SCHEDULE_WORDS = {"daily": "every day", "weekly": "every week", "monthly": "every month", "quarterly": "every quarter"}


def items_doc(checklist: Checklist) -> str:
    rows = "\n".join(
        f"| `{i.id}` | {i.title} | {'trigger ' + i.trigger if i.trigger else i.kind} | {i.owner} "
        f"| {i.collector or '—'} | {i.instructions} |"
        for i in checklist.items
    )
    return (
        f"\n\n#### This DAG: {checklist.title} ({SCHEDULE_WORDS[checklist.cadence]}, cron `{checklist.schedule}`; "
        f"runbook: {checklist.runbook}; audit history `{checklist.name}`)\n\n"
        f"| task | item | kind | owner | evidence | checks |\n|---|---|---|---|---|---|\n{rows}\n\n"
        f"Then `{checklist.summary_task_id}` records the audit and posts the summary.\n"
    )


@task
def run_item(checklist: str, item: str):
    from gravitypm_ops.checklists import tasks as checklists_tasks

    return checklists_tasks.run_item(checklist, item)


@task
def collect_evidence(checklist: str, item: str):
    from gravitypm_ops.checklists import tasks as checklists_tasks

    return checklists_tasks.run_item(checklist, item, decide=False)


@task(trigger_rule=TriggerRule.ALL_DONE)
def record_audit(checklist: str):
    from gravitypm_ops.checklists import tasks as checklists_tasks

    return checklists_tasks.record_audit(checklist)


def on_host(item) -> dict:
    return {**host_placement(), "pool": HOST_POOL} if item.collector in HOST_COLLECTORS else {}


def alerting(item) -> dict:
    return {"on_failure_callback": FailureAlert(item.failure_alert)} if item.failure_alert else {}


def build(checklist: Checklist):
    has_humans = any(i.kind == HUMAN for i in checklist.items)
    params = {
        RESPONSE_HOURS_PARAM: Param(
            None, type=["null", "number"], exclusiveMinimum=0, title="Hours to answer the human items",
            description="Empty: config checklists.human_response_hours (default 24). Unanswered items become missed.",
        )
    } if has_humans else {}

    @dag(
        dag_id=checklist.dag_id,
        params=params,
        **dag_kwargs(schedule=cron(checklist.schedule), doc_md=__doc__ + items_doc(checklist),
                     extra_tags=("checklist", checklist.cadence)),
    )
    def checklist_dag():
        tasks = []
        for item in checklist.items:
            if item.trigger:
                tasks.append(TriggerDagRunOperator(
                    task_id=item.id, trigger_dag_id=DRILL_DAG_ID, conf={},
                    trigger_run_id=DRILL_RUN_PREFIX + "{{ run_id }}",  # = checklists_tasks.drill_run_id()
                    wait_for_completion=True, deferrable=True, poke_interval=15,
                    fail_when_dag_is_paused=True,  # a paused drill would never run: fail, recorded
                    **NO_RETRY, **alerting(item),
                ))
            elif item.kind == HUMAN:
                prompt = ChecklistPrompt(checklist=checklist.name, item=item.id, **alerting(item))
                if item.collector:
                    evidence = collect_evidence.override(task_id=item.evidence_task_id, **on_host(item))(
                        checklist.name, item.id
                    )
                    evidence >> prompt
                    tasks.append(evidence)
                tasks.append(prompt)
            else:
                tasks.append(run_item.override(task_id=item.id, **on_host(item), **alerting(item))(
                    checklist.name, item.id))
        tasks >> record_audit.override(task_id=checklist.summary_task_id)(checklist.name)
        tasks >> fail_run_if_any_check_failed()  # else the green record leaf hides red items

    return checklist_dag()


for _checklist in CHECKLISTS.values():
    build(_checklist)
