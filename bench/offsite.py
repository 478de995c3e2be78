"""Off-site copy benchmark: `offsite.Copier` vs the plain boto3 calls that move the same bytes.

Two moto servers (the primary, and another "region"), one artifact of ARTIFACT_MIB in the primary:
- streamed: plain `get_object` -> multipart upload (8 MiB parts, no hashing) vs
  `Copier(server_side=False).copy_backup` (download thread, SHA-256, upload, manifest);
- server-side (second bucket, same server): plain `copy_object` vs
  `Copier(server_side=True).copy_backup` (copy + re-read and hash the copy + manifest);
- peak traced Python memory of one streamed copy (bounded: independent of the artifact size).
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from bench import random_blob_backup
from dev.stack import BIN, free_port, spawn, stop_process, wait_for_port

ARTIFACT_MIB = 128
REPEATS = 3


def bench_offsite() -> dict:
    import boto3

    from gravitypm_ops.offsite.copy import Copier
    from gravitypm_ops.vault.store import Vault
    from gravitypm_ops.vault.streams import PART_SIZE

    with tempfile.TemporaryDirectory(prefix="gravitypm-bench-offsite-") as tmp:
        ports = free_port(), free_port()
        procs = [spawn([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(p)], Path(tmp) / f"s3-{p}.log")
                 for p in ports]
        try:
            for port, proc in zip(ports, procs, strict=True):
                wait_for_port(port, 30, proc, "moto")
            here, there = (boto3.client("s3", endpoint_url=f"http://127.0.0.1:{p}", region_name="us-east-1",
                                        aws_access_key_id="bench", aws_secret_access_key="bench") for p in ports)
            for client, bucket in ((here, "bench-vault"), (here, "bench-copy"), (there, "bench-offsite")):
                client.create_bucket(Bucket=bucket)
            primary = Vault("bench-vault", "bench", here)
            manifest = random_blob_backup(primary, ARTIFACT_MIB)
            key = manifest["artifacts"][0]["key"]

            def plain_streamed() -> None:
                body = here.get_object(Bucket="bench-vault", Key=key)["Body"]
                upload_id = there.create_multipart_upload(Bucket="bench-offsite", Key="plain")["UploadId"]
                parts = []
                while chunk := body.read(PART_SIZE):
                    n = len(parts) + 1
                    etag = there.upload_part(Bucket="bench-offsite", Key="plain", UploadId=upload_id, PartNumber=n,
                                             Body=chunk)["ETag"]
                    parts.append({"PartNumber": n, "ETag": etag})
                there.complete_multipart_upload(Bucket="bench-offsite", Key="plain", UploadId=upload_id,
                                                MultipartUpload={"Parts": parts})

            def plain_server_side() -> None:
                here.copy_object(CopySource={"Bucket": "bench-vault", "Key": key}, Bucket="bench-copy", Key="plain")

            def ours(client, bucket: str, server_side: bool):
                return lambda: Copier(primary, Vault(bucket, uuid.uuid4().hex[:8], client),
                                      server_side=server_side).copy_backup(manifest, [])

            runs = {"plain_streamed": plain_streamed, "streamed": ours(there, "bench-offsite", False),
                    "plain_server_side": plain_server_side, "server_side": ours(here, "bench-copy", True)}
            best = {name: float("inf") for name in runs}
            for _ in range(REPEATS):
                for name, run in runs.items():
                    t = time.perf_counter()
                    run()
                    best[name] = min(best[name], time.perf_counter() - t)
            tracemalloc.start()
            runs["streamed"]()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        finally:
            for proc in procs:
                stop_process(proc)
    return {
        "artifact_mib": ARTIFACT_MIB,
        **{f"{name}_s": round(seconds, 3) for name, seconds in best.items()},
        "ratio_streamed_vs_plain_throughput": round(best["plain_streamed"] / best["streamed"], 2),
        "ratio_server_side_vs_plain_throughput": round(best["plain_server_side"] / best["server_side"], 2),
        "streamed_peak_traced_mib": round(peak / 2**20, 1),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(bench_offsite(), indent=2))
