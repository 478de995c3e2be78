"""MongoDB backup and restore through the vault, in mongodump's archive format.

The artifact `mongodump.archive.gz` is what `mongodump --archive --gzip` writes, so in an
emergency MongoDB's own tool restores it without Airflow (README: "Restoring a DB backup by hand"):

    mongorestore --gzip --archive=mongodump.archive.gz --drop

Documents travel as raw BSON bytes end to end (RawBSONDocument): nothing is decoded, every
BSON type survives, and memory stays bounded by one cursor batch plus one upload part.
"""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import ReadPreference
from pymongo.errors import OperationFailure

from gravitypm_ops.formats.mongo_archive.format import NamespaceMeta
from gravitypm_ops.formats.mongo_archive.reader import ArchiveReader
from gravitypm_ops.formats.mongo_archive.writer import ArchiveWriter
from gravitypm_ops.formats.streaming import BackgroundIgzip, prefetch
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)

ARTIFACT_NAME = "mongodump.archive.gz"
ARTIFACT_FORMAT = "mongodump-archive"
KIND = "db"
RAW = CodecOptions(document_class=RawBSONDocument)
BATCH_SIZE = 1000
PROGRESS_EVERY_S = 30.0
STAGING_PREFIX = "__gravitypm_restore__"  # the restored data, before it replaces the target
PREVIOUS_PREFIX = "__gravitypm_previous__"  # the target's old data, until every swap succeeded


def _tool_version() -> str:
    from importlib.metadata import version

    return f"gravitypm-ops (pymongo {version('pymongo')})"


def describe_database(db) -> list[NamespaceMeta]:
    """Collections and views of one database with their options and indexes, as mongodump records them."""
    namespaces = []
    for info in sorted(db.list_collections(), key=lambda i: i["name"]):
        name, kind = info["name"], info.get("type", "collection")
        if name.startswith(("system.", STAGING_PREFIX, PREVIOUS_PREFIX)):
            continue
        indexes = [dict(i) for i in db[name].list_indexes()] if kind == "collection" else []
        metadata = {"collectionName": name, "type": kind, "options": dict(info.get("options", {})), "indexes": indexes}
        uuid = info.get("info", {}).get("uuid")
        if uuid is not None:
            metadata["uuid"] = uuid.hex if hasattr(uuid, "hex") else str(uuid)
        namespaces.append(NamespaceMeta(db=db.name, collection=name, metadata=metadata, type=kind))
    return namespaces


def _cluster_time(client):
    """The deployment's cluster time (replica sets / sharded clusters), else None."""
    reply = client.admin.command("ping")
    ct = reply.get("$clusterTime", {}).get("clusterTime") or reply.get("operationTime")
    return None if ct is None else {"t": ct.time, "i": ct.inc}


@dataclass
class Progress:
    """Logs documents, bytes and rate at most every PROGRESS_EVERY_S seconds of a long dump."""

    writer: ArchiveWriter
    started: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)

    def watch(self, batches: Iterable[bytes]) -> Iterator[bytes]:
        for batch in batches:
            yield batch
            if time.monotonic() - self.last >= PROGRESS_EVERY_S:
                self.last = time.monotonic()
                self.report()

    def totals(self) -> tuple[int, int]:
        stats = self.writer.stats.values()
        return sum(s.documents for s in stats), sum(s.bytes for s in stats)

    def report(self) -> None:
        documents, size = self.totals()
        elapsed = max(time.monotonic() - self.started, 1e-9)
        log.info(
            "dumped %d documents, %.1f MiB (%.0f docs/s, %.1f MiB/s)",
            documents, size / 2**20, documents / elapsed, size / 2**20 / elapsed,
        )


