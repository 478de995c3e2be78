"""Restores: the reverse path of a backup, with guards for production targets.

Used by gravitypm_db_restore and gravitypm_fs_restore. Every request is checked here, before
anything changes, and turned into a *plan* (a small JSON-able dict the DAG shows, stores in XCom
and reports). Everything knowable is refused here, with the param named, before the safety
backup or the app stop: MongoDB's reserved databases and system.* collections, production names
in any case, over-long refs, unsafe or over-long index paths, a target that is not a directory or
has no room, and (db) an artifact whose size or SHA-256 no longer matches the manifest. The
restore itself streams the backup down, stages everything, checks the artifact's SHA-256 against
the manifest again, and only then replaces the target — so a restore that fails leaves the target
as it was.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
import shutil
import stat
from collections.abc import Mapping
from datetime import datetime

from gravitypm_ops.names import (
    BACKUP_REF_MAX_LENGTH,
    BACKUP_REF_PATTERN,
    COLLECTION_NAME_MAX_LENGTH,
    NAME_MAX,
    PATH_MAX,
    RESERVED_DATABASES,
    is_reserved_database,
    same_database,
)
from gravitypm_ops.vault.layout import VaultError, verified_ok
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)

SAFETY_DAYS = 14  # a pre-restore safety backup outlives retention this long (the rollback window)
LIST_LIMIT = 200  # dry-run listings keep this many paths per category (counts are complete)
DB_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}")
# The extractor stages inside the target (formats.tar.extract.STAGING_PREFIX + a random suffix):
# every path must fit below that staging directory too.
STAGING_ALLOWANCE = "/.gravitypm-restore-XXXXXXXX/"


class RestoreRefused(ValueError):
    """The request is unsafe or impossible; nothing was changed."""


def check_backup_ref(ref) -> str:
    """`backup_id` as the form allows it (bounded, an id / latest / latest@time), else refused by name."""
    ref = ref or "latest"
    if not isinstance(ref, str) or len(ref) > BACKUP_REF_MAX_LENGTH or not re.search(BACKUP_REF_PATTERN, ref):
        shown = ref if not isinstance(ref, str) or len(ref) <= 80 else f"{ref[:40]}… ({len(ref)} characters)"
        raise RestoreRefused(
            f"backup_id {shown!r} is not a backup id, 'latest' or 'latest@<ISO time>' "
            f"(at most {BACKUP_REF_MAX_LENGTH} characters)"
        )
    return ref


def resolve_backup(vault: Vault, kind: str, ref: str, *, allow_unverified: bool) -> dict:
    """The backup `ref` names, refused unless its newest verification passed (or overridden)."""
    ref = check_backup_ref(ref)
    try:
        manifest = vault.resolve(kind, ref)
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


def check_collection_name(name, what: str) -> None:
    """A collection a restore may write: no system.* collection (MongoDB's own), no '$' or NUL."""
    if not isinstance(name, str) or not name or len(name) > COLLECTION_NAME_MAX_LENGTH:
        raise RestoreRefused(f"{what} {name!r}: expected a collection name of 1-{COLLECTION_NAME_MAX_LENGTH} characters")
    if name.startswith("system."):
        raise RestoreRefused(f"{what} {name!r} is a MongoDB system collection: a restore never writes system.*")
    if "$" in name or "\0" in name:
        raise RestoreRefused(f"{what} {name!r} is not a MongoDB collection name ('$' or NUL)")


def check_artifacts(vault: Vault, manifest: dict, names) -> int:
    """Re-read artifacts and check size + SHA-256 against the manifest, before anything changes."""
    from gravitypm_ops.vault.encryption import UndecryptableError, check_identities

    total = 0
    for name in names:
        artifact = next((a for a in manifest["artifacts"] if a["name"] == name), None)
        if artifact is not None and artifact.get("encryption"):
            try:  # no key, no restore: refuse before the safety backup and the app stop
                check_identities(artifact, vault.identities())
            except (UndecryptableError, ValueError) as err:
                raise RestoreRefused(f"backup {manifest['backup_id']}: {err}") from None
        try:
            total += vault.check_artifact(manifest, name)
        except VaultError as err:
            raise RestoreRefused(
                f"backup {manifest['backup_id']}: artifact {name} does not match its manifest "
                f"(altered or corrupt): {err}"
            ) from None
    return total


def plan_db_restore(cfg, vault: Vault, params: Mapping, now: datetime) -> dict:
    """Validate a gravitypm_db_restore request against the config and the backup; the plan."""
    source_db, target_db = params["source_database"], params["target_database"]
    for name, value in (("source_database", source_db), ("target_database", target_db)):
        if not isinstance(value, str) or not DB_NAME.fullmatch(value):
            raise RestoreRefused(f"{name} {value!r} is not a MongoDB database name")
        if is_reserved_database(value):
            raise RestoreRefused(f"{name} {value!r} is reserved by MongoDB ({', '.join(RESERVED_DATABASES)}, "
                                 "in any case): a restore never reads or writes it")
    collections_param = params.get("collections") or []
    if not isinstance(collections_param, (list, tuple)):
        raise RestoreRefused(f"collections {collections_param!r}: expected a list of collection names")
    for name in collections_param:
        check_collection_name(name, "collections entry")
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
    collections = wanted or sorted(databases[source_db])
    for name in collections:  # a crafted or foreign backup may list one: "everything" never means system.*
        check_collection_name(name, f"collection of {source_db} in backup {manifest['backup_id']}")
    production = same_database(target_db, cfg.mongo_databases)  # Gravitypm_Production is production too
    dry_run = bool(params["dry_run"])
    if not dry_run:
        require_confirmation(production, target_db, params.get("confirm"), "target database")
    approval = params.get("require_approval")
    # Last, as it reads the whole artifact: an altered or corrupt one is refused before the safety
    # backup, before the app stops, before anything is staged.
    from gravitypm_ops.backup.mongo import ARTIFACT_NAME

    checked = check_artifacts(vault, manifest, [ARTIFACT_NAME])
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
        "artifact_checked": True,
        "artifact_bytes": checked,
    }


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _limit(name: str, path: str, fallback: int) -> int:
    """pathconf limit of the nearest existing directory of `path` (Linux defaults when unknown)."""
    probe = path
    while probe and not os.path.isdir(probe):
        probe = os.path.dirname(probe)
    try:
        return os.pathconf(probe or "/", name) or fallback
    except (OSError, ValueError):
        return fallback


