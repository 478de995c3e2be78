"""Write and read the mongodump archive format, so ``mongorestore --archive`` can restore it.

Our DB backup must be restorable in an emergency with MongoDB's own tool::

    mongorestore --gzip --archive=dump.archive.gz

so this module writes exactly what ``mongodump --archive`` writes. The format is
specified in mongodb/mongo-tools ``common/archive/spec.md``
(https://github.com/mongodb/mongo-tools/blob/master/common/archive/spec.md); the
byte-level details below come from ``common/archive/{archive,prelude,multiplexer,
demultiplexer,parser}.go`` and ``mongodump/{prepare,metadata_dump,mongodump}.go``.

Layout (every ``document`` is one BSON document; integers are little-endian)::

    archive   = magic  header  *collection-metadata  terminator
                *( namespace-segment | namespace-eof )
    magic     = 6d e2 99 81                  (uint32 0x8199e26d, little-endian)
    terminator= ff ff ff ff
    header    = {concurrent_collections: int32, version: "0.1",
                 server_version: str, tool_version: str}
    collection-metadata
              = {db: str, collection: str, metadata: str, size: int32, type: str}
                ``metadata`` is the ``<coll>.metadata.json`` text: canonical Extended
                JSON v2, compact, of {options?, indexes, uuid?, collectionName, type?}.
    namespace-segment = {db, collection, EOF: false, CRC: int64 0}  *document  terminator
    namespace-eof     = {db, collection, EOF: true,  CRC: int64 crc}  terminator

``crc`` is Go's ``crc64.New(crc64.MakeTable(crc64.ECMA))`` (CRC-64/XZ: reflected
ECMA-182 polynomial, init and final XOR all ones) over the concatenated raw bytes of
all the namespace's documents, stored as the signed int64 of the uint64 sum.

Like ``mongodump`` with one writer, every namespace in the prelude gets one segment
(empty for an empty collection or a view: mongorestore uses that block to create a
view) followed by its EOF block. A timeseries collection ``X`` is listed as ``X`` in
the prelude while its data goes under ``system.buckets.X``.

Only ``bson`` (from pymongo) and the standard library are used. Nothing is decoded on
the document path: documents are written and read as raw BSON bytes, streamed; memory
is bounded by one document, a 256 KiB write buffer and a ~1 MiB CRC batch per open
namespace. The CRC runs at ~15 ns/byte in pure Python (lane-parallel, see below).
"""

from __future__ import annotations

import re
import struct
import sys
import uuid as _uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, BinaryIO, Literal

import bson
from bson import json_util
from bson.binary import Binary, UuidRepresentation
from bson.int64 import Int64
from bson.json_util import JSONMode, JSONOptions

__all__ = [
    "ARCHIVE_FORMAT_VERSION",
    "MAGIC_NUMBER",
    "MAGIC_BYTES",
    "MAX_BSON_SIZE",
    "TERMINATOR",
    "ArchiveFormatError",
    "ArchiveReader",
    "ArchiveWriter",
    "NamespaceMeta",
    "NamespaceStats",
    "Crc64",
    "crc64_ecma",
    "data_collection",
    "metadata_json",
    "parse_metadata_json",
]

# common/archive/archive.go
MAGIC_NUMBER = 0x8199E26D
MAGIC_BYTES = struct.pack("<I", MAGIC_NUMBER)  # b"\x6d\xe2\x99\x81"
TERMINATOR = b"\xff\xff\xff\xff"
ARCHIVE_FORMAT_VERSION = "0.1"
MIN_BSON_SIZE = 5  # an empty document
# common/db: MaxBSONSize; the parser rejects longer documents.
MAX_BSON_SIZE = 16 * 1024 * 1024

NamespaceType = Literal["collection", "view", "timeseries"]
_TYPES = ("collection", "view", "timeseries")
_BUCKETS_PREFIX = "system.buckets."
# db.StrToVersion in mongo-tools: build suffixes after "-" or "+" are dropped, then
# exactly three integer parts; mongorestore refuses a prelude it cannot parse.
_SERVER_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(?:[-+].*)?$", re.DOTALL)

# mongodump writes metadata with bson.MarshalExtJSON(meta, canonical=true,
# escapeHTML=false) and mongorestore reads it with UnmarshalExtJSON(canonical=true).
_METADATA_WRITE_OPTIONS = JSONOptions(
    json_mode=JSONMode.CANONICAL,
    uuid_representation=UuidRepresentation.UNSPECIFIED,
)
_METADATA_READ_OPTIONS = JSONOptions(
    json_mode=JSONMode.CANONICAL,
    uuid_representation=UuidRepresentation.UNSPECIFIED,
    tz_aware=True,
    tzinfo=timezone.utc,
)


