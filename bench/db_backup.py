"""DB backup benchmark: backup wall time vs a raw RawBSON cursor scan of the same data, and peak RSS.

For each size a fresh MongoDB (mongoeco, seeded server-side: its inserts are slow) and S3
(moto) server start; a fresh child process then times, against the same servers,
  - the baseline: iterating `bench.docs` with a RawBSONDocument cursor (the cheapest way
    to read every byte out of MongoDB), and
  - the backup: the same collection dumped, archived, gzip'd, hashed and uploaded to the vault
    (the code gravitypm_db_backup runs), committed with its manifest.
  - diagnostic, not a goal: the same dump with no upload (gzip'd and hashed into a discarding
    sink), to show what the S3 side adds (`dump_without_upload_over_scan`).
Goals (issue 16): backup / scan <= 1.10 (best of REPEATS each, interleaved), and peak RSS flat
across sizes.
"""

from __future__ import annotations

import hashlib
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

SIZES = (60_000, 180_000)  # both past one 8 MiB upload part of gzip output
# Best of 5: from run to run the bench server's CPU for the same scan moves by +-15 %, more than
# the 10 % the goal allows; best of 3 read 1.00-1.25 on unchanged code (2026-12-01/02).
REPEATS = 5
GOAL = 1.10  # backup wall / raw cursor scan


class _HashingDiscard:
    """A sink that only hashes (as the vault's upload does) and keeps nothing."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def write(self, data) -> int:
        self.sha.update(data)
        return len(data)


def measure(mongo_port: int, s3_port: int) -> dict:
    """Runs in the child process: returns timings and memory for one size."""
    import boto3
    import pymongo

    from gravitypm_ops.backup import mongo as backup_mongo
    from gravitypm_ops.config import parse_config
    from gravitypm_ops.vault.store import Vault

    client = pymongo.MongoClient(f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true")
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
    s3.create_bucket(Bucket="bench-vault")
    cfg = parse_config({"mongo_databases": ["bench"], "vault_bucket": "bench-vault"})
    vault = Vault("bench-vault", "bench", s3)

    def scan() -> int:
        coll = client.bench.get_collection("docs", codec_options=backup_mongo.RAW)
        return sum(len(doc.raw) for doc in coll.find({}, batch_size=backup_mongo.BATCH_SIZE))

    def backup(i: int) -> dict:
        return backup_mongo.run_backup(cfg, vault, client, dag_id="bench", run_id=f"bench_{i}", run_after=datetime.now(UTC))

    def dump_without_upload() -> None:
        """Diagnostic, not a goal: the same dump, gzip'd and hashed as the vault hashes it, with no
        upload, to show what the S3 side adds."""
        backup_mongo.dump(client, cfg.mongo_databases, _HashingDiscard())

    bson_bytes = scan()  # warm-up (and the size)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scans, backups, dumps = [], [], []
    for i in range(REPEATS):  # interleaved, so drift hits all alike
        t = time.perf_counter()
        scan()
        scans.append(time.perf_counter() - t)
        t = time.perf_counter()
        manifest = backup(i)
        backups.append(time.perf_counter() - t)
        t = time.perf_counter()
        dump_without_upload()
        dumps.append(time.perf_counter() - t)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "documents": manifest["content"]["documents"],
        "bson_mib": round(bson_bytes / 2**20, 1),
        "archive_gz_mib": round(manifest["artifacts"][0]["size"] / 2**20, 2),
        "scan_s": round(min(scans), 3),
        "backup_s": round(min(backups), 3),
        "backup_over_scan": round(min(backups) / min(scans), 2),
        "dump_without_upload_over_scan": round(min(dumps) / min(scans), 2),  # diagnostic, not a goal
        "peak_rss_mib": round(rss_after / 1024, 1),
        "peak_rss_growth_during_backups_mib": round((rss_after - rss_before) / 1024, 1),
    }


def run_size(documents: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="gravitypm-bench-") as tmp:
        mongo_port, s3_port = free_port(), free_port()
        mongo = spawn([sys.executable, "dev/mongo_server.py", "--port", str(mongo_port), "--engine", "memory",
                       "--no-seed", "--bench-docs", str(documents)], Path(tmp) / "mongo.log")
        s3 = spawn([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], Path(tmp) / "s3.log")
        try:
            wait_for_port(s3_port, 30, s3, "moto")
            deadline = time.monotonic() + 600
            while "READY" not in (Path(tmp) / "mongo.log").read_text():
                if time.monotonic() > deadline or mongo.poll() is not None:
                    raise RuntimeError("bench mongo server did not start")
                time.sleep(0.5)
            child = subprocess.run(
                [sys.executable, "-m", "bench.db_backup", "--measure", str(mongo_port), str(s3_port)],
                cwd=REPO, capture_output=True, text=True, check=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO)])},
            )
            return json.loads(child.stdout.strip().splitlines()[-1])
        finally:
            stop_process(mongo)
            stop_process(s3)


def bench_db_backup() -> dict:
    load_before = os.getloadavg()
    results = [run_size(n) for n in SIZES]
    small, large = results
    worst = max(r["backup_over_scan"] for r in results)
    return {
        "sizes": results,
        "goal_backup_over_scan": GOAL,
        "backup_over_scan": worst,
        "meets_goal": worst <= GOAL,
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "peak_rss_growth_ratio_large_vs_small": round(large["peak_rss_mib"] / small["peak_rss_mib"], 2),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        print(json.dumps(bench_db_backup(), indent=2))
