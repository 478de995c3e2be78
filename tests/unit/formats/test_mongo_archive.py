"""mongo_archive: the mongodump archive format, checked byte by byte and by parsing back.

Ground truth used here (no MongoDB tools exist on this machine):
- CRC-64 vectors were printed by Go 1.19's hash/crc64 with crc64.MakeTable(crc64.ECMA),
  the hash mongo-tools' multiplexer.go / demultiplexer.go use.
- GOLDEN_ARCHIVE and the metadata JSON strings were produced by a sequential Go
  transcription of mongo-tools common/archive/prelude.go (Prelude.Write) and
  multiplexer.go (MuxIn.Write/Close, formatBody, formatEOF), marshalling with the
  official Go driver (go.mongodb.org/mongo-driver 1.8.4: bson.Marshal, and
  bson.MarshalExtJSON(meta, true, false) as in mongodump/metadata_dump.go).
- TIMESERIES_METADATA is mongo-tools' mongodump/testdata/timeseriesColl.metadata.json.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import random
import struct
import subprocess
import tracemalloc
import uuid
import zlib

import bson
import pytest
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.raw_bson import RawBSONDocument

from gravitypm_ops.formats.mongo_archive import format as mongo_archive_format
from gravitypm_ops.formats.mongo_archive import writer as mongo_archive_writer
from gravitypm_ops.formats.mongo_archive.crc64 import Crc64, crc64_ecma
from gravitypm_ops.formats.mongo_archive.format import (
    ArchiveFormatError,
    NamespaceMeta,
    metadata_json,
    parse_metadata_json,
)
from gravitypm_ops.formats.mongo_archive.reader import ArchiveReader
from gravitypm_ops.formats.mongo_archive.writer import ArchiveWriter
from gravitypm_ops.formats.streaming import BackgroundIgzip

# --------------------------------------------------------------------------- fixtures

GOLDEN_ARCHIVE = bytes.fromhex(
    "6de299817200000010636f6e63757272656e745f636f6c6c656374696f6e7300010000000276657273696f6e00040000"
    "00302e3100027365727665725f76657273696f6e0007000000372e302e31320002746f6f6c5f76657273696f6e001300"
    "000067726176697479706d2d6f70732d7465737400009801000002646200040000006170700002636f6c6c656374696f"
    "6e0006000000757365727300026d6574616461746100440100007b226f7074696f6e73223a7b2276616c696461746f72"
    "223a7b22616765223a7b2224677465223a7b22246e756d626572496e74223a2230227d7d7d7d2c22696e646578657322"
    "3a5b7b2276223a7b22246e756d626572496e74223a2232227d2c226b6579223a7b225f6964223a7b22246e756d626572"
    "496e74223a2231227d7d2c226e616d65223a225f69645f227d2c7b2276223a7b22246e756d626572496e74223a223222"
    "7d2c226b6579223a7b22656d61696c223a7b22246e756d626572496e74223a2231227d7d2c226e616d65223a22656d61"
    "696c5f31222c22756e69717565223a747275657d5d2c2275756964223a22623038333962653763366630343033326165"
    "6336333032326165653663626634222c22636f6c6c656374696f6e4e616d65223a227573657273222c2274797065223a"
    "22636f6c6c656374696f6e227d001073697a6500000000000274797065000b000000636f6c6c656374696f6e0000d700"
    "000002646200040000006170700002636f6c6c656374696f6e0006000000656d70747900026d65746164617461008300"
    "00007b22696e6465786573223a5b7b2276223a7b22246e756d626572496e74223a2232227d2c226b6579223a7b225f69"
    "64223a7b22246e756d626572496e74223a2231227d7d2c226e616d65223a225f69645f227d5d2c22636f6c6c65637469"
    "6f6e4e616d65223a22656d707479222c2274797065223a22636f6c6c656374696f6e227d001073697a65000000000002"
    "74797065000b000000636f6c6c656374696f6e0000e000000002646200040000006170700002636f6c6c656374696f6e"
    "00070000006164756c747300026d6574616461746100910000007b226f7074696f6e73223a7b22766965774f6e223a22"
    "7573657273222c22706970656c696e65223a5b7b22246d61746368223a7b22616765223a7b2224677465223a7b22246e"
    "756d626572496e74223a223138227d7d7d7d5d7d2c22696e6465786573223a5b5d2c22636f6c6c656374696f6e4e616d"
    "65223a226164756c7473222c2274797065223a2276696577227d001073697a6500000000000274797065000500000076"
    "69657700000401000002646200050000006c6f67730002636f6c6c656374696f6e00070000006576656e747300026d65"
    "74616461746100ae0000007b22696e6465786573223a5b7b2276223a7b22246e756d626572496e74223a2232227d2c22"
    "6b6579223a7b225f6964223a7b22246e756d626572496e74223a2231227d7d2c226e616d65223a225f69645f227d5d2c"
    "2275756964223a223030313132323333343435353636373738383939616162626363646465656666222c22636f6c6c65"
    "6374696f6e4e616d65223a226576656e7473222c2274797065223a22636f6c6c656374696f6e227d001073697a650000"
    "0000000274797065000b000000636f6c6c656374696f6e0000ffffffff3a00000002646200040000006170700002636f"
    "6c6c656374696f6e000600000075736572730008454f460000124352430000000000000000000025000000105f696400"
    "01000000026e616d650004000000616e6e0010616765001f0000000030000000105f69640002000000026e616d650004"
    "000000626f6200086f6b00010173636f7265000000000000000440001f000000105f69640003000000026e616d650007"
    "00000063c3a96c69610000ffffffff3a00000002646200040000006170700002636f6c6c656374696f6e000600000075"
    "736572730008454f4600011243524300fa7a65498a6b8d0000ffffffff3a00000002646200040000006170700002636f"
    "6c6c656374696f6e0006000000656d7074790008454f4600001243524300000000000000000000ffffffff3a00000002"
    "646200040000006170700002636f6c6c656374696f6e0006000000656d7074790008454f460001124352430000000000"
    "0000000000ffffffff3b00000002646200040000006170700002636f6c6c656374696f6e00070000006164756c747300"
    "08454f4600001243524300000000000000000000ffffffff3b00000002646200040000006170700002636f6c6c656374"
    "696f6e00070000006164756c74730008454f4600011243524300000000000000000000ffffffff3c0000000264620005"
    "0000006c6f67730002636f6c6c656374696f6e00070000006576656e74730008454f4600001243524300000000000000"
    "0000001d000000105f6964000a000000026d73670006000000737461727400001c000000105f6964000b000000026d73"
    "67000500000073746f700000ffffffff3c00000002646200050000006c6f67730002636f6c6c656374696f6e00070000"
    "006576656e74730008454f460001124352430077e52933bae7097500ffffffff"
)

TIMESERIES_METADATA = (
    '{"options":{"timeseries":{"timeField":"ts","metaField":"meta","granularity":"seconds",'
    '"bucketMaxSpanSeconds":{"$numberInt":"3600"}}},"indexes":[{"v":{"$numberInt":"2"},'
    '"key":{"meta.device":{"$numberInt":"1"}},"name":"meta.device_1"},{"v":{"$numberInt":"2"},'
    '"key":{"ts":{"$numberInt":"1"},"meta.device":{"$numberInt":"1"}},"name":"ts_1_meta.device_1"},'
    '{"v":{"$numberInt":"2"},"key":{"meta.device":{"$numberInt":"1"},"ts":{"$numberInt":"1"}},'
    '"name":"meta.device_1_ts_1"}],"collectionName":"timeseriesColl","type":"timeseries"}'
)

ID_INDEX = {"v": 2, "key": {"_id": 1}, "name": "_id_"}


def golden_namespaces() -> list[NamespaceMeta]:
    return [
        NamespaceMeta(
            "app",
            "users",
            {
                "options": {"validator": {"age": {"$gte": 0}}},
                "indexes": [ID_INDEX, {"v": 2, "key": {"email": 1}, "name": "email_1", "unique": True}],
                "uuid": "b0839be7c6f04032aec63022aee6cbf4",
            },
        ),
        NamespaceMeta("app", "empty", {"indexes": [ID_INDEX]}),
        NamespaceMeta(
            "app",
            "adults",
            {"options": {"viewOn": "users", "pipeline": [{"$match": {"age": {"$gte": 18}}}]}},
            type="view",
        ),
        NamespaceMeta(
            "logs", "events", {"indexes": [ID_INDEX], "uuid": uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")}
        ),
    ]


GOLDEN_DOCS = {
    ("app", "users"): [
        {"_id": 1, "name": "ann", "age": 31},
        {"_id": 2, "name": "bob", "ok": True, "score": 2.5},
        {"_id": 3, "name": "célia"},
    ],
    ("app", "empty"): [],
    ("app", "adults"): [],
    ("logs", "events"): [{"_id": 10, "msg": "start"}, {"_id": 11, "msg": "stop"}],
}


def write_golden(sink, **kwargs) -> ArchiveWriter:
    w = ArchiveWriter(sink, golden_namespaces(), "7.0.12", "gravitypm-ops-test", **kwargs)
    for (db, coll), docs in GOLDEN_DOCS.items():
        w.write_documents(db, coll, (bson.encode(d) for d in docs))
    w.close()
    return w


def all_types_doc(i: int) -> dict:
    return {
        "_id": ObjectId(b"\x65\x00\x00\x00" + i.to_bytes(8, "big")),
        "double": 1.5 + i,
        "string": f"doc {i} – ünïcödé",
        "doc": {"nested": {"deeper": [1, {"x": None}]}, "empty": {}},
        "array": [1, "two", 3.0, [4], {"five": 5}],
        "binary": Binary(b"\x00\x01\xffbin", 0),
        "uuid": Binary(uuid.UUID(int=i + 1).bytes, 4),
        "objectid": ObjectId("65a1b2c3d4e5f60718293a4b"),
        "bool_t": True,
        "bool_f": False,
        "datetime": dt.datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=dt.timezone.utc),
        "null": None,
        "regex": Regex("^a.*z$", "im"),
        "code": Code("function () { return 1; }"),
        "code_w_scope": Code("function () { return x; }", {"x": 1}),
        "int32": 2**31 - 1 - i,
        "timestamp": Timestamp(1700000000, i + 1),
        "int64": Int64(2**62 + i),
        "decimal": Decimal128("12345.678901234567890123456789"),
        "minkey": MinKey(),
        "maxkey": MaxKey(),
    }


# ------------------------------------------------------------------------ CRC-64


GO_CRC64_ECMA = [  # crc64.Checksum([]byte(s), crc64.MakeTable(crc64.ECMA)), Go 1.19
    (b"", 0x0000000000000000),
    (b"a", 0x330284772E652B05),
    (b"abc", 0x2CD8094A1A277627),
    (b"123456789", 0x995DC9BBDF1939FA),  # the CRC-64/XZ catalogue check value
    (b"hello world", 0x53037ECDEF2352DA),
    (b"The quick brown fox jumps over the lazy dog", 0x5B5EB8C2E54AA1C4),
]


@pytest.mark.parametrize(("data", "expected"), GO_CRC64_ECMA)
def test_crc64_matches_go_hash_crc64_ecma(data, expected):
    assert crc64_ecma(data) == expected
    assert Crc64().update(data).digest() == expected


def test_crc64_more_go_vectors_and_signed_storage():
    # bytes i*7 for i in 0..999 (Go: b[i] = byte(i*7)); stored as int64(Sum64()).
    assert Crc64().update(bytes((i * 7) & 0xFF for i in range(1000))).signed() == 5456407221800730173
    # '123456789' has the top bit set: int64() makes it negative, as in the EOF header.
    assert Crc64().update(b"123456789").signed() == -7395533204333446662
    # Two documents hashed one Write each, as MuxIn.Write does.
    d1 = bytes.fromhex("17000000105f6964000100000002780002000000790000")
    d2 = bytes.fromhex("0e000000105f6964000200000000")
    assert d1 == bson.encode({"_id": 1, "x": "y"}) and d2 == bson.encode({"_id": 2})
    assert Crc64().update(d1).update(d2).signed() == 8423151626099262930
    assert crc64_ecma(d2, crc64_ecma(d1)) == 8423151626099262930  # crc64.Update chaining


def _crc64_ecma_oracle(data: bytes) -> int:
    """Go's crc64.update, byte at a time from its table: the reference fastcrc is held to."""
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0xC96C5795D7870F42 if crc & 1 else crc >> 1
        table.append(crc)
    crc = 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def test_crc64_equals_the_byte_loop_over_random_data_and_any_update_split():
    rng = random.Random(7)
    data = rng.randbytes(256 * 1024 + 12345)
    ref = _crc64_ecma_oracle(data)
    assert crc64_ecma(data) == ref
    for n in (0, 1, 7, 8, 63, 1000):
        assert crc64_ecma(data[:n]) == _crc64_ecma_oracle(data[:n])
    crc, pos = Crc64(), 0
    while pos < len(data):  # many small updates, as bytes, bytearray and memoryview slices
        n = rng.randint(1, 7000)
        piece = memoryview(data)[pos : pos + n]
        crc.update((bytes, bytearray, lambda m: m)[pos % 3](piece))
        pos += n
    assert crc.digest() == ref
    assert crc.digest() == ref  # digest is repeatable


