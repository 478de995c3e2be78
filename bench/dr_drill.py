"""DR drill benchmark: the measured RTO of a full local drill, next to the backups and a plain download.

    python -m bench.dr_drill [--fs-size-mb 256] [--docs 2000]   (or python -m bench --only dr_drill)

Fresh servers (moto S3; mongoeco seeded server-side with `bench.docs`), a generated fs tree
(bench.fs_backup.generate_tree) in /dev/shm when it has room, plus a small config tree. In the
same run, per component (db, fs, config):
- backup: the backup engines themselves (`backup_mongo.run_backup`, `backup_files.run_backup`);
- baselines: a plain boto3 `get_object` read of the same artifacts (no hashing, no restore), and
  the restore an engineer would run by hand without any validation: the archive streamed into
  `backup_mongo.restore` (our mongorestore; no mongorestore exists here) or `zstd -dc | tar -xf -`;
- drill: `drill_drill.restore_component` — what `gravitypm_dr_drill` runs per component: stream down,
  restore into the isolated target (scratch database / scratch directory), validate against the
  manifest (db: counts, indexes, options, byte-for-byte sample; fs/config: every sha256), clean up.
The drill's RTO per component is its wall time; the total is the sum (components run one after
another here; the DAG may run them in parallel).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dev.stack import BIN, free_port, spawn, stop_process, wait_for_port

FS_SIZE_MB = 256
DOCS = 2000  # mongoeco inserts ~130 documents/s over the wire: the db restore dominates past this


def _work_dir() -> str:
    shm = "/dev/shm"
    if os.path.isdir(shm) and shutil.disk_usage(shm).free > 4 * (FS_SIZE_MB << 20):
        return shm
    return tempfile.gettempdir()


def _wait_ready(log: Path, proc, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while "READY" not in log.read_text(errors="replace"):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"bench mongo server did not start; see {log}")
        time.sleep(0.5)


def bench_dr_drill(fs_size_mb: int = FS_SIZE_MB, docs: int = DOCS) -> dict:
    import boto3
    import pymongo

    from bench.fs_backup import generate_tree
    from gravitypm_ops.backup import files as backup_files
    from gravitypm_ops.backup import mongo as backup_mongo
    from gravitypm_ops.config import parse_config
    from gravitypm_ops.drill import drill as drill_drill
    from gravitypm_ops.vault.store import Vault

    with tempfile.TemporaryDirectory(prefix="gravitypm-bench-drill-", dir=_work_dir()) as tmp:
        work = Path(tmp)
        s3_port, mongo_port = free_port(), free_port()
        s3_proc = spawn([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], work / "s3.log")
        mongo_proc = spawn([sys.executable, "dev/mongo_server.py", "--port", str(mongo_port), "--engine", "memory",
                            "--no-seed", "--bench-docs", str(docs)], work / "mongo.log")
        try:
            app_root = work / "app"
            generate_tree(app_root / "uploads", fs_size_mb)
            (app_root / "config").mkdir()
            for i in range(20):
                (app_root / "config" / f"service-{i}.yml").write_text(f"name: service-{i}\nreplicas: 2\n" * 20)
            (app_root / ".env").write_text("DATABASE_PASSWORD=bench-not-a-secret\n")
            cfg = parse_config({
                "mongo_databases": ["bench"], "vault_bucket": "bench-vault", "vault_prefix": "bench",
                "app_root": str(app_root), "config_paths": ["config", ".env"],
            })
            wait_for_port(s3_port, 30, s3_proc, "moto")
            s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
            s3.create_bucket(Bucket="bench-vault")
            vault = Vault("bench-vault", "bench", s3)
            _wait_ready(work / "mongo.log", mongo_proc)
            client = pymongo.MongoClient(f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true")

            backups, backup_s = {}, {}
            for kind in drill_drill.COMPONENTS:
                t = time.perf_counter()
                if kind == "db":
                    backups[kind] = backup_mongo.run_backup(cfg, vault, client, dag_id="bench", run_id="r",
                                                         run_after=datetime.now(UTC))
                else:
                    backups[kind] = backup_files.run_backup(kind, cfg, vault, dag_id="bench", run_id="r",
                                                           run_after=datetime.now(UTC))
                backup_s[kind] = time.perf_counter() - t

            def plain_download(manifest: dict) -> float:
                t = time.perf_counter()
                for artifact in manifest["artifacts"]:
                    body = s3.get_object(Bucket="bench-vault", Key=artifact["key"])["Body"]
                    while body.read(1 << 20):
                        pass
                return time.perf_counter() - t

            def by_hand(kind: str, manifest: dict) -> float:
                """The restore an engineer would run by hand (README), no validation: the archive
                streamed into backup_mongo.restore (mongorestore's stand-in), or into zstd -dc | tar -x."""
                archive = next(a for a in manifest["artifacts"] if not a["name"].startswith("index"))
                t = time.perf_counter()
                body = s3.get_object(Bucket="bench-vault", Key=archive["key"])["Body"]
                if kind == "db":
                    backup_mongo.restore(body, client, {"bench": "gravitypm_scratch_by_hand"})
                    elapsed = time.perf_counter() - t
                    client.drop_database("gravitypm_scratch_by_hand")
                    return elapsed
                target = work / f"by-hand-{kind}"
                target.mkdir()
                tar = subprocess.Popen(["bash", "-c", f"zstd -q -dc | tar -xf - -C {target}"], stdin=subprocess.PIPE)
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    tar.stdin.write(chunk)
                tar.stdin.close()
                if tar.wait() != 0:
                    raise RuntimeError(f"zstd | tar failed for {kind}")
                elapsed = time.perf_counter() - t
                shutil.rmtree(target)
                return elapsed

            download_s = {kind: plain_download(m) for kind, m in backups.items()}
            by_hand_s = {kind: by_hand(kind, m) for kind, m in backups.items()}
            scratch = work / "scratch"
            scratch.mkdir()
            plan = drill_drill.plan_drill({"scratch_dir": str(scratch)}, cfg, vault, dag_id="bench", run_id="r",
                                    now=datetime.now(UTC))
            results = {kind: drill_drill.restore_component(kind, plan, cfg, vault, mongo_client=client)
                       for kind in drill_drill.COMPONENTS}
            failed = {k: r["detail"] for k, r in results.items() if r["status"] != "passed"}
            if failed:
                raise RuntimeError(f"drill failed in the benchmark: {failed}")
            left = os.listdir(scratch) + [d for d in client.list_database_names() if d.startswith("gravitypm_scratch_")]
        finally:
            stop_process(s3_proc)
            stop_process(mongo_proc)

    components = {}
    for kind, manifest in backups.items():
        content, rto = manifest["content"], results[kind]["seconds"]
        entry = {
            "artifact_bytes": sum(a["size"] for a in manifest["artifacts"]),
            "backup_s": round(backup_s[kind], 3),
            "plain_download_s": round(download_s[kind], 3),
            "by_hand_restore_s": round(by_hand_s[kind], 3),
            "drill_rto_s": round(rto, 3),
            "rto_vs_by_hand": round(rto / by_hand_s[kind], 2),
        }
        if kind == "db":
            entry.update(documents=content["documents"],
                         backup_s_per_1000_docs=round(backup_s[kind] / content["documents"] * 1000, 3),
                         rto_s_per_1000_docs=round(rto / content["documents"] * 1000, 3))
        else:
            entry.update(files=content["files"], content_bytes=content["bytes"])
        if kind == "fs":  # per GB only where there is data enough for it to mean something
            gb = content["bytes"] / 1e9
            entry.update(backup_s_per_gb=round(backup_s[kind] / gb, 2), rto_s_per_gb=round(rto / gb, 2))
        components[kind] = entry
    return {
        "fs_tree_mib": fs_size_mb,
        "documents": docs,
        "components": components,
        "total_rto_s": round(sum(r["seconds"] for r in results.values()), 3),
        "total_plain_download_s": round(sum(download_s.values()), 3),
        "total_by_hand_restore_s": round(sum(by_hand_s.values()), 3),
        "cleanup_left_behind": left,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.dr_drill", description=__doc__.splitlines()[0])
    parser.add_argument("--fs-size-mb", type=int, default=FS_SIZE_MB)
    parser.add_argument("--docs", type=int, default=DOCS)
    args = parser.parse_args()
    print(json.dumps(bench_dr_drill(args.fs_size_mb, args.docs), indent=2))
