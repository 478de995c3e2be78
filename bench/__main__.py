"""The single benchmark entry point: `make bench` (= python -m bench [--fs-size-mb N] [--scale]).

Each benchmark prints its figures next to a baseline measured in the same run, so the
numbers compare across machines as ratios. Results: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

from bench.dag_parse import parse_dags_isolated
from bench.db_backup import bench_db_backup
from bench.dr_drill import bench_dr_drill
from bench.encryption import bench_encryption
from bench.fs_backup import bench_fs_backup, bench_fs_scale
from bench.log_rotation import bench_log_rotation
from bench.offsite import bench_offsite
from bench.verification import bench_verification

MINIMAL_DAG = """\
from airflow.sdk import dag, task

@dag(dag_id="baseline_minimal", schedule=None)
def baseline_minimal():
    @task
    def noop():
        pass
    noop()

baseline_minimal()
"""


def bench_dag_parse(repeats: int = 5) -> dict:
    """Whole dags/ folder parse time vs one minimal TaskFlow DAG (goal: folder < 2 s)."""
    ours = [parse_dags_isolated() for _ in range(repeats)]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "baseline_minimal.py").write_text(MINIMAL_DAG)
        base = [parse_dags_isolated(Path(tmp)) for _ in range(repeats)]
    ours_s = statistics.median(r["seconds"] for r in ours)
    base_s = statistics.median(r["seconds"] for r in base)
    return {
        "dags": len(ours[0]["dag_ids"]),
        "folder_parse_s": round(ours_s, 4),
        "baseline_one_minimal_dag_s": round(base_s, 4),
        "ratio_vs_baseline": round(ours_s / base_s, 2),
        "goal_folder_parse_s": 2.0,
        "meets_goal": ours_s < 2.0,
        "per_file_s": ours[0]["files"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--fs-size-mb", type=int, default=1024, help="large tree of the fs benchmark (MiB)")
    parser.add_argument("--fs-small-size-mb", type=int, default=256, help="small tree of the fs benchmark (MiB)")
    parser.add_argument("--logs-files", type=int, default=30, help="logs rotated by the log rotation benchmark")
    parser.add_argument("--logs-size-mb", type=int, default=100, help="size of each of those logs (MiB)")
    parser.add_argument("--scale", action="store_true",
                        help="add the fs scale run (backup of a 10 GiB tree and of 1 million small files; long)")
    parser.add_argument("--scale-gib", type=float, default=10, help="big tree of the scale run (GiB)")
    parser.add_argument("--scale-files", type=int, default=1_000_000, help="small files of the scale run")
    parser.add_argument("--scale-dir", help="where the scale trees are generated (default: the temp dir, on disk)")
    parser.add_argument("--only", choices=["dag_parse", "db_backup", "fs_backup", "verification", "log_rotation",
                                           "offsite", "dr_drill", "encryption"], action="append")
    args = parser.parse_args()
    benches = {
        "dag_parse": bench_dag_parse,
        "db_backup": bench_db_backup,
        "fs_backup": lambda: bench_fs_backup(size_mb=args.fs_size_mb, small_size_mb=args.fs_small_size_mb),
        "verification": bench_verification,
        "log_rotation": lambda: bench_log_rotation(files=args.logs_files, size_mb=args.logs_size_mb),
        "offsite": bench_offsite,
        "dr_drill": lambda: bench_dr_drill(fs_size_mb=args.fs_small_size_mb),
        "encryption": lambda: bench_encryption(fs_size_mb=args.fs_small_size_mb),
    }
    report = {"machine": f"{platform.machine()} {platform.system()} Python {platform.python_version()}"}
    for name, run in benches.items():
        if not args.only or name in args.only:
            report[name] = run()
    if args.scale:
        report["fs_scale"] = bench_fs_scale(args.scale_gib, args.scale_files, args.scale_dir)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
