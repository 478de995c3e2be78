"""The human approval of a production restore: Airflow's ApprovalOperator that also keeps the
decision (who, what, when) as XCom, so the run's report can name the approver."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

DECISION_KEY = "decision"


class RestoreApproval(ApprovalOperator):
    """Approve / Reject in "Required Actions". Reject skips the restore (the report still runs);
    no answer within `response_timeout` fails the task: nothing changes either way."""

    def execute_complete(self, context, event: dict[str, Any]):
        # Airflow 3.3 does not push the HITL return value when a task resumes from awaiting
        # input, so the decision is pushed here, before a Reject skips what follows.
        if "error" not in event:
            user = event.get("responded_by_user") or {}
            context["ti"].xcom_push(key=DECISION_KEY, value={
                "decision": (event.get("chosen_options") or ["?"])[0],
                "by": user.get("name") or user.get("id"),
                "at": str(event.get("responded_at")),
            })
        return super().execute_complete(context, event)
