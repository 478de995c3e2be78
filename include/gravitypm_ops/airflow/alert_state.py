"""Alert state, Alertmanager's semantics: post when an alert starts firing (or fires a different
way), remind every `alerts.repeat_hours` while it keeps firing, post "recovered" once when it clears.

An alert is evaluated only when its condition is observed — a task fails, a check breaches, a
check passes — so a reminder goes out with the next observation after `repeat_hours`, never from
a clock of its own. `on_firing` / `on_clear` are the pure decision; `AlertBook` keeps the state of
each alert in the vault, where every worker sees it:

    <vault_prefix>/alerts/<key>.json
    {"key", "status": "firing" | "resolved", "signature", "reason", "severity", "since", "last_seen",
     "last_sent", "count", "last_run", "resolved_at"}

A resolved alert is rewritten as "resolved", never deleted (the bucket may keep versions or lock
objects). The objects are plain overwritable JSON, like status.json and the leases.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

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


def signature(*parts: str) -> str:
    """A short fingerprint of what is failing and how (e.g. exception type + scrubbed reason)."""
    return hashlib.sha256(normalise(" ".join(parts)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Decision:
    send: str | None  # FIRING, REMINDER, RECOVERED, or None: say nothing
    state: dict | None  # the state to store; None: nothing changed, write nothing


def _firing(state: dict | None) -> bool:
    return bool(state) and state.get("status") == FIRING


def on_firing(state: dict | None, *, signature: str, now: datetime, repeat_hours: float,
              facts: dict | None = None) -> Decision:
    """The alert's condition holds now. `facts` (reason, severity, last_run, …) go into the state."""
    if not _firing(state) or state.get("signature") != signature:  # new, or failing a different way
        new = {**(facts or {}), "status": FIRING, "signature": signature, "since": now.isoformat(),
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
    """The alert states of one vault (any ObjectStore: bucket + prefix)."""

    def __init__(self, store):
        self.store = store

    def key_of(self, alert_key: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9._/-]", "_", alert_key).replace("..", "_").strip("/")
        return f"{self.store.prefix}/{ALERTS_DIR}/{safe}.json"

    def read(self, alert_key: str) -> dict | None:
        """The stored state, None when the alert never fired (raises when the store cannot answer)."""
        return self.store.read_json(self.key_of(alert_key))

    def write(self, alert_key: str, state: dict) -> None:
        self.store.put(self.key_of(alert_key), {**state, "key": alert_key})
