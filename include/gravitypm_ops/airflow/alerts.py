"""Slack alerts with the runbook's severities, sent through the slack provider's webhook hook.

- `FailureAlert(severity)`: a task-level ``on_failure_callback`` (set for every task by
  `conventions`): DAG, task, run, try number, the reason and a link to the task log.
- `RecoveryAlert()`: a DAG-level ``on_success_callback``: says "recovered" when the run
  before this one failed, and nothing otherwise (no noise on every green run).

Messages never carry secrets: exception text is scrubbed of URI credentials and
``key=value`` secrets before it leaves the worker. Delivery never leaks the webhook token
either: slack_sdk logs the webhook URL (``/services/T…/B…/<token>``) when it retries or
fails, so the client logs through `SLACK_LOG`, whose filter scrubs every record, and a
failed delivery raises `SlackDeliveryError` with scrubbed text and no chained cause.
"""

from __future__ import annotations

import logging
import traceback
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


class SlackDeliveryError(RuntimeError):
    """An alert could not be posted; the text is scrubbed (no webhook token, no credentials)."""


class ScrubFilter(logging.Filter):
    """Rewrites each record through `scrub`: message, arguments, traceback and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + record.stack_info
        record.msg, record.args = scrub(text), None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


# The logger handed to slack_sdk's WebhookClient (by default it logs through the hook's logger,
# unfiltered): its "Sending a request - url: …", "A retry handler found: … POST <url>" and
# "Going to retry the same request: POST <url>" lines carry the webhook token.
SLACK_LOG = logging.getLogger("gravitypm_ops.airflow.alerts.slack_sdk")
SLACK_LOG.setLevel(logging.INFO)  # slack_sdk builds its DEBUG lines (URL, headers) only below INFO
SLACK_LOG.addFilter(ScrubFilter())


def _retry_handlers() -> list:
    """One more try on a dropped connection, a 5xx, or a 429 (after its Retry-After)."""
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    return [ConnectionErrorRetryHandler(max_retry_count=1), RateLimitErrorRetryHandler(max_retry_count=1),
            ServerErrorRetryHandler(max_retry_count=1)]


def send_slack(text: str, conn_id: str = SLACK_CONN_ID) -> None:
    """Post one message to the ops channel through the Slack webhook connection.

    Raises `SlackDeliveryError` (scrubbed, cause suppressed: urllib errors and the provider's
    messages may quote the webhook URL) when the message cannot be delivered.
    """
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    try:
        SlackWebhookHook(slack_webhook_conn_id=conn_id, logger=SLACK_LOG, retry_handlers=_retry_handlers()).send(
            text=text, unfurl_links=False
        )
    except Exception as err:  # noqa: BLE001 - any failure: re-raised scrubbed, cause suppressed
        raise SlackDeliveryError(
            scrub(f"Slack alert not delivered through connection {conn_id!r}: {type(err).__name__}: {err}")
        ) from None


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
