"""`/metrics` in Prometheus text format: backup status and checklist chains."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from functools import partial

from gravitypm_ops.checklists.audit import OUTCOMES
from gravitypm_ops.console.backups import UNUSABLE, load_status
from gravitypm_ops.console.html import Problem, to_datetime
from gravitypm_ops.names import BACKUP_KINDS

log = logging.getLogger(__name__)
# /metrics: a scrape reads one status.json; the checklist part (every record + chain check) is
# recomputed in the background once older than this, per API server process.
CHECKLIST_METRICS_TTL = 300.0


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
    signing = status.get("signing") if isinstance(status.get("signing"), dict) else {}
    metrics.add("gravitypm_vault_signing_enabled", "gauge",
                "1 when manifests and verification records are signed and checked (connection gravitypm_signing_key).",
                1 if signing.get("enabled") else 0)
    if isinstance(signing.get("rejected_count"), int):
        metrics.add("gravitypm_vault_rejected_objects", "gauge",
                    "Manifests and verification records left out as unsigned or badly signed (last verification run).",
                    signing["rejected_count"])
    unusable = set(status.get(UNUSABLE, ()))  # entries load_status left out: no figure rather than a wrong one
    written = to_datetime(status["written"])
    elapsed = (now - written).total_seconds()
    metrics.add("gravitypm_backup_status_written_timestamp_seconds", "gauge",
                "When gravitypm_backup_verification last wrote status.json (Unix time).", written.timestamp())
    for kind in BACKUP_KINDS:
        if kind in unusable:
            continue
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
                  to_datetime(last["finished"]).timestamp())


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
                        max(to_datetime(r["completed_at"]) for r in last_run).timestamp(), {"checklist": name})
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
            from gravitypm_ops.redact import scrub

            log.warning("metrics: checklist snapshot not refreshed: %s", scrub(f"{type(err).__name__}: {err}"))
        finally:
            with self._lock:
                self._refreshing.discard(key)


_checklist_snapshots = Snapshots(CHECKLIST_METRICS_TTL)


def _audit_snapshot(vault) -> tuple[list[dict], dict, list[Problem]]:
    """Every usable audit record, every chain's verification (what the checklist metrics need) and the
    records left out. Every defined checklist is verified too: a wiped chain is no longer listed, but its
    delete markers are found."""
    from gravitypm_ops.checklists.audit import AuditLog
    from gravitypm_ops.checklists.catalog import CHECKLISTS
    from gravitypm_ops.console.history import read_chains

    audit = AuditLog(vault)
    listed = audit.checklists()
    names = sorted(set(listed) | set(CHECKLISTS))
    records, problems = read_chains(audit, listed)
    return records, {name: audit.verify(name) for name in names}, problems


def object_error_metrics(metrics: Metrics, problems: list[Problem]) -> None:
    """One sample per vault object the console could not use (the page's error box names the same keys)."""
    for key in sorted({p.key for p in problems}):
        metrics.add("gravitypm_vault_object_error", "gauge",
                    "1 for a vault object that cannot be used (not JSON, not an object, fields missing); "
                    "the console page names it and says why.", 1, {"key": key})


def metadb_metrics(metrics: Metrics, read_metadb, now: datetime) -> None:
    """Airflow's metadata DB (housekeeping.metadb.api_server_figures): its size and the oldest dag_run."""
    try:
        figures = read_metadb()
    except Exception as err:  # noqa: BLE001 - a DB hiccup must not cost the vault figures
        from gravitypm_ops.redact import scrub

        log.warning("metrics: metadata DB unreadable: %s", scrub(f"{type(err).__name__}: {err}"))
        metrics.add("gravitypm_airflow_metadb_up", "gauge", "1 when Airflow's metadata DB could be read.", 0)
        return
    metrics.add("gravitypm_airflow_metadb_up", "gauge", "1 when Airflow's metadata DB could be read.", 1)
    if figures.get("db_bytes") is not None:
        metrics.add("gravitypm_airflow_metadb_size_bytes", "gauge",
                    "Size of Airflow's metadata DB (Postgres pg_database_size, SQLite file).", figures["db_bytes"])
    if figures.get("oldest_dag_run"):
        metrics.add("gravitypm_airflow_oldest_dag_run_age_seconds", "gauge",
                    "Age of the oldest dag_run row by start_date (gravitypm_airflow_housekeeping keeps it near "
                    "housekeeping.keep_days).", round((now - to_datetime(figures["oldest_dag_run"])).total_seconds()))


def agent_metrics(metrics: Metrics, agents: list[dict] | None) -> None:
    """The host agents (console/agents.py); nothing when the deployment has no Edge executor."""
    if agents is None:
        return
    metrics.add("gravitypm_host_agents_online", "gauge",
                "Edge workers serving queue gravitypm_host that take jobs now (0: host tasks wait in queued).",
                sum(1 for a in agents if a["online"]))
    for agent in agents:
        labels = {"worker": agent["worker"]}
        metrics.add("gravitypm_host_agent_online", "gauge", "1 when the host agent takes jobs (starting, idle, running).",
                    1 if agent["online"] else 0, labels)
        metrics.add("gravitypm_host_agent_state", "gauge", "1 for the host agent's state (the edge provider's).", 1,
                    {**labels, "state": agent["state"]})
        if agent["last_heartbeat"]:
            metrics.add("gravitypm_host_agent_last_heartbeat_timestamp_seconds", "gauge",
                        "The host agent's last heartbeat (Unix time).", to_datetime(agent["last_heartbeat"]).timestamp(),
                        labels)


def metrics_text(open_vault, now: datetime, read_metadb=None, read_agents=None) -> str:
    """The whole /metrics body. A vault that cannot be read (or a config that cannot be loaded) gives
    gravitypm_vault_up 0 and the reason in the server log, never an error page: Prometheus keeps scraping.
    `read_metadb` and `read_agents` (the API server passes them) add Airflow's metadata DB figures and the
    host agents."""
    metrics = Metrics()
    try:
        vault = open_vault()
        status, problems = load_status(vault)
        (records, chains, audit_problems), age = _checklist_snapshots.get(
            (vault.bucket, vault.prefix), lambda: _audit_snapshot(vault))
    except Exception as err:  # noqa: BLE001 - any failure to read is "vault down" for the scraper
        from gravitypm_ops.redact import scrub

        log.warning("metrics: vault unreadable: %s", scrub(f"{type(err).__name__}: {err}"))
        metrics.add("gravitypm_vault_up", "gauge", "1 when the vault could be read for this scrape.", 0)
        return metrics.text()
    metrics.add("gravitypm_vault_up", "gauge", "1 when the vault could be read for this scrape.", 1)
    backup_metrics(metrics, status, now)
    metrics.add("gravitypm_checklist_metrics_age_seconds", "gauge",
                "How old the checklist figures below are (recomputed in the background every 5 minutes).", round(age))
    checklist_metrics(metrics, records, chains)
    object_error_metrics(metrics, problems + audit_problems)
    if read_metadb is not None:
        metadb_metrics(metrics, read_metadb, now)
    if read_agents is not None:
        try:
            agent_metrics(metrics, read_agents())
        except Exception as err:  # noqa: BLE001 - the agents' figures must not cost the others
            from gravitypm_ops.redact import scrub

            log.warning("metrics: host agents unreadable: %s", scrub(f"{type(err).__name__}: {err}"))
    return metrics.text()
