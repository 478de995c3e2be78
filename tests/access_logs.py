"""Sample access logs as the production host writes them (plain and combined format, rotated, gzipped)."""

import gzip
import os
from datetime import datetime, timedelta


def combined(ip, status, path, when):
    return f'{ip} - - [{when:%d/%b/%Y:%H:%M:%S %z}] "POST {path} HTTP/1.1" {status} 42 "-" "Mozilla/5.0"\n'


def iso(ip, status, path, when):  # what dev/prod_host.py writes
    return f'{ip} - - [{when.isoformat()}] "GET {path} HTTP/1.1" {status} 512\n'


def seed_logs(logs, *, attack: int, now: datetime):
    """access.log (last hour), a rotated .1.gz (20 h old) and a 10-day-old .5: what the collector windows over."""
    logs.mkdir(parents=True, exist_ok=True)
    recent = now - timedelta(hours=1)
    current = [iso("127.0.0.1", 200, "/api/projects", recent)] * 300
    current += [combined("203.0.113.66", 401, "/api/auth/login", recent)] * attack
    current += [iso("127.0.0.1", 503, "/api/reports", recent)] * 2
    (logs / "access.log").write_text("".join(current))
    yesterday = now - timedelta(hours=20)
    with gzip.open(logs / "access.log.1.gz", "wt") as out:  # rotated, still inside a 24 h window
        out.write("".join([iso("127.0.0.1", 200, "/api/projects", yesterday)] * 100))
        out.write("".join([combined("198.51.100.4", 403, "/login", yesterday)] * 3))
    os.utime(logs / "access.log.1.gz", (yesterday.timestamp(), yesterday.timestamp()))
    old = now - timedelta(days=10)
    (logs / "access.log.5").write_text(iso("127.0.0.1", 500, "/api/old", old) * 1000)
    os.utime(logs / "access.log.5", (old.timestamp(), old.timestamp()))
