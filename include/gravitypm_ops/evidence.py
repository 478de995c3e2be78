"""Evidence collectors for checklist items: each measures one thing and decides an outcome.

A collector is `collector(cfg, options, now) -> Evidence` (registered in COLLECTORS under the name a
checklist item refers to). The parsing and judging parts are plain functions of their inputs, so
they are tested alone; the collectors only add the I/O (vault, files, sockets, a command).
Evidence is small: counts, names, dates and links — never log lines or command output in bulk,
never secrets.
"""

from __future__ import annotations

import gzip
import logging
import re
import socket
import ssl
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gravitypm_ops.alerts import scrub
from gravitypm_ops.checklists import settings_of, tls_endpoints
from gravitypm_ops.names import BACKUP_KINDS

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


def _combine(parts: list[tuple[str, str]], data: dict, links=None, alert=None) -> Evidence:
    """One Evidence from (outcome, line) findings: worst outcome, problems first in the summary."""
    ordered = sorted(parts, key=lambda p: -_RANK[p[0]])
    return Evidence(worst(o for o, _ in parts), "; ".join(line for _, line in ordered) or "nothing to check",
                    data, links or [], alert)


def s3_link(vault, key: str, label: str) -> dict:
    return {"label": label, "url": f"s3://{vault.bucket}/{key}"}


# --- backups ----------------------------------------------------------------------------------------
STALE_UNVERIFIED_HOURS = 3.0  # verification runs hourly and on every new backup


def judge_backup_summaries(summaries: dict[str, dict | None]) -> tuple[list[tuple[str, str]], dict]:
    """Per kind, from Vault.summary: the newest backup's verification state."""
    parts, data = [], {}
    for kind, s in summaries.items():
        if s is None:
            parts.append((WARNING, f"{kind}: no backup yet"))
            data[kind] = None
            continue
        data[kind] = {k: s[k] for k in ("latest_id", "age_hours", "verified", "latest_verified_id", "count")}
        last = s.get("last_verification")
        if last and last["status"] != "passed":
            failed = [c["name"] for c in last.get("checks", []) if c.get("status") != "passed"]
            parts.append((FAILED, f"{kind}: newest backup {s['latest_id']} FAILED verification"
                          + (f" ({', '.join(failed)})" if failed else "")))
        elif s["latest_verified_id"] is None:
            parts.append((WARNING, f"{kind}: no backup verified yet ({s['count']} committed)"))
        elif not s["verified"] and s["age_hours"] > STALE_UNVERIFIED_HOURS:
            parts.append((WARNING, f"{kind}: newest backup {s['latest_id']} still unverified after "
                          f"{s['age_hours']:.1f} h (latest verified: {s['latest_verified_id']})"))
        else:
            parts.append((PASSED, f"{kind}: verified {s['latest_verified_id']}"))
    return parts, data


def backup_integrity(cfg, options: dict, now: datetime) -> Evidence:
    """The newest backup of each kind verified and passed (the verification DAG's status)."""
    from gravitypm_ops.vault import MANIFEST_NAME, Vault, backup_prefix

    vault = Vault.from_config(cfg)
    summaries = {kind: vault.summary(kind, now) for kind in BACKUP_KINDS}
    parts, data = judge_backup_summaries(summaries)
    links = [s3_link(vault, f"{vault.prefix}/status.json", "backup status")]
    for kind, s in summaries.items():
        if s and s["latest_verified_id"]:
            key = backup_prefix(vault.prefix, kind, s["latest_verified_id"]) + MANIFEST_NAME
            links.append(s3_link(vault, key, f"{kind} latest verified manifest"))
    return _combine(parts, data, links)


