"""Task-log retention in Airflow's log folder ([logging] base_log_folder), and the lifecycle rule that does
the same job for remote logs in S3.

Only task logs are touched: files named `*.log` below a top-level `dag_id=…` directory (Airflow's default
`log_filename_template`), last written before the cut-off. Symlinks are never followed nor removed, so the
walk never leaves the folder; directories left empty are removed, the folder itself never. A dry run lists
what would go and changes nothing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

TASK_LOG_DIR_PREFIX = "dag_id="
SAMPLE = 20  # paths shown in the report (the task log lists every one)


@dataclass(frozen=True)
class OldLog:
    path: Path
    size: int
    modified: datetime


def folder_bytes(root: Path) -> int:
    """Bytes of the regular files below `root` (symlinks neither followed nor counted)."""
    total = 0
    for directory, _, files in os.walk(root, followlinks=False):
        for name in files:
            try:
                info = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:  # a log rotated away meanwhile
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def _task_log_dirs(root: Path) -> Iterator[Path]:
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith(TASK_LOG_DIR_PREFIX) and entry.is_dir(follow_symlinks=False):
                yield Path(entry.path)


def old_task_logs(root: Path, cutoff: datetime) -> list[OldLog]:
    """Task-log files below `root` last modified before `cutoff` (aware), oldest first."""
    limit, found = cutoff.timestamp(), []
    for top in _task_log_dirs(root):
        for directory, _, files in os.walk(top, followlinks=False):
            for name in files:
                path = Path(directory, name)
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    continue
                if name.endswith(".log") and stat.S_ISREG(info.st_mode) and info.st_mtime < limit:
                    found.append(OldLog(path, info.st_size, datetime.fromtimestamp(info.st_mtime, cutoff.tzinfo)))
    return sorted(found, key=lambda f: (f.modified, str(f.path)))


def _remove_empty_dirs(root: Path) -> int:
    """Empty directories below the dag_id=… directories (bottom-up, those included): how many went."""
    removed = 0
    for top in _task_log_dirs(root):
        for directory, subdirs, files in os.walk(top, topdown=False, followlinks=False):
            if files or any(os.path.islink(os.path.join(directory, d)) for d in subdirs):
                continue
            try:
                os.rmdir(directory)  # fails on a directory that is not empty after all: kept
                removed += 1
            except OSError:
                pass
    return removed


def apply_log_retention(root: Path, cutoff: datetime, *, dry_run: bool) -> dict:
    """Remove (or, dry run, only list) task-log files older than `cutoff`; the report with sizes."""
    root = Path(root)
    if not root.is_dir():
        return {"folder": str(root), "exists": False, "files": 0, "bytes": 0, "before_bytes": 0, "after_bytes": 0,
                "dirs_removed": 0, "sample": [], "errors": [], "paths": []}
    before = folder_bytes(root)
    old = old_task_logs(root, cutoff)
    errors, removed = [], []
    for log_file in old:
        if dry_run:
            removed.append(log_file)
            continue
        try:
            log_file.path.unlink()
            removed.append(log_file)
        except FileNotFoundError:
            continue
        except OSError as err:
            errors.append(f"{log_file.path.relative_to(root)}: {err.strerror}")
    dirs = 0 if dry_run else _remove_empty_dirs(root)
    paths = [str(f.path.relative_to(root)) for f in removed]
    return {
        "folder": str(root), "exists": True, "dry_run": dry_run, "cutoff": cutoff.isoformat(),
        "files": len(removed), "bytes": sum(f.size for f in removed), "dirs_removed": dirs,
        "before_bytes": before, "after_bytes": before if dry_run else folder_bytes(root),
        "sample": paths[:SAMPLE], "errors": errors, "paths": paths,
    }


# --- remote logs in S3 -------------------------------------------------------------------------------------
def split_s3_url(url: str) -> tuple[str, str]:
    """("bucket", "prefix/") of s3://bucket/prefix."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def _rule_prefix(rule: Mapping) -> str:
    flt = rule.get("Filter") or {}
    return flt.get("Prefix", (flt.get("And") or {}).get("Prefix", rule.get("Prefix", ""))) or ""


def judge_lifecycle(rules: list[Mapping], prefix: str, log_keep_days: int) -> dict:
    """Is there an enabled lifecycle rule that expires the remote task logs under `prefix`?

    {"ok": bool, "days": the shortest expiry found or None, "detail": text}. A rule that keeps logs longer
    than log_keep_days still counts (a deliberate choice of whoever wrote it) and is said in the detail."""
    days = [
        rule["Expiration"]["Days"] for rule in rules
        if rule.get("Status") == "Enabled" and prefix.startswith(_rule_prefix(rule))
        and isinstance((rule.get("Expiration") or {}).get("Days"), int)
    ]
    if not days:
        return {"ok": False, "days": None,
                "detail": f"no enabled lifecycle rule expires objects under {prefix or '(bucket root)'}: "
                          "remote task logs are kept forever (DEPLOY.md: Airflow housekeeping)"}
    shortest = min(days)
    note = "" if shortest <= log_keep_days else f" (longer than housekeeping.log_keep_days {log_keep_days})"
    return {"ok": True, "days": shortest, "detail": f"lifecycle rule expires remote task logs after {shortest} days{note}"}
