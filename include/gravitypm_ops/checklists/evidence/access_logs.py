"""Access-log evidence: 401/403/5xx counts, 5xx rate and failed-login spikes in a window."""

from __future__ import annotations

import gzip
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gravitypm_ops.checklists.evidence.base import FAILED, PASSED, WARNING, Evidence, combine
from gravitypm_ops.config.checklists import settings_of

log = logging.getLogger(__name__)


# Common / combined log format; the time is either nginx's [27/Nov/2026:18:00:00 +0000] or ISO 8601.
_ACCESS = re.compile(
    r'^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) \S+'
)


@dataclass(frozen=True)
class Request:
    time: datetime
    client: str
    method: str
    path: str
    status: int


def parse_access_line(line: str) -> Request | None:
    """One access-log line, or None when it is not in common/combined format."""
    match = _ACCESS.match(line)
    if not match:
        return None
    raw = match["time"]
    try:
        when = datetime.strptime(raw, "%d/%b/%Y:%H:%M:%S %z")
    except ValueError:
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    parts = match["request"].split()
    method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("-", "-")
    return Request(when, match["ip"], method, target.split("?", 1)[0], int(match["status"]))


@dataclass
class AccessStats:
    requests: int = 0
    unparsed: int = 0
    by_class: Counter = field(default_factory=Counter)  # "2xx", "4xx", …
    unauthorized: int = 0  # 401
    forbidden: int = 0  # 403
    server_errors: int = 0  # 5xx
    failed_logins: Counter = field(default_factory=Counter)  # per client
    error_paths: Counter = field(default_factory=Counter)  # 5xx per path
    first: datetime | None = None
    last: datetime | None = None

    def add(self, request: Request, login_paths: tuple[str, ...]) -> None:
        self.requests += 1
        self.by_class[f"{request.status // 100}xx"] += 1
        self.first = min(self.first or request.time, request.time)
        self.last = max(self.last or request.time, request.time)
        if request.status == 401:
            self.unauthorized += 1
        elif request.status == 403:
            self.forbidden += 1
        elif request.status >= 500:
            self.server_errors += 1
            if len(self.error_paths) < 1000 or request.path in self.error_paths:  # bounded
                self.error_paths[request.path] += 1
        if request.status in (401, 403) and request.path.startswith(login_paths):
            self.failed_logins[request.client] += 1


def scan_access_lines(lines: Iterable[str], since: datetime, until: datetime, login_paths) -> AccessStats:
    """Count one stream of lines (only those inside [since, until]); memory is bounded by counters."""
    stats = AccessStats()
    prefixes = tuple(login_paths)
    for line in lines:
        if not line.strip():
            continue
        request = parse_access_line(line)
        if request is None:
            stats.unparsed += 1
        elif since <= request.time <= until:
            stats.add(request, prefixes)
    return stats


def access_log_files(logs_dir: str, since: datetime) -> list[Path]:
    """access.log and its rotated siblings (access.log.1, access.log.2.gz, access.log-20261126, …)
    that may hold lines newer than `since`, oldest first."""
    directory = Path(logs_dir)
    files = [p for p in directory.glob("access.log*") if p.is_file()]
    recent = [p for p in files if datetime.fromtimestamp(p.stat().st_mtime, UTC) >= since]
    return sorted(recent, key=lambda p: p.stat().st_mtime)


def _lines(path: Path) -> Iterator[str]:
    if path.suffix == ".gz":
        opener = gzip.open(path, "rt", encoding="utf-8", errors="replace")
    elif path.suffix == ".zst":
        import io

        import zstandard

        opener = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(path.open("rb")), "utf-8", "replace")
    else:
        opener = path.open("r", encoding="utf-8", errors="replace")
    with opener as stream:
        yield from stream


def merge(total: AccessStats, part: AccessStats) -> AccessStats:
    total.requests += part.requests
    total.unparsed += part.unparsed
    total.unauthorized += part.unauthorized
    total.forbidden += part.forbidden
    total.server_errors += part.server_errors
    for name in ("by_class", "failed_logins", "error_paths"):
        getattr(total, name).update(getattr(part, name))
    for moment in (part.first, part.last):
        if moment:
            total.first = min(total.first or moment, moment)
            total.last = max(total.last or moment, moment)
    return total


def judge_access(stats: AccessStats, settings: dict, window_hours: float) -> Evidence:
    threshold = settings["failed_login_threshold"]
    rate = 100.0 * stats.server_errors / stats.requests if stats.requests else 0.0
    spikes = {client: n for client, n in stats.failed_logins.most_common() if n >= threshold}
    total_failed = sum(stats.failed_logins.values())
    data = {
        "window_hours": window_hours, "requests": stats.requests, "unparsed_lines": stats.unparsed,
        "status_classes": dict(stats.by_class), "401": stats.unauthorized, "403": stats.forbidden,
        "5xx": stats.server_errors, "5xx_rate_percent": round(rate, 3),
        "failed_logins": total_failed, "top_failed_login_clients": dict(stats.failed_logins.most_common(5)),
        "top_5xx_paths": dict(stats.error_paths.most_common(5)),
        "first": stats.first.isoformat() if stats.first else None,
        "last": stats.last.isoformat() if stats.last else None,
    }
    parts = [(PASSED, f"{stats.requests} requests in {window_hours:g} h: {stats.unauthorized}×401, "
                      f"{stats.forbidden}×403, {stats.server_errors}×5xx ({rate:.2f} %)")]
    if stats.requests == 0:
        parts.append((WARNING, f"no requests logged in the last {window_hours:g} h (is the app logging?)"
                      + (f"; {stats.unparsed} line(s) not in common/combined log format" if stats.unparsed else "")))
    if spikes:
        parts.append((FAILED, "failed-login spike: " + ", ".join(f"{c} {n}×" for c, n in list(spikes.items())[:5])
                      + f" (threshold {threshold} per client)"))
    elif total_failed >= threshold:
        parts.append((WARNING, f"{total_failed} failed logins spread over {len(stats.failed_logins)} clients"))
    if rate > settings["error_rate_failure_percent"]:
        parts.append((FAILED, f"5xx rate {rate:.2f} % > {settings['error_rate_failure_percent']:g} %"))
    elif rate > settings["error_rate_warning_percent"]:
        parts.append((WARNING, f"5xx rate {rate:.2f} % > {settings['error_rate_warning_percent']:g} %"))
    return combine(parts, data)


def access_logs(cfg, options: dict, now: datetime) -> Evidence:
    """access.log (and rotated siblings) of the last `window_hours`: 401/403/5xx, failed-login spikes."""
    settings = settings_of(cfg)
    hours = float(options.get("window_hours", 24))
    since = now - timedelta(hours=hours)
    current = Path(cfg.logs_path) / "access.log"
    if not current.exists():
        return Evidence(FAILED, f"no access log at {current}", {"path": str(current)})
    stats = AccessStats()
    files = access_log_files(cfg.logs_path, since)
    for path in files:
        merge(stats, scan_access_lines(_lines(path), since, now, settings["login_paths"]))
    evidence = judge_access(stats, settings, hours)
    evidence.data["files"] = [p.name for p in files]
    return evidence
