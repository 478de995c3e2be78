"""File-tree backups for gravitypm_fs_backup and gravitypm_config_backup: one engine, two kinds.

- fs:     `app_root`, minus `logs_dir` (log rotation ships logs) and `fs_excludes`;
- config: `config_paths` (compose files, nginx config, `.env`, app config).

Each backup is two artifacts streamed into the vault at once: the tar archive (zstd or gzip)
and a JSON-lines file index (path, type, size, mode, owner, mtime, link, sha256), so a
restore or a verification can pick files without reading the whole archive.
"""

from __future__ import annotations

import os
from datetime import datetime

from gravitypm_ops.vault.hygiene import require_encryption
from gravitypm_ops.vault.store import Vault

INDEX_NAME = "index.jsonl"
ROOT_ARCNAME = "."  # app_root itself: its contents sit at the top of the archive


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def archive_path(path: str, app_root: str) -> str:
    """Where a host path lives in the archive: relative to app_root, else its absolute path minus "/"."""
    path, app_root = os.path.normpath(path), os.path.normpath(app_root)
    return os.path.relpath(path, app_root) if _inside(path, app_root) else path.lstrip("/")


def plan(kind: str, cfg):
    """The roots and excludes of one kind of file backup."""
    from gravitypm_ops.formats.tar.write import Root

    if kind == "fs":
        excludes = list(cfg.fs_excludes)
        logs = os.path.normpath(cfg.logs_path)
        if logs != os.path.normpath(cfg.app_root) and _inside(logs, os.path.normpath(cfg.app_root)):
            relative = archive_path(logs, cfg.app_root)
            excludes += [relative, f"{relative}/**"]
        return [Root(source=cfg.app_root, arcname=ROOT_ARCNAME)], excludes
    if kind == "config":
        return [Root(source=p, arcname=archive_path(p, cfg.app_root)) for p in cfg.config_files], []
    raise ValueError(f"not a file backup kind: {kind!r}")


def run_backup(kind: str, cfg, vault: Vault, *, dag_id: str, run_id: str, run_after: datetime) -> dict:
    """Archive the kind's roots into a new vault backup and commit it; returns the manifest."""
    from gravitypm_ops import __version__
    from gravitypm_ops.formats.tar.compression import Compression, compressing_writer
    from gravitypm_ops.formats.tar.write import archive_tree

    writer = vault.begin_backup(kind, dag_id=dag_id, run_id=run_id, run_after=run_after)
    if isinstance(writer, dict):
        return writer
    compression = Compression.from_dict(cfg.compression)
    roots, excludes = plan(kind, cfg)
    archive_name = "files" + compression.extension
    index_name = INDEX_NAME + compression.extension.removeprefix(".tar")
    try:
        with (
            writer.artifact(archive_name, compression=compression.algorithm, format="tar (pax)") as archive_sink,
            writer.artifact(index_name, compression=compression.algorithm, format="jsonl file index") as index_sink,
            compressing_writer(archive_sink, compression) as tar_out,
            compressing_writer(index_sink, compression) as index_out,
        ):
            report = archive_tree(roots, tar_out, index_out, excludes=excludes, progress=_progress_logger())
        if kind == "config":
            require_encryption(vault, [a.key for a in writer.artifacts])
        return writer.commit(
            source={"host": os.uname().nodename, "roots": [r.source for r in roots], "excludes": excludes},
            tools={"gravitypm_ops": __version__, "compression": compression.to_dict(), "index": index_name},
            content=report,
        )
    except BaseException as err:
        writer.abort(err)  # a failing clean-up is logged and noted on err, never raised in its place
        raise


def _progress_logger():
    import logging
    import time

    log = logging.getLogger(__name__)
    started = last = time.monotonic()

    def progress(files: int, size: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= 30:
            last = now
            log.info("archived %d files, %.1f MiB (%.1f MiB/s)", files, size / 2**20, size / 2**20 / (now - started))

    return progress
