"""Evidence collectors for checklist items: each measures one thing and decides an outcome.

A collector is `collector(cfg, options, now) -> Evidence` (registered in registry.py under the name a
checklist item refers to). The parsing and judging parts are plain functions of their inputs, so
they are tested alone; the collectors only add the I/O (vault, files, sockets, a command).
Evidence is small: counts, names, dates and links — never log lines or command output in bulk,
never secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

log = logging.getLogger(__name__)

PASSED, WARNING, FAILED = "passed", "warning", "failed"
_RANK = {PASSED: 0, WARNING: 1, FAILED: 2}


@dataclass
class Evidence:
    outcome: str  # passed | warning | failed
    summary: str
    data: dict = field(default_factory=dict)
    links: list[dict] = field(default_factory=list)
    alert: str | None = None  # a Critical Slack alert to send now (e.g. a certificate about to expire)

    def to_dict(self) -> dict:
        return asdict(self)


def worst(outcomes: Iterable[str]) -> str:
    return max(outcomes, key=_RANK.__getitem__, default=PASSED)


def combine(parts: list[tuple[str, str]], data: dict, links=None, alert=None) -> Evidence:
    """One Evidence from (outcome, line) findings: worst outcome, problems first in the summary."""
    ordered = sorted(parts, key=lambda p: -_RANK[p[0]])
    return Evidence(worst(o for o, _ in parts), "; ".join(line for _, line in ordered) or "nothing to check",
                    data, links or [], alert)


# host/checks.py's CheckResult vocabulary (kept for verification and log rotation) → an outcome.
CHECK_OUTCOMES = {"ok": PASSED, "warning": WARNING, "breach": FAILED}


def from_check(result, extra: list[dict] = ()) -> Evidence:
    """Evidence from a host/checks.py probe: one finding per line, in the outcome vocabulary; `extra`
    findings ({"subject", "outcome", "detail"}) are judged with them."""
    findings = [{"subject": f.subject, "outcome": CHECK_OUTCOMES[f.status], "detail": f.detail}
                for f in result.findings] + list(extra)
    return combine([(f["outcome"], f"{f['subject']}: {f['detail']}") for f in findings], {"findings": findings})


def s3_link(vault, key: str, label: str) -> dict:
    return {"label": label, "url": f"s3://{vault.bucket}/{key}"}