def judge_full_verification(backups_by_kind: dict[str, list[dict]], now: datetime) -> tuple[list, dict]:
    """Every retained backup verified at least once (young ones excepted), none failing its newest."""
    parts, data = [], {}
    for kind, backups in backups_by_kind.items():
        failed = [m["backup_id"] for m in backups if m["verification"] and m["verification"].get("status") != "passed"]
        never = [m["backup_id"] for m in backups if m["verification"] is None
                 and now - datetime.fromisoformat(m["finished"]) > timedelta(hours=STALE_UNVERIFIED_HOURS)]
        passed = sum(1 for m in backups if m["verification"] and m["verification"].get("status") == "passed")
        data[kind] = {"backups": len(backups), "passed": passed, "failed": failed[:20], "never_verified": never[:20]}
        if not backups:
            parts.append((WARNING, f"{kind}: no backups"))
        elif failed:
            parts.append((FAILED, f"{kind}: {len(failed)} backup(s) failed verification: {', '.join(failed[:5])}"))
        elif never:
            parts.append((WARNING, f"{kind}: {len(never)} backup(s) never verified: {', '.join(never[:5])}"))
        else:
            parts.append((PASSED, f"{kind}: all {len(backups)} backup(s) verified"))
    return parts, data


def full_backup_verification(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.vault import Vault

    vault = Vault.from_config(cfg)
    parts, data = judge_full_verification({k: vault.list_backups(k) for k in BACKUP_KINDS}, now)
    return _combine(parts, data, [s3_link(vault, f"{vault.prefix}/status.json", "backup status")])


# --- capacity ---------------------------------------------------------------------------------------
def trend(points: list[tuple[datetime, int]]) -> dict | None:
    """Least-squares growth (bytes/day) and growth % first → last; None with fewer than 2 points
    or less than a day between them."""
    points = sorted(points)
    if len(points) < 2 or points[-1][0] - points[0][0] < timedelta(days=1):
        return None
    t0 = points[0][0]
    xs = [(t - t0).total_seconds() / 86400 for t, _ in points]
    ys = [float(v) for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    first, last = ys[0], ys[-1]
    return {
        "points": len(points), "first_bytes": int(first), "last_bytes": int(last),
        "bytes_per_day": round(slope, 1),
        "growth_percent": round(100.0 * (last - first) / first, 1) if first else None,
    }


def host_data_bytes(manifest: dict) -> int | None:
    """What the backup stands for on the host: BSON bytes of a db dump, file bytes of an fs archive."""
    content = manifest.get("content") or {}
    if manifest["kind"] == "db":
        return sum(c.get("bson_bytes", 0) for db in content.get("databases", {}).values() for c in db.values())
    return content.get("bytes")


def judge_capacity(trends: dict[str, dict | None], host_trends: dict[str, dict | None], headroom_bytes: int | None,
                   horizon_days: int, growth_warning_percent: float) -> tuple[list, dict]:
    parts = []
    for kind, t in trends.items():
        if t is None:
            parts.append((WARNING, f"{kind}: not enough backups in the window for a trend"))
        elif t["growth_percent"] is not None and t["growth_percent"] > growth_warning_percent:
            parts.append((WARNING, f"{kind}: backup size grew {t['growth_percent']:g} % "
                          f"({t['first_bytes']} → {t['last_bytes']} bytes)"))
        else:
            parts.append((PASSED, f"{kind}: {t['last_bytes']} bytes, {t['bytes_per_day']:+g} bytes/day"))
    daily = sum(max(t["bytes_per_day"], 0) for t in host_trends.values() if t)
    data = {"backup_trends": trends, "host_data_trends": host_trends, "headroom_bytes": headroom_bytes,
            "host_growth_bytes_per_day": daily}
    if headroom_bytes is not None:
        if headroom_bytes <= 0:
            parts.append((FAILED, "host disk already below disk_min_free_percent"))
        elif daily > 0:
            days = headroom_bytes / daily
            data["days_until_disk_threshold"] = round(days, 1)
            outcome = WARNING if days < horizon_days else PASSED
            parts.append((outcome, f"host disk reaches its free-space floor in ~{days:.0f} days at the DB+fs growth "
                          f"rate (horizon {horizon_days} days)"))
        else:
            parts.append((PASSED, "host data not growing: disk headroom stable"))
    return parts, data


def capacity(cfg, options: dict, now: datetime) -> Evidence:
    """Trend of DB and backup sizes in the vault manifests, and the host's disk headroom."""
    import shutil

    from gravitypm_ops.vault import Vault, backup_time

    settings = settings_of(cfg)
    since = now - timedelta(days=settings["capacity_window_days"])
    vault = Vault.from_config(cfg)
    trends, host_trends = {}, {}
    for kind in BACKUP_KINDS:
        # A backup's time is its run's scheduled time (in its id): the series is evenly spaced.
        backups = [(backup_time(m["backup_id"]), m) for m in vault.list_backups(kind)]
        backups = [(t, m) for t, m in backups if t >= since]
        trends[kind] = trend([(t, sum(a["size"] for a in m["artifacts"])) for t, m in backups])
        if kind in ("db", "fs"):
            sized = [(t, host_data_bytes(m)) for t, m in backups]
            host_trends[kind] = trend([(t, b) for t, b in sized if b is not None])
    try:
        total, _, free = shutil.disk_usage(cfg.app_root)
        headroom = int(free - total * cfg.disk_min_free_percent / 100)
    except FileNotFoundError:
        headroom = None
    parts, data = judge_capacity(trends, host_trends, headroom, settings["capacity_horizon_days"],
                                 settings["capacity_growth_warning_percent"])
    if headroom is None:
        parts.append((FAILED, f"app_root {cfg.app_root} does not exist: cannot measure disk headroom"))
    return _combine(parts, data)


# --- disk and health --------------------------------------------------------------------------------
def _from_check(result) -> Evidence:
    outcome = {"ok": PASSED, "warning": WARNING, "breach": FAILED}
    parts = [(outcome[f.status], f"{f.subject}: {f.detail}") for f in result.findings]
    return _combine(parts, result.to_dict())


def disk_space(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.checks import check_disk

    return _from_check(check_disk(cfg.disk_paths, cfg.disk_min_free_percent))


def service_health(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.checks import check_health

    return _from_check(check_health(cfg.health_urls))


# --- access logs ------------------------------------------------------------------------------------
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
    return _combine(parts, data)


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


# --- TLS --------------------------------------------------------------------------------------------
def fetch_certificate(host: str, port: int, *, ca_file: str = "", timeout: float = 10.0) -> dict:
    """Connect, verify the chain and host name, and read the certificate's expiry.

    Returns {"host", "port", "valid": bool, "not_after": ISO | None, "error": str | None, ...}."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    found = {"host": host, "port": port, "valid": False, "not_after": None, "error": None}
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as err:
        found["error"] = f"certificate not valid: {err.verify_message}"
        found["not_after"] = _unverified_not_after(host, port, timeout)
        return found
    except (OSError, ssl.SSLError) as err:
        found["error"] = f"unreachable: {type(err).__name__}: {err}"
        return found
    not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)
    subject = dict(x[0] for x in cert.get("subject", ()))
    issuer = dict(x[0] for x in cert.get("issuer", ()))
    found.update(valid=True, not_after=not_after.isoformat(), subject=subject.get("commonName"),
                 issuer=issuer.get("organizationName") or issuer.get("commonName"))
    return found


def _unverified_not_after(host: str, port: int, timeout: float) -> str | None:
    """The expiry of a certificate that failed verification (to tell 'expired' from 'untrusted')."""
    from cryptography import x509

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).not_valid_after_utc.isoformat()
    except (OSError, ssl.SSLError, ValueError):
        return None


def judge_certificates(certs: list[dict], warning_days: int, now: datetime) -> Evidence:
    if not certs:
        return Evidence(WARNING, "no TLS endpoint to check (health_urls are not https; set checklists.tls_endpoints)",
                        {"endpoints": []})
    parts, expiring = [], []
    for cert in certs:
        name = f"{cert['host']}:{cert['port']}"
        days = None
        if cert["not_after"]:
            days = (datetime.fromisoformat(cert["not_after"]) - now).total_seconds() / 86400
            cert["days_left"] = round(days, 1)
        if not cert["valid"]:
            parts.append((FAILED, f"{name}: {cert['error']}"
                          + (f" (expires {cert['not_after'][:10]})" if cert["not_after"] else "")))
        elif days < warning_days:
            expiring.append(f"{name} expires in {days:.0f} days ({cert['not_after'][:10]})")
            parts.append((WARNING, f"{name}: expires in {days:.0f} days, under {warning_days}"))
        else:
            parts.append((PASSED, f"{name}: valid for {days:.0f} more days"))
    alert = None
    if expiring or any(not c["valid"] for c in certs):
        bad = expiring + [f"{c['host']}:{c['port']} {c['error']}" for c in certs if not c["valid"]]
        alert = "TLS certificate problem (runbook: certificate expiration < 30 days is Critical): " + "; ".join(bad)
    return _combine(parts, {"endpoints": certs, "warning_days": warning_days}, alert=alert)


def tls_expiry(cfg, options: dict, now: datetime) -> Evidence:
    """Each TLS endpoint's certificate, read from the live endpoint."""
    settings = settings_of(cfg)
    certs = [
        fetch_certificate(host, port, ca_file=settings["tls_ca_file"], timeout=settings["tls_timeout_seconds"])
        for host, port in tls_endpoints(cfg)
    ]
    return judge_certificates(certs, settings["tls_warning_days"], now)


# --- security updates -------------------------------------------------------------------------------
# `apt list --upgradable`: "openssl/bookworm-security 3.0.15-1~deb12u1 amd64 [upgradable from: 3.0.14-1~deb12u2]"
_APT = re.compile(r"^(?P<package>[^/\s]+)/(?P<suites>\S+) (?P<version>\S+) (?P<arch>\S+)")


def parse_upgradable(output: str) -> list[dict]:
    """Pending upgrades from `apt list --upgradable` output; `security` when a suite is *-security."""
    pending = []
    for line in output.splitlines():
        match = _APT.match(line.strip())
        if match and "upgradable" in line:
            suites = match["suites"].split(",")
            pending.append({"package": match["package"], "version": match["version"],
                            "security": any("security" in s for s in suites)})
    return pending


def judge_updates(pending: list[dict]) -> Evidence:
    security = [p["package"] for p in pending if p["security"]]
    data = {"pending": len(pending), "security": len(security), "security_packages": security[:50]}
    if security:
        return Evidence(FAILED, f"{len(security)} security update(s) pending: {', '.join(security[:10])}"
                        + (" …" if len(security) > 10 else ""), data)
    return Evidence(PASSED, f"no security update pending ({len(pending)} other update(s) available)", data)


def security_updates(cfg, options: dict, now: datetime) -> Evidence:
    """The configured command (default `apt list --upgradable`) lists no pending security update."""
    settings = settings_of(cfg)
    argv = settings["security_updates_command"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=settings["security_updates_timeout_seconds"])
    except (OSError, subprocess.TimeoutExpired) as err:
        return Evidence(FAILED, f"could not run {argv[0]}: {scrub(str(err))}", {"command": argv[0]})
    if done.returncode != 0:
        tail = scrub(done.stderr.strip()[-500:])
        return Evidence(FAILED, f"{argv[0]} exited {done.returncode}: {tail}", {"command": argv[0]})
    evidence = judge_updates(parse_upgradable(done.stdout))
    evidence.data["command"] = scrub(" ".join(argv))  # it goes into XCom and the audit record
    return evidence


# --- compliance (the audit history itself) ----------------------------------------------------------
def compliance_findings(chains: dict[str, dict], records: dict[str, list[dict]], expected: dict[str, list[str]]):
    """Chains that do not verify (failed); periods with no run and missed items (warning)."""
    shown = {name: {**r, "problems": r["problems"][:10]} for name, r in chains.items()}  # evidence stays small
    parts, data = [], {"chains": shown, "gaps": {}, "missed": []}
    for name, report in sorted(chains.items()):
        if not report["ok"]:
            parts.append((FAILED, f"{name}: audit chain does not verify: {'; '.join(report['problems'][:3])}"))
        else:
            parts.append((PASSED, f"{name}: chain of {report['records']} record(s) verifies"))
    for name, periods in expected.items():
        seen = {r["period"] for r in records.get(name, [])}
        gaps = [p for p in periods if p not in seen]
        if gaps:
            data["gaps"][name] = gaps[:100]
            parts.append((WARNING, f"{name}: no run for {', '.join(gaps[:6])}" + (" …" if len(gaps) > 6 else "")))
    for name, found in records.items():
        for r in found:
            if r["outcome"] == "missed":
                data["missed"].append({"checklist": name, "period": r["period"], "item": r["item"]})
    if data["missed"]:
        shown = ", ".join(f"{m['checklist']} {m['period']} {m['item']}" for m in data["missed"][:6])
        parts.append((WARNING, f"{len(data['missed'])} missed item(s): {shown}"))
    data["missed"] = data["missed"][:100]
    return parts, data


def compliance(cfg, options: dict, now: datetime) -> Evidence:
    """Verify every audit chain; find periods without a run and missed items in the window."""
    from zoneinfo import ZoneInfo

    from gravitypm_ops.audit import AuditLog
    from gravitypm_ops.checklists import CHECKLISTS, period_of, period_start, periods_between
    from gravitypm_ops.names import schedule_timezone

    settings = settings_of(cfg)
    audit = AuditLog.from_config(cfg)
    # Every defined checklist too: a wiped chain is no longer listed, but its delete markers are found.
    names = sorted(set(audit.checklists()) | set(CHECKLISTS))
    chains = {name: audit.verify(name).to_dict() for name in names}
    tz = ZoneInfo(schedule_timezone())
    today = now.astimezone(tz).date()
    window_start = today - timedelta(days=settings["compliance_window_days"])
    # The history begins with its oldest record: periods before it are not gaps (a new installation).
    firsts = [audit.first(name) for name in names]
    began = min((datetime.fromisoformat(r["completed_at"]).astimezone(tz).date() for r in firsts if r), default=today)
    start = max(window_start, began)
    records, expected = {}, {}
    for checklist in CHECKLISTS.values():
        records[checklist.name] = audit.records(checklist.name, since=datetime.combine(start, datetime.min.time(), tz))
        current = period_of(checklist.cadence, today)
        expected[checklist.name] = [
            p for p in periods_between(checklist.cadence, start, today)
            if p != current and period_start(checklist.cadence, p) >= start
        ]
    parts, data = compliance_findings(chains, records, expected)
    data["window"] = {"from": start.isoformat(), "to": today.isoformat()}
    root = f"{audit.root}"
    return _combine(parts, data, [{"label": "audit history", "url": f"s3://{audit.vault.bucket}/{root}"}])


COLLECTORS = {
    "backup_integrity": backup_integrity,
    "full_backup_verification": full_backup_verification,
    "capacity": capacity,
    "disk_space": disk_space,
    "service_health": service_health,
    "access_logs": access_logs,
    "tls_expiry": tls_expiry,
    "security_updates": security_updates,
    "compliance": compliance,
}


def collect(name: str, cfg, options: dict | None = None, now: datetime | None = None) -> Evidence:
    if name not in COLLECTORS:
        raise ValueError(f"unknown evidence collector {name!r}; known: {', '.join(COLLECTORS)}")
    return COLLECTORS[name](cfg, options or {}, now or datetime.now(UTC))
