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

Only ``bson`` (from pymongo), ``fastcrc`` (the CRC-64, compiled) and the standard library are
used. Nothing is decoded on the document path: documents are written and read as raw BSON
bytes, streamed; memory is bounded by one document (or cursor batch) and a 256 KiB write buffer.
"""