class ArchiveFormatError(ValueError):
    """The stream is not a well-formed, complete, uncorrupted mongodump archive."""


# --------------------------------------------------------------------------- CRC-64


_ECMA_POLY = 0xC96C5795D7870F42  # Go hash/crc64.ECMA (reversed ECMA-182)
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _make_table(poly: int) -> list[int]:
    """Go's crc64.makeTable: the reflected byte-at-a-time table."""
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE8 = _make_table(_ECMA_POLY)
_LITTLE_ENDIAN = sys.byteorder == "little"


def _update_bytewise(crc: int, data: bytes | bytearray | memoryview) -> int:
    """Go's crc64.update loop on the inverted state (callers invert in and out)."""
    t = _TABLE8
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


# Pure Python does ~100 ns per byte above. For large inputs the CRC is computed
# lane-parallel instead (~15 ns/byte): the data is cut into N lanes of _LANE_LEN bytes,
# all lanes advance one byte per step using C-speed bytes/int operations (the 64-bit
# lane states are kept as 8 byte-planes; a table lookup on a whole plane is one
# bytes.translate), and the lane CRCs are then chained with the linear map "append
# _LANE_LEN zero bytes": for this CRC, R(s, A + B) = Z_len(B)(R(s, A)) ^ R(0, B).
_LANE_LEN = 1024
_MIN_LANES = 256  # below this, per-step overhead beats the byte loop
_CHUNK = 1024 * 1024  # Crc64 buffers up to this many bytes before a lane pass
_PLANE_TABLES = [bytes((_TABLE8[i] >> (8 * j)) & 0xFF for i in range(256)) for j in range(8)]
_zero_tables: list[list[int]] | None = None


def _get_zero_tables() -> list[list[int]]:
    """Z(s) = state after _LANE_LEN zero bytes, as 8 per-byte tables (Z is GF(2)-linear)."""
    global _zero_tables
    if _zero_tables is None:
        zeros = bytes(_LANE_LEN)
        basis = [_update_bytewise(1 << k, zeros) for k in range(64)]
        tables = []
        for j in range(8):
            t = [0] * 256
            for v in range(1, 256):
                low = v & -v
                t[v] = t[v ^ low] ^ basis[8 * j + low.bit_length() - 1]
            tables.append(t)
        _zero_tables = tables
    return _zero_tables


def _update_lanes(crc: int, data: bytes | bytearray, lanes: int) -> int:
    """Inverted-state update over the first ``lanes * _LANE_LEN`` bytes of ``data``."""
    L = _LANE_LEN
    end = lanes * L
    fb = int.from_bytes
    t0, t1, t2, t3, t4, t5, t6, t7 = _PLANE_TABLES
    p0 = p1 = p2 = p3 = p4 = p5 = p6 = p7 = 0  # every lane starts from state 0
    for s in range(L):
        idx = (p0 ^ fb(data[s:end:L], "little")).to_bytes(lanes, "little")
        p0, p1, p2, p3, p4, p5, p6, p7 = (
            fb(idx.translate(t0), "little") ^ p1,
            fb(idx.translate(t1), "little") ^ p2,
            fb(idx.translate(t2), "little") ^ p3,
            fb(idx.translate(t3), "little") ^ p4,
            fb(idx.translate(t4), "little") ^ p5,
            fb(idx.translate(t5), "little") ^ p6,
            fb(idx.translate(t6), "little") ^ p7,
            fb(idx.translate(t7), "little"),
        )
    interleaved = bytearray(8 * lanes)
    for j, plane in enumerate((p0, p1, p2, p3, p4, p5, p6, p7)):
        interleaved[j::8] = plane.to_bytes(lanes, "little")
    z0, z1, z2, z3, z4, z5, z6, z7 = _get_zero_tables()
    for r in memoryview(interleaved).cast("Q").tolist():
        crc = (
            z0[crc & 0xFF] ^ z1[(crc >> 8) & 0xFF] ^ z2[(crc >> 16) & 0xFF]
            ^ z3[(crc >> 24) & 0xFF] ^ z4[(crc >> 32) & 0xFF] ^ z5[(crc >> 40) & 0xFF]
            ^ z6[(crc >> 48) & 0xFF] ^ z7[crc >> 56] ^ r
        )
    return crc