def _check_path_lengths(what: str, path: str) -> None:
    """Refused when `path` (absolute) is longer than PATH_MAX or has a part longer than NAME_MAX."""
    path_max = _limit("PC_PATH_MAX", path, PATH_MAX)
    name_max = _limit("PC_NAME_MAX", path, NAME_MAX)
    if len(os.fsencode(path)) >= path_max:
        raise RestoreRefused(f"{what} is {len(os.fsencode(path))} bytes long: the filesystem's PATH_MAX is {path_max}")
    if long := next((p for p in path.split("/") if len(os.fsencode(p)) > name_max), None):
        raise RestoreRefused(f"{what} has a name of {len(os.fsencode(long))} bytes ({long[:40]}…): "
                             f"the filesystem's NAME_MAX is {name_max}")


def resolve_target(cfg, target_path: str | None) -> tuple[str, bool]:
    """(real target directory, is production) — refused unless inside `restore_allowed_roots`,
    a directory (or not there yet), and short enough for the filesystem."""
    target = target_path or cfg.app_root
    if not isinstance(target, str):
        raise RestoreRefused(f"target_path {target!r} must be a string")
    if "\0" in target:
        raise RestoreRefused(f"target_path {target!r} contains a NUL character")
    if not os.path.isabs(target):
        raise RestoreRefused(f"target_path {target!r} must be an absolute path")
    _check_path_lengths(f"target_path {target[:60]!r}", target)
    real = os.path.realpath(target)  # a symlink cannot smuggle the restore somewhere else
    _check_path_lengths(f"target_path {target[:60]!r} ({real[:60]})", real)
    roots = [os.path.realpath(r) for r in cfg.restore_roots]
    if not any(_inside(real, root) for root in roots):
        raise RestoreRefused(
            f"target_path {target!r} ({real}) is outside the allowed restore roots {list(cfg.restore_roots)} "
            "(config key restore_allowed_roots)"
        )
    if os.path.lexists(real) and not os.path.isdir(real):
        raise RestoreRefused(f"target_path {target!r} ({real}) exists and is not a directory")
    return real, _inside(real, os.path.realpath(cfg.app_root))


