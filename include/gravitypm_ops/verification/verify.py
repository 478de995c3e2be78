"""Backup verification: evidence that a backup can be restored, stored beside it.

For one backup, in order (every check runs; the record names each one that failed):
- artifacts: each artifact re-read from S3, size and SHA-256 against the manifest (streamed);
- keys (client-side encrypted backups): an identity Airflow holds (connection
  gravitypm_backup_identity) opens every encrypted artifact — else the backup "cannot be restored
  with the keys Airflow holds", which is what a restore test exists to find (the restores below
  then decrypt for real);
- db: the archive decodes (structure and per-collection CRCs), then a trial restore into a
  scratch database (never a production one) compared with the manifest — per-collection counts,
  index specs and options — plus a deterministic sample of documents compared byte for byte;
  the scratch database is dropped afterwards, also when a check fails;
- fs / config: the archive is restored into a temporary directory with every file's sha256
  checked against the index, and every indexed file must be there;
- logs: every gzip'd log decompresses whole (each member's CRC and length) to the size the
  manifest recorded.
The result is a new JSON record in the backup's `verifications/` (append-only); the newest one
is what `latest`, retention ("newest verified") and restores read.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime

from gravitypm_ops.names import is_reserved_database, same_database
from gravitypm_ops.redact import scrub
from gravitypm_ops.vault.layout import VaultError
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)

SAMPLE_PER_COLLECTION = 25


class CheckFailed(Exception):
    """One verification check found the backup wrong."""


def check_artifacts(vault: Vault, manifest: dict) -> str:
    failures = []
    for artifact in manifest["artifacts"]:
        try:
            vault.check_artifact(manifest, artifact["name"])
        except Exception as err:
            failures.append(f"{artifact['name']}: {err}")
    if failures:
        raise CheckFailed("; ".join(failures))
    return f"{len(manifest['artifacts'])} artifact(s): size and sha256 match"


def check_keys(vault: Vault, manifest: dict) -> str:
    from gravitypm_ops.vault.encryption import check_identities

    encrypted = [a for a in manifest["artifacts"] if a.get("encryption")]
    failures = []
    for artifact in encrypted:
        try:
            check_identities(artifact, vault.identities())
        except (VaultError, ValueError) as err:  # no match, or an unusable identity connection
            failures.append(str(err))
    if failures:
        raise CheckFailed("; ".join(dict.fromkeys(failures)))
    recipients = {r for a in encrypted for r in a["encryption"].get("recipients", [])}
    return f"{len(encrypted)} encrypted artifact(s) (age, {len(recipients)} recipients): an identity Airflow holds opens each"


def _index_specs(indexes: list[dict]) -> dict:
    return {i["name"]: {k: v for k, v in i.items() if k not in ("v", "ns")} for i in indexes}


def check_db_restore(
    vault: Vault, manifest: dict, client, scratch_prefix: str, forbidden: set[str], *,
    scratch_database: str | None = None, cleanup: bool = True,
) -> str:
    """Trial restore into scratch databases, compared with the manifest, then dropped (unless
    `cleanup` is False). The scratch names derive from the backup id, or are `scratch_database`
    (a backup of several databases: `<scratch_database>_<db>`); they must start with the prefix."""
    from gravitypm_ops.backup import mongo as backup_mongo

    content = manifest["content"]["databases"]
    if scratch_database:
        scratch = {db: scratch_database if len(content) == 1 else f"{scratch_database}_{db}"[:63] for db in content}
    else:
        scratch = {db: f"{scratch_prefix}{manifest['backup_id'].replace('-', '_')}_{db}"[:63] for db in content}
    # MongoDB refuses names differing only in case, so production matches case-insensitively.
    if any(same_database(n, forbidden) or is_reserved_database(n) for n in scratch.values()) \
            or not all(n.startswith(scratch_prefix) for n in scratch.values()):
        raise CheckFailed(f"refusing to use a production or reserved database as scratch: {scratch}")
    try:
        with vault.open_artifact(manifest, backup_mongo.ARTIFACT_NAME) as body:
            report = backup_mongo.restore(body, client, scratch)
            body.verify()
        problems = []
        for db, collections in content.items():
            target = client[scratch[db]]
            restored = report.restored.get(scratch[db], {})
            options = {c["name"]: c.get("options", {}) for c in target.list_collections()}
            for name, expected in collections.items():
                if expected["type"] != "collection":
                    continue
                if restored.get(name) != expected["documents"]:
                    problems.append(f"{db}.{name}: {restored.get(name)} documents restored, manifest says {expected['documents']}")
                if _index_specs(list(target[name].list_indexes())) != _index_specs(expected["indexes"]):
                    problems.append(f"{db}.{name}: index specs differ from the manifest")
                if options.get(name, {}) != expected["options"]:
                    problems.append(f"{db}.{name}: collection options differ from the manifest")
        problems += _compare_sample(vault, manifest, client, scratch)
        if problems:
            raise CheckFailed("; ".join(problems[:10]))
        total = sum(sum(c.values()) for c in report.restored.values())
        return f"trial restore of {total} documents into {sorted(scratch.values())} matches the manifest"
    finally:
        for name in scratch.values() if cleanup else ():
            client.drop_database(name)


def _compare_sample(vault: Vault, manifest: dict, client, scratch: dict[str, str]) -> list[str]:
    """Every k-th document of each collection (deterministic), byte for byte against the restore."""
    from bson.raw_bson import RawBSONDocument

    from gravitypm_ops.backup import mongo as backup_mongo
    from gravitypm_ops.formats.mongo_archive.reader import ArchiveReader

    content, problems, seen = manifest["content"]["databases"], [], {}
    with vault.open_artifact(manifest, backup_mongo.ARTIFACT_NAME) as body:
        reader = ArchiveReader(gzip.GzipFile(fileobj=body, mode="rb"))
        for db, coll, raw in reader.iter_documents():
            n = seen[(db, coll)] = seen.get((db, coll), 0) + 1
            every = max(1, content[db][coll]["documents"] // SAMPLE_PER_COLLECTION)
            if (n - 1) % every:
                continue
            doc_id = RawBSONDocument(raw)["_id"]
            restored = client[scratch[db]].get_collection(coll, codec_options=backup_mongo.RAW).find_one({"_id": doc_id})
            if restored is None or restored.raw != raw:
                problems.append(f"{db}.{coll}: document {doc_id!r} differs after restore")
    return problems


def check_files(vault: Vault, manifest: dict, target: str | None = None, *, cleanup: bool = True) -> str:
    """Restore into `target` (a new or empty directory; default a temporary one), verifying each
    file's sha256 against the index; the directory is removed afterwards unless `cleanup` is False."""
    from gravitypm_ops.formats.tar.compression import Compression, decompressing_reader
    from gravitypm_ops.formats.tar.extract import extract_archive
    from gravitypm_ops.formats.tar.index import read_index

    compression = Compression.from_dict(manifest["tools"]["compression"])
    index_name = manifest["tools"]["index"]
    archive_name = next(a["name"] for a in manifest["artifacts"] if a["name"] != index_name)
    if target is not None and os.path.isdir(target) and os.listdir(target):
        raise CheckFailed(f"{target}: not empty; restore checks need a new or empty directory")
    hashed = 0  # index entries with a sha256 (files and hard links): each must be verified

    def counted(records):
        nonlocal hashed
        for record in records:
            hashed += bool(record.get("sha256"))
            yield record

    target = target or tempfile.mkdtemp(prefix="gravitypm-verify-")
    try:
        with (
            vault.open_artifact(manifest, index_name) as index_body,
            vault.open_artifact(manifest, archive_name) as body,
        ):
            # Strict and against the whole index (read as a stream, kept compact): a backup the
            # restore would refuse (an entry the index lacks, a member bigger than its entry, an
            # unsafe entry) fails verification too.
            index = counted(read_index(decompressing_reader(index_body, compression)))
            report = extract_archive(decompressing_reader(body, compression), target, index=index,
                                     content=manifest.get("content"), strict=True)
    except Exception as err:
        raise CheckFailed(f"{archive_name}: {scrub(str(err))}") from None
    finally:
        if cleanup:
            shutil.rmtree(target, ignore_errors=True)
    if report.get("verified", 0) < hashed:
        raise CheckFailed(f"{archive_name}: {report.get('verified', 0)} of {hashed} indexed files verified")
    return f"{hashed} files restored with matching sha256"


