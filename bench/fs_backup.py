"""File backup benchmark: our archive + index pipeline against the native tools doing the same work.

    python -m bench.fs_backup [--size-mb 1024] [--small-size-mb 256] [--repeats 2] [--dir DIR]

For each size a deterministic tree is generated (by bytes: ~40 % log-like text, ~40 % random
i.e. incompressible data, ~20 % many small files of 0-16 KiB), then a fresh child process runs,
interleaved, best of `repeats`:

- backup, native: ``tar -cf - ROOT | zstd -3 -T0 > sink`` with
  ``find ROOT -type f -print0 | xargs -0 sha256sum > index`` running beside it;
- backup, ours: `archive_tree` into `compressing_writer` (zstd level 3, threads=-1) to a local
  file, the index (JSON lines, with a sha256 per file) zstd-compressed into another file —
  what `file_backup.run_backup` does, with local files in place of the vault;
- restore, native: ``zstd -dc ARCHIVE | tar -xf - -C TARGET``;
- restore, ours: load the index (path -> sha256), then `extract_archive` of our archive into a
  fresh target: staging, path checks, every file's sha256 verified, moved into place.

Throughput is tree bytes / wall time; a ratio is ours ÷ native (targets: backup >= 0.9,
restore >= 0.8). Peak RSS is the child's ru_maxrss (the native tools run as its children and do
not count), after the backups and after the restores: one child per size, so sizes compare.

The work directory defaults to /dev/shm when it has room: on this VM the disk's write-back
stalls made single runs of the *same* command vary 3x, which measures the disk, not the code.
Both sides always share the directory.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = 20261127
TARGETS = {"backup_ratio": 0.9, "restore_ratio": 0.8}
NATIVE_BACKUP = (
    "set -o pipefail; "
    "(tar -cf - {root} | zstd -q -3 -T0 > {sink}) & a=$!; "
    "(find {root} -type f -print0 | xargs -0 sha256sum > {index}) & b=$!; "
    "wait $a && wait $b"
)
NATIVE_RESTORE = "set -o pipefail; zstd -q -dc {archive} | tar -xf - -C {target}"


# --- the tree -------------------------------------------------------------------------------


def _corpus(rng: random.Random, size: int) -> bytes:
    """Log-like lines from a random vocabulary: compresses ~4-5x with zstd -3, like real logs."""
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 10))) for _ in range(3000)]
    levels = ["INFO"] * 3 + ["DEBUG", "WARNING", "ERROR"]
    lines, total, t = [], 0, 1_700_000_000.0
    while total < size:
        t += rng.random() * 3
        line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t))}.{int(t * 1000) % 1000:03d} "
                f"{rng.choice(levels)} [{rng.choice(vocab)}.{rng.choice(vocab)}] "
                f"{' '.join(rng.choices(vocab, k=rng.randint(3, 16)))} id={rng.getrandbits(32):08x}\n")
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def _text(rng: random.Random, corpus: bytes, n: int) -> bytes:
    """n bytes of slices from random places in the corpus (no two files alike)."""
    parts, got = [], 0
    while got < n:
        k = min(n - got, rng.randint(1024, 16384))
        start = rng.randrange(0, len(corpus) - k)
        parts.append(corpus[start : start + k])
        got += k
    return b"".join(parts)


def generate_tree(root: Path, size_mb: int, seed: int = SEED) -> dict:
    """A deterministic tree of `size_mb` MiB: text 40 %, random 40 %, small files 20 %."""
    rng = random.Random(seed)
    corpus = _corpus(rng, 32 << 20)  # bigger than zstd's window: files do not compress against each other
    budget = size_mb << 20
    counts = {}

    def fill(kind: str, share: float, low: int, high: int, per_dir: int, content) -> None:
        left, i = int(budget * share), 0
        while left > 0:
            n = min(left, rng.randint(low, high))
            directory = root / kind / f"d{i // per_dir:04d}"
            if i % per_dir == 0:
                directory.mkdir(parents=True)
            (directory / f"f{i:06d}").write_bytes(content(n))
            left -= n
            i += 1
        counts[kind] = i

    fill("text", 0.4, 64 << 10, 4 << 20, 50, lambda n: _text(rng, corpus, n))
    fill("random", 0.4, 256 << 10, 16 << 20, 20, rng.randbytes)
    fill("small", 0.2, 0, 16 << 10, 200,
         lambda n: _text(rng, corpus, n) if n > 1024 and rng.random() < 0.67 else rng.randbytes(n))
    return counts


# --- the measurements (in a child process per size) -----------------------------------------


def _maxrss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _child(*args: str) -> str:
    """Run this module in a fresh interpreter; returns its last stdout line.

    Linux carries the parent's peak RSS into a child's ru_maxrss (the forked address space is
    counted at exec), so the children are started by this small driver process only.
    """
    child = subprocess.run(
        [sys.executable, "-m", "bench.fs_backup", *args], cwd=REPO, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO)])},
    )
    if child.returncode != 0:
        raise RuntimeError(f"fs benchmark child {args[0]} failed:\n{child.stderr[-4000:]}")
    return child.stdout.strip().splitlines()[-1]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _shell(command: str, cwd: Path | None = None) -> None:
    subprocess.run(["bash", "-c", command], check=True, cwd=cwd)


def measure(tree: Path, work: Path, repeats: int) -> dict:
    from gravitypm_ops.formats.tar.compression import Compression, compressing_writer, decompressing_reader
    from gravitypm_ops.formats.tar.extract import extract_archive
    from gravitypm_ops.formats.tar.index import read_index
    from gravitypm_ops.formats.tar.write import Root, archive_tree

    zstd = Compression("zstd", 3)
    ours_archive, ours_index = work / "ours.tar.zst", work / "ours.index.jsonl.zst"
    native_archive, native_index = work / "native.tar.zst", work / "native.sha256"
    reports = {}

    def ours_backup() -> None:
        with open(ours_archive, "wb") as sink, open(ours_index, "wb") as index_sink:
            with compressing_writer(sink, zstd) as tar_out, compressing_writer(index_sink, zstd) as index_out:
                reports["backup"] = archive_tree([Root(str(tree), ".")], tar_out, index_out)

    def native_backup() -> None:  # from the tree's parent, so both archives hold the same paths
        _shell(NATIVE_BACKUP.format(root=tree.name, sink=native_archive, index=native_index), cwd=tree.parent)

    def ours_restore() -> None:
        with open(ours_index, "rb") as f:
            expected = {r["path"]: r["sha256"] for r in read_index(decompressing_reader(f, zstd))
                        if r["type"] == "file"}
        with open(ours_archive, "rb") as f:
            reports["restore"] = extract_archive(decompressing_reader(f, zstd), str(work / "ours-restored"),
                                                 expected_sha256=expected)

    def native_restore() -> None:
        (work / "native-restored").mkdir()
        _shell(NATIVE_RESTORE.format(archive=native_archive, target=work / "native-restored"))

    def fresh(*names: str) -> None:
        for name in names:
            shutil.rmtree(work / name, ignore_errors=True)
        os.sync()

    rss_start = _maxrss_mib()
    times = {k: [] for k in ("native_backup", "ours_backup", "native_restore", "ours_restore")}
    for _ in range(repeats):  # interleaved, so drift hits both sides alike
        times["native_backup"].append(_timed(native_backup))
        times["ours_backup"].append(_timed(ours_backup))
    rss_after_backup = _maxrss_mib()
    for _ in range(repeats):
        fresh("native-restored", "ours-restored")
        times["native_restore"].append(_timed(native_restore))
        fresh("native-restored", "ours-restored")
        times["ours_restore"].append(_timed(ours_restore))
    _check_same_tree(tree, work / "ours-restored")
    fresh("native-restored", "ours-restored")
    best = {k: min(v) for k, v in times.items()}
    mib = reports["backup"]["bytes"] / 2**20
    return {
        "files": reports["backup"]["files"],
        "dirs": reports["backup"]["dirs"],
        "tree_mib": round(mib, 1),
        "archive_mib": {"ours": round(ours_archive.stat().st_size / 2**20, 1),
                        "native": round(native_archive.stat().st_size / 2**20, 1)},
        "seconds": {k: round(v, 3) for k, v in best.items()},
        "all_runs_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "throughput_mib_s": {k: round(mib / v, 1) for k, v in best.items()},
        "backup_ratio": round(best["native_backup"] / best["ours_backup"], 2),
        "restore_ratio": round(best["native_restore"] / best["ours_restore"], 2),
        "verified_files": reports["restore"]["verified"],
        "peak_rss_mib": {"interpreter_start": rss_start, "after_backups": rss_after_backup,
                         "after_restores": _maxrss_mib()},
    }


def _check_same_tree(tree: Path, restored: Path) -> None:
    """A cheap sanity check that the restore the benchmark timed was a real one."""
    for path in (p for p in tree.rglob("*") if p.is_file()):
        other = restored / path.relative_to(tree)
        if other.stat().st_size != path.stat().st_size or other.stat().st_mtime_ns != path.stat().st_mtime_ns:
            raise AssertionError(f"restored tree differs at {path.relative_to(tree)}")


# --- driver ---------------------------------------------------------------------------------


def _work_parent(size_mb: int, chosen: str | None) -> str | None:
    if chosen:
        return chosen
    shm = "/dev/shm"
    need = size_mb * 2**20 * 5  # tree, two archives, two restored trees
    if os.path.isdir(shm) and shutil.disk_usage(shm).free > need:
        return shm
    return None


def run_size(size_mb: int, repeats: int = 2, directory: str | None = None) -> dict:
    parent = _work_parent(size_mb, directory)
    with tempfile.TemporaryDirectory(prefix="gravitypm-fsbench-", dir=parent) as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        counts = json.loads(_child("--generate", str(work / "tree"), str(size_mb)))
        generated_s = time.perf_counter() - start
        result = json.loads(_child("--measure", str(work / "tree"), str(work), str(repeats)))
    return {"size_mib": size_mb, "workdir_parent": parent or tempfile.gettempdir(),
            "generated_s": round(generated_s, 1), "files_by_kind": counts, **result}


def bench_fs_backup(size_mb: int = 1024, small_size_mb: int = 256, repeats: int = 2,
                    directory: str | None = None) -> dict:
    small, large = (run_size(s, repeats, directory) for s in (small_size_mb, size_mb))
    rss_small, rss_large = small["peak_rss_mib"], large["peak_rss_mib"]
    return {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "baseline": {"backup": NATIVE_BACKUP.format(root="ROOT", sink="SINK", index="INDEX"),
                     "restore": NATIVE_RESTORE.format(archive="ARCHIVE", target="TARGET")},
        "targets": TARGETS,
        "sizes": [small, large],
        "backup_ratio": {"small": small["backup_ratio"], "large": large["backup_ratio"],
                         "meets_target": min(small["backup_ratio"], large["backup_ratio"]) >= TARGETS["backup_ratio"]},
        "restore_ratio": {"small": small["restore_ratio"], "large": large["restore_ratio"],
                          "meets_goal": min(small["restore_ratio"], large["restore_ratio"]) >= TARGETS["restore_ratio"]},
        "peak_rss_mib": {
            "backup": [rss_small["after_backups"], rss_large["after_backups"]],
            "restore": [rss_small["after_restores"], rss_large["after_restores"]],
            "growth_large_vs_small": round(rss_large["after_restores"] / rss_small["after_restores"], 2),
        },
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:
        print(json.dumps(measure(Path(argv[1]), Path(argv[2]), int(argv[3]))))
        return
    if argv[:1] == ["--generate"]:
        print(json.dumps(generate_tree(Path(argv[1]), int(argv[2]))))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.fs_backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the large tree (MiB)")
    parser.add_argument("--small-size-mb", type=int, default=256, help="size of the small tree (MiB)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per side; the best counts")
    parser.add_argument("--dir", help="where to generate the trees (default: /dev/shm if it has room)")
    args = parser.parse_args(argv)
    print(json.dumps(bench_fs_backup(args.size_mb, args.small_size_mb, args.repeats, args.dir), indent=2))


if __name__ == "__main__":
    main()