# ----------------------------------------------------------------------- metadata


def test_metadata_json_is_byte_identical_to_mongodump():
    meta = NamespaceMeta(
        "app",
        "users é <&>",
        {
            "options": {"validator": {"x": {"$gt": 1}}},
            "indexes": [
                ID_INDEX,
                {
                    "v": 2,
                    "key": {"ts": Int64(-1), "d": 1.5},
                    "name": "ts_-1",
                    "expireAfterSeconds": 3600.0,
                    "partialFilterExpression": {
                        "t": dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.timezone.utc)
                    },
                },
            ],
            "uuid": Binary(bytes.fromhex("b0839be7c6f04032aec63022aee6cbf4"), 4),
        },
    )
    assert metadata_json(meta) == (
        '{"options":{"validator":{"x":{"$gt":{"$numberInt":"1"}}}},"indexes":[{"v":{"$numberInt":"2"},'
        '"key":{"_id":{"$numberInt":"1"}},"name":"_id_"},{"v":{"$numberInt":"2"},"key":{"ts":'
        '{"$numberLong":"-1"},"d":{"$numberDouble":"1.5"}},"name":"ts_-1","expireAfterSeconds":'
        '{"$numberDouble":"3600.0"},"partialFilterExpression":{"t":{"$date":{"$numberLong":'
        '"1700000000123"}}}}],"uuid":"b0839be7c6f04032aec63022aee6cbf4","collectionName":"users é <&>",'
        '"type":"collection"}'
    )
    view = NamespaceMeta(
        "app", "active_users", {"options": {"viewOn": "users", "pipeline": [{"$match": {"active": True}}]}}, "view"
    )
    assert metadata_json(view) == (
        '{"options":{"viewOn":"users","pipeline":[{"$match":{"active":true}}]},"indexes":[],'
        '"collectionName":"active_users","type":"view"}'
    )
    assert metadata_json(NamespaceMeta("app", "empty")) == '{"indexes":[],"collectionName":"empty","type":"collection"}'
    awkward = NamespaceMeta("a", 'q"b\\s/n\nt\tc\x01u\u2028é<>&')
    assert metadata_json(awkward) == (
        '{"indexes":[],"collectionName":"q\\"b\\\\s/n\\nt\\tc\\u0001u\\u2028é<>&","type":"collection"}'
    )


