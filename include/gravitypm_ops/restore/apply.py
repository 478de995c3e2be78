"""Restores themselves: the safety backup, the DB swap and the file restore (after plan.py said yes)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from gravitypm_ops.names import is_reserved_database
from gravitypm_ops.restore.plan import SAFETY_DAYS, RestoreRefused
from gravitypm_ops.vault.layout import SAFETY_PURPOSE
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)


def safety_backup(cfg, vault: Vault, client, plan: dict, *, dag_id: str, run_id: str, run_after: datetime) -> dict | None:
    """A normal `db` backup of the target database as it is now, tagged as a safety backup and
    kept by retention for SAFETY_DAYS. None when the target holds no collections (nothing to lose)."""
    from gravitypm_ops.backup.mongo import run_backup

    target = plan["target_database"]
    if not client[target].list_collection_names():
        log.info("target database %s is empty: no safety backup needed", target)
        return None
    extra = {
        "purpose": SAFETY_PURPOSE,
        "safety_for": {"dag_id": dag_id, "run_id": run_id, "restoring": plan["backup"]["backup_id"]},
        "safety_until": (datetime.now(UTC) + timedelta(days=SAFETY_DAYS)).isoformat(),
    }
    return run_backup(cfg, vault, client, dag_id=dag_id, run_id=run_id, run_after=run_after,
                      databases=[target], extra=extra)


def _drain_and_verify(stream, body) -> None:
    """Read `stream` (which reads `body`) to its end, then check `body`'s size and SHA-256."""
    while stream.read(1 << 20):
        pass
    body.verify()


def restore_db(vault: Vault, client, plan: dict) -> dict:
    """Restore the planned collections; the artifact hash is checked before any target changes,
    and the swapped-in counts must equal the manifest's."""
    from gravitypm_ops.backup import mongo as backup_mongo

    source, target = plan["source_database"], plan["target_database"]
    if is_reserved_database(source) or is_reserved_database(target) or any(
            c.startswith("system.") for c in plan["collections"]):  # the plan refuses these; never act on one
        raise RestoreRefused(f"refusing to restore {source} -> {target} {plan['collections']}: "
                             "MongoDB's reserved databases and system.* collections are never restored")
    manifest = vault.resolve("db", plan["backup"]["backup_id"])
    with vault.open_artifact(manifest, backup_mongo.ARTIFACT_NAME) as body:
        report = backup_mongo.restore(
            body, client, {source: target}, collections=set(plan["collections"]),
            before_swap=lambda: _drain_and_verify(body, body),
        )
    restored = report.restored.get(target, {})
    wrong = {c: (restored.get(c), n) for c, n in plan["documents"].items() if restored.get(c) != n}
    if wrong:
        raise RuntimeError(f"restored counts differ from the manifest (restored, manifest): {wrong}")
    return {"target_database": target, **report.to_dict()}


def count_drift(client, plan: dict) -> dict[str, dict]:
    """Per collection: documents now vs the manifest (the app may have written since it started)."""
    db = client[plan["target_database"]]
    return {
        c: {"manifest": n, "now": db[c].count_documents({})}
        for c, n in plan["documents"].items()
    }


def restore_files(vault: Vault, plan: dict) -> dict:
    """Extract into staging inside the target, verify every file against the index and the
    archive against the manifest, then move into place (one step, formats.tar.extract.extract_archive)."""
    from gravitypm_ops.formats.tar.compression import Compression, decompressing_reader
    from gravitypm_ops.formats.tar.extract import extract_archive
    from gravitypm_ops.formats.tar.index import read_index

    manifest = vault.resolve(plan["backup"]["kind"], plan["backup"]["backup_id"])
    compression = Compression.from_dict(manifest["tools"]["compression"])
    index_name = manifest["tools"]["index"]
    archive = next(a["name"] for a in manifest["artifacts"] if a["name"] != index_name)
    with vault.open_artifact(manifest, index_name) as index_body, vault.open_artifact(manifest, archive) as body:
        # The index is streamed into the extractor's compact check, never held as a list of records
        # besides it (that list cost ~650 bytes a file more).
        index = read_index(decompressing_reader(index_body, compression))
        # The decompressor reads `body` in its own thread: drain through it, never beside it.
        tar_in = decompressing_reader(body, compression)
        # index + content: the archive must match the index entry for entry (what the dry run
        # listed is what is restored) and the manifest's totals, sizes checked before writing.
        return extract_archive(
            tar_in, plan["target_path"], paths=plan["paths"], index=index, content=manifest.get("content"),
            mirror=plan["mirror"], confirm_mirror=plan["mirror"], strict=True,
            before_commit=lambda: _drain_and_verify(tar_in, body),
        )
