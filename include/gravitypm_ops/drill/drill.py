"""Disaster-recovery drill: restore chosen backups into isolated targets, prove them, time them.

Per component (db, fs, config) the drill restores one backup into a target that is never
production, validates it against its manifest and measures:
- RTO: wall time from the start of the download to a validated restore (per component; the
  total runs from the first component's start to the last one's end);
- RPO: age of the restored backup at the reference time — the drill's start, or `as_of` when
  the drill replays a past moment ("a disaster at as_of would lose this much").
Restore + validation are verification's own (`check_db_restore`: trial restore + counts, indexes,
options and a byte-for-byte sample; `check_files`: restore with every sha256 checked against the
index), pointed at the drill's targets.

Targets: the scratch database must start with `scratch_database_prefix` and not be one of
`mongo_databases`; the scratch directory must not resolve to / or into `app_root` or a
`restore_allowed_roots` entry. A refused drill writes nothing. Files go to
`<scratch_dir>/<drill id>/<kind>/` (default: a fresh temporary directory per component).

Outputs: `<vault_prefix>/drills/<drill id>/report.json` and `report.md` in the primary vault, a
Slack summary, one audit record (checklist `dr_drill`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from gravitypm_ops.names import RESERVED_DATABASES, is_reserved_database, same_database
from gravitypm_ops.redact import scrub
from gravitypm_ops.vault.layout import VaultError, backup_id_for, verified_ok
from gravitypm_ops.vault.open import SOURCES
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)

COMPONENTS = ("db", "fs", "config")
CHECKLIST = "dr_drill"  # audit history chain of the drills
DRILLS_DIR = "drills"
REPORT_SCHEMA = 1
DEFAULT_SCRATCH_SUFFIX = "drill"


class DrillRefused(ValueError):
    """The drill's parameters are unsafe or cannot be met; nothing was written."""


def _inside(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root + "/")


def check_scratch_database(name: str | None, cfg) -> str:
    """The drill's scratch database (default `<scratch_database_prefix>drill`), never production."""
    name = name or cfg.scratch_database_prefix + DEFAULT_SCRATCH_SUFFIX
    if not isinstance(name, str):
        raise DrillRefused(f"scratch_database {name!r} must be a string")
    if is_reserved_database(name):
        raise DrillRefused(f"scratch_database {name!r} is reserved by MongoDB ({', '.join(RESERVED_DATABASES)}, "
                           "in any case); a drill never restores into it")
    if same_database(name, cfg.mongo_databases):  # MongoDB refuses case-only differences: same database
        raise DrillRefused(f"scratch_database {name!r} is a production database (mongo_databases); "
                           "a drill never restores into production")
    if not name.startswith(cfg.scratch_database_prefix):
        raise DrillRefused(f"scratch_database {name!r} must start with scratch_database_prefix "
                           f"{cfg.scratch_database_prefix!r}")
    if not re.fullmatch(r"[A-Za-z0-9_]{1,63}", name):
        raise DrillRefused(f"scratch_database {name!r}: use 1-63 letters, digits or '_'")
    return name


def scratch_names(scratch_database: str, databases: list[str]) -> list[str]:
    """The databases a drill restores into: the scratch database, or one per backed-up database."""
    return [scratch_database] if len(databases) == 1 else [f"{scratch_database}_{db}"[:63] for db in databases]


def check_scratch_names(scratch_database: str, databases: list[str], cfg) -> None:
    """Every scratch name the drill derives is as safe as the scratch database itself."""
    for name in scratch_names(scratch_database, databases):
        check_scratch_database(name, cfg)


def check_scratch_dir(path: str | None, cfg) -> str | None:
    """The real path of the scratch directory (None = a temporary one), never production."""
    if path in (None, ""):
        return None
    if not os.path.isabs(path):
        raise DrillRefused(f"scratch_dir {path!r} must be an absolute path")
    real = os.path.realpath(path)
    if real == "/":
        raise DrillRefused(f"scratch_dir {path!r} resolves to /")
    for root in dict.fromkeys((cfg.app_root, *cfg.restore_roots)):
        if _inside(real, os.path.realpath(root)) or _inside(real, os.path.normpath(root)):
            raise DrillRefused(f"scratch_dir {path!r} resolves to {real!r}, inside the production tree {root!r}")
    if os.path.lexists(real) and not os.path.isdir(real):
        raise DrillRefused(f"scratch_dir {path!r} exists and is not a directory")
    return real