def _unsafe(path) -> str | None:
    """Why an archive path breaks the restore's path rules (None: it is safe). The same rules as
    the extractor (formats.tar.read.safe_relpath) and stricter: the index must be normalised."""
    if not isinstance(path, str) or not path:
        return "not a path"
    if "\0" in path:
        return "NUL in path"
    if path.startswith("/"):
        return "absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "'..' in path"
    if "" in parts or "." in parts:
        return "not a normalised relative path"
    return None


def check_index(index: list[dict]) -> None:
    """Every path of the index (and every hard link's target) follows the restore's path rules;
    else the backup is refused (the extractor would refuse the whole archive, after the app stopped)."""
    bad = []
    for record in index:
        why = _unsafe(record.get("path"))
        if why is None and record.get("type") == "hardlink" and (link := _unsafe(record.get("target"))):
            why = f"hard link target: {link}"
        size = record.get("size", 0)
        if why is None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            why = f"size {size!r}"  # the free-space check sums these: a negative one would hide others
        if why:
            bad.append(f"{str(record.get('path'))[:80]!r} ({why})")
    if bad:
        raise RestoreRefused(f"the backup's index has {len(bad)} unsafe path(s) or size(s), nothing would be restored: "
                             f"{', '.join(bad[:5])}")


def check_index_fits(index: list[dict], target: str, selected: list[str] | None) -> None:
    """The restored paths fit below the target and its staging directory (PATH_MAX / NAME_MAX)."""
    paths = [r["path"] for r in index if _selected(r["path"], selected)]
    if paths:
        longest = max(paths, key=lambda p: len(os.fsencode(p)))
        _check_path_lengths(f"index path {longest[:60]!r} below target_path {target[:60]!r} (with staging)",
                            target.rstrip("/") + STAGING_ALLOWANCE + longest)


def check_free_space(index: list[dict], target: str, selected: list[str] | None) -> tuple[int, int]:
    """(bytes the restore stages, bytes free on the target's filesystem); refused when it would not fit."""
    needed = sum(r.get("size") or 0 for r in index
                 if r.get("type") == "file" and _selected(r["path"], selected))
    probe = target
    while not os.path.isdir(probe):  # the target may not exist yet: its nearest existing parent
        probe = os.path.dirname(probe)
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise RestoreRefused(
            f"the restore needs {needed} bytes of file data below {target!r}, but its filesystem has only "
            f"{free} bytes free"
        )
    return needed, free


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


def _capped(items: list[str]) -> dict:
    return {"count": len(items), "paths": items[:LIST_LIMIT]}


def _selected(path: str, selected: list[str] | None) -> bool:
    return selected is None or any(path == s or path.startswith(s + "/") for s in selected)


