"""The ops console: the "Checklists" and "Backups" pages of the Airflow UI, their CSV export and
the Prometheus `/metrics` text (plugins/gravitypm_ops_console.py mounts them at /gravitypm).

Plain functions: data in (audit records, vault manifests, status.json), HTML / CSV / Prometheus
text out. Server-rendered, no JavaScript. Every value shown is HTML-escaped; links are rendered
only for http(s) URLs; CSV cells that a spreadsheet would run as a formula are defused. Nothing
shown carries a secret: records and manifests hold none, and error text is scrubbed.

Rendering (`render_*`, `records_csv`, `*_metrics`) works on plain lists and dicts; the few functions
that read the vault (`load_*`, `read_status`) take a Vault; the views the plugin serves (`*_view`,
`metrics_text`) take a function that opens the vault, so a bad config or an unreachable S3 becomes
an error box (or `gravitypm_vault_up 0`), never a stack trace.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from html import escape
from urllib.parse import urlencode, urlsplit

from gravitypm_ops.audit import OUTCOMES
from gravitypm_ops.names import BACKUP_KINDS, METRICS_CONN_ID

log = logging.getLogger(__name__)

DEFAULT_DAYS = 31  # the Checklists page without any filter shows about a month
BACKUPS_SHOWN = 10  # newest backups listed per kind (the chart shows them all)
# /metrics: a scrape reads one status.json; the checklist part (every record + chain check) is
# recomputed in the background once older than this, per API server process.
CHECKLIST_METRICS_TTL = 300.0

_CHECKLIST_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


# Sent with every page: no script at all, styles inline only, forms back to the console, framed only
# by the Airflow UI (same origin). Defence in depth behind the escaping.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}


class FilterError(ValueError):
    """A query parameter of the Checklists page is not usable (the message says which)."""


# --- filters ---------------------------------------------------------------------------------


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


# --- formatting helpers ------------------------------------------------------------------------


def _time(value) -> datetime | None:
    if value in (None, ""):
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def fmt_time(value) -> str:
    moment = _time(value)
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def fmt_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def fmt_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def _link(label: str, url: str) -> str:
    """An evidence link: clickable only for http(s) URLs (never javascript: or data:)."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # e.g. a broken IPv6 host: shown, not linked
        scheme = ""
    if scheme in ("http", "https"):
        return f'<a href="{_e(url)}" target="_blank" rel="noopener noreferrer">{_e(label)}</a>'
    return f"{_e(label)}: <code>{_e(url)}</code>"


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1a202c;background:#fff;font-size:14px}
main{padding:12px 20px 40px}nav.tabs{display:flex;gap:4px;padding:8px 20px 0;border-bottom:1px solid #cbd5e0}
nav.tabs a{padding:6px 14px;text-decoration:none;color:#2b6cb0;border:1px solid transparent;border-bottom:none}
nav.tabs a[aria-current=page]{border-color:#cbd5e0;background:#f7fafc;color:#1a202c;border-radius:4px 4px 0 0}
h1{font-size:20px}h2{font-size:17px;margin-top:28px}h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px}th,td{border:1px solid #e2e8f0;padding:4px 6px;
text-align:left;vertical-align:top}th{background:#f7fafc}td.num{text-align:right;white-space:nowrap}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600}
.passed,.ok{background:#c6f6d5;color:#22543d}.failed,.broken{background:#fed7d7;color:#822727}
.warning{background:#feebc8;color:#7b341e}.missed{background:#e9d8fd;color:#44337a}.waived,.none{background:#e2e8f0;color:#2d3748}
.error{border:1px solid #e53e3e;background:#fff5f5;color:#822727;padding:10px 14px;border-radius:4px;margin:12px 0}
form.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;background:#f7fafc;padding:10px;border-radius:4px}
form.filters label{display:flex;flex-direction:column;font-size:12px;gap:2px}.muted{color:#718096}
svg.chart{border:1px solid #e2e8f0;background:#fcfcfd}ul.problems{margin:4px 0 8px}
"""


def page(title: str, current: str, body: str) -> str:
    """A whole page: the console's own tabs (relative links: it lives under /gravitypm/) and `body`."""
    tabs = "".join(
        f'<a href="{href}"{" aria-current=page" if href == current else ""}>{label}</a>'
        for href, label in (("checklists", "Checklists"), ("backups", "Backups"))
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>GravityPM · {_e(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
        f'<body><nav class="tabs">{tabs}</nav><main><h1>{_e(title)}</h1>{body}</main></body></html>'
    )


def error_box(what: str, err: BaseException | str) -> str:
    """A visible, scrubbed error instead of a stack trace (e.g. the vault is unreachable)."""
    from gravitypm_ops.alerts import scrub

    detail = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return f'<div class="error" role="alert"><strong>{_e(what)}</strong><br>{_e(scrub(detail))}</div>'


# --- Checklists page ---------------------------------------------------------------------------


def render_filter_form(f: HistoryFilter, checklists: Iterable[str]) -> str:
    def options(values: Iterable[str], chosen: str, any_label: str) -> str:
        items = [f'<option value=""{" selected" if not chosen else ""}>{any_label}</option>']
        items += [f'<option value="{_e(v)}"{" selected" if v == chosen else ""}>{_e(v)}</option>' for v in values]
        return "".join(items)

    names = sorted(set(checklists) | ({f.checklist} if f.checklist else set()))
    since, until = (d.isoformat() if d else "" for d in (f.since, f.until))
    return (
        '<form class="filters" method="get" action="checklists">'
        f'<label>From (UTC) <input type="date" name="since" value="{_e(since)}"></label>'
        f'<label>To (UTC) <input type="date" name="until" value="{_e(until)}"></label>'
        f'<label>Checklist <select name="checklist">{options(names, f.checklist, "all checklists")}</select></label>'
        f'<label>Outcome <select name="outcome">{options(OUTCOMES, f.outcome, "any outcome")}</select></label>'
        '<button type="submit">Filter</button>'
        f'<a id="csv-export" href="checklists.csv?{_e(f.query())}" download>Export CSV</a>'
        "</form>"
    )


def render_chain(report) -> str:
    """One checklist's chain verification (an audit.ChainReport)."""
    if report.ok:
        return (f'<span class="badge ok">chain verified</span> <span class="muted">{report.records} records, '
                f"head {_e(report.head_hash[:12])}…</span>")
    problems = "".join(f"<li>{_e(p)}</li>" for p in report.problems)
    return (f'<span class="badge broken">chain BROKEN</span> <span class="muted">{report.records} records</span>'
            f'<ul class="problems">{problems}</ul>')


def _record_row(r: dict) -> str:
    evidence = r.get("evidence") or {}
    links = " · ".join(_link(str(x.get("label", "")), str(x.get("url", ""))) for x in evidence.get("links", []))
    outcome = str(r.get("outcome", ""))
    return (
        f'<tr data-outcome="{_e(outcome)}"><td class="num">{_e(r.get("seq"))}</td>'
        f'<td>{_e(r.get("title"))}<br><span class="muted">{_e(r.get("item"))} · {_e(r.get("item_kind"))}</span></td>'
        f'<td><span class="badge {_e(outcome)}">{_e(outcome)}</span></td><td>{_e(r.get("actor"))}</td>'
        f'<td>{_e(fmt_time(r.get("started_at")))}</td><td>{_e(fmt_time(r.get("completed_at")))}</td>'
        f'<td>{_e(evidence.get("summary"))}{"<br>" + links if links else ""}</td>'
        f'<td><span class="muted">{_e(r.get("run_id"))}</span></td></tr>'
    )


def render_checklists(records: list[dict], chains: Mapping[str, object], f: HistoryFilter,
                      checklists: Iterable[str]) -> str:
    """Completion history grouped by checklist, then period (newest first), item by item in
    chain order; each checklist with its chain verification."""
    by_checklist: dict[str, dict[str, list[dict]]] = {}
    for r in records:
        by_checklist.setdefault(r["checklist"], {}).setdefault(r["period"], []).append(r)
    counts = Counter(r["outcome"] for r in records)
    summary = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o]) or "no records"
    parts = [render_filter_form(f, checklists), f'<p class="muted" id="summary">{len(records)} records: {summary}</p>']
    for name in sorted(set(by_checklist) | set(chains)):
        parts.append(f'<section class="checklist" data-checklist="{_e(name)}"><h2>{_e(name)}</h2>')
        if name in chains:
            parts.append(f"<p>{render_chain(chains[name])}</p>")
        periods = by_checklist.get(name, {})
        if not periods:
            parts.append('<p class="muted">No records match the filters.</p>')
        for period in sorted(periods, reverse=True):
            rows = sorted(periods[period], key=lambda r: r["seq"])
            parts.append(
                f'<h3>{_e(period)}</h3><table class="records"><thead><tr><th>#</th><th>item</th><th>outcome</th>'
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
        evidence = r.get("evidence") or {}
        links = "; ".join(f"{x.get('label', '')} <{x.get('url', '')}>" for x in evidence.get("links", []))
        row = {**r, "evidence_summary": evidence.get("summary", ""), "evidence_links": links}
        writer.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
        yield flush()


def csv_filename(f: HistoryFilter, today: date) -> str:
    parts = ["gravitypm-checklists", f.checklist, f.outcome,
             f.since.isoformat() if f.since else "", f.until.isoformat() if f.until else today.isoformat()]
    return "_".join(p for p in parts if p) + ".csv"


def load_history(vault, f: HistoryFilter) -> tuple[list[dict], dict, list[str]]:
    """(filtered records, {checklist: ChainReport} for the checklists shown, every checklist name)."""
    from gravitypm_ops.audit import AuditLog

    audit = AuditLog(vault)
    names = audit.checklists()
    records = audit.records(**f.records_args())
    shown = [f.checklist] if f.checklist else names
    return records, {name: audit.verify(name) for name in shown if name in names}, names


# --- Backups page ------------------------------------------------------------------------------


def read_status(vault) -> dict | None:
    """<vault_prefix>/status.json as Vault.write_status wrote it (None before the first verification run)."""
    return vault.read_status()


def load_backups(vault) -> tuple[dict[str, list[dict]], dict | None]:
    """Every committed backup per kind (oldest first, newest verification attached) and status.json.
    The kinds are listed in parallel: each is a LIST plus a GET per manifest and verification."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(BACKUP_KINDS)) as pool:
        listings = dict(zip(BACKUP_KINDS, pool.map(vault.list_backups, BACKUP_KINDS), strict=True))
    return listings, read_status(vault)


def _size(manifest: dict) -> int:
    return sum(a["size"] for a in manifest.get("artifacts", []))


def _verification_state(manifest: dict) -> tuple[str, str]:
    """(css class, text) of a backup's newest verification."""
    record = manifest.get("verification")
    if not record:
        return "none", "not verified yet"
    status = record.get("status", "")
    text = f"{status} {fmt_time(record.get('finished'))}"
    failed = [c.get("name", "") for c in record.get("checks", []) if c.get("status") != "passed"]
    if failed:
        text += f" (failed: {', '.join(failed)})"
    return ("passed" if status == "passed" else "failed"), text


def size_chart(backups: list[dict], width: int = 640, height: int = 150) -> str:
    """Backup size over time as an inline SVG: one point per backup, coloured by verification
    state, each with a tooltip (<title>); no script."""
    from gravitypm_ops.vault import backup_time

    points = [(backup_time(m["backup_id"]), _size(m), m) for m in backups]
    if not points:
        return '<p class="muted">No backups yet: nothing to chart.</p>'
    left, right, top, bottom = 70, 10, 10, 28
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    top_size = max(p[1] for p in points) or 1
    span = (t1 - t0) or 1

    def xy(moment: datetime, size: int) -> tuple[float, float]:
        x = left + ((moment.timestamp() - t0) / span if t1 > t0 else 0.5) * (width - left - right)
        y = top + (1 - size / top_size) * (height - top - bottom)
        return round(x, 1), round(y, 1)

    coords = [xy(t, s) for t, s, _ in points]
    colour = {"passed": "#38a169", "failed": "#e53e3e", "none": "#a0aec0"}
    dots = "".join(
        f'<circle cx="{x}" cy="{y}" r="3.5" fill="{colour[_verification_state(m)[0]]}">'
        f'<title>{_e(m["backup_id"])}: {_e(fmt_bytes(s))}, {_e(_verification_state(m)[1])}</title></circle>'
        for (x, y), (_, s, m) in zip(coords, points, strict=True)
    )
    line = " ".join(f"{x},{y}" for x, y in coords)
    base = height - bottom
    return (
        f'<svg class="chart" role="img" aria-label="backup size over time" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#cbd5e0"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#cbd5e0"/>'
        f'<text x="{left - 4}" y="{top + 9}" font-size="10" text-anchor="end">{_e(fmt_bytes(top_size))}</text>'
        f'<text x="{left - 4}" y="{base}" font-size="10" text-anchor="end">0</text>'
        f'<text x="{left}" y="{height - 8}" font-size="10">{points[0][0]:%Y-%m-%d %H:%M}</text>'
        f'<text x="{width - right}" y="{height - 8}" font-size="10" text-anchor="end">'
        f"{points[-1][0]:%Y-%m-%d %H:%M}</text>"
        f'<polyline points="{line}" fill="none" stroke="#4299e1" stroke-width="1.5"/>{dots}</svg>'
    )


def render_status_entry(kind: str, status: dict | None, now: datetime) -> str:
    """What the verification run last recorded for a kind in status.json."""
    if status is None:
        return '<p class="muted">No status.json yet: gravitypm_backup_verification writes it on its first run.</p>'
    written = _time(status.get("written"))
    since = f"{fmt_time(written)} ({fmt_age((now - written).total_seconds())} ago)" if written else "?"
    entry = (status.get("kinds") or {}).get(kind)
    if not entry:
        return f'<p class="muted">status.json (written {_e(since)}): no {_e(kind)} backup.</p>'
    last = entry.get("last_verification") or {}
    result = last.get("status") or "never verified"
    return (
        f'<p>status.json (written {_e(since)}): latest <code>{_e(entry.get("latest_id"))}</code>, '
        f'{_e(fmt_bytes(entry.get("bytes", 0)))}, last verification '
        f'<span class="badge {"passed" if result == "passed" else "failed" if last else "none"}">{_e(result)}</span>; '
        f'newest verified: <code>{_e(entry.get("latest_verified_id") or "none")}</code></p>'
    )


def render_backups(by_kind: Mapping[str, list[dict]], status: dict | None, now: datetime) -> str:
    """Per kind: the newest backup's age / size / verification (and the newest verified one's age when that
    is another: what a restore of `latest` would use), status.json's entry, the size chart and the newest
    BACKUPS_SHOWN backups."""
    from gravitypm_ops.vault import verified_ok

    parts = []
    for kind in BACKUP_KINDS:
        backups = list(by_kind.get(kind, []))
        parts.append(f'<section class="kind" data-kind="{kind}"><h2>{kind}</h2>')
        if backups:
            newest = backups[-1]
            age = (now - _time(newest["finished"])).total_seconds()
            css, text = _verification_state(newest)
            parts.append(
                f'<p class="latest">Newest: <code>{_e(newest["backup_id"])}</code>, '
                f"age <strong>{_e(fmt_age(age))}</strong>, "
                f'{_e(fmt_bytes(_size(newest)))}, <span class="badge {css}">{_e(text)}</span> '
                f'<span class="muted">({len(backups)} backups, '
                f"{_e(fmt_bytes(sum(map(_size, backups))))} in all)</span></p>"
            )
            verified = next((m for m in reversed(backups) if verified_ok(m)), None)
            if verified is not newest:
                parts.append(
                    f'<p class="latest-verified">Newest verified: <code>{_e(verified["backup_id"])}</code>, age '
                    f'<strong>{_e(fmt_age((now - _time(verified["finished"])).total_seconds()))}</strong></p>'
                    if verified else '<p class="latest-verified">No backup of this kind has passed verification.</p>'
                )
        else:
            parts.append('<p class="latest muted">No committed backup.</p>')
        parts.append(render_status_entry(kind, status, now))
        parts.append(size_chart(backups))
        if backups:
            rows = []
            for m in reversed(backups[-BACKUPS_SHOWN:]):
                css, text = _verification_state(m)
                tag = ' <span class="badge none">safety</span>' if m.get("purpose") == "safety" else ""
                rows.append(
                    f'<tr><td><code>{_e(m["backup_id"])}</code>{tag}</td><td>{_e(fmt_time(m["finished"]))}</td>'
                    f'<td class="num">{_e(fmt_age((now - _time(m["finished"])).total_seconds()))}</td>'
                    f'<td class="num">{_e(fmt_bytes(_size(m)))}</td>'
                    f'<td><span class="badge {css}">{_e(text)}</span></td>'
                    f'<td class="muted">{_e(m.get("dag_id"))} / {_e(m.get("run_id"))}</td></tr>'
                )
            parts.append(
                '<table class="backups"><thead><tr><th>backup</th><th>finished</th><th>age</th><th>size</th>'
                "<th>verification</th><th>DAG run</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            )
        parts.append("</section>")
    return "".join(parts)


# --- /metrics ----------------------------------------------------------------------------------


def _label_value(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Prometheus text exposition format (0.0.4): one HELP/TYPE block per metric name."""

    def __init__(self):
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, metric_type: str, help_text: str, value: float, labels: Mapping[str, str] = ()) -> None:
        labels = dict(labels)
        family = self._families.setdefault(name, (metric_type, help_text, []))
        label_text = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
        number = repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))
        family[2].append(f"{name}{{{label_text}}} {number}" if labels else f"{name} {number}")

    def text(self) -> str:
        lines = []
        for name, (metric_type, help_text, samples) in self._families.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {metric_type}", *samples]
        return "\n".join(lines) + "\n"


def _kind_gauge(metrics: Metrics, kind: str, name: str, help_text: str, value: float) -> None:
    metrics.add(f"gravitypm_backup_{name}", "gauge", help_text, value, {"kind": kind})


def backup_metrics(metrics: Metrics, status: dict | None, now: datetime) -> None:
    """Per kind from status.json (Vault.summary of each kind, as of the last verification run);
    ages are advanced to `now`."""
    metrics.add("gravitypm_backup_status_present", "gauge",
                "1 when <vault_prefix>/status.json exists (gravitypm_backup_verification writes it).",
                0 if status is None else 1)
    if status is None:
        return
    written = _time(status["written"])
    elapsed = (now - written).total_seconds()
    metrics.add("gravitypm_backup_status_written_timestamp_seconds", "gauge",
                "When gravitypm_backup_verification last wrote status.json (Unix time).", written.timestamp())
    for kind in BACKUP_KINDS:
        entry = (status.get("kinds") or {}).get(kind)
        gauge = partial(_kind_gauge, metrics, kind)
        gauge("present", "1 when the kind has a committed backup.", 1 if entry else 0)
        if not entry:
            continue
        last = entry.get("last_verification")
        gauge("age_seconds", "Age of the newest committed backup.", round(entry["age_hours"] * 3600 + elapsed))
        gauge("size_bytes", "Size of the newest committed backup.", entry["bytes"])
        gauge("count", "Committed backups in the vault.", entry["count"])
        gauge("total_bytes", "Size of every committed backup of the kind.", entry["total_bytes"])
        gauge("verified", "1 when the newest backup's newest verification passed.", 1 if entry["verified"] else 0)
        gauge("last_verification_success",
              "Result of the newest backup's newest verification: 1 passed, 0 failed, -1 never verified.",
              -1 if not last else 1 if last["status"] == "passed" else 0)
        if last:
            gauge("last_verification_timestamp_seconds",
                  "When the newest backup's newest verification finished (Unix time).",
                  _time(last["finished"]).timestamp())


def checklist_metrics(metrics: Metrics, records: list[dict], chains: Mapping[str, object]) -> None:
    """Outcome counts (all time; the history is append-only, so a counter), the newest run's time and
    outcomes, and whether the chain verifies, per checklist."""
    by_checklist: dict[str, list[dict]] = {}
    for r in records:
        by_checklist.setdefault(r["checklist"], []).append(r)
    for name in sorted(set(by_checklist) | set(chains)):
        rows = by_checklist.get(name, [])
        counts = Counter(r["outcome"] for r in rows)
        for outcome in OUTCOMES:
            metrics.add("gravitypm_checklist_items_total", "counter", "Checklist item records by outcome.",
                        counts[outcome], {"checklist": name, "outcome": outcome})
        if rows:
            last = max(rows, key=lambda r: r["seq"])
            last_run = [r for r in rows if r["run_id"] == last["run_id"]]
            metrics.add("gravitypm_checklist_last_completed_timestamp_seconds", "gauge",
                        "When the newest checklist run's last item completed (Unix time).",
                        max(_time(r["completed_at"]) for r in last_run).timestamp(), {"checklist": name})
            run_counts = Counter(r["outcome"] for r in last_run)
            for outcome in OUTCOMES:
                metrics.add("gravitypm_checklist_last_run_items", "gauge", "Items of the newest run by outcome.",
                            run_counts[outcome], {"checklist": name, "outcome": outcome})
        if name in chains:
            metrics.add("gravitypm_checklist_chain_ok", "gauge",
                        "1 when the checklist's audit chain verifies (no edited, missing or overwritten record).",
                        1 if chains[name].ok else 0, {"checklist": name})


class Snapshots:
    """The newest value per key with its age. Older than `ttl`: still served while one background thread
    recomputes it, so a scrape waits for the slow part only the very first time (thread-safe)."""

    def __init__(self, ttl: float):
        self.ttl, self._lock, self._items, self._refreshing = ttl, threading.Lock(), {}, set()

    def get(self, key, compute) -> tuple[object, float]:
        """(value, its age in seconds)."""
        with self._lock:
            hit = self._items.get(key)
            refresh = (hit is not None and time.monotonic() - hit[0] >= self.ttl and key not in self._refreshing)
            if refresh:
                self._refreshing.add(key)
        if hit is None:
            hit = self._store(key, compute())
        elif refresh:
            threading.Thread(target=self._refresh, args=(key, compute), daemon=True).start()
        return hit[1], time.monotonic() - hit[0]

    def _store(self, key, value) -> tuple[float, object]:
        with self._lock:
            self._items[key] = hit = (time.monotonic(), value)
        return hit

    def _refresh(self, key, compute) -> None:
        try:
            self._store(key, compute())
        except Exception as err:  # noqa: BLE001 - the old value stays; the next request retries
            from gravitypm_ops.alerts import scrub

            log.warning("metrics: checklist snapshot not refreshed: %s", scrub(f"{type(err).__name__}: {err}"))
        finally:
            with self._lock:
                self._refreshing.discard(key)


_checklist_snapshots = Snapshots(CHECKLIST_METRICS_TTL)


def _audit_snapshot(vault) -> tuple[list[dict], dict]:
    """Every audit record and every chain's verification (what the checklist metrics need). Every defined
    checklist is verified too: a wiped chain is no longer listed, but its delete markers are found."""
    from gravitypm_ops.audit import AuditLog
    from gravitypm_ops.checklists import CHECKLISTS

    audit = AuditLog(vault)
    names = sorted(set(audit.checklists()) | set(CHECKLISTS))
    return audit.records(), {name: audit.verify(name) for name in names}


def metrics_text(open_vault, now: datetime) -> str:
    """The whole /metrics body. A vault that cannot be read (or a config that cannot be loaded) gives
    gravitypm_vault_up 0 and the reason in the server log, never an error page: Prometheus keeps scraping."""
    metrics = Metrics()
    try:
        vault = open_vault()
        status = read_status(vault)
        (records, chains), age = _checklist_snapshots.get((vault.bucket, vault.prefix), lambda: _audit_snapshot(vault))
    except Exception as err:  # noqa: BLE001 - any failure to read is "vault down" for the scraper
        from gravitypm_ops.alerts import scrub

        log.warning("metrics: vault unreadable: %s", scrub(f"{type(err).__name__}: {err}"))
        metrics.add("gravitypm_vault_up", "gauge", "1 when the vault could be read for this scrape.", 0)
        return metrics.text()
    metrics.add("gravitypm_vault_up", "gauge", "1 when the vault could be read for this scrape.", 1)
    backup_metrics(metrics, status, now)
    metrics.add("gravitypm_checklist_metrics_age_seconds", "gauge",
                "How old the checklist figures below are (recomputed in the background every 5 minutes).", round(age))
    checklist_metrics(metrics, records, chains)
    return metrics.text()


# --- the views the plugin serves: (HTTP status, body); never a stack trace ----------------------

VAULT_DOWN = "The vault cannot be read (S3 unreachable, wrong credentials or bucket?)"


def _vault_failure(err: Exception) -> str:
    from gravitypm_ops.alerts import scrub

    log.warning("ops console: %s: %s", VAULT_DOWN, scrub(f"{type(err).__name__}: {err}"))
    return error_box(VAULT_DOWN, err)


def checklists_view(query: Mapping[str, str], open_vault, now: datetime) -> tuple[int, str]:
    """The Checklists page. `open_vault()` gives the Vault (reading the config may fail too)."""
    try:
        f = HistoryFilter.from_query(query, now.date())
    except FilterError as err:
        body = error_box("Bad filter", str(err)) + render_filter_form(HistoryFilter(), [])
        return 400, page("Checklists", "checklists", body)
    try:
        records, chains, names = load_history(open_vault(), f)
    except Exception as err:  # noqa: BLE001 - shown as an error box, logged scrubbed
        return 503, page("Checklists", "checklists", _vault_failure(err) + render_filter_form(f, []))
    return 200, page("Checklists", "checklists", render_checklists(records, chains, f, names))


def checklists_csv_view(query: Mapping[str, str], open_vault, now: datetime) -> tuple[int, dict, Iterator[str]]:
    """The CSV export of what the Checklists page shows with the same filters: (status, headers, body)."""
    try:
        f = HistoryFilter.from_query(query, now.date())
        from gravitypm_ops.audit import AuditLog

        records = AuditLog(open_vault()).records(**f.records_args())
    except FilterError as err:
        return 400, {"Content-Type": "text/plain; charset=utf-8"}, iter([f"Bad filter: {err}\n"])
    except Exception as err:  # noqa: BLE001
        from gravitypm_ops.alerts import scrub

        _vault_failure(err)
        return 503, {"Content-Type": "text/plain; charset=utf-8"}, iter([f"{VAULT_DOWN}: {scrub(str(err))}\n"])
    headers = {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{csv_filename(f, now.date())}"',
    }
    return 200, headers, records_csv(records)


def backups_view(open_vault, now: datetime) -> tuple[int, str]:
    try:
        by_kind, status = load_backups(open_vault())
    except Exception as err:  # noqa: BLE001
        return 503, page("Backups", "backups", _vault_failure(err))
    return 200, page("Backups", "backups", render_backups(by_kind, status, now))


def scrape_token() -> str | None:
    """The static bearer token for /metrics: the password of connection METRICS_CONN_ID, if it exists."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(METRICS_CONN_ID).password or None
    except AirflowNotFoundException:
        return None