def _positive(name: str, value, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise DrillRefused(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _as_of(value) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise DrillRefused(f"as_of {value!r} is not an ISO 8601 time (e.g. 2026-11-27T06:00:00Z)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _components(value) -> list[str]:
    if not isinstance(value, list) or not value:
        raise DrillRefused(f"components must be a non-empty list of {', '.join(COMPONENTS)}")
    unknown = [c for c in value if c not in COMPONENTS]
    if unknown:
        raise DrillRefused(f"unknown component(s) {', '.join(map(repr, unknown))}; expected {', '.join(COMPONENTS)}")
    return [c for c in COMPONENTS if c in value]


def plan_drill(params: Mapping, cfg, vault: Vault, *, dag_id: str, run_id: str, now: datetime) -> dict:
    """Check every parameter and pick each component's backup; DrillRefused says what is wrong.

    Reads only: nothing is written before the plan stands.
    """
    components = _components(params.get("components", list(COMPONENTS)))
    rto = _positive("rto_target_minutes", params.get("rto_target_minutes", 60))
    rpo = _positive("rpo_target_hours", params.get("rpo_target_hours"), optional=True)
    if not isinstance(params.get("cleanup", True), bool):
        raise DrillRefused(f"cleanup must be true or false, got {params.get('cleanup')!r}")
    source = params.get("source", "primary")
    if source not in SOURCES:
        raise DrillRefused(f"source {source!r} must be one of {', '.join(SOURCES)}")
    as_of = _as_of(params.get("as_of"))
    if as_of is not None and as_of > now:
        raise DrillRefused(f"as_of {as_of.isoformat()} is in the future")
    scratch_database = check_scratch_database(params.get("scratch_database"), cfg)
    scratch_dir = check_scratch_dir(params.get("scratch_dir"), cfg)
    reference = as_of or now
    backups = {}
    for kind in components:
        try:
            manifest = vault.resolve(kind, f"latest@{as_of.isoformat()}" if as_of else "latest")
        except VaultError as err:
            raise DrillRefused(f"{kind}: {err}") from None
        finished = datetime.fromisoformat(manifest["finished"])
        content = manifest["content"]
        if kind == "db":
            check_scratch_names(scratch_database, list(content.get("databases") or {}), cfg)
        backups[kind] = {
            "backup_id": manifest["backup_id"],
            "finished": manifest["finished"],
            "verified": verified_ok(manifest),
            "bytes": sum(a["size"] for a in manifest["artifacts"]),
            "documents": content.get("documents"),
            "files": content.get("files"),
            "content_bytes": content.get("bson_bytes", content.get("bytes")),
            "rpo_hours": round((reference - finished).total_seconds() / 3600, 6),
        }
    return {
        "schema": REPORT_SCHEMA,
        "drill_id": backup_id_for(dag_id, run_id, now),
        "dag_id": dag_id,
        "run_id": run_id,
        "started": now.isoformat(),
        "source": source,
        "as_of": as_of.isoformat() if as_of else None,
        "rpo_reference": reference.isoformat(),
        "components": components,
        "targets": {
            "rto_minutes": rto,
            "rpo_hours": {kind: rpo if rpo is not None else cfg.freshness_hours[kind] for kind in components},
        },
        "cleanup": params.get("cleanup", True),
        "scratch_database": scratch_database,
        "scratch_dir": scratch_dir,
        "backups": backups,
    }


def restore_component(kind: str, plan: dict, cfg, vault: Vault, *, mongo_client=None) -> dict:
    """Restore one component's backup into its isolated target and validate it; timed.

    A failed restore or validation is a result with status "failed" (never an exception), so the
    report can say what went wrong.
    """
    from gravitypm_ops.verification.verify import CheckFailed, check_db_restore, check_files

    backup, cleanup = plan["backups"][kind], plan["cleanup"]
    started, t0 = datetime.now(UTC), time.monotonic()
    target = None
    try:
        manifest = vault.resolve(kind, backup["backup_id"])
        if kind == "db":
            databases = list(manifest["content"]["databases"])
            name = plan["scratch_database"]
            target = scratch_names(name, databases)
            detail = check_db_restore(
                vault, manifest, mongo_client, cfg.scratch_database_prefix, set(cfg.mongo_databases),
                scratch_database=name, cleanup=cleanup,
            )
        else:
            target = _scratch_dir_for(kind, plan, cfg)
            detail = check_files(vault, manifest, target, cleanup=cleanup)
        status = "passed"
    except CheckFailed as err:
        status, detail = "failed", scrub(str(err))
    except Exception as err:  # an unexpected error fails the component, never passes it
        status, detail = "failed", scrub(f"{type(err).__name__}: {err}")
    finally:
        if kind != "db" and cleanup and target:
            # check_files removes it after extracting; a failure before that (e.g. the index) must not leave it
            shutil.rmtree(target, ignore_errors=True)
        if kind != "db" and cleanup and plan["scratch_dir"]:
            _remove_empty(os.path.join(plan["scratch_dir"], plan["drill_id"]))
    seconds = time.monotonic() - t0
    log.info("drill %s %s: %s in %.1f s — %s", kind, backup["backup_id"], status, seconds, detail)
    return {
        "kind": kind,
        "backup_id": backup["backup_id"],
        "status": status,
        "detail": detail,
        "target": target,
        "kept": bool(target) and not cleanup,
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "seconds": round(seconds, 3),
    }


def _scratch_dir_for(kind: str, plan: dict, cfg) -> str:
    """A new directory for one component: `<scratch_dir>/<drill id>/<kind>` or a fresh temp dir."""
    if plan["scratch_dir"]:
        parent = os.path.join(check_scratch_dir(plan["scratch_dir"], cfg), plan["drill_id"])
        os.makedirs(parent, mode=0o700, exist_ok=True)
        target = os.path.join(parent, kind)
        shutil.rmtree(target, ignore_errors=True)  # left by an earlier try of this drill's own component
        os.mkdir(target, 0o700)
        return target
    check_scratch_dir(tempfile.gettempdir(), cfg)  # TMPDIR must not point into production either
    return tempfile.mkdtemp(prefix=f"gravitypm-drill-{kind}-")


def _remove_empty(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # gone already, or another component's directory is still in it


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 3)


def judge(plan: dict, results: Mapping[str, dict | None], now: datetime) -> dict:
    """The drill report: each component's restore, RTO and RPO against the targets, and the verdict."""
    rto_target = plan["targets"]["rto_minutes"]
    components, failures = {}, []
    for kind in plan["components"]:
        backup, result = plan["backups"][kind], results.get(kind)
        rpo_target = plan["targets"]["rpo_hours"][kind]
        entry = {
            **{k: backup[k] for k in ("backup_id", "finished", "verified", "bytes", "documents", "files",
                                      "content_bytes")},
            "rpo_hours": backup["rpo_hours"], "rpo_target_hours": rpo_target,
            "rpo_ok": backup["rpo_hours"] <= rpo_target,
        }
        if result is None:
            entry.update(restore="did not run", detail="the component's task did not run (see the DAG run)",
                         rto_minutes=None, rto_ok=False, target=None, kept=False)
            failures.append(f"{kind}: restore did not run")
        else:
            entry.update(restore=result["status"], detail=result["detail"], rto_minutes=_minutes(result["seconds"]),
                         rto_ok=result["seconds"] <= rto_target * 60, target=result["target"], kept=result["kept"],
                         started=result["started"], restore_finished=result["finished"])
            if result["status"] != "passed":
                failures.append(f"{kind}: restore failed: {result['detail']}")
            elif not entry["rto_ok"]:
                failures.append(f"{kind}: RTO {entry['rto_minutes']} min > target {rto_target:g} min")
        if not entry["rpo_ok"]:
            failures.append(f"{kind}: RPO {backup['rpo_hours']:.3g} h > target {rpo_target:g} h "
                            f"(backup {backup['backup_id']})")
        entry["status"] = "passed" if entry["restore"] == "passed" and entry["rto_ok"] and entry["rpo_ok"] else "failed"
        components[kind] = entry
    ran = [r for r in results.values() if r]
    total_seconds = (
        (max(datetime.fromisoformat(r["finished"]) for r in ran) - min(datetime.fromisoformat(r["started"]) for r in ran))
        .total_seconds() if ran else None
    )
    total_ok = total_seconds is not None and total_seconds <= rto_target * 60
    if total_seconds is not None and not total_ok:
        failures.append(f"total RTO {_minutes(total_seconds)} min > target {rto_target:g} min")
    return {
        **{k: plan[k] for k in ("schema", "drill_id", "dag_id", "run_id", "started", "source", "as_of",
                                "rpo_reference", "targets", "cleanup", "scratch_database", "scratch_dir")},
        "finished": now.isoformat(),
        "components": components,
        "total": {"rto_minutes": _minutes(total_seconds), "rto_ok": total_ok,
                  "component_minutes_sum": _minutes(sum(r["seconds"] for r in ran)) if ran else None},
        "verdict": "passed" if not failures and all(c["status"] == "passed" for c in components.values()) else "failed",
        "failures": failures,
    }
