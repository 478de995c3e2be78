"""Capacity planning evidence: growth of DB and backup sizes, free disk projected, and the size of
Airflow's own metadata DB (the control plane grows too)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from gravitypm_ops.checklists.evidence.base import FAILED, PASSED, WARNING, Evidence, combine
from gravitypm_ops.config.checklists import settings_of
from gravitypm_ops.names import BACKUP_KINDS, HOUSEKEEPING_CHECKLIST

log = logging.getLogger(__name__)


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


def metadb_trend(records: list[dict]) -> dict | None:
    """Airflow's metadata DB size after each (not dry) housekeeping run, from its audit records."""
    points = []
    for record in records:
        data = (record.get("evidence") or {}).get("data") or {}
        size = ((data.get("metadata") or {}).get("db_bytes") or {}).get("after")
        if isinstance(size, int) and not data.get("dry_run"):
            points.append((datetime.fromisoformat(str(record["completed_at"])), size))
    return trend(points)


def judge_metadb(t: dict | None, growth_warning_percent: float) -> tuple[str, str] | None:
    """None while gravitypm_airflow_housekeeping has not run twice in the window: nothing to judge."""
    if t is None:
        return None
    if t["growth_percent"] is not None and t["growth_percent"] > growth_warning_percent:
        return WARNING, (f"Airflow metadata DB grew {t['growth_percent']:g} % ({t['first_bytes']} → {t['last_bytes']} "
                         "bytes after housekeeping): check housekeeping.keep_days")
    return PASSED, f"Airflow metadata DB: {t['last_bytes']} bytes after housekeeping, {t['bytes_per_day']:+g} bytes/day"


def capacity(cfg, options: dict, now: datetime) -> Evidence:
    """Trend of DB and backup sizes in the vault manifests, and the host's disk headroom."""
    import shutil

    from gravitypm_ops.vault.layout import backup_time
    from gravitypm_ops.vault.store import Vault

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
    from gravitypm_ops.checklists.audit import AuditLog

    data["airflow_metadb_trend"] = metadb_trend(AuditLog(vault).records(HOUSEKEEPING_CHECKLIST, since=since))
    if judged := judge_metadb(data["airflow_metadb_trend"], settings["capacity_growth_warning_percent"]):
        parts.append(judged)
    if headroom is None:
        parts.append((FAILED, f"app_root {cfg.app_root} does not exist: cannot measure disk headroom"))
    return combine(parts, data)
