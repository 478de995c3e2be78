"""Human checklist items: the HITL prompt in Required Actions and how its answer becomes a result."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, TriggerRule

from gravitypm_ops.checklists.catalog import HUMAN, HUMAN_OPTIONS, Item, find_item

log = logging.getLogger(__name__)

RESULT_KEY = "item"
COMMENT = "comment"
RESPONSE_HOURS_PARAM = "human_response_hours"
MAX_COMMENT = 2000


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def prompt_body(item: Item, owner: str, evidence: dict | None, hours: float) -> str:
    """The text a responder sees in "Required Actions" (Markdown)."""
    lines = [f"**Owner:** {owner}", "", "### What to do", item.instructions, ""]
    if item.collector:
        lines.append("### Evidence gathered automatically")
        if evidence:
            lines.append(f"**{evidence['outcome']}** — {evidence['summary']}")
            lines += [f"- [{link['label']}]({link['url']})" for link in evidence.get("links", [])]
        else:
            lines.append("_Not available: the evidence task did not finish (see its log)._")
        lines.append("")
    lines += [
        "### Answer",
        "Choose an outcome and write a **comment** (required): what you checked, what you found, "
        "tickets opened; for *Waived*, why.",
        f"Without an answer within {hours:g} h the item is recorded as **missed**.",
    ]
    return "\n".join(lines)


def response_hours(context) -> float:
    from gravitypm_ops.config import load_config
    from gravitypm_ops.config.checklists import settings_of

    override = (context.get("params") or {}).get(RESPONSE_HOURS_PARAM)
    return float(override) if override else float(settings_of(load_config())["human_response_hours"])


def human_result(payload: dict, started_at: str) -> dict:
    """The item result of an answered prompt. No comment: not accepted (failed), never passed."""
    chosen = payload["chosen_options"][0] if payload.get("chosen_options") else None
    comment = str((payload.get("params_input") or {}).get(COMMENT) or "").strip()[:MAX_COMMENT]
    user = payload.get("responded_by_user") or {}
    actor = user.get("name") or user.get("id") or "unknown user"
    responded_at = payload.get("responded_at")
    responded_at = responded_at.isoformat() if isinstance(responded_at, datetime) else str(responded_at or now_iso())
    if chosen not in HUMAN_OPTIONS:
        outcome, summary = "failed", f"answer {chosen!r} is not one of the options"
    elif not comment:
        outcome, summary = "failed", f"answered {chosen!r} without the required comment: not accepted"
    else:
        outcome, summary = HUMAN_OPTIONS[chosen], f"{chosen}: {comment}"
    return {
        "outcome": outcome, "summary": summary, "links": [], "actor": actor,
        "data": {"answer": chosen, "comment": comment, "responded_at": responded_at},
        "started_at": started_at, "completed_at": responded_at,
    }


def missed_result(reason: str, started_at: str) -> dict:
    return {"outcome": "missed", "summary": reason, "links": [], "data": {}, "actor": "automation",
            "started_at": started_at, "completed_at": now_iso()}


class ChecklistPrompt(HITLOperator):
    """One human checklist item in "Required Actions": the item's instructions and evidence, an
    outcome to choose and a required comment. A timeout records "missed" and fails the task; so does
    an answer recorded "failed" (problem found, or no comment)."""

    def __init__(self, *, checklist: str, item: str, **kwargs):
        chk, it = find_item(checklist, item)
        if it.kind != HUMAN:
            raise ValueError(f"{checklist}.{item} is not a human item")
        from airflow.sdk.definitions.param import ParamsDict

        # apply_defaults hands in the DAG's params; the form shows only task-level ones (the comment).
        params = ParamsDict(kwargs.pop("params", None) or {})
        params[COMMENT] = Param("", type="string", title="Comment (required)",
                                description="What you checked and found; tickets; for Waived, why.")
        super().__init__(
            task_id=it.id,
            subject=f"{chk.title}: {it.title}",
            body=it.instructions,
            options=list(HUMAN_OPTIONS),
            params=params,
            trigger_rule=TriggerRule.ALL_DONE,  # evidence that failed to load must not skip the question
            retries=0,  # a human prompt is never re-asked on its own
            **kwargs,
        )
        self.checklist, self.item_id = checklist, item

    def execute(self, context):
        chk, item = find_item(self.checklist, self.item_id)
        evidence = (context["ti"].xcom_pull(task_ids=item.evidence_task_id, key=RESULT_KEY)
                    if item.collector else None)
        hours = response_hours(context)
        self.body = prompt_body(item, item.owner, evidence, hours)
        self.response_timeout = timedelta(hours=hours)
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]):
        from airflow.providers.standard.exceptions import HITLTimeoutError

        ti = context["ti"]
        started = (ti.start_date or datetime.now(UTC)).isoformat()
        if event.get("error_type") == "timeout":
            ti.xcom_push(key=RESULT_KEY, value=missed_result(
                f"no answer within {response_hours(context):g} h: missed", started))
            raise HITLTimeoutError(f"{self.subject}: no answer in time; recorded as missed")
        payload = super().execute_complete(context, event)
        result = human_result(dict(payload), started)
        ti.xcom_push(key=RESULT_KEY, value=result)
        log.info("%s answered by %s: %s", self.subject, result["actor"], result["outcome"])
        if result["outcome"] == "failed":  # like a failed automated item: a red task, so the run is red
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{self.subject}: {result['summary']}")
        return payload