def _update(crc: int, data: bytes | bytearray | memoryview) -> int:
    """Update the inverted CRC state with all of ``data``."""
    lanes = len(data) // _LANE_LEN
    if lanes < _MIN_LANES or not _LITTLE_ENDIAN:
        return _update_bytewise(crc, data)
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    crc = _update_lanes(crc, data, lanes)
    return _update_bytewise(crc, memoryview(data)[lanes * _LANE_LEN :])


class Crc64:
    """Incremental CRC-64, bit-identical to Go's ``crc64.New(crc64.MakeTable(crc64.ECMA))``.

    Buffers up to ~1 MiB so large runs of small updates take the fast lane path.
    """

    __slots__ = ("_state", "_pending")

    def __init__(self, initial: int = 0) -> None:
        self._state = (~initial) & _MASK64
        self._pending = bytearray()

    def update(self, data: bytes | bytearray | memoryview) -> Crc64:
        pending = self._pending
        pending += data
        if len(pending) >= _CHUNK and _LITTLE_ENDIAN:
            lanes = len(pending) // _LANE_LEN
            split = lanes * _LANE_LEN
            self._state = _update_lanes(self._state, pending, lanes)
            del pending[:split]
        return self

    def digest(self) -> int:
        """The unsigned 64-bit sum (Go's ``Sum64()``)."""
        if self._pending:
            self._state = _update(self._state, self._pending)
            self._pending = bytearray()
        return (~self._state) & _MASK64

    def signed(self) -> int:
        """The sum as mongodump stores it in the EOF header: ``int64(Sum64())``."""
        return _to_int64(self.digest())