def dump(client, databases: list[str], out, *, gzip_level: int = 1) -> dict:
    """Write every collection of `databases` to `out` as a gzip'd mongodump archive.

    The gzip member comes from ISA-L (`gzip_level` 0..3): at level 1 it keeps up with the
    cursor on one core, where zlib's level 6 (mongodump's default) took longer than the scan.

    Returns the manifest's kind-specific content: per-collection document counts, index
    specs, options, and the consistency achieved.
    """
    started_wall, started_ct = datetime.now(UTC), _cluster_time(client)
    namespaces = [ns for name in databases for ns in describe_database(client[name])]
    server_version = client.admin.command("buildInfo").get("version", "unknown")
    with BackgroundIgzip(out, gzip_level) as gz:
        writer = ArchiveWriter(gz, namespaces, server_version=server_version, tool_version=_tool_version())
        progress = Progress(writer)
        for ns in namespaces:
            if ns.type != "collection":
                continue
            coll = client[ns.db].get_collection(ns.collection, read_preference=ReadPreference.SECONDARY_PREFERRED)
            # Raw batches: no per-document objects. The cursor runs in its own thread, so
            # MongoDB serves the next batch while this one is archived.
            batches = prefetch(coll.find_raw_batches({}, batch_size=BATCH_SIZE), batch=1)
            writer.write_raw_batches(ns.db, ns.collection, progress.watch(batches))
        writer.close()
    progress.report()
    stats = {(key[0], key[1]): value for key, value in writer.stats.items()}
    documents, size = progress.totals()

    def counted(ns: NamespaceMeta) -> dict:
        found = stats.get((ns.db, ns.collection))
        return {
            "type": ns.type,
            "documents": found.documents if found else 0,
            "bson_bytes": found.bytes if found else 0,
            "options": ns.metadata["options"],
            "indexes": ns.metadata["indexes"],
        }

    return {
        "databases": {name: {ns.collection: counted(ns) for ns in namespaces if ns.db == name} for name in databases},
        "server_version": server_version,
        "consistency": {
            # Collections are read one after another while writes go on: each collection is
            # internally consistent per document, the whole dump spans this time range.
            "mode": "fuzzy",
            "cluster_time_start": started_ct,
            "cluster_time_end": _cluster_time(client),
            "wall_start": started_wall.isoformat(),
            "wall_end": datetime.now(UTC).isoformat(),
        },
        "documents": documents,
        "bson_bytes": size,
    }


def _rename(db, source: str, target: str) -> None:
    """Replace `target` with `source` in one step (renameCollection with dropTarget)."""
    args = {"to": f"{db.name}.{target}", "dropTarget": True}
    try:
        db.client.admin.command("renameCollection", f"{db.name}.{source}", **args)
    except OperationFailure:
        # mongoeco (the local stack) only accepts it on the database itself; MongoDB on admin.
        db.command("renameCollection", f"{db.name}.{source}", **args)


def _create_indexes(coll, indexes: list[dict]) -> None:
    specs = []
    for index in indexes:
        if index["name"] == "_id_":
            continue
        spec = {k: v for k, v in index.items() if k not in ("v", "ns")}
        specs.append(spec)
    if specs:
        coll.database.command("createIndexes", coll.name, indexes=specs)


def _swap_in(swaps: list[tuple[object, str, str]]) -> None:
    """Rename each staging collection onto its target; all or nothing.

    The targets' old data is renamed aside first and dropped only after every swap succeeded;
    if one fails, the swaps done so far are undone and the staging collections dropped.
    """
    done: list[tuple[object, str, bool]] = []
    try:
        for db, staging, target in swaps:
            had_target = target in db.list_collection_names()
            if had_target:
                _rename(db, target, PREVIOUS_PREFIX + target)
            done.append((db, target, had_target))
            _rename(db, staging, target)
    except BaseException:
        for db, target, had_target in reversed(done):
            if had_target:
                _rename(db, PREVIOUS_PREFIX + target, target)  # dropTarget: replaces a swapped-in copy
            else:
                db.drop_collection(target)
        for db, staging, _ in swaps:
            db.drop_collection(staging)
        raise
    for db, target, had_target in done:
        if had_target:
            db.drop_collection(PREVIOUS_PREFIX + target)


@dataclass
class RestoreReport:
    restored: dict[str, dict[str, int]] = field(default_factory=dict)  # target db -> collection -> docs
    views: dict[str, list[str]] = field(default_factory=dict)
    left_alone: dict[str, list[str]] = field(default_factory=dict)  # collections not in the backup

    def to_dict(self) -> dict:
        return {"restored": self.restored, "views": self.views, "left_alone": self.left_alone}


