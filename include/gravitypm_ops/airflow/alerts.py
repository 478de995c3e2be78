"""Slack alerts with the runbook's severities, sent through the slack provider's webhook hook.

- `FailureAlert(severity)`: a task-level ``on_failure_callback`` (set for every task by
  `conventions`): DAG, task, run, try number, the reason and a link to the task log.
- `RecoveryAlert()`: a DAG-level ``on_success_callback``: says "recovered" when the run
  before this one failed, and nothing otherwise (no noise on every green run).

Messages never carry secrets: exception text is scrubbed of URI credentials and
``key=value`` secrets before it leaves the worker.
"""

from __future__ import annotations

from enum import Enum

from airflow.sdk import BaseNotifier

from gravitypm_ops.names import SLACK_CONN_ID
from gravitypm_ops.redact import scrub


class Severity(str, Enum):
    """Runbook "Alert Categories"."""

    CRITICAL = "Critical"  # immediate response: service down, DB unreachable, data loss
    WARNING = "Warning"  # within 1 hour: high resource usage, backup failures
    INFO = "Info"  # monitor: maintenance notifications, config changes

    @property
    def icon(self) -> str:
        return {"Critical": ":red_circle:", "Warning": ":large_orange_circle:", "Info": ":large_blue_circle:"}[
            self.value
        ]


def send_slack(text: str, conn_id: str = SLACK_CONN_ID) -> None:
    """Post one message to the ops channel through the Slack webhook connection."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    SlackWebhookHook(slack_webhook_conn_id=conn_id).send(text=text, unfurl_links=False)


def failure_message(context, severity: Severity) -> str:
    ti = context["ti"]
    error = context.get("exception")
    reason = scrub(str(error).strip().splitlines()[0])[:400] if error and str(error).strip() else "see the task log"
    return "\n".join(
        [
            f"{severity.icon} *[{severity.value}] {ti.dag_id} failed* at task `{ti.task_id}`",
            # on_failure_callback fires once retries are exhausted (or skipped), so this try was the last.
            f"• Run: `{ti.run_id}` (failed on try {ti.try_number})",
            f"• Reason: {type(error).__name__ + ': ' if error else ''}{reason}",
            f"• Log: <{ti.log_url}|open the task log>",
        ]
    )


class FailureAlert(BaseNotifier):
    """Task failure → Slack, tagged with the runbook severity of what the task guards."""

    def __init__(self, severity: Severity = Severity.WARNING, slack_conn_id: str = SLACK_CONN_ID):
        super().__init__()
        self.severity = Severity(severity)
        self.slack_conn_id = slack_conn_id

    def notify(self, context) -> None:
        send_slack(failure_message(context, self.severity), self.slack_conn_id)


class RecoveryAlert:
    """DAG run success → Slack "recovered", only when the previous run of the DAG had failed.

    A plain callable, not a BaseNotifier: it renders no templates, and dag.test() hands DAG
    callbacks a serialized DAG that cannot render them.
    """

    def __init__(self, slack_conn_id: str = SLACK_CONN_ID):
        self.slack_conn_id = slack_conn_id

    def __call__(self, context) -> None:
        previous = _previous_dag_run(context)
        if previous is None or str(getattr(previous.state, "value", previous.state)) != "failed":
            return
        dag_id = context["dag"].dag_id
        send_slack(
            f"{Severity.INFO.icon} *[Info] {dag_id} recovered*: run `{context['run_id']}` succeeded "
            f"after run `{previous.run_id}` failed.",
            self.slack_conn_id,
        )


def _previous_dag_run(context):
    """The run before this one (by logical date), or None for the first or a date-less manual run."""
    ti = context.get("ti")
    if ti is None:
        return None
    try:
        return ti.get_previous_dagrun()
    except NameError:
        # dag.test() runs DAG callbacks in its own process, without the supervisor channel
        # that the DAG processor provides (SUPERVISOR_COMMS); the metadata DB is at hand there.
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            run = DagRun.find(dag_id=ti.dag_id, run_id=ti.run_id, session=session)
            previous = DagRun.get_previous_dagrun(run[0], session=session) if run else None
            if previous is not None:
                session.expunge(previous)
            return previous


def deadline_message(context: dict | None, what: str, severity: Severity = Severity.WARNING) -> str:
    run = (context or {}).get("dag_run") or {}
    return (
        f"{severity.icon} *[{severity.value}] {run.get('dag_id', 'a gravitypm DAG')}* run "
        f"`{run.get('dag_run_id') or run.get('run_id', '?')}` {what}"
    )


async def deadline_missed(*, what: str, context: dict | None = None, slack_conn_id: str = SLACK_CONN_ID) -> None:
    """A DeadlineAlert callback (runs in the triggerer): tell Slack a run is late.

    Referenced by its import path from DAG files, so parsing a DAG never imports the Slack provider.
    The triggerer hands over a small context: {"dag_run": {...}, "deadline": {...}}.
    """
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    await SlackWebhookHook(slack_webhook_conn_id=slack_conn_id).async_send(
        text=deadline_message(context, what), unfurl_links=False
    )
