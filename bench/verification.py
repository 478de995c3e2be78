"""Verification benchmark: artifact verification vs a plain boto3 download, and DB trial restore time.

- Throughput of `verification.check_artifacts` (stream down + SHA-256 + size) ÷ a plain
  `get_object` read of the same objects with no hashing, same moto server, same run
  (target >= 0.9: hashing must hide behind the transfer).
- Wall time of a DB trial restore (`backup_mongo.restore` into a scratch database) per 1000 documents.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

from bench import random_blob_backup
from dev.stack import BIN, free_port, spawn, stop_process, wait_for_port

ARTIFACT_MIB = 256
RESTORE_DOCS = 2000
REPEATS = 3


def bench_verification() -> dict:
    import boto3
    import pymongo

    from gravitypm_ops.backup import mongo as backup_mongo
    from gravitypm_ops.vault.store import Vault
    from gravitypm_ops.verification.verify import check_artifacts

    with tempfile.TemporaryDirectory(prefix="gravitypm-bench-verify-") as tmp:
        s3_port, mongo_port = free_port(), free_port()
        s3_proc = spawn([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], Path(tmp) / "s3.log")
        mongo_proc = spawn([sys.executable, "dev/mongo_server.py", "--port", str(mongo_port), "--engine", "memory",
                            "--no-seed", "--bench-docs", str(RESTORE_DOCS)], Path(tmp) / "mongo.log")
        try:
            wait_for_port(s3_port, 30, s3_proc, "moto")
            s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
            s3.create_bucket(Bucket="bench-vault")
            vault = Vault("bench-vault", "bench", s3)
            manifest = random_blob_backup(vault, ARTIFACT_MIB)
            key = manifest["artifacts"][0]["key"]

            def plain() -> None:
                body = s3.get_object(Bucket="bench-vault", Key=key)["Body"]
                while body.read(1 << 20):
                    pass

            plains, verifies = [], []
            for _ in range(REPEATS):
                t = time.perf_counter()
                plain()
                plains.append(time.perf_counter() - t)
                t = time.perf_counter()
                check_artifacts(vault, manifest)
                verifies.append(time.perf_counter() - t)

            deadline = time.monotonic() + 300
            while "READY" not in (Path(tmp) / "mongo.log").read_text():
                if time.monotonic() > deadline or mongo_proc.poll() is not None:
                    raise RuntimeError("bench mongo server did not start")
                time.sleep(0.5)
            client = pymongo.MongoClient(f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true")
            archive = io.BytesIO()
            backup_mongo.dump(client, ["bench"], archive)
            t = time.perf_counter()
            backup_mongo.restore(io.BytesIO(archive.getvalue()), client, {"bench": "scratch_bench"})
            restore_s = time.perf_counter() - t
        finally:
            stop_process(s3_proc)
            stop_process(mongo_proc)
    return {
        "artifact_mib": ARTIFACT_MIB,
        "plain_download_s": round(min(plains), 3),
        "verify_s": round(min(verifies), 3),
        "ratio_verify_vs_download_throughput": round(min(plains) / min(verifies), 2),
        "target_ratio": 0.9,
        "trial_restore_documents": RESTORE_DOCS,
        "trial_restore_s_per_1000_docs": round(restore_s / RESTORE_DOCS * 1000, 3),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(bench_verification(), indent=2))
