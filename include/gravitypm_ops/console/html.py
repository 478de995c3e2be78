"""HTML building blocks of the console pages: escaping, formatting, the page frame."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


# Sent with every page: no script at all, styles inline only, forms back to the console, framed only
# by the Airflow UI (same origin). Defence in depth behind the escaping.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}


def to_datetime(value) -> datetime | None:
    if value in (None, ""):
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def fmt_time(value) -> str:
    moment = to_datetime(value)
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


def esc(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def html_link(label: str, url: str) -> str:
    """An evidence link: clickable only for http(s) URLs (never javascript: or data:)."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # e.g. a broken IPv6 host: shown, not linked
        scheme = ""
    if scheme in ("http", "https"):
        return f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">{esc(label)}</a>'
    return f"{esc(label)}: <code>{esc(url)}</code>"


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
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>GravityPM · {esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
        f'<body><nav class="tabs">{tabs}</nav><main><h1>{esc(title)}</h1>{body}</main></body></html>'
    )


def error_box(what: str, err: BaseException | str) -> str:
    """A visible, scrubbed error instead of a stack trace (e.g. the vault is unreachable)."""
    from gravitypm_ops.redact import scrub

    detail = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return f'<div class="error" role="alert"><strong>{esc(what)}</strong><br>{esc(scrub(detail))}</div>'


@dataclass(frozen=True)
class Problem:
    """A vault object the console could not use (unparsable, wrong shape, missing fields): shown in an
    error box naming it and exported as gravitypm_vault_object_error{key=...}; the rest of the page
    is still rendered."""

    key: str  # the object's key in the vault (or its chain's prefix when the key cannot be known)
    detail: str


def json_type(value) -> str:
    """How a JSON value that should have been an object is described ("a JSON array")."""
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return f"a JSON {names.get(type(value), type(value).__name__)}"


def missing_fields(doc: dict, required) -> str:
    """"'a', 'b' missing" for the names of `required` that `doc` lacks ("" when none)."""
    missing = [name for name in required if name not in doc]
    return f"{', '.join(map(repr, missing))} missing" if missing else ""


def problems_box(what: str, problems) -> str:
    """One error box listing every unusable object by key (scrubbed, escaped); "" when there is none."""
    from gravitypm_ops.redact import scrub

    problems = list(problems)
    if not problems:
        return ""
    items = "".join(f"<li><code>{esc(p.key)}</code>: {esc(scrub(p.detail))}</li>" for p in problems)
    return f'<div class="error" role="alert"><strong>{esc(what)}</strong><ul class="problems">{items}</ul></div>'
