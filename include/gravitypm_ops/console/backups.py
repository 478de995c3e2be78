"""The Backups page: status per kind, newest backups, size chart."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from gravitypm_ops.console.html import (
    Problem,
    esc,
    fmt_age,
    fmt_bytes,
    fmt_time,
    json_type,
    missing_fields,
    problems_box,
    to_datetime,
)
from gravitypm_ops.names import BACKUP_KINDS

log = logging.getLogger(__name__)
BACKUPS_SHOWN = 10  # newest backups listed per kind (the chart shows them all)

# What the page and /metrics read of a status.json entry (Vault.summary) and of a manifest.
STATUS_ENTRY_FIELDS = ("latest_id", "bytes", "age_hours", "count", "total_bytes", "verified", "last_verification",
                       "latest_verified_id")
_NUMBER_FIELDS = ("bytes", "age_hours", "count", "total_bytes")
MANIFEST_FIELDS = ("backup_id", "finished", "artifacts")
UNREADABLE_VERIFICATION = {"status": "unreadable", "finished": None, "checks": []}
UNUSABLE = "_unusable_kinds"  # check_status: the kinds whose status.json entry was left out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _time_problem(value) -> str:
    """"" when `value` is an ISO 8601 time, else why not."""
    if not isinstance(value, str):
        return f"is {json_type(value)}, not an ISO 8601 time"
    try:
        to_datetime(value)
    except ValueError:
        return f"{value[:40]!r} is not an ISO 8601 time"
    return ""


def _read_object(vault, key: str, problems: list[Problem], read=None):
    """The JSON at `key` (None when absent); not JSON or not an object: a Problem and None."""
    try:
        doc = read() if read else vault.read_json(key)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError: garbage in the object
        problems.append(Problem(key, f"not JSON ({type(err).__name__}: {str(err)[:120]})"))
        return None
    if doc is not None and not isinstance(doc, dict):
        problems.append(Problem(key, f"{json_type(doc)}, not an object"))
        return None
    return doc


def check_status(doc: dict | None, key: str) -> tuple[dict | None, list[Problem]]:
    """status.json as far as it is usable: None when the file as a whole is not (no `written`, `kinds` not an
    object), else a copy without the kind entries that lack a field or have one of the wrong type."""
    if doc is None:
        return None, []
    if "written" not in doc:
        return None, [Problem(key, "'written' missing: not a status file gravitypm_backup_verification wrote")]
    if why := _time_problem(doc["written"]):
        return None, [Problem(key, f"'written' {why}")]
    kinds = doc.get("kinds") or {}
    if not isinstance(kinds, dict):
        return None, [Problem(key, f"'kinds' is {json_type(kinds)}, not an object of kind -> entry")]
    problems, usable, unusable = [], {}, []
    for kind, entry in kinds.items():
        if entry is None:
            usable[kind] = None
            continue
        why = ""
        if not isinstance(entry, dict):
            why = f"{json_type(entry)}, not an object"
        elif missing := missing_fields(entry, STATUS_ENTRY_FIELDS):
            why = missing
        elif bad := [f for f in _NUMBER_FIELDS if not _is_number(entry[f])]:
            why = f"{', '.join(map(repr, bad))} not a number"
        elif (last := entry["last_verification"]) is not None:
            if not isinstance(last, dict):
                why = f"'last_verification' is {json_type(last)}, not an object"
            elif missing := missing_fields(last, ("status", "finished")):
                why = f"last_verification: {missing}"
            elif t := _time_problem(last["finished"]):
                why = f"last_verification: 'finished' {t}"
        if why:
            problems.append(Problem(key, f"kinds.{kind}{'.' if why.startswith('last_') else ': '}{why}"))
            unusable.append(kind)
            continue
        usable[kind] = entry
    return {**doc, "kinds": usable, UNUSABLE: unusable}, problems


def load_status(vault) -> tuple[dict | None, list[Problem]]:
    """status.json checked (see check_status): (usable part or None, problems naming the key)."""
    problems: list[Problem] = []
    doc = _read_object(vault, vault.status_key, problems, read=vault.read_status)
    if vault.status_key in vault.rejected:  # read_status left it out
        problems.append(Problem(vault.status_key, f"left out: {vault.rejected[vault.status_key]}"))
    status, found = check_status(doc, vault.status_key)
    return status, problems + found


def read_status(vault) -> dict | None:
    """<vault_prefix>/status.json as Vault.write_status wrote it (None before the first verification run, or
    when it is unusable: load_status says why)."""
    return load_status(vault)[0]


def _check_manifest(manifest: dict) -> str:
    """"" when the page can show the manifest, else what is wrong with it."""
    from gravitypm_ops.vault.layout import backup_time

    if missing := missing_fields(manifest, MANIFEST_FIELDS):
        return missing
    try:
        backup_time(str(manifest["backup_id"]))
    except ValueError:
        return f"'backup_id' {str(manifest['backup_id'])[:40]!r} is not a backup id"
    if why := _time_problem(manifest["finished"]):
        return f"'finished' {why}"
    artifacts = manifest["artifacts"]
    if not isinstance(artifacts, list) or not all(isinstance(a, dict) and _is_number(a.get("size")) for a in artifacts):
        return "'artifacts' is not a list of objects with a 'size'"
    return ""


def _check_verification(record: dict) -> str:
    if missing := missing_fields(record, ("status", "finished")):
        return missing
    if why := _time_problem(record["finished"]):
        return f"'finished' {why}"
    checks = record.get("checks", [])
    if not isinstance(checks, list) or not all(isinstance(c, dict) for c in checks):
        return "'checks' is not a list of objects"
    return ""


def list_backups_checked(vault, kind: str) -> tuple[list[dict], list[Problem]]:
    """Like Vault.list_backups, but one object at a time: an unusable manifest is left out, an unusable
    verification record reads as UNREADABLE_VERIFICATION, and each is reported as a Problem by key.
    A manifest or record whose signature does not check (Vault.rejection) is left out and reported:
    the newest record that checks is shown instead of a forged one."""
    backups, problems = [], []
    for entry in vault.inventory(kind).values():
        manifest = _read_object(vault, entry["manifest"], problems)
        if manifest is None:
            continue
        if why := _check_manifest(manifest) or vault.rejection(entry["manifest"], manifest):
            problems.append(Problem(entry["manifest"], why))
            continue
        record = None
        for key in reversed(entry["verifications"]):
            found: list[Problem] = []
            record = _read_object(vault, key, found)
            if record is not None and (why := vault.rejection(key, record, manifest)):
                problems.append(Problem(key, f"left out: {why}"))
                record = None
                continue
            if record is not None and (why := _check_verification(record)):
                found.append(Problem(key, why))
            if found:
                problems.extend(found)
                record = dict(UNREADABLE_VERIFICATION)
            break
        manifest["verification"] = record
        backups.append(manifest)
    return backups, problems


def load_backups(vault) -> tuple[dict[str, list[dict]], dict | None, list[Problem]]:
    """Every committed backup per kind (oldest first, newest verification attached), status.json and the
    objects that could not be used. The kinds are listed in parallel: each is a LIST plus a GET per
    manifest and verification."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(BACKUP_KINDS)) as pool:
        results = list(pool.map(lambda kind: list_backups_checked(vault, kind), BACKUP_KINDS))
    listings = {kind: found for kind, (found, _) in zip(BACKUP_KINDS, results, strict=True)}
    status, problems = load_status(vault)
    return listings, status, [p for _, found in results for p in found] + problems


