"""Slack alerts with the runbook's severities, sent through the slack provider's webhook hook.

- `FailureAlert(severity)`: a task-level ``on_failure_callback`` (set for every task by
  `conventions`): DAG, task, run, try number, the reason and a link to the task log.
- `RecoveryAlert()`: a task-level ``on_success_callback`` (also set by `conventions`): says
  "recovered" when that task's failure alert was firing, and nothing otherwise.
- `fire` / `clear`: every alert goes through them (Alertmanager's semantics, state in the vault,
  see alert_state.py): posted when it starts firing or fires a different way, reminded every
  `alerts.repeat_hours` while it keeps firing, "recovered" once when it clears.

Messages never carry secrets: exception text is scrubbed of URI credentials and
``key=value`` secrets before it leaves the worker. Delivery never leaks the webhook token
either: slack_sdk logs the webhook URL (``/services/T…/B…/<token>``) when it retries or
fails, so the client logs through `SLACK_LOG`, whose filter scrubs every record, and a
failed delivery raises `SlackDeliveryError` with scrubbed text and no chained cause.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum

from airflow.sdk import BaseNotifier

from gravitypm_ops.names import SLACK_CONN_ID
from gravitypm_ops.redact import scrub

log = logging.getLogger(__name__)


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


# --- alerting on a change of state (alert_state.py) ---------------------------------------------------
def _alert_book(cfg, store):
    """The vault's alert states, signed with the vault's signer (a plain object store and the
    signing connection when the caller has no vault at hand)."""
    from gravitypm_ops.airflow.alert_state import AlertBook

    if store is not None:
        return AlertBook(store, store.signer)
    from gravitypm_ops.names import AWS_CONN_ID
    from gravitypm_ops.vault.objects import ObjectStore, s3_client
    from gravitypm_ops.vault.signing import signer_from_connection
    from gravitypm_ops.vault.streams import Protection

    store = ObjectStore(cfg.vault_bucket, cfg.vault_prefix, s3_client(AWS_CONN_ID), Protection(kms_key_id=cfg.kms_key_id))
    return AlertBook(store, signer_from_connection())


def _why(err: BaseException) -> str:
    return scrub(f"{type(err).__name__}: {err}")[:300]


def _when(iso: str | None) -> str:
    try:
        return f"{datetime.fromisoformat(iso).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    except (TypeError, ValueError):
        return "an unknown time"


def fire(key: str, text: str, *, reason: str, cfg=None, store=None, facts: dict | None = None,
         now: datetime | None = None, conn_id: str = SLACK_CONN_ID) -> str | None:
    """Alert `key` is firing: post `text` when it starts (or fires a different way: `reason`, with its
    volatile parts normalised, is "the way"), a reminder every `alerts.repeat_hours` while it keeps
    firing, nothing in between. Returns what was posted (alert_state.FIRING / REMINDER) or None.

    Fails open: when the state cannot be read (vault down, no config), the alert is posted — a
    duplicate beats silence — and the log says why. The state is written only after a delivery.
    """
    from gravitypm_ops.airflow import alert_state
    from gravitypm_ops.config.blocks import ALERT_DEFAULTS

    now = now or datetime.now(UTC)
    book, state, repeat_hours = None, None, ALERT_DEFAULTS["repeat_hours"]
    try:
        if cfg is None:
            from gravitypm_ops.config import load_config

            cfg = load_config()
        repeat_hours = cfg.alerts["repeat_hours"]
        book = _alert_book(cfg, store)
        state = book.read(key)
    except Exception as err:  # noqa: BLE001 - any reason: post the alert anyway
        log.warning("alert %s: state unreadable (%s); posting it without de-duplication", key, _why(err))
    decision = alert_state.on_firing(state, fingerprint=alert_state.fingerprint(reason), now=now,
                                     repeat_hours=repeat_hours, facts={"reason": scrub(reason)[:400], **(facts or {})})
    if decision.send == alert_state.REMINDER:
        runs = decision.state["count"]
        send_slack(f":repeat: *Reminder*: still firing since {_when(decision.state['since'])}, {runs} runs in a row "
                   f"(next reminder in {repeat_hours:g} h)\n{text}", conn_id)
    elif decision.send == alert_state.FIRING:
        send_slack(text, conn_id)
    else:
        log.info("alert %s: still firing since %s (%s runs), already posted; next reminder %g h after the last",
                 key, decision.state["since"], decision.state["count"], repeat_hours)
    if book is not None:
        try:
            book.write(key, decision.state)
        except Exception as err:  # noqa: BLE001 - the alert went out; only the de-duplication suffers
            log.warning("alert %s: state not written (%s); the next run may post it again", key, _why(err))
    return decision.send


def clear(key: str, recovered: Callable[[dict], str], *, cfg=None, store=None, facts: dict | None = None,
          now: datetime | None = None, conn_id: str = SLACK_CONN_ID) -> bool:
    """Alert `key`'s condition was checked and is clear: when it was firing, post `recovered(state)`
    once and store it as resolved. Returns whether "recovered" was posted. Without a readable state
    there is nothing to say (logged)."""
    from gravitypm_ops.airflow import alert_state

    now = now or datetime.now(UTC)
    try:
        if cfg is None:
            from gravitypm_ops.config import load_config

            cfg = load_config()
        book = _alert_book(cfg, store)
        state = book.read(key)
    except Exception as err:  # noqa: BLE001 - cannot tell whether it was firing
        log.warning("alert %s: state unreadable (%s); cannot tell whether it recovered", key, _why(err))
        return False
    decision = alert_state.on_clear(state, now=now, facts=facts)
    if decision.send is None:
        return False
    send_slack(recovered(decision.state), conn_id)
    try:
        book.write(key, decision.state)
    except Exception as err:  # noqa: BLE001 - "recovered" went out; the next success may say it again
        log.warning("alert %s: resolved state not written (%s)", key, _why(err))
    return True


def recovered_since(state: dict) -> str:
    """'N run(s) firing since <time>': how long an alert fired, for its "recovered" message."""
    return f"{state.get('count', 1)} run(s) firing since {_when(state.get('since'))}"


# --- task callbacks -------------------------------------------------------------------------------
def task_alert_key(ti) -> str:
    """One alert per task (and map index): a task failing run after run is one firing alert."""
    map_index = getattr(ti, "map_index", -1)
    suffix = f"[{map_index}]" if isinstance(map_index, int) and map_index >= 0 else ""
    return f"task/{ti.dag_id}/{ti.task_id}{suffix}"


def failure_reason(error) -> str:
    return scrub(str(error).strip().splitlines()[0])[:400] if error and str(error).strip() else "see the task log"


def failure_message(context, severity: Severity) -> str:
    ti = context["ti"]
    error = context.get("exception")
    return "\n".join(
        [
            f"{severity.icon} *[{severity.value}] {ti.dag_id} failed* at task `{ti.task_id}`",
            # on_failure_callback fires once retries are exhausted (or skipped), so this try was the last.
            f"• Run: `{ti.run_id}` (failed on try {ti.try_number})",
            f"• Reason: {type(error).__name__ + ': ' if error else ''}{failure_reason(error)}",
            f"• Log: <{ti.log_url}|open the task log>",
        ]
    )


class FailureAlert(BaseNotifier):
    """Task failure → Slack, tagged with the runbook severity of what the task guards; posted when the
    task starts failing or fails a different way, reminded every `alerts.repeat_hours` (see `fire`)."""

    def __init__(self, severity: Severity = Severity.WARNING, slack_conn_id: str = SLACK_CONN_ID):
        super().__init__()
        self.severity = Severity(severity)
        self.slack_conn_id = slack_conn_id

    def notify(self, context) -> None:
        ti, error = context["ti"], context.get("exception")
        # "The same way": exception type + scrubbed reason; fire() normalises times, ids and numbers.
        reason = f"{type(error).__name__ if error else 'failed'}: {failure_reason(error)}"
        fire(task_alert_key(ti), failure_message(context, self.severity), reason=reason,
             facts={"severity": self.severity.value, "last_run": ti.run_id}, conn_id=self.slack_conn_id)


class RecoveryAlert(BaseNotifier):
    """Task success → Slack "recovered", once, when that task's failure alert was firing.

    A task-level ``on_success_callback`` (set for every task by `conventions`): the task that
    recovers is the one that alerted, whatever else in its DAG run still fails. Costs one read of
    the alert state per successful task.
    """

    def __init__(self, slack_conn_id: str = SLACK_CONN_ID):
        super().__init__()
        self.slack_conn_id = slack_conn_id

    def notify(self, context) -> None:
        ti = context["ti"]

        def message(state: dict) -> str:
            return (f"{Severity.INFO.icon} *[Info] {ti.dag_id} recovered* at task `{ti.task_id}`: run `{ti.run_id}` "
                    f"succeeded after {recovered_since(state)} (last failed run `{state.get('last_run')}`).")

        clear(task_alert_key(ti), message, facts={"recovered_run": ti.run_id}, conn_id=self.slack_conn_id)
