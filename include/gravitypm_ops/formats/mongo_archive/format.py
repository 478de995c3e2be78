"""The mongodump archive format's constants and namespace metadata (what mongorestore reads)."""

from __future__ import annotations

import re
import struct
import uuid as _uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, Literal

from bson import json_util
from bson.binary import Binary, UuidRepresentation
from bson.json_util import JSONMode, JSONOptions

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


@dataclass
class NamespaceStats:
    """What was written or read for one data namespace."""

    db: str
    collection: str  # the data collection (system.buckets.X for timeseries X)
    documents: int = 0
    bytes: int = 0
    crc: int = 0  # signed int64, as stored in the EOF header
    segments: int = 0
