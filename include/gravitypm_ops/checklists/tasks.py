"""Task bodies of the checklist DAGs (dags/gravitypm_checklists.py builds one per catalogue entry).

Every item task leaves its result as the XCom key ``item`` — {"outcome", "summary", "links",
"data", "actor", "started_at", "completed_at"} — *before* it fails, so the final task
(`record_audit`, or the checklist's `summary_task_id`; trigger rule all_done) can write one audit
record per item, in item order, whatever happened. An item without a result is recorded from its
task state: "missed" for a human item (never "passed"), "failed" for an automated one.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

from gravitypm_ops.checklists.catalog import AUTOMATED, CHECKLISTS, HUMAN, Checklist, Item, find_item
from gravitypm_ops.checklists.periods import period_of
from gravitypm_ops.checklists.prompt import RESULT_KEY, missed_result, now_iso

log = logging.getLogger(__name__)
DRILL_DAG_ID = "gravitypm_dr_drill"
DRILL_RUN_PREFIX = "quarterly_maintenance__"  # + the checklist run's id = the drill run it starts


def ui_url(path: str) -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="").rstrip("/") + path


def task_link(dag_id: str, run_id: str, task_id: str) -> dict:
    return {"label": f"task {task_id}", "url": ui_url(f"/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}")}


def drill_run_id(run_id: str) -> str:
    """The DR drill run a quarterly checklist run starts (fixed, so record_audit can find it)."""
    return DRILL_RUN_PREFIX + run_id


def run_item(checklist: str, item_id: str, *, decide: bool = True) -> dict:
    """Collect the item's evidence and publish it; `decide`: a "failed" outcome fails the task.

    Evidence for a human item (decide=False) never fails the task: the human judges it."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from gravitypm_ops.checklists.evidence.base import FAILED
    from gravitypm_ops.checklists.evidence.registry import collect
    from gravitypm_ops.config import load_config

    context = get_current_context()
    _, item = find_item(checklist, item_id)
    started = now_iso()
    evidence = collect(item.collector, load_config(), item.options)
    result = {**evidence.to_dict(), "actor": "automation", "started_at": started, "completed_at": now_iso()}
    result.pop("alert")
    context["ti"].xcom_push(key=RESULT_KEY, value=result)
    print(f"[{evidence.outcome.upper()}] {item.title}: {evidence.summary}")
    _alert_critical(f"{item.title}: {evidence.alert}" if evidence.alert else None, context)
    if decide and evidence.outcome == FAILED:
        raise AirflowFailException(f"{item.title}: {evidence.summary}")
    return result


def _alert_critical(text: str | None, context) -> None:
    """The item's Critical alert (`text`), or None: its condition is clear.

    One alert per checklist task: posted when it starts (or changes), reminded every
    `alerts.repeat_hours` while later runs still see it, "recovered" once a run no longer does."""
    from gravitypm_ops.airflow.alerts import Severity, clear, fire, recovered_since
    from gravitypm_ops.redact import scrub

    ti = context["ti"]
    key = f"checklist/{ti.dag_id}/{ti.task_id}"
    if text is None:
        clear(key, lambda state: (f"{Severity.INFO.icon} *[Info] {ti.dag_id} recovered*: `{ti.task_id}` raises no "
                                  f"Critical alert in run `{ti.run_id}` after {recovered_since(state)}."))
        return
    fire(key, f"{Severity.CRITICAL.icon} *[Critical] {ti.dag_id}*: {scrub(text)}\n"
              f"• Run: `{ti.run_id}` • Task: `{ti.task_id}`",
         reason=text, facts={"severity": Severity.CRITICAL.value, "last_run": ti.run_id})


def run_period(checklist: Checklist, dag_run) -> str:
    from zoneinfo import ZoneInfo

    from gravitypm_ops.names import schedule_timezone

    moment = dag_run.logical_date or dag_run.run_after
    return period_of(checklist.cadence, moment.astimezone(ZoneInfo(schedule_timezone())))


def outcome_without_result(item: Item, state: str | None) -> dict:
    """An item that published no result: never "passed"."""
    reason = f"no result: task ended {state or 'without running'}"
    if item.kind == HUMAN:
        return missed_result(reason + " (no answer recorded)", now_iso())
    return {"outcome": "failed", "summary": reason + " (see its log)", "links": [], "data": {"task_state": state},
            "actor": "automation", "started_at": now_iso(), "completed_at": now_iso()}


def drill_result(ti, run_id: str, state: str | None) -> dict:
    """The DR test's outcome is the drill run's state; its own audit record is quoted as evidence."""
    drill = drill_run_id(run_id)
    try:
        drill_state = ti.get_dagrun_state(DRILL_DAG_ID, drill)
    except Exception as err:  # noqa: BLE001 - no such run: the trigger never happened
        drill_state = None
        log.warning("drill run %s not found: %s", drill, err)
    outcome = {"success": "passed", "failed": "failed"}.get(str(drill_state), "failed")
    summary = (f"{DRILL_DAG_ID} run {drill} ended {drill_state}" if drill_state
               else f"{DRILL_DAG_ID} was not started (task ended {state})")
    return {"outcome": outcome, "summary": summary, "actor": "automation", "started_at": now_iso(),
            "completed_at": now_iso(), "data": {"drill_run_id": drill, "drill_state": drill_state},
            "links": [{"label": "drill run", "url": ui_url(f"/dags/{DRILL_DAG_ID}/runs/{quote(drill, safe='')}")}]}