def crc64_ecma(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Go's ``crc64.Update(crc, crc64.MakeTable(crc64.ECMA), data)`` (``crc=0``: Checksum)."""
    return (~_update((~crc) & _MASK64, data)) & _MASK64


def _to_int64(u: int) -> int:
    return u - (1 << 64) if u >= (1 << 63) else u


# ------------------------------------------------------------------------ metadata


@dataclass
class NamespaceMeta:
    """One collection (or view) of the archive, as listed in its prelude.

    ``metadata`` holds what mongodump puts in ``<coll>.metadata.json``: ``options``
    (the listCollections options; for a view ``viewOn`` and ``pipeline``),
    ``indexes`` (listIndexes documents; none for a view) and optionally ``uuid``
    (32 lowercase hex digits, or a ``Binary`` subtype 4 / ``uuid.UUID`` which is
    converted). ``type`` is the listCollections type and wins over ``metadata["type"]``.
    """

    db: str
    collection: str
    metadata: dict[str, Any] = field(default_factory=dict)
    type: NamespaceType = "collection"

    @classmethod
    def from_collection_info(
        cls, db: str, info: Mapping[str, Any], indexes: Iterable[Mapping[str, Any]] = ()
    ) -> NamespaceMeta:
        """Build from one ``listCollections`` result and its ``listIndexes`` documents,
        the way mongodump's NewIntentFromOptions/dumpMetadata do."""
        kind = info.get("type") or "collection"
        meta: dict[str, Any] = {"options": dict(info.get("options") or {})}
        meta["indexes"] = [] if kind == "view" else [dict(ix) for ix in indexes]
        uid = (info.get("info") or {}).get("uuid")
        if uid is not None:
            meta["uuid"] = uid
        return cls(db=db, collection=info["name"], metadata=meta, type=kind)

    @property
    def data_collection(self) -> str:
        return data_collection(self.collection, self.type)


def data_collection(collection: str, type: str) -> str:
    """The collection whose documents the archive body carries (intents.DataCollection)."""
    return _BUCKETS_PREFIX + collection if type == "timeseries" else collection


def _uuid_hex(value: Any) -> str:
    """mongodump stores the collection UUID as hex.EncodeToString of the 16 bytes."""
    if value is None or value == "":
        return ""
    if isinstance(value, _uuid.UUID):
        return value.hex
    if isinstance(value, Binary):
        if value.subtype != 4 or len(value) != 16:
            raise ValueError(f"collection uuid must be Binary subtype 4 of 16 bytes: {value!r}")
        return bytes(value).hex()
    if isinstance(value, str):
        text = value.replace("-", "").lower()
        if not re.fullmatch(r"[0-9a-f]{32}", text):
            raise ValueError(f"collection uuid must be 32 hex digits: {value!r}")
        return text
    raise TypeError(f"unsupported collection uuid type: {type(value).__name__}")


def _check_meta(meta: NamespaceMeta) -> None:
    if not isinstance(meta.db, str) or not meta.db or "\x00" in meta.db:
        raise ValueError(f"invalid database name: {meta.db!r}")
    if not isinstance(meta.collection, str) or not meta.collection or "\x00" in meta.collection:
        raise ValueError(f"invalid collection name: {meta.collection!r}")
    if meta.type not in _TYPES:
        raise ValueError(f"namespace type must be one of {_TYPES}: {meta.type!r}")
    declared = meta.metadata.get("type")
    if declared not in (None, "", meta.type):
        raise ValueError(
            f"{meta.db}.{meta.collection}: metadata type {declared!r} != type {meta.type!r}"
        )
    if meta.type == "view" and "viewOn" not in (meta.metadata.get("options") or {}):
        raise ValueError(f"{meta.db}.{meta.collection}: a view needs options.viewOn")


def metadata_json(meta: NamespaceMeta) -> str:
    """The ``<coll>.metadata.json`` text exactly as mongodump writes it.

    mongodump/metadata_dump.go marshals ``Metadata{Options bson.M "options,omitempty";
    Indexes []bson.D "indexes"; UUID string "uuid,omitempty"; CollectionName string
    "collectionName"; Type string "type,omitempty"}`` with
    ``bson.MarshalExtJSON(meta, true, false)``: canonical Extended JSON v2, compact,
    UTF-8 unescaped, no HTML escaping. ``indexes`` is always present (``[]`` if none).
    """
    _check_meta(meta)
    doc: dict[str, Any] = {}
    options = meta.metadata.get("options") or {}
    if options:
        doc["options"] = options
    doc["indexes"] = list(meta.metadata.get("indexes") or [])
    uid = _uuid_hex(meta.metadata.get("uuid"))
    if uid:
        doc["uuid"] = uid
    doc["collectionName"] = meta.collection
    if meta.type:
        doc["type"] = meta.type
    text = json_util.dumps(
        doc,
        json_options=_METADATA_WRITE_OPTIONS,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    # Go's JSON string escaping also escapes U+2028/U+2029 (only possible inside strings).
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def parse_metadata_json(text: str | bytes) -> dict[str, Any]:
    """Parse a ``metadata.json`` text as mongorestore does (canonical Extended JSON).

    Returns ``{"options": {...}, "indexes": [...], "uuid"?: hex, "collectionName": ...,
    "type"?: ...}``; ``options`` defaults to ``{}`` and ``indexes`` to ``[]``.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    if not text:
        return {"options": {}, "indexes": []}
    doc = json_util.loads(text, json_options=_METADATA_READ_OPTIONS)
    if not isinstance(doc, dict):
        raise ValueError("metadata JSON is not an object")
    doc.setdefault("options", {})
    doc.setdefault("indexes", [])
    if not isinstance(doc["options"], dict) or not isinstance(doc["indexes"], list):
        raise ValueError("metadata JSON: options must be an object and indexes an array")
    return doc


# -------------------------------------------------------------------------- writer


@dataclass
class NamespaceStats:
    """What was written or read for one data namespace."""

    db: str
    collection: str  # the data collection (system.buckets.X for timeseries X)
    documents: int = 0
    bytes: int = 0
    crc: int = 0  # signed int64, as stored in the EOF header
    segments: int = 0


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


def _check_document(buf: bytes | bytearray | memoryview, where: str) -> int:
    n = len(buf)
    if n < MIN_BSON_SIZE or n > MAX_BSON_SIZE:
        raise ValueError(f"{where}: document of {n} bytes is outside 5..{MAX_BSON_SIZE}")
    (size,) = struct.unpack_from("<i", buf, 0)
    if size != n:
        raise ValueError(f"{where}: BSON length prefix {size} != buffer length {n}")
    if buf[n - 1] != 0:
        raise ValueError(f"{where}: BSON document does not end with a NUL byte")
    return n


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
                view, pos, docs = memoryview(batch), 0, 0
                while pos < len(view):
                    left = len(view) - pos
                    size = int.from_bytes(view[pos : pos + 4], "little") if left >= 4 else 0
                    if not MIN_BSON_SIZE <= size <= left:
                        raise ValueError(f"{where}: BSON length prefix {size} does not fit the {left} bytes left")
                    pos += _check_document(view[pos : pos + size], where)
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


# -------------------------------------------------------------------------- reader


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