def _size(manifest: dict) -> int:
    return sum(a["size"] for a in manifest.get("artifacts", []))


def encryption_text(manifest: dict) -> str:
    """"encrypted (age, 2 recipients)" when every artifact is client-side encrypted (the recipient
    count of the first; "partly" when only some are), else "not client-side encrypted"."""
    found = [a.get("encryption") for a in manifest.get("artifacts", [])]
    encrypted = [e for e in found if isinstance(e, dict)]
    if not encrypted:
        return "not client-side encrypted"
    recipients = encrypted[0].get("recipients")
    count = len(recipients) if isinstance(recipients, list) else 0
    return (f"{'' if len(encrypted) == len(found) else 'partly '}encrypted "
            f"({encrypted[0].get('format', '?')}, {count} recipient{'' if count == 1 else 's'})")


def _encrypted(manifest: dict) -> bool:
    return any(isinstance(a.get("encryption"), dict) for a in manifest.get("artifacts", []))


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
    from gravitypm_ops.vault.layout import backup_time

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
        f'<title>{esc(m["backup_id"])}: {esc(fmt_bytes(s))}, {esc(_verification_state(m)[1])}</title></circle>'
        for (x, y), (_, s, m) in zip(coords, points, strict=True)
    )
    line = " ".join(f"{x},{y}" for x, y in coords)
    base = height - bottom
    return (
        f'<svg class="chart" role="img" aria-label="backup size over time" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#cbd5e0"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#cbd5e0"/>'
        f'<text x="{left - 4}" y="{top + 9}" font-size="10" text-anchor="end">{esc(fmt_bytes(top_size))}</text>'
        f'<text x="{left - 4}" y="{base}" font-size="10" text-anchor="end">0</text>'
        f'<text x="{left}" y="{height - 8}" font-size="10">{points[0][0]:%Y-%m-%d %H:%M}</text>'
        f'<text x="{width - right}" y="{height - 8}" font-size="10" text-anchor="end">'
        f"{points[-1][0]:%Y-%m-%d %H:%M}</text>"
        f'<polyline points="{line}" fill="none" stroke="#4299e1" stroke-width="1.5"/>{dots}</svg>'
    )