def _sha256_nofollow(path: str) -> str | None:
    """SHA-256 of a regular file, opened without following a link (None if it is not one now)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _Disk:
    """lstat of target-relative paths that never follows a link: a path below a symlink (or a
    file) on disk is BLOCKED — the restore replaces that parent, the dry run never reads through it."""

    BLOCKED = "blocked"

    def __init__(self, target: str):
        self.target = target
        self.seen: dict[str, os.stat_result | None] = {}  # ancestors, lstat'ed once each

    def _lstat(self, rel: str):
        try:
            return os.lstat(os.path.join(self.target, rel) if rel else self.target)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def is_real_dir(self, rel: str) -> bool:
        st = self.lstat(rel) if rel else self._lstat("")
        return st is not None and st != self.BLOCKED and stat.S_ISDIR(st.st_mode)

    def lstat(self, rel: str):
        """os.lstat of target/rel; None if absent; BLOCKED if a parent is there but not a real directory."""
        parts = rel.split("/")
        for i in range(1, len(parts)):  # top-down: each lstat runs only below real directories
            ancestor = "/".join(parts[:i])
            if ancestor not in self.seen:
                self.seen[ancestor] = self._lstat(ancestor)
            st = self.seen[ancestor]
            if st is None:
                return None
            if not stat.S_ISDIR(st.st_mode):
                return self.BLOCKED
        return self._lstat(rel)


def _same(record: dict, st, on_disk: str) -> bool:
    """Is what lies on disk (lstat `st`, never followed) what the backup holds at that path?"""
    kind = record.get("type")
    if kind == "symlink":  # a symlink compares as a symlink: its own target text, never what it points at
        try:
            return stat.S_ISLNK(st.st_mode) and os.readlink(on_disk) == record.get("target")
        except OSError:
            return False
    if kind == "dir":
        return stat.S_ISDIR(st.st_mode)
    if not stat.S_ISREG(st.st_mode):
        return False
    if record.get("size") is not None and st.st_size != record["size"]:
        return False
    return _sha256_nofollow(on_disk) == record.get("sha256")


def diff_against_disk(index: list[dict], target: str, selected: list[str] | None, mirror: bool) -> dict:
    """The dry run: what a restore would create, replace, leave unchanged, and leave alone or
    (mirror) remove, judged by the index's sha256 against the files on disk. The same path rules
    as the restore (check_index); nothing on disk is followed: a symlink is compared as a symlink,
    a path below a symlinked or non-directory parent counts as replaced, unread."""
    check_index(index)
    disk = _Disk(target)
    records = [r for r in index if _selected(r["path"], selected)]
    in_backup = {r["path"] for r in records}
    created, replaced, unchanged = [], [], []
    for r in records:
        st = disk.lstat(r["path"])
        if st is None:
            created.append(r["path"])
        elif st == disk.BLOCKED or not _same(r, st, os.path.join(target, r["path"])):
            replaced.append(r["path"])
        elif r.get("type") != "dir":
            unchanged.append(r["path"])
    extra = []
    for scope in selected or [""]:
        if not disk.is_real_dir(scope):  # absent, a link or a file: nothing to walk (never through a link)
            continue
        for dirpath, dirnames, filenames in os.walk(os.path.join(target, scope)):  # never follows links
            for name in sorted(dirnames + filenames):
                rel = os.path.relpath(os.path.join(dirpath, name), target)
                if rel not in in_backup:
                    extra.append(rel)
            dirnames[:] = [d for d in dirnames if os.path.relpath(os.path.join(dirpath, d), target) in in_backup
                           and not os.path.islink(os.path.join(dirpath, d))]
    return {
        "created": _capped(created),
        "replaced": _capped(replaced),
        "unchanged": _capped(unchanged),
        ("removed" if mirror else "left_alone"): _capped(sorted(extra)),
    }


# What the plan reads of each index record (mode, owner and mtime are the extractor's). The plan holds
# every record of the backup: cut to these, its peak memory is ~545 bytes a file instead of ~645.
PLAN_FIELDS = ("path", "type", "size", "sha256", "target")


def load_index(vault: Vault, manifest: dict) -> list[dict]:
    """The index records, each cut to PLAN_FIELDS."""
    from gravitypm_ops.formats.tar.compression import Compression, decompressing_reader
    from gravitypm_ops.formats.tar.index import read_index

    compression = Compression.from_dict(manifest["tools"]["compression"])
    records = []
    with vault.open_artifact(manifest, manifest["tools"]["index"]) as body:
        for record in read_index(decompressing_reader(body, compression)):
            if not isinstance(record, dict):
                raise RestoreRefused(f"the backup's index is corrupt: a record is not a JSON object ({str(record)[:80]})")
            records.append({k: record[k] for k in PLAN_FIELDS if k in record})
    return records


def plan_file_restore(cfg, vault: Vault, params: Mapping, now: datetime) -> dict:
    """Validate a gravitypm_fs_restore request; the plan (with the dry-run listing when asked)."""
    kind = params["kind"]
    if kind not in ("fs", "config"):
        raise RestoreRefused(f"kind {kind!r}: expected 'fs' or 'config'")
    target, production = resolve_target(cfg, params.get("target_path"))
    manifest = resolve_backup(vault, kind, params["backup_id"], allow_unverified=bool(params["allow_unverified"]))
    index = load_index(vault, manifest)
    check_index(index)  # every path, whatever `paths` selects: the extractor refuses the whole archive
    globs = params.get("paths") or []
    if not isinstance(globs, (list, tuple)) or not all(isinstance(g, str) and "\0" not in g for g in globs):
        raise RestoreRefused(f"paths {globs!r}: expected a list of globs without NUL characters")
    selected = select_paths(index, list(globs))
    check_index_fits(index, target, selected)
    needed, free = check_free_space(index, target, selected)
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
        "bytes_needed": needed,
        "bytes_free": free,
    }
    if dry_run:
        plan["changes"] = diff_against_disk(index, target, selected, mirror)
    return plan
