"""Restores: the reverse path of a backup, with guards for production targets.

Used by gravitypm_db_restore and gravitypm_fs_restore. Every request is checked here, before
anything changes, and turned into a *plan* (a small JSON-able dict the DAG shows, stores in XCom
and reports). The restore itself streams the backup down, stages everything, checks the
artifact's SHA-256 against the manifest, and only then replaces the target — so a restore that
fails leaves the target as it was.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
from collections.abc import Mapping
from datetime import datetime

from gravitypm_ops.vault.layout import VaultError, verified_ok
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)

SAFETY_DAYS = 14  # a pre-restore safety backup outlives retention this long (the rollback window)
LIST_LIMIT = 200  # dry-run listings keep this many paths per category (counts are complete)
DB_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}")


class RestoreRefused(ValueError):
    """The request is unsafe or impossible; nothing was changed."""


def resolve_backup(vault: Vault, kind: str, ref: str, *, allow_unverified: bool) -> dict:
    """The backup `ref` names, refused unless its newest verification passed (or overridden)."""
    try:
        manifest = vault.resolve(kind, ref or "latest")
    except VaultError as err:
        raise RestoreRefused(str(err)) from None
    if manifest["kind"] != kind:
        raise RestoreRefused(f"backup {manifest['backup_id']} is a {manifest['kind']} backup, not {kind}")
    verification = manifest.get("verification")
    if not verified_ok(manifest) and not allow_unverified:
        state = "was never verified" if verification is None else "FAILED its newest verification"
        raise RestoreRefused(
            f"backup {manifest['backup_id']} {state}; restore it only with allow_unverified=true "
            "(or pick a verified one: backup_id 'latest' is the newest verified)"
        )
    return manifest


def backup_facts(manifest: dict, now: datetime) -> dict:
    """What an engineer wants to see about a backup before restoring it."""
    verification = manifest.get("verification")
    return {
        "backup_id": manifest["backup_id"],
        "kind": manifest["kind"],
        "finished": manifest["finished"],
        "age_hours": round((now - datetime.fromisoformat(manifest["finished"])).total_seconds() / 3600, 2),
        "bytes": sum(a["size"] for a in manifest["artifacts"]),
        "verified": verified_ok(manifest),
        "verification": None if verification is None else verification["status"],
        "purpose": manifest.get("purpose", "scheduled"),
    }


def require_confirmation(production: bool, expected: str, confirm: str | None, what: str) -> None:
    """Type-to-confirm: a production target changes only when `confirm` repeats its name."""
    if production and (confirm or "").strip() != expected:
        raise RestoreRefused(
            f"{what} {expected!r} is production: type it exactly into `confirm` to restore over it"
            + (f" (got {confirm!r})" if confirm else "")
        )


def plan_db_restore(cfg, vault: Vault, params: Mapping, now: datetime) -> dict:
    """Validate a gravitypm_db_restore request against the config and the backup; the plan."""
    source_db, target_db = params["source_database"], params["target_database"]
    for name, value in (("source_database", source_db), ("target_database", target_db)):
        if not isinstance(value, str) or not DB_NAME.fullmatch(value):
            raise RestoreRefused(f"{name} {value!r} is not a MongoDB database name")
    manifest = resolve_backup(vault, "db", params["backup_id"], allow_unverified=bool(params["allow_unverified"]))
    databases = manifest["content"]["databases"]
    if source_db not in databases:
        raise RestoreRefused(
            f"backup {manifest['backup_id']} has no database {source_db!r}; it has {sorted(databases)}"
        )
    in_backup = {n for n, c in databases[source_db].items() if c["type"] == "collection"}
    wanted = sorted(set(params.get("collections") or []))
    if missing := sorted(set(wanted) - set(databases[source_db])):
        raise RestoreRefused(f"collections not in {source_db} of backup {manifest['backup_id']}: {missing}")
    production = target_db in cfg.mongo_databases
    dry_run = bool(params["dry_run"])
    if not dry_run:
        require_confirmation(production, target_db, params.get("confirm"), "target database")
    approval = params.get("require_approval")
    collections = wanted or sorted(databases[source_db])
    return {
        "backup": backup_facts(manifest, now),
        "source_database": source_db,
        "target_database": target_db,
        "production": production,
        "collections": collections,
        "documents": {c: databases[source_db][c].get("documents") for c in collections if c in in_backup},
        "dry_run": dry_run,
        # Unset means: ask a human exactly when the target is production.
        "needs_approval": (production if approval is None else bool(approval)) and not dry_run,
        "stop_app": production and not dry_run,
    }


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def resolve_target(cfg, target_path: str | None) -> tuple[str, bool]:
    """(real target directory, is production) — refused unless inside `restore_allowed_roots`."""
    target = target_path or cfg.app_root
    if not os.path.isabs(target):
        raise RestoreRefused(f"target_path {target!r} must be an absolute path")
    real = os.path.realpath(target)  # a symlink cannot smuggle the restore somewhere else
    roots = [os.path.realpath(r) for r in cfg.restore_roots]
    if not any(_inside(real, root) for root in roots):
        raise RestoreRefused(
            f"target_path {target!r} ({real}) is outside the allowed restore roots {list(cfg.restore_roots)} "
            "(config key restore_allowed_roots)"
        )
    return real, _inside(real, os.path.realpath(cfg.app_root))


def select_paths(index: list[dict], globs: list[str]) -> list[str] | None:
    """Archive paths matching the `paths` globs (None = everything); a glob matching nothing is refused."""
    if not globs:
        return None
    chosen: set[str] = set()
    for pattern in globs:
        pattern = pattern.strip().lstrip("/").removeprefix("./")
        if not pattern or ".." in pattern.split("/"):
            raise RestoreRefused(f"paths entry {pattern!r} must be a relative glob without '..'")
        matched = {r["path"] for r in index if fnmatch.fnmatchcase(r["path"], pattern)}
        if not matched:
            raise RestoreRefused(f"paths entry {pattern!r} matches nothing in the backup")
        chosen |= matched
    # A directory covers what is below it: keep only the top-most chosen paths.
    return sorted(p for p in chosen if not any(p.startswith(q + "/") for q in chosen if q != p))


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _capped(items: list[str]) -> dict:
    return {"count": len(items), "paths": items[:LIST_LIMIT]}


def diff_against_disk(index: list[dict], target: str, selected: list[str] | None, mirror: bool) -> dict:
    """The dry run: what a restore would create, replace, leave unchanged, and leave alone or
    (mirror) remove, judged by the index's sha256 against the files on disk."""

    def wanted(path: str) -> bool:
        return selected is None or any(path == s or path.startswith(s + "/") for s in selected)

    records = [r for r in index if wanted(r["path"])]
    in_backup = {r["path"] for r in records}
    created, replaced, unchanged = [], [], []
    for r in records:
        on_disk = os.path.join(target, r["path"])
        if not os.path.lexists(on_disk):
            created.append(r["path"])
        elif r["type"] == "file":
            same = os.path.isfile(on_disk) and not os.path.islink(on_disk) and _sha256(on_disk) == r.get("sha256")
            (unchanged if same else replaced).append(r["path"])
    extra = []
    for scope in selected or [""]:
        top = os.path.join(target, scope)
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            for name in sorted(dirnames + filenames):
                rel = os.path.relpath(os.path.join(dirpath, name), target)
                if rel not in in_backup:
                    extra.append(rel)
            dirnames[:] = [d for d in dirnames if os.path.relpath(os.path.join(dirpath, d), target) in in_backup]
    return {
        "created": _capped(created),
        "replaced": _capped(replaced),
        "unchanged": _capped(unchanged),
        ("removed" if mirror else "left_alone"): _capped(sorted(extra)),
    }


