"""Ship rotated log files into the vault as `logs` backups (each file once, by its SHA-256)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from gravitypm_ops.log_rotation.files import CHUNK, RotatedFile, RotationError

log = logging.getLogger(__name__)


def shipped_hashes(vault) -> set[str]:
    """SHA-256 of every rotated file any committed `logs` backup holds."""
    return {entry["sha256"] for m in vault.list_backups("logs") for entry in m["content"].get("logs", [])}


def artifact_name(f: RotatedFile) -> str:
    stamp = datetime.fromtimestamp(f.mtime, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{f.log}.{stamp}.{f.sha256[:12]}" + (".gz" if f.compressed else "")


def ship_to_vault(vault, files: Iterable[RotatedFile], *, settings: Mapping, logs_dir: str, dag_id: str, run_id: str,
                  now: datetime | None = None) -> dict:
    """One `logs` backup holding `files` as they are on disk (the .gz bytes); returns the manifest.

    The backup id is made from the shipping time, so a retry of the same run that finds more to
    ship makes a new backup; what an earlier attempt committed is never shipped again (hashes).
    """
    from gravitypm_ops import __version__

    writer = vault.begin_backup("logs", dag_id=dag_id, run_id=run_id, run_after=now or datetime.now(UTC))
    if isinstance(writer, dict):
        return writer
    entries = []
    try:
        for f in files:
            name = artifact_name(f)
            # Hashed here, not from the upload: an encrypted artifact (encrypt_kinds) stores other bytes.
            sha, size = hashlib.sha256(), 0
            with (writer.artifact(name, compression="gzip" if f.compressed else "none", format="log") as sink,
                  open(f.path, "rb") as src):
                while data := src.read(8 * CHUNK):
                    sha.update(data)
                    size += len(data)
                    sink.write(data)
            if sha.hexdigest() != f.sha256 or size != f.size:
                raise RotationError(f"{f.path} changed while it was shipped; nothing committed")
            entries.append({
                "artifact": name, "log": f.log, "file": f.name, "sha256": f.sha256, "size": f.size,
                "uncompressed_size": f.uncompressed_size,
                "last_written": datetime.fromtimestamp(f.mtime, UTC).isoformat(),
            })
        return writer.commit(
            source={"host": os.uname().nodename, "logs_dir": logs_dir, "pattern": settings["pattern"]},
            tools={"gravitypm_ops": __version__,
                   "compression": {"algorithm": "gzip", "level": settings["compress_level"]} if settings["compress"]
                   else None},
            content={"files": len(entries), "bytes": sum(e["size"] for e in entries),
                     "uncompressed_bytes": sum(e["uncompressed_size"] or 0 for e in entries), "logs": entries},
        )
    except BaseException as err:
        writer.abort(err)
        raise