def test_metadata_json_round_trips_mongo_tools_fixture():
    parsed = parse_metadata_json(TIMESERIES_METADATA)
    assert parsed["collectionName"] == "timeseriesColl" and parsed["type"] == "timeseries"
    assert parsed["options"]["timeseries"]["bucketMaxSpanSeconds"] == 3600
    meta = NamespaceMeta("db", "timeseriesColl", parsed, type="timeseries")
    assert metadata_json(meta) == TIMESERIES_METADATA


def test_parse_metadata_json_keeps_bson_types():
    meta = golden_namespaces()[0]
    meta.metadata["indexes"].append(
        {"v": 2, "key": {"t": Int64(1)}, "name": "t", "partialFilterExpression": {"d": dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)}}
    )
    parsed = parse_metadata_json(metadata_json(meta))
    assert parsed["uuid"] == "b0839be7c6f04032aec63022aee6cbf4"
    assert parsed["options"] == meta.metadata["options"]
    assert parsed["indexes"] == meta.metadata["indexes"]
    assert isinstance(parsed["indexes"][-1]["key"]["t"], Int64)
    assert parsed["indexes"][-1]["partialFilterExpression"]["d"].tzinfo is not None
    assert parse_metadata_json("") == {"options": {}, "indexes": []}
    with pytest.raises(ValueError):
        parse_metadata_json('{"options": []}')


