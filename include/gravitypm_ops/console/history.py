"""The Checklists page: audit history filtered, each chain's verification, CSV export."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from gravitypm_ops.checklists.audit import OUTCOMES
from gravitypm_ops.console.html import Problem, esc, fmt_time, html_link, json_type, problems_box, to_datetime

log = logging.getLogger(__name__)

DEFAULT_DAYS = 31  # the Checklists page without any filter shows about a month

_CHECKLIST_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class FilterError(ValueError):
    """A query parameter of the Checklists page is not usable (the message says which)."""


@dataclass(frozen=True)
class HistoryFilter:
    """The Checklists page's filters: a date range (inclusive, UTC days of `completed_at`),
    a checklist and an outcome. Empty means "any"."""

    since: date | None = None
    until: date | None = None
    checklist: str = ""
    outcome: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str], today: date) -> HistoryFilter:
        """From the page's GET form. No parameter at all: the last DEFAULT_DAYS days."""
        if not any(query.get(k) is not None for k in ("since", "until", "checklist", "outcome")):
            return cls(since=today - timedelta(days=DEFAULT_DAYS - 1))
        since, until = _day(query, "since"), _day(query, "until")
        if since and until and since > until:
            raise FilterError(f"'since' ({since}) is after 'until' ({until})")
        checklist = (query.get("checklist") or "").strip()
        if checklist and not _CHECKLIST_NAME.match(checklist):
            raise FilterError(f"checklist {checklist!r} is not a checklist name (lowercase letters, digits, '_')")
        outcome = (query.get("outcome") or "").strip()
        if outcome and outcome not in OUTCOMES:
            raise FilterError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        return cls(since, until, checklist, outcome)

    def query(self) -> str:
        """The same filters as a query string (the CSV link and the form carry them)."""
        return urlencode({
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "checklist": self.checklist,
            "outcome": self.outcome,
        })

    def records_args(self) -> dict:
        """Keyword arguments for AuditLog.records (whose bounds on completed_at are inclusive)."""
        return {
            "checklist": self.checklist or None,
            "since": datetime(self.since.year, self.since.month, self.since.day, tzinfo=UTC) if self.since else None,
            "until": (datetime(self.until.year, self.until.month, self.until.day, tzinfo=UTC)
                      + timedelta(days=1, microseconds=-1)) if self.until else None,
            "outcome": self.outcome or None,
        }


