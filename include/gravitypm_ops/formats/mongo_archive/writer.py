"""The mongodump archive writer: what `mongodump --archive` writes, block by block."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from typing import Any, BinaryIO

import bson
from bson.int64 import Int64

from gravitypm_ops.formats.mongo_archive.crc64 import Crc64
from gravitypm_ops.formats.mongo_archive.format import (
    ARCHIVE_FORMAT_VERSION,
    MAGIC_BYTES,
    MAX_BSON_SIZE,
    MIN_BSON_SIZE,
    TERMINATOR,
    NamespaceMeta,
    NamespaceStats,
    metadata_json,
)

# db.StrToVersion in mongo-tools: build suffixes after "-" or "+" are dropped, then
# exactly three integer parts; mongorestore refuses a prelude it cannot parse.
_SERVER_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(?:[-+].*)?$", re.DOTALL)
_UINT32 = struct.Struct("<I")


def _raw_bytes(doc: Any) -> bytes | bytearray | memoryview:
    raw = getattr(doc, "raw", None)  # bson.raw_bson.RawBSONDocument
    if raw is not None:
        return raw
    if isinstance(doc, (bytes, bytearray, memoryview)):
        return doc
    raise TypeError(
        f"documents must be raw BSON (bytes or RawBSONDocument), not {type(doc).__name__}; "
        "use bson.encode() for a dict"
    )


class ArchiveWriter:
    """Stream a mongodump-compatible archive to ``binary_stream`` (anything with ``write``).

    The prelude is written by the constructor. Then call :meth:`write_documents` once
    per namespace (or several times with ``final=False`` for all but the last call),
    and :meth:`close` to end every namespace still open or never written. ``close``
    flushes but does not close ``binary_stream``. Used as a context manager, the
    archive is only completed when the block exits without an exception, so a failed
    dump leaves a stream mongorestore rejects rather than a short "valid" archive.

    Output is byte-identical to ``mongodump --archive -j1`` for the same inputs when
    ``max_segment_bytes`` is None (one segment per namespace run). With a limit, a new
    segment header starts once a segment holds that many document bytes, as Percona
    Backup for MongoDB does; mongorestore accepts both.
    """

    def __init__(
        self,
        binary_stream: BinaryIO | Any,
        namespaces: list[NamespaceMeta],
        server_version: str,
        tool_version: str,
        *,
        concurrent_collections: int = 1,
        max_segment_bytes: int | None = None,
        buffer_size: int = 256 * 1024,
    ) -> None:
        if not hasattr(binary_stream, "write"):
            raise TypeError("binary_stream must have a write(bytes) method")
        if not isinstance(server_version, str) or not _SERVER_VERSION_RE.match(server_version):
            raise ValueError(
                f"server_version must look like X.Y.Z (mongorestore parses it): {server_version!r}"
            )
        if not isinstance(tool_version, str):
            raise TypeError("tool_version must be a string")
        if not 1 <= concurrent_collections <= 2**31 - 1:
            raise ValueError("concurrent_collections must be a positive int32")
        if max_segment_bytes is not None and max_segment_bytes < 1:
            raise ValueError("max_segment_bytes must be positive or None")
        self._out = binary_stream
        self._server_version = server_version
        self._tool_version = tool_version
        self._concurrent = concurrent_collections
        self._max_segment = max_segment_bytes
        self._buffer_size = max(0, buffer_size)
        self._buf = bytearray()
        self._closed = False
        self._failed: str | None = None
        self._current: tuple[str, str] | None = None  # data namespace of the open segment
        self._segment_bytes = 0
        self._namespaces: list[NamespaceMeta] = list(namespaces)
        self._by_key: dict[tuple[str, str], NamespaceMeta] = {}  # data namespace -> meta
        self._by_name: dict[tuple[str, str], tuple[str, str]] = {}  # (db, name) -> data ns
        self._state: dict[tuple[str, str], str] = {}  # pending | open | closed
        self._crc: dict[tuple[str, str], Crc64] = {}
        self._stats: dict[tuple[str, str], NamespaceStats] = {}
        major_minor = tuple(int(p) for p in re.split(r"[-+]", server_version, maxsplit=1)[0].split(".")[:2])
        prelude_docs = []
        for meta in self._namespaces:
            if not isinstance(meta, NamespaceMeta):
                raise TypeError("namespaces must be NamespaceMeta instances")
            text = metadata_json(meta)  # validates meta
            if meta.type == "timeseries" and major_minor >= (8, 3):
                # mongo-tools' prelude.go stops using system.buckets.X from 8.3; that
                # path has not been checked against a real mongorestore here.
                raise ValueError("timeseries collections are only supported for servers < 8.3")
            key = (meta.db, meta.data_collection)
            name = (meta.db, meta.collection)
            if key in self._by_key or name in self._by_name:
                raise ValueError(f"duplicate namespace in archive: {meta.db}.{meta.collection}")
            self._by_key[key] = meta
            self._by_name[name] = key
            self._state[key] = "pending"
            self._crc[key] = Crc64()
            self._stats[key] = NamespaceStats(db=key[0], collection=key[1])
            prelude_docs.append(
                bson.encode(
                    {
                        "db": meta.db,
                        "collection": meta.collection,
                        "metadata": text,
                        "size": 0,  # int32; mongodump's NewPrelude never sets it
                        "type": meta.type,
                    }
                )
            )
        self._emit(MAGIC_BYTES)
        self._emit(
            bson.encode(
                {
                    "concurrent_collections": concurrent_collections,  # int32
                    "version": ARCHIVE_FORMAT_VERSION,
                    "server_version": server_version,
                    "tool_version": tool_version,
                }
            )
        )
        for doc in prelude_docs:
            self._emit(doc)
        self._emit(TERMINATOR)
        self._drain()

    # -- low-level output
    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data
        if len(self._buf) >= self._buffer_size:
            self._drain()

    def _drain(self) -> None:
        if not self._buf:
            return
        data = bytes(self._buf)  # a copy: the sink may keep what it is given
        self._buf.clear()
        while data:
            n = self._out.write(data)
            if n is None or n >= len(data):
                break  # buffered streams return len (or None); raw ones may write less
            if n <= 0:
                raise OSError("archive sink accepted no bytes")
            data = data[n:]

    # -- archive blocks (common/archive/multiplexer.go formatBody / formatEOF)
    def _header(self, key: tuple[str, str], eof: bool, crc: int) -> bytes:
        return bson.encode({"db": key[0], "collection": key[1], "EOF": eof, "CRC": Int64(crc)})

    def _begin_segment(self, key: tuple[str, str]) -> None:
        if self._current == key:
            return
        if self._current is not None:
            self._emit(TERMINATOR)
        self._emit(self._header(key, False, 0))
        self._current = key
        self._segment_bytes = 0
        self._stats[key].segments += 1

    def _end_namespace(self, key: tuple[str, str]) -> None:
        if self._current is not None:
            self._emit(TERMINATOR)
            self._current = None
        crc = self._crc[key].signed()
        self._stats[key].crc = crc
        self._emit(self._header(key, True, crc))
        self._emit(TERMINATOR)
        self._state[key] = "closed"

    def _resolve(self, db: str, collection: str) -> tuple[str, str]:
        key = self._by_name.get((db, collection))
        if key is None and (db, collection) in self._by_key:
            key = (db, collection)
        if key is None:
            raise KeyError(f"{db}.{collection} is not in the archive prelude")
        return key

    def _open_for_write(self, db: str, collection: str):
        """Checks shared by the write methods; opens the namespace on first use."""
        if self._closed:
            raise ValueError("archive writer is closed")
        self._check_not_failed()
        key = self._resolve(db, collection)
        state = self._state[key]
        if state == "closed":
            raise ValueError(f"{db}.{collection} was already ended in this archive")
        if state == "pending":
            open_count = sum(1 for s in self._state.values() if s == "open")
            if open_count >= self._concurrent:
                # mongorestore restores at most max(concurrent_collections, -j)
                # namespaces at once and blocks on a new one until a worker frees up.
                raise ValueError(
                    f"more than concurrent_collections={self._concurrent} namespaces "
                    "open at once; end one (final=True) before starting another"
                )
            self._state[key] = "open"
            self._begin_segment(key)  # mongodump always writes a (maybe empty) segment
        return key, self._by_key[key]

    # -- public API
    def write_documents(
        self,
        db: str,
        collection: str,
        raw_docs: Iterable[bytes | bytearray | memoryview | Any],
        *,
        final: bool = True,
    ) -> int:
        """Append raw BSON documents to a namespace; returns how many were written.

        ``collection`` is the name given in the prelude (for a timeseries ``X`` the
        documents are its buckets). With ``final=True`` (default) the namespace is
        then ended with its EOF block and cannot be written again.
        """
        # One document is a batch of one: a single code path frames, checks and checksums.
        return self.write_raw_batches(db, collection, (_raw_bytes(doc) for doc in raw_docs), final=final)

    def write_raw_batches(self, db: str, collection: str, batches: Iterable[bytes], *, final: bool = True) -> int:
        """Like `write_documents`, for batches of concatenated BSON documents.

        This is what PyMongo's ``find_raw_batches()`` yields: no per-document objects, one
        CRC update per batch. Each batch is checked to hold only whole, well-formed documents.
        """
        key, meta = self._open_for_write(db, collection)
        crc, stats, where, count = self._crc[key], self._stats[key], f"{db}.{collection}", 0
        try:
            for batch in batches:
                if meta.type == "view":
                    raise ValueError(f"{where} is a view: an archive carries no documents for it")
                # Every document whole and well-framed; inline: this loop runs once per document.
                end, pos, docs = len(batch), 0, 0
                while pos < end:
                    left = end - pos
                    size = _UINT32.unpack_from(batch, pos)[0] if left >= 4 else 0
                    if not MIN_BSON_SIZE <= size <= left:
                        raise ValueError(f"{where}: BSON length prefix {size} does not fit the {left} bytes left")
                    if size > MAX_BSON_SIZE:
                        raise ValueError(f"{where}: document of {size} bytes is outside 5..{MAX_BSON_SIZE}")
                    pos += size
                    if batch[pos - 1] != 0:
                        raise ValueError(f"{where}: BSON document does not end with a NUL byte")
                    docs += 1
                if self._current != key or (
                    self._max_segment is not None and self._segment_bytes >= self._max_segment
                ):
                    if self._current == key:
                        self._emit(TERMINATOR)
                        self._current = None
                    self._begin_segment(key)
                self._emit(batch)
                crc.update(batch)
                self._segment_bytes += len(batch)
                stats.documents += docs
                stats.bytes += len(batch)
                count += docs
            if final:
                self._end_namespace(key)
        except BaseException as exc:
            # Part of this namespace may be out already: never let close() seal it
            # with a CRC over a partial collection.
            self._failed = f"{where}: {exc!r}"
            raise
        return count

    def _check_not_failed(self) -> None:
        if self._failed is not None:
            self._drain()
            raise ValueError(
                f"archive left incomplete: an earlier write_documents failed ({self._failed})"
            )

    def close(self) -> None:
        """End every namespace not yet ended (in prelude order) and flush.

        Raises ``ValueError`` (after flushing what was written) if an earlier
        :meth:`write_documents` failed: that archive must not look complete.
        """
        if self._closed:
            return
        self._check_not_failed()
        for key in self._by_key:
            if self._state[key] == "pending":
                self._state[key] = "open"
                self._begin_segment(key)
            if self._state[key] == "open":
                self._end_namespace(key)
        self._closed = True
        self._drain()
        flush = getattr(self._out, "flush", None)
        if callable(flush):
            flush()

    @property
    def stats(self) -> dict[tuple[str, str], NamespaceStats]:
        """Per data namespace: documents, bytes, CRC and segments written so far."""
        return dict(self._stats)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._drain()  # leave the partial (invalid) archive as far as it got