def restore(
    archive_gz, client, db_map: dict[str, str], *, collections: Collection[str] | None = None,
    before_swap: Callable[[], None] | None = None, batch_size: int = 500,
) -> RestoreReport:
    """Restore a gzip'd mongodump archive into `client`, database by database per `db_map`.

    Per collection it replaces what is there, like `mongorestore --drop`, but without a window
    where the data is missing or half-loaded: documents go into staging collections (data
    first, then indexes), and only when every one is complete do they replace the targets by
    renames; the old collections are kept aside until all swaps succeeded and renamed back if
    one fails. A failure leaves the target as it was. Collections of the target that are not
    in the backup are left alone and reported. Databases not in `db_map` are skipped, and so
    are collections not in `collections` when it is given.

    `before_swap` runs once everything is staged and before any target changes (a restore
    checks the artifact's SHA-256 there); if it raises, the staging is dropped.
    """
    reader = ArchiveReader(gzip.GzipFile(fileobj=archive_gz, mode="rb"))
    metas = {
        (ns.db, ns.collection): ns for ns in reader.namespaces
        if ns.db in db_map and (collections is None or ns.collection in collections)
    }
    report = RestoreReport()
    staged: dict[tuple[str, str], object] = {}

    def stage(key):
        ns = metas[key]
        db = client[db_map[ns.db]]
        name = STAGING_PREFIX + ns.collection
        db.drop_collection(name)
        db.create_collection(name, **ns.metadata["options"])
        staged[key] = db[name]
        return db[name]

    try:
        batch, current = [], None
        for db_name, coll_name, raw in reader.iter_documents():
            key = (db_name, coll_name)
            if key not in metas:
                continue
            if key != current:
                if batch:
                    staged[current].insert_many(batch, ordered=True, bypass_document_validation=True)
                    batch = []
                current = key
                if key not in staged:
                    stage(key)
            batch.append(RawBSONDocument(raw))
            if len(batch) >= batch_size:
                staged[key].insert_many(batch, ordered=True, bypass_document_validation=True)
                batch = []
        if batch:
            staged[current].insert_many(batch, ordered=True, bypass_document_validation=True)
        for key, ns in metas.items():
            if ns.type == "collection" and key not in staged:
                stage(key)  # an empty collection still has options and indexes
        for key, coll in staged.items():
            _create_indexes(coll, metas[key].metadata["indexes"])
            report.restored.setdefault(coll.database.name, {})[metas[key].collection] = coll.count_documents({})
        if before_swap is not None:
            before_swap()
    except BaseException:
        for coll in staged.values():
            coll.database.drop_collection(coll.name)
        raise
    # Every collection is fully staged and the archive passed its checks: swap them in.
    _swap_in([(coll.database, coll.name, metas[key].collection) for key, coll in staged.items()])
    for (src_db, name), ns in metas.items():
        if ns.type == "view":
            db = client[db_map[src_db]]
            db.drop_collection(name)
            options = ns.metadata["options"]
            db.command("create", name, viewOn=options["viewOn"], pipeline=options.get("pipeline", []))
            report.views.setdefault(db.name, []).append(name)
    for src_db, target in db_map.items():
        in_backup = {c for (d, c) in metas if d == src_db}
        others = sorted(set(client[target].list_collection_names()) - in_backup)
        if others:
            report.left_alone[target] = others
    return report


def describe_source(client, databases) -> dict:
    """Where the dump came from: host and databases, never credentials."""
    hello = client.admin.command("hello")
    host, port = client.address or ("?", 0)
    return {
        "host": f"{host}:{port}",
        "replica_set": hello.get("setName"),
        "read_preference": "secondaryPreferred",
        "databases": list(databases),
    }


def run_backup(
    cfg, vault: Vault, client, *, dag_id: str, run_id: str, run_after: datetime,
    databases: list[str] | None = None, extra: dict | None = None,
) -> dict:
    """Dump `databases` (default `cfg.mongo_databases`) into a new vault backup and commit it;
    returns the manifest. `extra` fields go into the manifest (e.g. a safety backup's purpose).

    If this run already committed a backup, that manifest is returned and nothing is written.
    On any failure the partial backup is aborted: no manifest, no open multipart upload.
    """
    from importlib.metadata import version

    from gravitypm_ops import __version__

    databases = list(databases or cfg.mongo_databases)
    writer = vault.begin_backup(KIND, dag_id=dag_id, run_id=run_id, run_after=run_after)
    if isinstance(writer, dict):
        return writer
    try:
        with writer.artifact(ARTIFACT_NAME, compression="gzip", format=ARTIFACT_FORMAT) as out:
            content = dump(client, databases, out)
        return writer.commit(
            source=describe_source(client, databases),
            tools={"gravitypm_ops": __version__, "pymongo": version("pymongo"), "format": "mongodump archive, gzip"},
            content=content,
            extra=extra,
        )
    except BaseException as err:
        writer.abort(err)  # a failing clean-up is logged and noted on err, never raised in its place
        raise