def render_status_entry(kind: str, status: dict | None, now: datetime, broken: bool = False) -> str:
    """What the verification run last recorded for a kind in status.json (`broken`: it exists, unusable)."""
    if status is None and broken:
        return '<p class="status-unusable">status.json cannot be used (see the error above).</p>'
    if status is None:
        return '<p class="muted">No status.json yet: gravitypm_backup_verification writes it on its first run.</p>'
    written = to_datetime(status.get("written"))
    since = f"{fmt_time(written)} ({fmt_age((now - written).total_seconds())} ago)" if written else "?"
    if kind in status.get(UNUSABLE, ()):
        return (f'<p class="status-unusable">status.json (written {esc(since)}): the {esc(kind)} entry cannot be '
                "used (see the error above).</p>")
    entry = (status.get("kinds") or {}).get(kind)
    if not entry:
        return f'<p class="muted">status.json (written {esc(since)}): no {esc(kind)} backup.</p>'
    last = entry.get("last_verification") or {}
    result = last.get("status") or "never verified"
    return (
        f'<p>status.json (written {esc(since)}): latest <code>{esc(entry.get("latest_id"))}</code>, '
        f'{esc(fmt_bytes(entry.get("bytes", 0)))}, last verification '
        f'<span class="badge {"passed" if result == "passed" else "failed" if last else "none"}">{esc(result)}</span>; '
        f'newest verified: <code>{esc(entry.get("latest_verified_id") or "none")}</code></p>'
    )


def render_backups(by_kind: Mapping[str, list[dict]], status: dict | None, now: datetime,
                   problems: list[Problem] = ()) -> str:
    """Per kind: the newest backup's age / size / verification (and the newest verified one's age when that
    is another: what a restore of `latest` would use), status.json's entry, the size chart and the newest
    BACKUPS_SHOWN backups. `problems` (objects that could not be used) come first, in one error box."""
    from gravitypm_ops.vault.layout import verified_ok

    parts = [problems_box("Some vault objects cannot be used (left out below)", problems)]
    status_broken = any(p.key.rsplit("/", 1)[-1] == "status.json" for p in problems)
    for kind in BACKUP_KINDS:
        backups = list(by_kind.get(kind, []))
        parts.append(f'<section class="kind" data-kind="{kind}"><h2>{kind}</h2>')
        if backups:
            newest = backups[-1]
            age = (now - to_datetime(newest["finished"])).total_seconds()
            css, text = _verification_state(newest)
            parts.append(
                f'<p class="latest">Newest: <code>{esc(newest["backup_id"])}</code>, '
                f"age <strong>{esc(fmt_age(age))}</strong>, "
                f'{esc(fmt_bytes(_size(newest)))}, '
                + (f"{esc(encryption_text(newest))}, " if _encrypted(newest) else "")
                + f'<span class="badge {css}">{esc(text)}</span> '
                f'<span class="muted">({len(backups)} backups, '
                f"{esc(fmt_bytes(sum(map(_size, backups))))} in all)</span></p>"
            )
            verified = next((m for m in reversed(backups) if verified_ok(m)), None)
            if verified is not newest:
                parts.append(
                    f'<p class="latest-verified">Newest verified: <code>{esc(verified["backup_id"])}</code>, age '
                    f'<strong>{esc(fmt_age((now - to_datetime(verified["finished"])).total_seconds()))}</strong></p>'
                    if verified else '<p class="latest-verified">No backup of this kind has passed verification.</p>'
                )
        else:
            parts.append('<p class="latest muted">No committed backup.</p>')
        parts.append(render_status_entry(kind, status, now, status_broken))
        parts.append(size_chart(backups))
        if backups:
            rows = []
            for m in reversed(backups[-BACKUPS_SHOWN:]):
                css, text = _verification_state(m)
                tag = ' <span class="badge none">safety</span>' if m.get("purpose") == "safety" else ""
                rows.append(
                    f'<tr><td><code>{esc(m["backup_id"])}</code>{tag}</td><td>{esc(fmt_time(m["finished"]))}</td>'
                    f'<td class="num">{esc(fmt_age((now - to_datetime(m["finished"])).total_seconds()))}</td>'
                    f'<td class="num">{esc(fmt_bytes(_size(m)))}</td>'
                    f'<td>{esc(encryption_text(m))}</td>'
                    f'<td><span class="badge {css}">{esc(text)}</span></td>'
                    f'<td class="muted">{esc(m.get("dag_id"))} / {esc(m.get("run_id"))}</td></tr>'
                )
            parts.append(
                '<table class="backups"><thead><tr><th>backup</th><th>finished</th><th>age</th><th>size</th>'
                "<th>encryption</th><th>verification</th><th>DAG run</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            )
        parts.append("</section>")
    return "".join(parts)