def collect_results(checklist: Checklist, ti, dag_id: str, run_id: str) -> list[tuple[Item, dict]]:
    task_ids = [i.id for i in checklist.items]
    states = ti.get_task_states(dag_id=dag_id, task_ids=task_ids, run_ids=[run_id]).get(run_id, {})
    results = []
    for item in checklist.items:
        state = states.get(item.id)
        if item.trigger:
            result = drill_result(ti, run_id, state)
        else:
            result = ti.xcom_pull(task_ids=item.id, key=RESULT_KEY) or outcome_without_result(item, state)
        if item.kind == HUMAN and item.collector:
            gathered = ti.xcom_pull(task_ids=item.evidence_task_id, key=RESULT_KEY)
            result = with_gathered_evidence(result, gathered)
        result["links"] = [task_link(dag_id, run_id, item.id), *result.get("links", [])]
        results.append((item, result))
    return results


def with_gathered_evidence(result: dict, gathered: dict | None) -> dict:
    """A human item's record also carries the evidence the responder was shown."""
    shown = ({"outcome": gathered["outcome"], "summary": gathered["summary"], "data": gathered.get("data", {})}
             if gathered else None)
    return {**result, "data": {**(result.get("data") or {}), "gathered_evidence": shown},
            "links": [*result.get("links", []), *(gathered or {}).get("links", [])]}


def not_yet_recorded(records: list[dict], tail: list[dict], run_id: str) -> list[dict]:
    """The records of this run still to append: a retried record_audit skips those already stored
    (a run's records are contiguous at the chain's end: one active run per checklist)."""
    done = {r["item"] for r in tail if r["run_id"] == run_id}
    return [r for r in records if r["item"] not in done]


MAX_EVIDENCE_DATA = 16 * 1024  # bytes of JSON; the summary and links always stay


def bounded(data: dict) -> dict:
    """Evidence data as recorded: kept whole when small, else replaced by a note (never fails the record)."""
    size = len(json.dumps(data, default=str))
    return data if size <= MAX_EVIDENCE_DATA else {"truncated": f"{size} bytes of evidence data; see the task log"}


def build_record(checklist: Checklist, item: Item, result: dict, *, period: str, dag_id: str, run_id: str) -> dict:
    return {
        "schema": 1, "checklist": checklist.name, "period": period, "run_id": run_id, "dag_id": dag_id,
        "item": item.id, "title": item.title, "item_kind": HUMAN if item.kind == HUMAN else AUTOMATED,
        "outcome": result["outcome"], "actor": result.get("actor") or "automation",
        "started_at": result["started_at"], "completed_at": result["completed_at"],
        "evidence": {"summary": result["summary"][:2000], "links": result["links"][:20],
                     "data": bounded(result.get("data") or {})},
    }


def record_audit(checklist_name: str) -> dict:
    """Append one audit record per item, in item order (items already recorded by an earlier try of
    this task are skipped), then post the run's summary to Slack (also when the append fails for
    good, saying so)."""
    from airflow.sdk import get_current_context

    from gravitypm_ops.airflow.alerts import send_slack
    from gravitypm_ops.checklists.audit import AuditLog
    from gravitypm_ops.config import load_config

    context = get_current_context()
    ti, dag_run = context["ti"], context["dag_run"]
    checklist = CHECKLISTS[checklist_name]
    period = run_period(checklist, dag_run)
    records = [
        build_record(checklist, item, result, period=period, dag_id=dag_run.dag_id, run_id=dag_run.run_id)
        for item, result in collect_results(checklist, ti, dag_run.dag_id, dag_run.run_id)
    ]
    for record in records:
        print(f"[{record['outcome'].upper()}] {record['title']} ({record['actor']}): {record['evidence']['summary']}")
    text = summary_text(checklist, period, records, dag_run.run_id)
    try:
        audit = AuditLog.from_config(load_config())
        stored = audit.append(checklist.name, not_yet_recorded(records, audit.tail(checklist.name, len(records)),
                                                               dag_run.run_id))
    except Exception as err:
        # The run's summary still goes out once, on the last try: a vault outage must not silence it.
        if ti.try_number > ti.max_tries:
            from gravitypm_ops.redact import scrub

            send_slack(f"{text}\n:x: *audit records NOT written*: {scrub(f'{type(err).__name__}: {err}')[:300]}")
        raise
    send_slack(text)
    return {"period": period, "appended": [r["seq"] for r in stored],
            "outcomes": {r["item"]: r["outcome"] for r in records}}


ICONS = {"passed": ":white_check_mark:", "warning": ":warning:", "failed": ":x:", "missed": ":hourglass:",
         "waived": ":heavy_minus_sign:"}


def summary_text(checklist: Checklist, period: str, records: list[dict], run_id: str) -> str:
    from collections import Counter

    from gravitypm_ops.redact import scrub

    counts = Counter(r["outcome"] for r in records)
    verdict = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    lines = [f"*{checklist.title}* {period} ({run_id}): {verdict}"]
    lines += [f"{ICONS[r['outcome']]} *{r['title']}* ({r['actor']}): {scrub(r['evidence']['summary'])[:300]}"
              for r in records]
    return "\n".join(lines)