def _day(query: Mapping[str, str], name: str) -> date | None:
    raw = (query.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise FilterError(f"{name!r} must be a date like 2026-11-27, got {raw!r}") from None


def render_filter_form(f: HistoryFilter, checklists: Iterable[str]) -> str:
    def options(values: Iterable[str], chosen: str, any_label: str) -> str:
        items = [f'<option value=""{" selected" if not chosen else ""}>{any_label}</option>']
        items += [f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(v)}</option>' for v in values]
        return "".join(items)

    names = sorted(set(checklists) | ({f.checklist} if f.checklist else set()))
    since, until = (d.isoformat() if d else "" for d in (f.since, f.until))
    return (
        '<form class="filters" method="get" action="checklists">'
        f'<label>From (UTC) <input type="date" name="since" value="{esc(since)}"></label>'
        f'<label>To (UTC) <input type="date" name="until" value="{esc(until)}"></label>'
        f'<label>Checklist <select name="checklist">{options(names, f.checklist, "all checklists")}</select></label>'
        f'<label>Outcome <select name="outcome">{options(OUTCOMES, f.outcome, "any outcome")}</select></label>'
        '<button type="submit">Filter</button>'
        f'<a id="csv-export" href="checklists.csv?{esc(f.query())}" download>Export CSV</a>'
        "</form>"
    )


def render_chain(report) -> str:
    """One checklist's chain verification (an audit.ChainReport)."""
    if report.ok:
        return (f'<span class="badge ok">chain verified</span> <span class="muted">{report.records} records, '
                f"head {esc(report.head_hash[:12])}…</span>")
    problems = "".join(f"<li>{esc(p)}</li>" for p in report.problems)
    return (f'<span class="badge broken">chain BROKEN</span> <span class="muted">{report.records} records</span>'
            f'<ul class="problems">{problems}</ul>')


# What the page and /metrics need of a record to place it (group, order, count); the rest is shown as found.
RECORD_FIELDS = {"checklist": str, "period": str, "seq": int, "outcome": str, "run_id": str, "completed_at": str}


def record_problem(record: dict) -> str:
    """"" when a stored record can be placed on the page, else what is wrong with it."""
    missing = [name for name in RECORD_FIELDS if name not in record]
    if missing:
        return f"{', '.join(map(repr, missing))} missing"
    wrong = [name for name, kind in RECORD_FIELDS.items()
             if not isinstance(record[name], kind) or isinstance(record[name], bool)]
    if wrong:
        return ", ".join(f"{name!r} is {json_type(record[name])}" for name in wrong)
    try:
        to_datetime(record["completed_at"])
    except ValueError:
        return f"'completed_at' {record['completed_at'][:40]!r} is not an ISO 8601 time"
    return ""


def checked_records(audit, checklist: str, records: list[dict]) -> tuple[list[dict], list[Problem]]:
    """Split one chain's records into the usable ones and Problems naming each unusable record's key."""
    good, problems = [], []
    for r in records:
        why = record_problem(r)
        if not why:
            good.append(r)
            continue
        seq = r.get("seq")
        key = (f"{audit.root}{checklist}/{seq:010d}.json" if isinstance(seq, int) and not isinstance(seq, bool)
               else f"{audit.root}{checklist}/ (a record without a usable 'seq')")
        problems.append(Problem(key, f"audit record: {why}"))
    return good, problems


def read_chains(audit, names: Iterable[str], **records_args) -> tuple[list[dict], list[Problem]]:
    """AuditLog.records chain by chain (so an unusable record is named by its chain and seq); a chain
    that cannot be read at all is one Problem naming its prefix."""
    found, problems = [], []
    for name in names:
        try:
            records = audit.records(checklist=name, **records_args)
        except ValueError as err:  # a record's field trips the reader (e.g. completed_at not a time)
            problems.append(Problem(f"{audit.root}{name}/", f"audit chain unreadable: {type(err).__name__}: {err}"))
            continue
        good, bad = checked_records(audit, name, records)
        found.extend(good)
        problems.extend(bad)
    return found, problems


def _evidence(r: dict) -> tuple[dict, list[dict]]:
    """A record's evidence and its well-formed links ({} and [] for whatever is not)."""
    evidence = r.get("evidence")
    evidence = evidence if isinstance(evidence, dict) else {}
    links = evidence.get("links")
    return evidence, [x for x in links if isinstance(x, dict)] if isinstance(links, list) else []


def _record_row(r: dict) -> str:
    evidence, found = _evidence(r)
    links = " · ".join(html_link(str(x.get("label", "")), str(x.get("url", ""))) for x in found)
    outcome = str(r.get("outcome", ""))
    return (
        f'<tr data-outcome="{esc(outcome)}"><td class="num">{esc(r.get("seq"))}</td>'
        f'<td>{esc(r.get("title"))}<br><span class="muted">{esc(r.get("item"))} · {esc(r.get("item_kind"))}</span></td>'
        f'<td><span class="badge {esc(outcome)}">{esc(outcome)}</span></td><td>{esc(r.get("actor"))}</td>'
        f'<td>{esc(fmt_time(r.get("started_at")))}</td><td>{esc(fmt_time(r.get("completed_at")))}</td>'
        f'<td>{esc(evidence.get("summary"))}{"<br>" + links if links else ""}</td>'
        f'<td><span class="muted">{esc(r.get("run_id"))}</span></td></tr>'
    )


def render_checklists(records: list[dict], chains: Mapping[str, object], f: HistoryFilter,
                      checklists: Iterable[str], problems: Iterable[Problem] = ()) -> str:
    """Completion history grouped by checklist, then period (newest first), item by item in
    chain order; each checklist with its chain verification. `problems`: records left out (error box)."""
    by_checklist: dict[str, dict[str, list[dict]]] = {}
    for r in records:
        by_checklist.setdefault(r["checklist"], {}).setdefault(r["period"], []).append(r)
    counts = Counter(r["outcome"] for r in records)
    summary = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o]) or "no records"
    parts = [render_filter_form(f, checklists),
             problems_box("Some audit records cannot be shown (left out below)", problems),
             f'<p class="muted" id="summary">{len(records)} records: {summary}</p>']
    for name in sorted(set(by_checklist) | set(chains)):
        parts.append(f'<section class="checklist" data-checklist="{esc(name)}"><h2>{esc(name)}</h2>')
        if name in chains:
            parts.append(f"<p>{render_chain(chains[name])}</p>")
        periods = by_checklist.get(name, {})
        if not periods:
            parts.append('<p class="muted">No records match the filters.</p>')
        for period in sorted(periods, reverse=True):
            rows = sorted(periods[period], key=lambda r: r["seq"])
            parts.append(
                f'<h3>{esc(period)}</h3><table class="records"><thead><tr><th>#</th><th>item</th><th>outcome</th>'
                "<th>who</th><th>started</th><th>completed</th><th>evidence</th><th>run</th></tr></thead><tbody>"
                + "".join(_record_row(r) for r in rows) + "</tbody></table>"
            )
        parts.append("</section>")
    return "".join(parts)


CSV_COLUMNS = (
    "checklist", "period", "seq", "item", "title", "item_kind", "outcome", "actor", "started_at", "completed_at",
    "evidence_summary", "evidence_links", "run_id", "dag_id", "hash", "prev_hash",
)


def _cell(value) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula: quote it (OWASP "CSV injection").
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def records_csv(records: Iterable[dict]) -> Iterator[str]:
    """The records as CSV, one chunk per line (streamed), same order as the page."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")

    def flush() -> str:
        chunk = out.getvalue()
        out.seek(0)
        out.truncate()
        return chunk

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for r in records:
        evidence, found = _evidence(r)
        links = "; ".join(f"{x.get('label', '')} <{x.get('url', '')}>" for x in found)
        row = {**r, "evidence_summary": evidence.get("summary", ""), "evidence_links": links}
        writer.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
        yield flush()


def csv_filename(f: HistoryFilter, today: date) -> str:
    parts = ["gravitypm-checklists", f.checklist, f.outcome,
             f.since.isoformat() if f.since else "", f.until.isoformat() if f.until else today.isoformat()]
    return "_".join(p for p in parts if p) + ".csv"


def load_history(vault, f: HistoryFilter) -> tuple[list[dict], dict, list[str], list[Problem]]:
    """(filtered records, {checklist: ChainReport} for the checklists shown, every checklist name,
    the records that could not be used)."""
    from gravitypm_ops.checklists.audit import AuditLog

    audit = AuditLog(vault)
    names = audit.checklists()
    args = f.records_args()
    chosen = args.pop("checklist")
    shown = [chosen] if chosen else names
    records, problems = read_chains(audit, shown, **args)
    return records, {name: audit.verify(name) for name in shown if name in names}, names, problems