def load_index(vault: Vault, manifest: dict) -> list[dict]:
    from gravitypm_ops.formats.tar.compression import Compression, decompressing_reader
    from gravitypm_ops.formats.tar.index import read_index

    compression = Compression.from_dict(manifest["tools"]["compression"])
    with vault.open_artifact(manifest, manifest["tools"]["index"]) as body:
        return list(read_index(decompressing_reader(body, compression)))


def plan_file_restore(cfg, vault: Vault, params: Mapping, now: datetime) -> dict:
    """Validate a gravitypm_fs_restore request; the plan (with the dry-run listing when asked)."""
    kind = params["kind"]
    if kind not in ("fs", "config"):
        raise RestoreRefused(f"kind {kind!r}: expected 'fs' or 'config'")
    target, production = resolve_target(cfg, params.get("target_path"))
    manifest = resolve_backup(vault, kind, params["backup_id"], allow_unverified=bool(params["allow_unverified"]))
    index = load_index(vault, manifest)
    selected = select_paths(index, list(params.get("paths") or []))
    mirror, dry_run = bool(params["mirror"]), bool(params["dry_run"])
    if not dry_run:
        require_confirmation(production, target, params.get("confirm"), "target path")
    stop = params.get("stop_services")
    plan = {
        "backup": backup_facts(manifest, now),
        "target_path": target,
        "production": production,
        "paths": selected,
        "mirror": mirror,
        "dry_run": dry_run,
        "stop_app": (production if stop is None else bool(stop)) and not dry_run,
        "files": sum(1 for r in index if r["type"] == "file"),
    }
    if dry_run:
        plan["changes"] = diff_against_disk(index, target, selected, mirror)
    return plan
