"""Client-side encryption benchmark (issue 17): the fs and db backups plain vs age-encrypted.

    python -m bench.encryption [--fs-size-mb 256] [--documents 60000] [--repeats 3]

One moto S3 server and, for the db part, one mongoeco server (seeded server-side) start; a fresh
child process then runs the real backup code (`backup.files.run_backup`, `backup.mongo.run_backup`)
against them, plain and encrypted (two recipients, as the local stack configures) interleaved, best
of `repeats`. Overhead = encrypted ÷ plain − 1 (goal: ≤ 5 %).

Streaming: a second child pushes `--stream-mib` (512) MiB from a generator through the
EncryptingWriter into a hashing null sink and reports its peak RSS growth (memory bounded means a
few MiB, not the input's size), plus the encryption throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dev.stack import BIN, REPO, free_port, spawn, stop_process, wait_for_port

GOAL_OVERHEAD = 0.05


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _recipients() -> tuple[str, ...]:
    from pyrage import x25519

    return tuple(str(x25519.Identity.generate().to_public()) for _ in range(2))


def _vaults(s3_port: int, bucket: str):
    import boto3

    from gravitypm_ops.vault.encryption import Encryption
    from gravitypm_ops.vault.store import Vault

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
    s3.create_bucket(Bucket=bucket)
    every_kind = Encryption(_recipients(), ("db", "fs", "config", "logs"))
    return Vault(bucket, "plain", s3), Vault(bucket, "encrypted", s3, encryption=every_kind)


def _interleaved(run, repeats: int, vaults: dict) -> dict:
    """run(name, i) -> manifest, plain and encrypted alternating; best (min) wall time of each. Each
    backup is deleted after it is timed (moto keeps objects in memory)."""
    from gravitypm_ops.vault.layout import backup_prefix

    times = {"plain": [], "encrypted": []}
    cpu = {"plain": [], "encrypted": []}  # CPU seconds of every thread: steadier than wall time on a shared box
    sizes = {}
    for i in range(repeats):
        for name in ("plain", "encrypted") if i % 2 == 0 else ("encrypted", "plain"):
            t, c = time.perf_counter(), time.process_time()
            manifest = run(name, i)
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
            sizes[name] = sum(a["size"] for a in manifest["artifacts"])
            assert bool(manifest["artifacts"][0].get("encryption")) == (name == "encrypted")
            vault = vaults[name]
            vault.delete_prefix(backup_prefix(vault.prefix, manifest["kind"], manifest["backup_id"]))
    plain, encrypted = min(times["plain"]), min(times["encrypted"])
    return {
        "plain_s": round(plain, 3), "encrypted_s": round(encrypted, 3),
        "overhead": round(encrypted / plain - 1, 4),
        "plain_cpu_s": round(min(cpu["plain"]), 3), "encrypted_cpu_s": round(min(cpu["encrypted"]), 3),
        "cpu_overhead": round(min(cpu["encrypted"]) / min(cpu["plain"]) - 1, 4),
        "stored_mib": {k: round(v / 2**20, 2) for k, v in sizes.items()},
        "all_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
    }


def measure_fs(tree: str, s3_port: int, repeats: int) -> dict:
    from gravitypm_ops.backup import files
    from gravitypm_ops.config import parse_config

    cfg = parse_config({"app_root": tree, "vault_bucket": "bench-fs", "fs_excludes": []})
    vaults = dict(zip(("plain", "encrypted"), _vaults(s3_port, "bench-fs"), strict=True))

    def run(name: str, i: int) -> dict:
        return files.run_backup("fs", cfg, vaults[name], dag_id="bench", run_id=f"{name}_{i}",
                                run_after=datetime.now(UTC))

    return _interleaved(run, repeats, vaults)


def measure_db(mongo_port: int, s3_port: int, repeats: int) -> dict:
    import pymongo

    from gravitypm_ops.backup import mongo as backup_mongo
    from gravitypm_ops.config import parse_config

    client = pymongo.MongoClient(f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true")
    cfg = parse_config({"mongo_databases": ["bench"], "vault_bucket": "bench-db"})
    vaults = dict(zip(("plain", "encrypted"), _vaults(s3_port, "bench-db"), strict=True))

    def run(name: str, i: int) -> dict:
        return backup_mongo.run_backup(cfg, vaults[name], client, dag_id="bench", run_id=f"{name}_{i}",
                                       run_after=datetime.now(UTC))

    run("plain", -1)  # warm-up: the server's first scan is slower
    return _interleaved(run, repeats, vaults)


def measure_stream(mib: int) -> dict:
    """Push `mib` MiB (a generator of 64 KiB blocks) through EncryptingWriter; peak RSS growth."""
    import hashlib

    from gravitypm_ops.vault.encryption import MAGIC, EncryptingWriter

    class NullSink:
        def __init__(self):
            self.sha, self.size, self.head = hashlib.sha256(), 0, b""

        def write(self, data) -> int:
            self.head = self.head or bytes(data[: len(MAGIC)])
            self.sha.update(data)
            self.size += len(data)
            return len(data)

    def blocks():
        block = os.urandom(64 << 10)
        for i in range(mib * 16):
            yield block[:-8] + i.to_bytes(8, "little")

    before = _maxrss_mib()
    sink = NullSink()
    t = time.perf_counter()
    writer = EncryptingWriter(sink, _recipients())
    for block in blocks():
        writer.write(block)
    writer.close()
    seconds = time.perf_counter() - t
    return {"input_mib": mib, "ciphertext_mib": round(sink.size / 2**20, 2), "starts_with_magic": sink.head == MAGIC,
            "seconds": round(seconds, 2), "mib_per_s": round(mib / seconds, 1),
            "peak_rss_growth_mib": round(_maxrss_mib() - before, 1)}


def _child(*args: str) -> dict:
    child = subprocess.run(
        [sys.executable, "-m", "bench.encryption", *args], cwd=REPO, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO)])},
    )
    if child.returncode != 0:
        raise RuntimeError(f"encryption benchmark child {args[0]} failed:\n{child.stderr[-4000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def bench_encryption(fs_size_mb: int = 256, documents: int = 60_000, repeats: int = 5, stream_mib: int = 512) -> dict:
    from bench.fs_backup import generate_tree

    load_before = os.getloadavg()
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and \
        os.statvfs("/dev/shm").f_bavail * os.statvfs("/dev/shm").f_frsize > 3 * (fs_size_mb << 20) else None
    with tempfile.TemporaryDirectory(prefix="gravitypm-bench-enc-", dir=shm) as tmp:
        s3_port, mongo_port = free_port(), free_port()
        s3 = spawn([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], Path(tmp) / "s3.log")
        mongo = spawn([sys.executable, "dev/mongo_server.py", "--port", str(mongo_port), "--engine", "memory",
                       "--no-seed", "--bench-docs", str(documents)], Path(tmp) / "mongo.log")
        try:
            tree = Path(tmp) / "tree"
            generate_tree(tree, fs_size_mb)
            wait_for_port(s3_port, 30, s3, "moto")
            fs = _child("--fs", str(tree), str(s3_port), str(repeats))
            deadline = time.monotonic() + 600
            while "READY" not in (Path(tmp) / "mongo.log").read_text():
                if time.monotonic() > deadline or mongo.poll() is not None:
                    raise RuntimeError("bench mongo server did not start")
                time.sleep(0.5)
            db = _child("--db", str(mongo_port), str(s3_port), str(repeats))
        finally:
            stop_process(mongo)
            stop_process(s3)
    stream = _child("--stream", str(stream_mib))
    worst = max(fs["overhead"], db["overhead"])
    return {
        "fs": {"tree_mib": fs_size_mb, **fs},
        "db": {"documents": documents, **db},
        "stream": stream,
        "goal_overhead": GOAL_OVERHEAD,
        "overhead": worst,
        "meets_goal": worst <= GOAL_OVERHEAD,
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    if sys.argv[1:2] == ["--fs"]:
        print(json.dumps(measure_fs(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    elif sys.argv[1:2] == ["--db"]:
        print(json.dumps(measure_db(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
    elif sys.argv[1:2] == ["--stream"]:
        print(json.dumps(measure_stream(int(sys.argv[2]))))
    else:
        parser = argparse.ArgumentParser(prog="python -m bench.encryption", description=__doc__.splitlines()[0])
        parser.add_argument("--fs-size-mb", type=int, default=256)
        parser.add_argument("--documents", type=int, default=60_000)
        parser.add_argument("--repeats", type=int, default=5)
        parser.add_argument("--stream-mib", type=int, default=512)
        args = parser.parse_args()
        print(json.dumps(bench_encryption(args.fs_size_mb, args.documents, args.repeats, args.stream_mib), indent=2))


if __name__ == "__main__":
    main()
