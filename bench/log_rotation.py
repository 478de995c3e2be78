"""Log rotation benchmark: rotate + compress + ship N logs, against `gzip -6` on the same files.

    python -m bench.log_rotation [--files 30] [--size-mb 100] [--dir DIR]

N log files of log-like text (deterministic slices of a generated corpus; no two alike) are
written to a work directory (default /dev/shm when it has room, so the disk's write-back stalls
do not decide the result). Then, in the same run:

- baseline: ``gzip -6 -c LOG > LOG.gz`` for every file, one after the other (what logrotate's
  `compress` runs: gzip with its default compressoptions "-6");
- ours: `log_rotation.Rotation(...).run()` with the runbook's directives and `force` — rename,
  create, gzip level 6 (in a worker thread), SHA-256, and shipping every .gz as one `logs` backup
  into a moto S3 server on loopback (multipart upload, manifest commit) — what the DAG's
  `rotate_and_ship` task does, minus the postrotate command;
- ours without shipping (same, `ship=None`): what the upload into the local moto server costs.
  moto runs on the same two cores; a real S3 endpoint costs this host far less CPU.

Throughput is raw log bytes / wall time; the ratio is ours ÷ gzip (target >= 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = 20261127
TARGET_RATIO = 0.9
BUCKET = "gravitypm-bench"


def generate_logs(directory: Path, files: int, size_mb: int, seed: int = SEED) -> int:
    from bench.fs_backup import _corpus, _text

    rng = random.Random(seed)
    corpus = _corpus(rng, 32 << 20)  # larger than gzip's 32 KiB window many times over
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        with open(directory / f"app{i:02d}.log", "wb") as f:
            left = size_mb << 20
            while left > 0:
                chunk = _text(rng, corpus, min(left, 8 << 20))
                f.write(chunk)
                left -= len(chunk)
    return files * (size_mb << 20)


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _work_dir(requested: str | None, need: int) -> str:
    if requested:
        return requested
    shm = "/dev/shm"
    if os.path.isdir(shm) and shutil.disk_usage(shm).free > need * 1.5:
        return shm
    return tempfile.gettempdir()


def _moto():
    from dev.stack import BIN, free_port, wait_for_port

    port = free_port()
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 30, proc, "moto")
    return proc, f"http://127.0.0.1:{port}"


def bench_log_rotation(files: int = 30, size_mb: int = 100, directory: str | None = None, repeats: int = 2) -> dict:
    import boto3

    from gravitypm_ops.config.log_rotation import parse_rotation_settings
    from gravitypm_ops.log_rotation.engine import Rotation
    from gravitypm_ops.log_rotation.ship import ship_to_vault, shipped_hashes
    from gravitypm_ops.vault.store import Vault

    raw_total = files * (size_mb << 20)
    work = Path(tempfile.mkdtemp(prefix="gravitypm-bench-logs-", dir=_work_dir(directory, raw_total * 2)))
    moto, endpoint = _moto()
    try:
        source, out = work / "source", work / "gzip"
        t0 = time.perf_counter()
        generate_logs(source, files, size_mb)
        generated_s = time.perf_counter() - t0
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        s3.create_bucket(Bucket=BUCKET)
        settings = parse_rotation_settings({})  # the runbook's block (www-data applied when root)
        gzip_runs, our_runs, unshipped_runs, gzip_cpu, our_cpu = [], [], [], [], []
        for attempt in range(repeats):  # interleaved, best of `repeats`: the machine's load moves
            out.mkdir()
            start, cpu = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
            for log in sorted(source.glob("*.log")):
                with open(out / (log.name + ".gz"), "wb") as sink:
                    subprocess.run(["gzip", "-6", "-c", str(log)], stdout=sink, check=True)
            gzip_runs.append(time.perf_counter() - start)
            gzip_cpu.append(_cpu(resource.RUSAGE_CHILDREN) - cpu)
            gzip_bytes = sum(p.stat().st_size for p in out.iterdir())
            shutil.rmtree(out)

            for shipping in (True, False):  # without shipping: how much of the time the upload costs
                logs = work / f"logs{attempt}"
                logs.mkdir()
                for log in source.glob("*.log"):
                    os.link(log, logs / log.name)  # a fresh logs_dir without copying: rotation renames the link
                vault = Vault(BUCKET, f"run{attempt}", s3)
                rotation = Rotation(
                    str(logs), settings, now=datetime.now(UTC), force=True,
                    shipped_elsewhere=lambda vault=vault: shipped_hashes(vault),
                    ship=(lambda todo, vault=vault, logs=logs: ship_to_vault(
                        vault, todo, settings=settings, logs_dir=str(logs), dag_id="bench", run_id="bench",
                    )["content"]) if shipping else None,
                )
                start, cpu = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
                report = rotation.run()
                (our_runs if shipping else unshipped_runs).append(time.perf_counter() - start)
                if shipping:
                    our_cpu.append(_cpu(resource.RUSAGE_SELF) - cpu)
                if len(report["compressed"]) != files or (shipping and report["shipped"]["files"] != files):
                    raise RuntimeError(f"benchmark run did not rotate and ship every file: {report['shipped']}")
                ours_bytes = sum(c["gz_bytes"] for c in report["compressed"])
                shutil.rmtree(logs)
        gzip_s, ours_s = min(gzip_runs), min(our_runs)
        return {
            "files": files,
            "file_mib": size_mb,
            "total_mib": raw_total >> 20,
            "work_dir": str(work.parent),
            "generate_s": round(generated_s, 2),
            "gzip6_runs_s": [round(x, 2) for x in gzip_runs],
            "gzip6_mib_s": round(raw_total / 2**20 / gzip_s, 1),
            "gzip6_compressed_mib": round(gzip_bytes / 2**20, 1),
            "ours_runs_s": [round(x, 2) for x in our_runs],
            "ours_mib_s": round(raw_total / 2**20 / ours_s, 1),
            "ours_compressed_mib": round(ours_bytes / 2**20, 1),
            "ratio_vs_gzip6": round(gzip_s / ours_s, 3),
            "without_shipping_runs_s": [round(x, 2) for x in unshipped_runs],
            "without_shipping_ratio_vs_gzip6": round(gzip_s / min(unshipped_runs), 3),
            # CPU seconds of this process (rotation, compression, upload client) vs of the gzip children;
            # the moto server's CPU is not counted: against real S3 it is not spent on this host.
            "gzip6_cpu_s": round(min(gzip_cpu), 2),
            "ours_cpu_s": round(min(our_cpu), 2),
            "load_average_after": round(os.getloadavg()[0], 1),
            "target_ratio": TARGET_RATIO,
            "meets_target": gzip_s / ours_s >= TARGET_RATIO,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    finally:
        moto.terminate()
        moto.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.log_rotation", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--size-mb", type=int, default=100, help="size of each log (MiB)")
    parser.add_argument("--dir", help="work directory (default /dev/shm when it has room)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each side; the best counts")
    args = parser.parse_args()
    sys.path[:0] = [str(REPO / "include"), str(REPO)]
    print(json.dumps(bench_log_rotation(args.files, args.size_mb, args.dir, args.repeats), indent=2))


if __name__ == "__main__":
    main()