def test_namespace_meta_from_list_collections():
    uid = uuid.uuid4()
    info = {
        "name": "users",
        "type": "collection",
        "options": {"validator": {"a": 1}},
        "info": {"readOnly": False, "uuid": Binary(uid.bytes, 4)},
        "idIndex": ID_INDEX,
    }
    meta = NamespaceMeta.from_collection_info("app", info, [ID_INDEX])
    assert meta.type == "collection" and meta.collection == "users"
    assert parse_metadata_json(metadata_json(meta))["uuid"] == uid.hex
    view = NamespaceMeta.from_collection_info(
        "app", {"name": "v", "type": "view", "options": {"viewOn": "users", "pipeline": []}, "info": {"readOnly": True}}
    )
    assert view.type == "view" and view.metadata["indexes"] == [] and "uuid" not in view.metadata


def test_metadata_validation():
    with pytest.raises(ValueError, match="viewOn"):
        metadata_json(NamespaceMeta("a", "v", {}, "view"))
    with pytest.raises(ValueError, match="type"):
        metadata_json(NamespaceMeta("a", "c", {}, "capped"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metadata type"):
        metadata_json(NamespaceMeta("a", "c", {"type": "view"}))
    with pytest.raises(ValueError, match="uuid"):
        metadata_json(NamespaceMeta("a", "c", {"uuid": "not-a-uuid"}))
    with pytest.raises(ValueError, match="uuid"):
        metadata_json(NamespaceMeta("a", "c", {"uuid": Binary(b"x" * 16, 3)}))


# ------------------------------------------------------------ byte-level layout


def test_writer_output_is_byte_identical_to_go_transcription_of_mongodump():
    out = io.BytesIO()
    write_golden(out)
    assert out.getvalue() == GOLDEN_ARCHIVE


def _bson_at(buf: bytes, pos: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from("<i", buf, pos)
    return buf[pos : pos + n], pos + n


def _element_types(raw: bytes) -> list[tuple[str, int]]:
    """(key, BSON type byte) of each top-level element, parsed by hand."""
    out, pos = [], 4
    while raw[pos] != 0:
        etype = raw[pos]
        end = raw.index(b"\x00", pos + 1)
        key = raw[pos + 1 : end].decode()
        pos = end + 1
        if etype == 0x02:
            (slen,) = struct.unpack_from("<i", raw, pos)
            pos += 4 + slen
        elif etype == 0x10:
            pos += 4
        elif etype in (0x12, 0x01):
            pos += 8
        elif etype == 0x08:
            pos += 1
        else:
            raise AssertionError(f"unexpected type {etype:#x}")
        out.append((key, etype))
    return out


def test_layout_matches_the_spec_byte_by_byte():
    buf = GOLDEN_ARCHIVE
    assert buf[:4] == bytes([0x6D, 0xE2, 0x99, 0x81]) == mongo_archive_format.MAGIC_BYTES
    assert struct.unpack("<I", buf[:4])[0] == 0x8199E26D
    header, pos = _bson_at(buf, 4)
    assert _element_types(header) == [
        ("concurrent_collections", 0x10),
        ("version", 0x02),
        ("server_version", 0x02),
        ("tool_version", 0x02),
    ]
    assert bson.decode(header) == {
        "concurrent_collections": 1,
        "version": "0.1",
        "server_version": "7.0.12",
        "tool_version": "gravitypm-ops-test",
    }
    prelude = []
    while buf[pos : pos + 4] != b"\xff\xff\xff\xff":
        cm, pos = _bson_at(buf, pos)
        assert _element_types(cm) == [
            ("db", 0x02), ("collection", 0x02), ("metadata", 0x02), ("size", 0x10), ("type", 0x02)
        ]
        prelude.append(bson.decode(cm))
    pos += 4  # prelude terminator
    assert [(c["db"], c["collection"], c["type"], c["size"]) for c in prelude] == [
        ("app", "users", "collection", 0),
        ("app", "empty", "collection", 0),
        ("app", "adults", "view", 0),
        ("logs", "events", "collection", 0),
    ]
    assert prelude[2]["metadata"] == (
        '{"options":{"viewOn":"users","pipeline":[{"$match":{"age":{"$gte":{"$numberInt":"18"}}}}]},'
        '"indexes":[],"collectionName":"adults","type":"view"}'
    )
    for (db, coll), docs in GOLDEN_DOCS.items():
        # namespace-segment: header {db, collection, EOF: false, CRC: int64 0}, docs, terminator
        hdr, pos = _bson_at(buf, pos)
        assert _element_types(hdr) == [("db", 0x02), ("collection", 0x02), ("EOF", 0x08), ("CRC", 0x12)]
        assert bson.decode(hdr) == {"db": db, "collection": coll, "EOF": False, "CRC": 0}
        body = b""
        for d in docs:
            raw, pos = _bson_at(buf, pos)
            assert raw == bson.encode(d)
            body += raw
        assert buf[pos : pos + 4] == mongo_archive_format.TERMINATOR
        pos += 4
        # namespace-eof: {db, collection, EOF: true, CRC: int64(crc64-ECMA of the docs)}, terminator
        eof, pos = _bson_at(buf, pos)
        assert _element_types(eof) == [("db", 0x02), ("collection", 0x02), ("EOF", 0x08), ("CRC", 0x12)]
        expected_crc = crc64_ecma(body)
        expected_crc -= (1 << 64) if expected_crc >= 1 << 63 else 0
        assert bson.decode(eof) == {"db": db, "collection": coll, "EOF": True, "CRC": expected_crc}
        assert buf[pos : pos + 4] == mongo_archive_format.TERMINATOR
        pos += 4
    assert pos == len(buf)


# --------------------------------------------------------------------- round trip


def test_round_trip_every_bson_type_and_namespace_kind():
    namespaces = [
        NamespaceMeta("app", "things", {"indexes": [ID_INDEX], "uuid": uuid.uuid4()}),
        NamespaceMeta("app", "empty", {"indexes": [ID_INDEX]}),
        NamespaceMeta("app", "view_of_things", {"options": {"viewOn": "things", "pipeline": [{"$project": {"x": 1}}]}}, "view"),
        NamespaceMeta("other", "capped", {"options": {"capped": True, "size": Int64(1 << 20)}, "indexes": [ID_INDEX]}),
    ]
    docs = {("app", "things"): [all_types_doc(i) for i in range(50)], ("other", "capped"): [{"_id": i} for i in range(7)]}
    out = io.BytesIO()
    with ArchiveWriter(out, namespaces, "8.0.4", "gravitypm-ops 1.0", concurrent_collections=4) as w:
        for (db, coll), ds in docs.items():
            # RawBSONDocument and plain bytes are both accepted, never decoded
            items = [RawBSONDocument(bson.encode(d)) if i % 2 else bson.encode(d) for i, d in enumerate(ds)]
            assert w.write_documents(db, coll, iter(items)) == len(ds)
    stats = w.stats

    r = ArchiveReader(io.BytesIO(out.getvalue()))
    assert (r.concurrent_collections, r.format_version, r.server_version, r.tool_version) == (
        4, "0.1", "8.0.4", "gravitypm-ops 1.0"
    )
    assert [(n.db, n.collection, n.type) for n in r.namespaces] == [
        (n.db, n.collection, n.type) for n in namespaces
    ]
    assert r.namespaces[2].metadata["options"] == namespaces[2].metadata["options"]
    assert r.namespaces[0].metadata["uuid"] == namespaces[0].metadata["uuid"].hex
    assert r.namespaces[3].metadata["options"]["size"] == 1 << 20
    got: dict = {}
    for db, coll, raw in r.iter_documents():
        assert isinstance(raw, bytes)
        got.setdefault((db, coll), []).append(raw)
    assert got == {k: [bson.encode(d) for d in v] for k, v in docs.items()}
    opts = bson.CodecOptions(tz_aware=True)
    decoded = bson.decode(got[("app", "things")][3], codec_options=opts)
    assert decoded == bson.decode(bson.encode(all_types_doc(3)), codec_options=opts)
    assert decoded["decimal"] == Decimal128("12345.678901234567890123456789")
    assert isinstance(decoded["int64"], Int64) and isinstance(decoded["timestamp"], Timestamp)
    assert isinstance(decoded["minkey"], MinKey) and isinstance(decoded["maxkey"], MaxKey)
    assert decoded["uuid"] == Binary(uuid.UUID(int=4).bytes, 4) and decoded["code_w_scope"].scope == {"x": 1}
    assert r.stats == stats
    assert r.stats[("app", "empty")].documents == 0 and r.stats[("app", "empty")].crc == 0
    assert r.stats[("app", "things")].documents == 50


def test_segmented_and_interleaved_archives_read_back():
    nss = [NamespaceMeta("d", "a"), NamespaceMeta("d", "b"), NamespaceMeta("d", "c")]
    a_docs = [bson.encode({"_id": i, "pad": "x" * 100}) for i in range(40)]
    b_docs = [bson.encode({"_id": i}) for i in range(10)]

    single = io.BytesIO()
    w1 = ArchiveWriter(single, nss, "6.0.0", "t")
    w1.write_documents("d", "a", a_docs)
    w1.close()

    seg = io.BytesIO()
    w2 = ArchiveWriter(seg, nss, "6.0.0", "t", max_segment_bytes=1000)
    w2.write_documents("d", "a", a_docs)
    w2.close()
    assert w2.stats[("d", "a")].segments > 3
    assert w2.stats[("d", "a")].crc == w1.stats[("d", "a")].crc  # CRC spans all segments
    r = ArchiveReader(io.BytesIO(seg.getvalue()))
    assert [doc for _, _, doc in r.iter_documents()] == a_docs
    assert r.stats[("d", "a")].segments == w2.stats[("d", "a")].segments

    # mongodump -j2 style interleaving: a, b, a, b ... then EOFs
    inter = io.BytesIO()
    w3 = ArchiveWriter(inter, nss, "6.0.0", "t", concurrent_collections=2)
    for i in range(10):
        w3.write_documents("d", "a", a_docs[4 * i : 4 * i + 4], final=False)
        w3.write_documents("d", "b", b_docs[i : i + 1], final=False)
    with pytest.raises(ValueError, match="concurrent_collections=2"):
        w3.write_documents("d", "c", [], final=False)
    w3.write_documents("d", "a", [])
    w3.write_documents("d", "b", [])
    w3.close()
    r = ArchiveReader(io.BytesIO(inter.getvalue()))
    seen = list(r.iter_documents())
    assert [d for db, c, d in seen if c == "a"] == a_docs and [d for db, c, d in seen if c == "b"] == b_docs
    assert r.stats[("d", "a")].segments == 10 and r.stats[("d", "c")].documents == 0


def test_timeseries_data_goes_to_the_buckets_namespace():
    meta = NamespaceMeta("db", "timeseriesColl", parse_metadata_json(TIMESERIES_METADATA), type="timeseries")
    out = io.BytesIO()
    w = ArchiveWriter(out, [meta], "7.0.2", "t")
    w.write_documents("db", "timeseriesColl", [bson.encode({"_id": 1, "control": {}})])
    w.close()
    r = ArchiveReader(io.BytesIO(out.getvalue()))
    assert [(n.collection, n.type) for n in r.namespaces] == [("timeseriesColl", "timeseries")]
    assert [(db, c) for db, c, _ in r.iter_documents()] == [("db", "system.buckets.timeseriesColl")]
    with pytest.raises(ValueError, match="8.3"):
        ArchiveWriter(io.BytesIO(), [meta], "8.3.0", "t")


def test_gzip_round_trip():
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb") as zf:
        write_golden(zf)
    assert gzip.decompress(gz.getvalue()) == GOLDEN_ARCHIVE
    gz.seek(0)
    with gzip.GzipFile(fileobj=gz, mode="rb") as zf:
        r = ArchiveReader(zf)
        docs = [(db, c, bson.decode(raw)) for db, c, raw in r.iter_documents()]
    assert docs == [(db, c, d) for (db, c), ds in GOLDEN_DOCS.items() for d in ds]



def test_igzip_member_of_the_db_backup_round_trips_through_the_reader():
    """The DB backup's gzip member now comes from ISA-L (BackgroundIgzip): it must stay one
    plain RFC 1952 member that gzip(1), Python's gzip and so mongorestore's Go reader accept."""
    many = [bson.encode(all_types_doc(i)) for i in range(3000)]  # several deflate blocks
    nss = [*golden_namespaces(), NamespaceMeta("app", "many", {"indexes": [ID_INDEX]})]
    plain, gz = io.BytesIO(), io.BytesIO()
    for sink, level in ((plain, None), (gz, 1)):
        out = BackgroundIgzip(sink, level) if level is not None else sink
        with ArchiveWriter(out, nss, "7.0.12", "gravitypm-ops-test") as w:
            for (db, coll), docs in GOLDEN_DOCS.items():
                w.write_documents(db, coll, (bson.encode(d) for d in docs))
            w.write_documents("app", "many", many)
        if out is not sink:
            out.close()
    member = gz.getvalue()
    assert member[:4] == b"\x1f\x8b\x08\x00"  # gzip magic, deflate, no optional fields
    assert gzip.decompress(member) == plain.getvalue()  # trailer CRC-32 and size checked
    assert subprocess.run(["gzip", "-dc"], input=member, capture_output=True, check=True).stdout == plain.getvalue()
    d = zlib.decompressobj(31)
    d.decompress(member)
    assert d.eof and d.unused_data == b""  # exactly one member, nothing after it
    with gzip.GzipFile(fileobj=io.BytesIO(member), mode="rb") as zf:  # what backup.mongo.restore reads
        r = ArchiveReader(zf)
        got = [(db, c, raw) for db, c, raw in r.iter_documents()]
    expected = [(db, c, bson.encode(d)) for (db, c), ds in GOLDEN_DOCS.items() for d in ds]
    assert got == expected + [("app", "many", raw) for raw in many]
    assert r.stats[("app", "many")].crc == Crc64().update(b"".join(many)).signed()


# ------------------------------------------------------------------- corruption


def _read_all(data: bytes):
    r = ArchiveReader(io.BytesIO(data))
    return list(r.iter_documents())


def test_flipped_document_byte_is_a_crc_error():
    doc = bson.encode(GOLDEN_DOCS[("app", "users")][1])
    pos = GOLDEN_ARCHIVE.index(doc) + doc.index(b"bob")
    bad = bytearray(GOLDEN_ARCHIVE)
    bad[pos] ^= 0x01  # 'bob' -> 'cob': still valid BSON, wrong content
    with pytest.raises(ArchiveFormatError, match=r"CRC mismatch for namespace app\.users"):
        _read_all(bytes(bad))


def test_every_truncation_is_detected():
    assert len(_read_all(GOLDEN_ARCHIVE)) == 5
    for cut in range(len(GOLDEN_ARCHIVE)):
        with pytest.raises(ArchiveFormatError):
            _read_all(GOLDEN_ARCHIVE[:cut])


def test_wrong_magic_and_other_structural_damage():
    with pytest.raises(ArchiveFormatError, match="does not appear to be a mongodump archive"):
        _read_all(b"\x00\x00\x00\x00" + GOLDEN_ARCHIVE[4:])
    with pytest.raises(ArchiveFormatError, match="does not appear to be a mongodump archive"):
        _read_all(bson.encode({"_id": 1}))  # a plain .bson file is not an archive
    with pytest.raises(ArchiveFormatError, match="magic"):
        _read_all(b"")
    # a document length that is neither a BSON length nor a terminator
    first_doc = GOLDEN_ARCHIVE.index(bson.encode(GOLDEN_DOCS[("app", "users")][0]))
    bad = bytearray(GOLDEN_ARCHIVE)
    bad[first_doc : first_doc + 4] = struct.pack("<i", 2)
    with pytest.raises(ArchiveFormatError, match="neither a valid BSON length nor an archive terminator"):
        _read_all(bytes(bad))
    # document not NUL-terminated
    bad = bytearray(GOLDEN_ARCHIVE)
    end = first_doc + len(bson.encode(GOLDEN_DOCS[("app", "users")][0])) - 1
    bad[end] = 0x01
    with pytest.raises(ArchiveFormatError, match="NUL"):
        _read_all(bytes(bad))
    # garbage appended after a complete archive
    with pytest.raises(ArchiveFormatError):
        _read_all(GOLDEN_ARCHIVE + b"\x01\x02\x03\x04\x05")


def _block(db, coll, eof=False, crc=0, docs=()):
    return (
        bson.encode({"db": db, "collection": coll, "EOF": eof, "CRC": Int64(crc)})
        + b"".join(docs)
        + mongo_archive_format.TERMINATOR
    )


def _prelude(*names):
    out = io.BytesIO()
    ArchiveWriter(out, [NamespaceMeta("d", n) for n in names], "7.0.0", "t")
    return out.getvalue()  # constructor only: prelude, nothing else


def test_demultiplexer_rules_are_enforced():
    doc = bson.encode({"_id": 1})
    crc = Crc64().update(doc).signed()
    ok = _prelude("a") + _block("d", "a", docs=[doc]) + _block("d", "a", True, crc)
    assert [raw for _, _, raw in _read_all(ok)] == [doc]
    cases = {
        "missing EOF": (_prelude("a") + _block("d", "a", docs=[doc]), "unfinished"),
        "namespace never seen": (_prelude("a", "b") + _block("d", "a", True, 0), "before all collections were seen"),
        "not in prelude": (_prelude("a") + _block("d", "zzz", docs=[doc]), "not in the prelude"),
        "reopened after EOF": (ok + _block("d", "a", docs=[doc]), "already ended"),
        "data after EOF header": (
            _prelude("a") + _block("d", "a", docs=[doc]) + _block("d", "a", True, crc, docs=[doc]),
            "after the EOF header",
        ),
        "wrong CRC": (_prelude("a") + _block("d", "a", docs=[doc]) + _block("d", "a", True, crc + 1), "CRC mismatch"),
        "headerless block": (_prelude("a") + mongo_archive_format.TERMINATOR, "consecutive terminators"),
        "header without collection": (_prelude("a") + _block("d", ""), "no collection"),
    }
    for _name, (data, message) in cases.items():
        with pytest.raises(ArchiveFormatError, match=message):
            _read_all(data)


# ----------------------------------------------------------------- writer misuse


def test_writer_rejects_misuse():
    nss = golden_namespaces()
    with pytest.raises(ValueError, match="server_version"):
        ArchiveWriter(io.BytesIO(), nss, "unknown", "t")
    with pytest.raises(ValueError, match="duplicate"):
        ArchiveWriter(io.BytesIO(), nss + [NamespaceMeta("app", "users")], "7.0.0", "t")
    w = ArchiveWriter(io.BytesIO(), nss, "7.0.0-rc1", "t")
    with pytest.raises(KeyError):
        w.write_documents("app", "nope", [])
    with pytest.raises(TypeError, match="raw BSON"):
        w.write_documents("app", "users", [{"_id": 1}])
    w = ArchiveWriter(io.BytesIO(), nss, "7.0.0", "t")
    with pytest.raises(ValueError, match="length prefix"):
        w.write_documents("app", "users", [bson.encode({"_id": 1}) + b"\x00"])
    w = ArchiveWriter(io.BytesIO(), nss, "7.0.0", "t")
    with pytest.raises(ValueError, match="is a view"):
        w.write_documents("app", "adults", [bson.encode({"_id": 1})])
    w = ArchiveWriter(io.BytesIO(), nss, "7.0.0", "t")
    w.write_documents("app", "users", [])
    with pytest.raises(ValueError, match="already ended"):
        w.write_documents("app", "users", [])


def test_failed_dump_never_looks_complete():
    def docs():
        yield bson.encode({"_id": 1})
        raise ConnectionError("cursor died")

    out = io.BytesIO()
    w = ArchiveWriter(out, golden_namespaces(), "7.0.0", "t")
    with pytest.raises(ConnectionError):
        w.write_documents("app", "users", docs())
    with pytest.raises(ValueError, match="incomplete"):
        w.close()
    with pytest.raises(ArchiveFormatError):
        _read_all(out.getvalue())

    out = io.BytesIO()
    with pytest.raises(RuntimeError):
        with ArchiveWriter(out, golden_namespaces(), "7.0.0", "t") as w:
            w.write_documents("app", "users", [bson.encode({"_id": 1})])
            raise RuntimeError("boom")
    with pytest.raises(ArchiveFormatError, match="before all collections were seen"):
        _read_all(out.getvalue())


def test_sink_short_writes_are_retried():
    class Trickle:
        def __init__(self):
            self.data = bytearray()

        def write(self, b):
            n = min(len(b), 7)
            self.data += bytes(b[:n])
            return n

    sink = Trickle()
    write_golden(sink)
    assert bytes(sink.data) == GOLDEN_ARCHIVE


# ------------------------------------------------------------- bounded memory


class CountingSink:
    def __init__(self):
        self.count = 0
        self.crc = Crc64()

    def write(self, b):
        self.count += len(b)
        return len(b)


def test_streaming_200k_documents_in_bounded_memory(tmp_path):
    n_docs = 200_000
    pad = "p" * 64

    def docs():
        for i in range(n_docs):
            yield bson.encode({"_id": i, "k": pad})

    doc_size = len(bson.encode({"_id": 0, "k": pad}))
    nss = [NamespaceMeta("big", "c", {"indexes": [ID_INDEX]})]

    sink = CountingSink()
    tracemalloc.start()
    try:
        w = ArchiveWriter(sink, nss, "7.0.0", "t")
        assert w.write_documents("big", "c", docs()) == n_docs
        w.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.count > n_docs * doc_size  # ~16 MB went through
    assert peak < 4 * 1024 * 1024, peak

    path = tmp_path / "dump.archive.gz"
    with gzip.open(path, "wb", compresslevel=1) as zf, ArchiveWriter(zf, nss, "7.0.0", "t") as w:
        w.write_documents("big", "c", docs())
    tracemalloc.start()
    try:
        with gzip.open(path, "rb") as zf:
            r = ArchiveReader(zf)
            count = sum(1 for _ in r.iter_documents())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n_docs
    assert r.stats[("big", "c")].bytes == n_docs * doc_size
    assert peak < 4 * 1024 * 1024, peak


def _one_namespace_writer(out):
    meta = mongo_archive_format.NamespaceMeta(db="d", collection="c", metadata={"options": {}, "indexes": []})
    return mongo_archive_writer.ArchiveWriter(out, [meta], server_version="7.0.0", tool_version="t")


def test_raw_batches_write_the_same_archive_as_single_documents():
    docs = [bson.encode({"_id": i, "v": "x" * i}) for i in range(50)]
    outputs = []
    for write in (
        lambda w: w.write_documents("d", "c", docs),
        lambda w: w.write_raw_batches("d", "c", [b"".join(docs[:20]), b"".join(docs[20:])]),
    ):
        out = io.BytesIO()
        writer = _one_namespace_writer(out)
        write(writer)
        writer.close()
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]


def test_a_raw_batch_with_a_truncated_document_is_refused():
    writer = _one_namespace_writer(io.BytesIO())
    doc = bson.encode({"_id": 1})
    with pytest.raises(ValueError, match="length prefix"):
        writer.write_raw_batches("d", "c", [doc + doc[:-3]])
    with pytest.raises(ValueError, match="incomplete"):
        writer.close()  # a failed namespace never gets sealed with a CRC