def check_logs(vault: Vault, manifest: dict) -> str:
    """Each rotated log decompresses whole (every gzip member, CRC checked) to its recorded size."""
    expected = {e["artifact"]: e.get("uncompressed_size") for e in manifest["content"].get("logs", [])}
    problems, total = [], 0
    for artifact in manifest["artifacts"]:
        if artifact["compression"] != "gzip":
            continue
        size = 0
        try:
            with vault.open_artifact(manifest, artifact["name"]) as body, gzip.GzipFile(fileobj=body) as logs:
                while data := logs.read(1 << 20):
                    size += len(data)
        except (OSError, EOFError, zlib.error) as err:
            problems.append(f"{artifact['name']}: {err}")
            continue
        if expected.get(artifact["name"]) not in (None, size):
            problems.append(f"{artifact['name']}: {size} bytes after gunzip, manifest says {expected[artifact['name']]}")
        total += size
    if problems:
        raise CheckFailed("; ".join(problems[:10]))
    return f"{len(expected)} log file(s) decompress whole ({total} bytes)"


def verify_backup(
    vault: Vault, manifest: dict, *, mongo_client=None, scratch_prefix: str = "gravitypm_scratch_",
    production_databases: tuple[str, ...] = (), verifier: dict | None = None,
) -> dict:
    """Run every check on one backup, store the record beside it, and return the record."""
    started = datetime.now(UTC)
    checks: list[dict] = []

    def run(name: str, check: Callable[[], str]) -> None:
        t0 = time.monotonic()
        try:
            status, detail = "passed", check()
        except CheckFailed as err:
            status, detail = "failed", scrub(str(err))
        except Exception as err:  # an unexpected error is a failed check too, never a pass
            status, detail = "failed", scrub(f"{type(err).__name__}: {err}")
        checks.append({"name": name, "status": status, "detail": detail, "seconds": round(time.monotonic() - t0, 3)})
        log.info("verify %s %s: %s — %s", manifest["kind"], manifest["backup_id"], name, status)

    run("artifacts", lambda: check_artifacts(vault, manifest))
    if any(a.get("encryption") for a in manifest["artifacts"]):
        run("keys", lambda: check_keys(vault, manifest))
    if manifest["kind"] == "db":
        if mongo_client is None:
            checks.append({"name": "trial_restore", "status": "failed", "detail": "no scratch MongoDB", "seconds": 0})
        else:
            run("trial_restore", lambda: check_db_restore(
                vault, manifest, mongo_client, scratch_prefix, set(production_databases)))
    elif manifest["kind"] in ("fs", "config"):
        run("files", lambda: check_files(vault, manifest))
    elif manifest["kind"] == "logs":
        run("gzip", lambda: check_logs(vault, manifest))
    finished = datetime.now(UTC)
    record = {
        "schema_version": 1,
        "kind": manifest["kind"],
        "backup_id": manifest["backup_id"],
        "status": "passed" if all(c["status"] == "passed" for c in checks) else "failed",
        "checks": checks,
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "seconds": round((finished - started).total_seconds(), 3),
        "verifier": verifier or {},
    }
    record["key"] = vault.record_verification(manifest, record)
    return record
