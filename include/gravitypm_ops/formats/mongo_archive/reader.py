"""Stream a mongodump archive back: every block, CRC and EOF marker checked."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

import bson

from gravitypm_ops.formats.mongo_archive.crc64 import Crc64
from gravitypm_ops.formats.mongo_archive.format import (
    MAGIC_BYTES,
    MAX_BSON_SIZE,
    MIN_BSON_SIZE,
    TERMINATOR,
    ArchiveFormatError,
    NamespaceMeta,
    NamespaceStats,
    data_collection,
    parse_metadata_json,
)

_EOF = object()


class ArchiveReader:
    """Read a (decompressed) mongodump archive from ``binary_stream`` (anything with ``read``).

    The constructor reads and checks the magic number and the prelude:
    :attr:`namespaces` (list of :class:`NamespaceMeta`), :attr:`header` and its fields
    :attr:`concurrent_collections`, :attr:`format_version`, :attr:`server_version`,
    :attr:`tool_version`. :meth:`iter_documents` then streams the body and checks what
    mongorestore's parser and demultiplexer check (lengths, terminators, headers,
    namespaces known to the prelude, per-namespace CRC, every namespace ended),
    raising :class:`ArchiveFormatError` on any corruption or truncation.
    """

    def __init__(self, binary_stream: BinaryIO | Any) -> None:
        if not hasattr(binary_stream, "read"):
            raise TypeError("binary_stream must have a read(n) method")
        self._in = binary_stream
        self.offset = 0
        self._consumed = False
        magic = self._read_exact(4, "the magic number", allow_eof=True)
        if magic is None or len(magic) < 4:
            raise ArchiveFormatError("empty or truncated stream: no archive magic number")
        if magic != MAGIC_BYTES:
            raise ArchiveFormatError(
                f"stream does not appear to be a mongodump archive (magic {magic.hex()} "
                f"!= {MAGIC_BYTES.hex()})"
            )
        raw = self._read_doc_or_terminator("the archive header", allow_eof=False)
        if raw is None:
            raise ArchiveFormatError("archive header missing: terminator right after the magic number")
        header = self._decode(raw, "the archive header")
        self.header: dict[str, Any] = header
        self.concurrent_collections = int(header.get("concurrent_collections", 0) or 0)
        self.format_version = str(header.get("version", ""))
        self.server_version = str(header.get("server_version", ""))
        self.tool_version = str(header.get("tool_version", ""))
        self.collection_metadata: list[dict[str, Any]] = []
        self.namespaces: list[NamespaceMeta] = []
        while True:
            raw = self._read_doc_or_terminator("the prelude", allow_eof=False)
            if raw is None:
                break
            cm = self._decode(raw, "a prelude collection-metadata document")
            db, coll = cm.get("db"), cm.get("collection")
            if not isinstance(db, str) or not isinstance(coll, str) or not coll:
                raise ArchiveFormatError(f"prelude entry without db/collection: {cm!r}")
            kind = cm.get("type") or "collection"
            text = cm.get("metadata") or ""
            try:
                metadata = parse_metadata_json(text)
            except Exception as exc:  # noqa: BLE001 - reported as corruption
                raise ArchiveFormatError(f"prelude metadata of {db}.{coll} is not valid: {exc}") from exc
            self.collection_metadata.append(cm)
            self.namespaces.append(NamespaceMeta(db=db, collection=coll, metadata=metadata, type=kind))
        self.stats: dict[tuple[str, str], NamespaceStats] = {}

    # -- low-level input (common/archive/parser.go)
    def _read_exact(self, n: int, what: str, *, allow_eof: bool, part: str = "") -> bytes | None:
        data = self._in.read(n) or b""
        if len(data) == n:  # the usual case
            self.offset += n
            return data
        chunks = [data] if data else []
        got = len(data)
        while got < n:
            chunk = self._in.read(n - got) or b""
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
        if got == 0 and allow_eof:
            return None
        if got < n:
            raise ArchiveFormatError(
                f"truncated archive: stream ended after {self.offset + got} bytes while reading "
                f"{part}{what} ({got} of {n} bytes)"
            )
        self.offset += n
        return data

    def _read_doc_or_terminator(self, what: str, *, allow_eof: bool) -> bytes | None | object:
        """A document's bytes, None for a terminator, ``_EOF`` for a clean end of stream."""
        start = self.offset
        head = self._read_exact(4, what, allow_eof=allow_eof, part="a length or terminator in ")
        if head is None:
            return _EOF
        if head == TERMINATOR:
            return None
        (size,) = struct.unpack("<i", head)
        if size < MIN_BSON_SIZE or size > MAX_BSON_SIZE:
            raise ArchiveFormatError(
                f"corruption at offset {start} in {what}: {size} is neither a valid BSON length "
                "nor an archive terminator"
            )
        rest = self._read_exact(size - 4, what, allow_eof=False, part=f"a {size}-byte document in ")
        if rest[-1] != 0:
            raise ArchiveFormatError(
                f"corruption at offset {start} in {what}: BSON document of {size} bytes does "
                "not end with a NUL byte"
            )
        return head + rest

    def _decode(self, raw: bytes, what: str) -> dict[str, Any]:
        try:
            return bson.decode(raw)
        except Exception as exc:  # noqa: BLE001
            raise ArchiveFormatError(f"{what} is not valid BSON: {exc}") from exc

    # -- body (common/archive/demultiplexer.go)
    def iter_documents(self) -> Iterator[tuple[str, str, bytes]]:
        """Yield ``(db, collection, raw_bson)`` in stream order, verifying as it goes.

        ``collection`` is the data collection named in the block header (for a
        timeseries ``X``: ``system.buckets.X``). The final checks (every namespace
        ended) run when the generator is exhausted; stop early and they do not.
        """
        if self._consumed:
            raise RuntimeError("iter_documents() can only be called once per reader")
        self._consumed = True
        known: dict[tuple[str, str], NamespaceMeta] = {}
        required: set[tuple[str, str]] = set()
        for meta in self.namespaces:
            key = (meta.db, data_collection(meta.collection, meta.type))
            known[key] = meta
            if meta.type != "timeseries":  # CreateDemux skips timeseries namespaces
                required.add(key)
        status: dict[tuple[str, str], str] = {}  # open | closed
        crcs: dict[tuple[str, str], Crc64] = {}
        stats = self.stats
        while True:
            start = self.offset
            raw = self._read_doc_or_terminator("a namespace header", allow_eof=True)
            if raw is _EOF:
                break
            if raw is None:
                raise ArchiveFormatError(
                    f"corruption at offset {start}: consecutive terminators / headerless blocks"
                )
            hdr = self._decode(raw, f"the namespace header at offset {start}")
            db, coll = hdr.get("db", ""), hdr.get("collection", "")
            if not isinstance(db, str) or not isinstance(coll, str) or not coll:
                raise ArchiveFormatError(f"namespace header at offset {start} has no collection: {hdr!r}")
            eof = hdr.get("EOF", False)
            crc_field = hdr.get("CRC", 0)
            if not isinstance(eof, bool) or not isinstance(crc_field, int):
                raise ArchiveFormatError(f"namespace header at offset {start} has bad EOF/CRC: {hdr!r}")
            key = (db, coll)
            ns = f"{db}.{coll}"
            if key not in known:
                raise ArchiveFormatError(f"namespace {ns} at offset {start} is not in the prelude")
            state = status.get(key)
            if state == "closed":
                raise ArchiveFormatError(f"namespace header at offset {start} for already ended {ns}")
            if state is None:
                status[key] = "open"
                crcs[key] = Crc64()
                stats[key] = NamespaceStats(db=db, collection=coll)
            st = stats[key]
            if eof:
                expected = crcs[key].signed()
                if expected != int(crc_field):
                    raise ArchiveFormatError(
                        f"CRC mismatch for namespace {ns}: computed {expected} != archive "
                        f"{int(crc_field)} (corrupted documents)"
                    )
                st.crc = expected
                status[key] = "closed"
                body = self._read_doc_or_terminator(f"the EOF block of {ns}", allow_eof=False)
                if body is not None:
                    raise ArchiveFormatError(f"collection data after the EOF header of {ns}")
                continue
            st.segments += 1
            crc = crcs[key]
            what = f"a segment of {ns}"
            while True:
                doc = self._read_doc_or_terminator(what, allow_eof=False)
                if doc is None:
                    break
                crc.update(doc)
                st.documents += 1
                st.bytes += len(doc)
                yield db, coll, doc
        unfinished = sorted(f"{d}.{c}" for (d, c), s in status.items() if s == "open")
        if unfinished:
            raise ArchiveFormatError(f"archive finished but namespaces were unfinished: {unfinished}")
        missing = sorted(f"{d}.{c}" for (d, c) in required if status.get((d, c)) != "closed")
        if missing:
            raise ArchiveFormatError(f"archive finished before all collections were seen: {missing}")

    def verify(self) -> dict[tuple[str, str], NamespaceStats]:
        """Read the whole body, checking everything; return per-namespace stats."""
        for _ in self.iter_documents():
            pass
        return dict(self.stats)
