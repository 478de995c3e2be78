"""Local stand-in for the production MongoDB: mongoeco's wire-protocol server.

    GRAVITYPM_MONGO_USER=gravitypm GRAVITYPM_MONGO_PASSWORD=secret \
        python dev/mongo_server.py --host 127.0.0.1 --port 27017 --data-dir /tmp/gpm-mongo

Prints exactly one stdout line, `READY mongodb://HOST:PORT`, once it listens and
`gravitypm_production` is seeded; everything else goes to stderr. Auth is on
only when both env vars are set. SIGINT/SIGTERM close it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

import bson
from mongoeco import AsyncMongoClient
from mongoeco.core.aggregation import runtime as mongoeco_runtime
from mongoeco.engines.memory import MemoryEngine
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire.auth import WireAuthUser
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from anywhere
import seed_data  # noqa: E402

log = logging.getLogger("mongo_server")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=27017)
    p.add_argument("--data-dir", type=Path, help="where the SQLite file lives (required for --engine sqlite)")
    # SQLite by default: getMore, list_indexes, collection options and TTL/unique/
    # compound/partial indexes all work through the wire and data survives restarts;
    # its wire writes are ~6x slower than MemoryEngine's, hence --engine memory.
    p.add_argument("--engine", choices=["sqlite", "memory"], default="sqlite")
    p.add_argument("--no-seed", action="store_true", help="do not seed an empty gravitypm_production")
    p.add_argument("--bench-docs", type=int, default=0, help="also seed bench.docs with N ~1 KiB documents")
    args = p.parse_args()
    if args.engine == "sqlite" and args.data_dir is None:
        p.error("--data-dir is required with --engine sqlite")
    return args


def patch_bson_size() -> None:
    """Make dbStats / collStats / listDatabases work with every BSON type.

    mongoeco 4.11 sizes documents with its own type checks, which reject the
    bson.Timestamp/Decimal128/Regex/MinKey/MaxKey values its codec returns, so
    those commands fail for any database holding them (ours holds all types).
    Size such values with pymongo's encoder instead (7 = a one-element doc's overhead).
    """
    original = getattr(mongoeco_runtime, "_bson_value_size", None)
    if original is None:
        log.warning("mongoeco internals changed: dbStats/collStats may fail on exotic BSON types")
        return
    exotic = (bson.Timestamp, bson.Decimal128, bson.Regex, bson.MinKey, bson.MaxKey)

    def value_size(value: object) -> int:
        return len(bson.encode({"": value})) - 7 if isinstance(value, exotic) else original(value)

    mongoeco_runtime._bson_value_size = value_size


def auth_users() -> tuple[WireAuthUser, ...]:
    user, password = os.environ.get("GRAVITYPM_MONGO_USER"), os.environ.get("GRAVITYPM_MONGO_PASSWORD")
    if not (user and password):
        log.warning("GRAVITYPM_MONGO_USER/PASSWORD not set: running WITHOUT authentication")
        return ()
    roles = ({"role": "root", "db": "admin"},)
    # mongoeco's hello never advertises saslSupportedMechs, so pymongo's default
    # mechanism falls back to SCRAM-SHA-1, whose client-side secret is
    # md5("user:mongo:password") (MongoDB's legacy digest) -- mongoeco would
    # compare it to the raw password and refuse. Register that digest for SHA-1.
    sha1_secret = hashlib.md5(f"{user}:mongo:{password}".encode()).hexdigest()
    return (
        WireAuthUser(user, password, "admin", ("SCRAM-SHA-256",), roles),
        WireAuthUser(user, sha1_secret, "admin", ("SCRAM-SHA-1",), roles),
    )


async def main() -> None:
    args = parse_args()
    patch_bson_size()
    started = time.monotonic()
    if args.engine == "sqlite":
        args.data_dir.mkdir(parents=True, exist_ok=True)
        engine = SQLiteEngine(path=str(args.data_dir / "mongoeco.sqlite3"))
    else:
        engine = MemoryEngine()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    # We own the client (not the proxy) so we can seed through it in-process:
    # mongoeco's wire inserts get quadratically slower with collection size.
    async with AsyncMongoClient(engine) as client:
        db = client[seed_data.DB_NAME]
        if args.no_seed:
            log.info("seeding disabled (--no-seed)")
        elif await db.list_collection_names():
            log.info("%s already has data: not seeding", seed_data.DB_NAME)
        else:
            t = time.monotonic()
            await seed_data.seed(db)
            log.info("seeded %s %s in %.2fs", seed_data.DB_NAME, seed_data.EXPECTED_COUNTS, time.monotonic() - t)

        if args.bench_docs:
            t = time.monotonic()
            await seed_data.seed_bench(client["bench"], args.bench_docs)
            log.info("seeded bench.docs with %d documents in %.2fs", args.bench_docs, time.monotonic() - t)

        server = AsyncMongoEcoProxyServer(client=client, host=args.host, port=args.port, auth_users=auth_users())
        address = await server.start()
        try:
            log.info("listening on %s:%s (%s engine) after %.2fs",
                     address.host, address.port, args.engine, time.monotonic() - started)
            print(f"READY mongodb://{address.host}:{address.port}", flush=True)
            await stop.wait()
            log.info("signal received: shutting down")
        finally:
            await server.close()


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(main())
