"""Alert state, Alertmanager's semantics: post when an alert starts firing (or fires a different
way), remind every `alerts.repeat_hours` while it keeps firing, post "recovered" once when it clears.

An alert is evaluated only when its condition is observed — a task fails, a check breaches, a
check passes — so a reminder goes out with the next observation after `repeat_hours`, never from
a clock of its own. `on_firing` / `on_clear` are the pure decision; `AlertBook` keeps the state of
each alert in the vault, where every worker sees it:

    <vault_prefix>/alerts/<key>.json
    {"key", "status": "firing" | "resolved", "fingerprint", "reason", "severity", "since", "last_seen",
     "last_sent", "count", "last_run", "resolved_at", "signature" (with the signing key)}

A resolved alert is rewritten as "resolved", never deleted (the bucket may keep versions or lock
objects). The objects are overwritable JSON, like status.json and the leases.

With the signing key (vault/signing.py) each state is signed, with its alert's key inside. Whoever
can write the bucket could otherwise silence an alert: rewrite a firing state to "already posted
just now", or a Critical one to "resolved". A state that is unsigned, badly signed or written for
another alert is left out (logged): the alert is judged as never fired, so it posts, loud rather
than silent. Replaying an older signed state of the same alert can hold it back for
`repeat_hours` at most. Turning signing on makes each alert firing at that moment post once more.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from gravitypm_ops.vault.signing import SIGNATURE_FIELD

log = logging.getLogger(__name__)
ALERTS_DIR = "alerts"
FIRING, REMINDER, RECOVERED, RESOLVED = "firing", "reminder", "recovered", "resolved"

# What changes from run to run while a failure stays the same: times, ids, sizes, ages, counts.
_VOLATILE = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\d{8}T\d{6}Z(?:-[0-9a-f]+)?"), "<id>"),  # backup ids
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE), "<id>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b", re.IGNORECASE), "<id>"),  # hashes, hex ids
    (re.compile(r"\d+(?:\.\d+)?"), "#"),
)


def normalise(text: str) -> str:
    """`text` with its volatile parts replaced, so "the same failure" compares equal run after run."""
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def fingerprint(*parts: str) -> str:
    """A short fingerprint of what is failing and how (e.g. exception type + scrubbed reason)."""
    return hashlib.sha256(normalise(" ".join(parts)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Decision:
    send: str | None  # FIRING, REMINDER, RECOVERED, or None: say nothing
    state: dict | None  # the state to store; None: nothing changed, write nothing


def _firing(state: dict | None) -> bool:
    return bool(state) and state.get("status") == FIRING


def on_firing(state: dict | None, *, fingerprint: str, now: datetime, repeat_hours: float,
              facts: dict | None = None) -> Decision:
    """The alert's condition holds now. `facts` (reason, severity, last_run, …) go into the state."""
    if not _firing(state) or state.get("fingerprint") != fingerprint:  # new, or failing a different way
        new = {**(facts or {}), "status": FIRING, "fingerprint": fingerprint, "since": now.isoformat(),
               "last_seen": now.isoformat(), "last_sent": now.isoformat(), "count": 1}
        return Decision(FIRING, new)
    new = {**state, **(facts or {}), "last_seen": now.isoformat(), "count": int(state.get("count", 0)) + 1}
    try:
        due = now - datetime.fromisoformat(state["last_sent"]) >= timedelta(hours=repeat_hours)
    except (KeyError, TypeError, ValueError):  # a damaged state: better one reminder too many
        due = True
    if due:
        new["last_sent"] = now.isoformat()
        return Decision(REMINDER, new)
    return Decision(None, new)


def on_clear(state: dict | None, *, now: datetime, facts: dict | None = None) -> Decision:
    """The alert's condition was checked and no longer holds: "recovered" once, if it was firing."""
    if not _firing(state):
        return Decision(None, None)
    return Decision(RECOVERED, {**state, **(facts or {}), "status": RESOLVED, "resolved_at": now.isoformat()})


class AlertBook:
    """The alert states of one vault (any ObjectStore: bucket + prefix), signed and checked with
    `signer` (a vault/signing.Signer) when the deployment has the signing key."""

    def __init__(self, store, signer=None):
        self.store, self.signer = store, signer

    def key_of(self, alert_key: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9._/-]", "_", alert_key).replace("..", "_").strip("/")
        return f"{self.store.prefix}/{ALERTS_DIR}/{safe}.json"

    def read(self, alert_key: str) -> dict | None:
        """The stored state, None when the alert never fired or its state is not one this suite signed
        for this alert (raises when the store cannot answer)."""
        state = self.store.read_json(self.key_of(alert_key))
        if self.signer is None:
            if isinstance(state, dict):  # a signature from when signing was on is dropped, not kept stale
                old_name = state.pop(SIGNATURE_FIELD, None)
                if isinstance(old_name, str):  # written before signing existed: the fingerprint's old name
                    state["fingerprint"] = old_name
            return state
        if state is None:
            return None
        if not isinstance(state, dict):
            why = "not a JSON object"
        else:
            why = self.signer.problem(state) or ("" if state.get("key") == alert_key else "written for another alert")
        if why:
            log.warning("alert %s: stored state left out (%s): judged as never fired", alert_key, why)
            return None
        return {k: v for k, v in state.items() if k != SIGNATURE_FIELD}

    def write(self, alert_key: str, state: dict) -> None:
        state = {**state, "key": alert_key}
        self.store.put(self.key_of(alert_key), self.signer.sign(state) if self.signer else state)
