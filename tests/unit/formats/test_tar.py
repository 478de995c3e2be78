"""formats/tar: file-tree backups (tar + JSON-lines index) and their safe restore, on real trees.

Everything runs on real files in tmp_path. Faults are real too: a file is appended to or
truncated while it is being read, or deleted after its directory was listed, from the
`progress` callback, which archive_tree calls after each file and after each MiB read — so
the timing is deterministic, no sleeps and no mocks.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import logging
import os
import resource
import shutil
import socket
import stat
import subprocess
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from gravitypm_ops.formats.tar.common import BackupSourceError, RestoreError
from gravitypm_ops.formats.tar.compression import Compression, compressing_writer, decompressing_reader
from gravitypm_ops.formats.tar.excludes import compile_excludes
from gravitypm_ops.formats.tar.extract import extract_archive
from gravitypm_ops.formats.tar.index import read_index
from gravitypm_ops.formats.tar.write import Root, archive_tree
from tests.time_limit import time_limit

IS_ROOT = os.geteuid() == 0
ZSTD, GZIP = Compression("zstd", 3), Compression("gzip", 6)
MiB = 1 << 20


# --- helpers --------------------------------------------------------------------------------


def backup(tmp_path: Path, roots, compression=ZSTD, **kwargs):
    """Archive `roots` into tmp_path/out: (archive path, index path, report)."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    archive, index = out / f"files{compression.extension}", out / "index.jsonl"
    with open(archive, "wb") as sink, open(index, "wb") as index_sink:
        with compressing_writer(sink, compression) as tar_out, compressing_writer(index_sink, compression) as idx:
            report = archive_tree(roots, tar_out, idx, **kwargs)
    return archive, index, report


def index_records(index: Path, compression=ZSTD) -> list[dict]:
    with open(index, "rb") as f:
        return list(read_index(decompressing_reader(f, compression)))


def restore(archive: Path, target: Path, compression=ZSTD, **kwargs) -> dict:
    with open(archive, "rb") as f:
        return extract_archive(decompressing_reader(f, compression), str(target), **kwargs)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(root: Path, skip_root_meta: bool = True) -> dict:
    """Everything restore must reproduce, per relative path: type, bytes, mode, owner, mtime,
    link target, and which paths share an inode."""
    found, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            entry = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry["sha256"] = sha(f.read())
                entry["inode_group"] = inodes.setdefault(st.st_ino, rel)
            elif stat.S_ISLNK(st.st_mode):
                entry["link"] = os.readlink(path)
            found[rel] = entry
    if not skip_root_meta:
        found["."] = {"mtime_ns": os.stat(root).st_mtime_ns, "mode": os.stat(root).st_mode}
    return found


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A tar archive built by hand (tarfile, pax format) — used for hostile archives."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(name: str, kind=tarfile.REGTYPE, **fields) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, fields.pop("mode", 0o644), 1_700_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def restore_bytes(data: bytes, target: Path, **kwargs) -> dict:
    return extract_archive(io.BytesIO(data), str(target), **kwargs)


T0 = 1_700_000_000_123_456_789  # mtimes with nanoseconds: the backup (archive + index) must keep them exactly


def whole_seconds(found: dict) -> dict:
    """A snapshot with its mtimes as a ustar header holds them (whole seconds, rounded down), but
    for those only a pax header can hold (before 1970, after 2242): what a restore without the
    index (by hand, or `expected_sha256` only) gives for an archive of this writer."""
    def cut(ns: int) -> int:
        return ns - ns % 10**9 if 0 <= ns // 10**9 < 8**11 else ns
    return {path: {**e, "mtime_ns": cut(e["mtime_ns"])} for path, e in found.items()}


def make_faithful_tree(src: Path) -> dict:
    """Every kind of entry the backup must reproduce; returns {name: path} of the special ones."""
    src.mkdir()
    (src / "text.txt").write_text("hello\n" * 1000)
    big = os.urandom(3 * MiB + 123)  # several read chunks
    (src / "random.bin").write_bytes(big)
    (src / "empty").write_bytes(b"")
    with open(src / "sparse.img", "wb") as f:  # holes, then data, then a hole at the end
        f.truncate(6 * MiB)
        f.seek(4 * MiB)
        f.write(b"data in the middle")
    (src / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "run.sh", 0o750)
    (src / "private").write_text("p")
    os.chmod(src / "private", 0o600)
    (src / "emptydir").mkdir()
    (src / "restricted").mkdir(mode=0o750)
    os.chmod(src / "restricted", 0o750)
    (src / "restricted" / "inner.txt").write_text("inner")
    (src / "données ü 😀.txt").write_text("unicode")
    (src / "with space.txt").write_text("space")
    (src / "new\nline.txt").write_text("newline")
    undecodable = os.fsdecode(b"latin1-\xe9.txt")
    (src / undecodable).write_text("not utf-8")
    long_dir = src / ("a" * 120) / ("b" * 120)
    long_dir.mkdir(parents=True)
    (long_dir / ("c" * 60 + ".txt")).write_text("long path")
    os.link(long_dir / ("c" * 60 + ".txt"), src / "long-hardlink")  # one of the two links is long
    os.symlink("t" * 150, src / "long-target-link")
    (src / "ancient").write_text("before 1970")
    (src / "far-future").write_text("after the ustar field's year 2242")
    (src / "hard1").write_text("shared inode")
    os.link(src / "hard1", src / "hard2")
    (src / "sub").mkdir()
    os.link(src / "hard1", src / "sub" / "hard3")
    os.symlink("text.txt", src / "rel-link")
    os.symlink("/nonexistent/absolute/target", src / "dangling-abs-link")
    os.symlink("sub", src / "dir-link")
    specials = src / "specials"
    specials.mkdir()
    os.mkfifo(specials / "fifo")
    cwd = os.getcwd()
    os.chdir(specials)  # AF_UNIX paths are limited to ~108 bytes: bind a relative name
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind("sock")
        sock.close()
    finally:
        os.chdir(cwd)
    if IS_ROOT:
        os.chown(src / "far-future", 3_000_000, 4_000_000)  # too big for ustar's 7 octal digits
        os.chown(src / "text.txt", 1234, 5678)
        os.lchown(src / "rel-link", 4321, 8765)
        os.chown(src / "restricted", 1111, 2222)
    # mtimes last, deepest first, so creating children does not move them again
    for dirpath, dirnames, filenames in sorted(os.walk(src), key=lambda w: -w[0].count(os.sep)):
        for i, name in enumerate(sorted(dirnames + filenames)):
            os.utime(os.path.join(dirpath, name), ns=(T0, T0 + i * 1_000_001), follow_symlinks=False)
    os.utime(src / "ancient", ns=(T0, -1_500_000_000))
    os.utime(src / "far-future", ns=(T0, 9_000_000_000 * 10**9 + 7))
    os.utime(src, ns=(T0, T0))
    return {"big": big}


# --- compression ----------------------------------------------------------------------------


def test_compression_settings_are_validated_naming_the_field():
    assert Compression.from_dict({"algorithm": "gzip", "level": 9}).extension == ".tar.gz"
    assert Compression.from_dict({}).to_dict() == {"algorithm": "zstd", "level": 3}
    assert Compression().extension == ".tar.zst"
    assert Compression.from_dict({"algorithm": "zstd", "level": 19}).level == 19
    for bad, field in [({"algorithm": "xz"}, "algorithm"), ({"level": 0}, "level"), ({"level": 20}, "level"),
                       ({"algorithm": "gzip", "level": 10}, "level"), ({"level": "3"}, "level"),
                       ({"level": True}, "level"), ({"lvl": 3}, "lvl")]:
        with pytest.raises(ValueError, match=field):
            Compression.from_dict(bad)


@pytest.mark.parametrize("compression", [ZSTD, GZIP], ids=["zstd", "gzip"])
def test_a_failed_stream_is_never_finished_and_a_cut_one_is_detected(compression):
    data = os.urandom(3 * MiB)
    sink = io.BytesIO()
    with pytest.raises(KeyError):
        with compressing_writer(sink, compression) as out:
            out.write(data)
            raise KeyError("the backup failed half way")
    with pytest.raises((RestoreError, EOFError)):  # not a complete stream: it cannot be read to the end
        decompressing_reader(io.BytesIO(sink.getvalue()), compression).read()

    whole = io.BytesIO()
    with compressing_writer(whole, compression) as out:
        out.write(data)
    stream = whole.getvalue()
    assert decompressing_reader(io.BytesIO(stream), compression).read() == data
    for cut in (len(stream) - 2, len(stream) // 2):
        with pytest.raises((RestoreError, EOFError)):
            decompressing_reader(io.BytesIO(stream[:cut]), compression).read()


# --- excludes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, matches, misses",
    [
        ("**/*.tmp", ["a.tmp", "x/y/a.tmp", "x/.tmp"], ["a.tmpx", "a.tmp/inside"]),
        ("*.tmp", ["a.tmp"], ["x/a.tmp"]),
        ("logs/**", ["logs", "logs/a", "logs/a/b.log"], ["logsx", "x/logs"]),
        ("logs", ["logs"], ["logs/a", "x/logs"]),
        ("**/.cache/**", [".cache", ".cache/x", "a/.cache", "a/b/.cache/c/d"], ["a/cache", "a/.cachex"]),
        ("a/**/b", ["a/b", "a/x/b", "a/x/y/b"], ["a/xb", "b"]),
        ("/etc/?.conf", ["etc/a.conf"], ["etc/ab.conf", "etc/a/b.conf"]),
        ("./data/[!x]*.csv", ["data/a1.csv"], ["data/x1.csv"]),
        ("new*", ["new\nline"], ["x/new"]),
    ],
)
def test_exclude_patterns_follow_the_documented_rules(pattern, matches, misses):
    excluded = compile_excludes([pattern])
    assert [p for p in matches if not excluded(p)] == []
    assert [p for p in misses if excluded(p)] == []


def test_excluded_paths_are_not_archived_and_excluded_directories_not_entered(tmp_path):
    src = tmp_path / "src"
    (src / "logs" / "deep").mkdir(parents=True)
    (src / "logs" / "deep" / "x.log").write_text("log")
    os.mkfifo(src / "logs" / "fifo")  # inside an excluded directory: not even listed as skipped
    (src / "keep.txt").write_text("keep")
    (src / "scratch.tmp").write_text("tmp")
    (src / "d").mkdir()
    (src / "d" / "more.tmp").write_text("tmp")
    _, index, report = backup(tmp_path, [Root(str(src), ".")], excludes=["logs", "logs/**", "**/*.tmp"])
    assert {r["path"] for r in index_records(index)} == {"keep.txt", "d"}
    assert report["excluded"] == 3 and report["skipped"] == []


# --- backup + restore round trip ------------------------------------------------------------


@pytest.mark.parametrize("compression", [ZSTD, GZIP], ids=["zstd", "gzip"])
def test_round_trip_reproduces_the_tree_exactly(tmp_path, compression):
    src = tmp_path / "src"
    extra = make_faithful_tree(src)
    archive, index, report = backup(tmp_path, [Root(str(src), ".")], compression)

    assert sorted(report["skipped"], key=lambda s: s["path"]) == [
        {"path": "specials/fifo", "type": "fifo"}, {"path": "specials/sock", "type": "socket"}]
    assert report["changed"] == []
    assert report["hardlinks"] == 3 and report["symlinks"] == 4
    records = {r["path"]: r for r in index_records(index, compression)}
    assert records["random.bin"]["sha256"] == sha(extra["big"]) and records["random.bin"]["size"] == len(extra["big"])
    assert records["empty"] == {**records["empty"], "type": "file", "size": 0, "sha256": sha(b"")}
    assert records["run.sh"]["mode"] == 0o750 and records["text.txt"]["mtime_ns"] % 10**9 != 0
    assert records["rel-link"] == {**records["rel-link"], "type": "symlink", "target": "text.txt"}
    linked = [records[p] for p in ("hard1", "hard2", "sub/hard3")]
    assert sorted(r["type"] for r in linked) == ["file", "hardlink", "hardlink"]
    assert {r.get("sha256") for r in linked} == {sha(b"shared inode")}
    assert "new\nline.txt" in records and os.fsdecode(b"latin1-\xe9.txt") in records
    assert max(len(p) for p in records) >= 300
    assert not any(p.startswith("specials/") for p in records)  # special files are not in the archive

    target = tmp_path / "restored"
    result = restore(archive, target, compression, index=list(records.values()), content=report)
    expected = {p: e for p, e in snapshot(src).items() if not p.startswith("specials/")}
    assert snapshot(target) == expected  # the nanoseconds of every mtime too, from the index
    assert result["verified"] == report["files"] + report["hardlinks"]
    assert result["refused"] == [] and result["left_alone"] == []
    assert result["ownership"] == ("restored" if IS_ROOT else "not restored (not running as root)")
    assert (target / "sparse.img").stat().st_size == 6 * MiB

    # Hashes only, no index: everything but the mtimes' nanoseconds (a tar header holds seconds)
    result = restore(archive, tmp_path / "no-index", compression,
                     expected_sha256={p: r["sha256"] for p, r in records.items() if r["type"] == "file"})
    assert snapshot(tmp_path / "no-index") == whole_seconds(expected) != expected
    assert result["verified"] == report["files"]


def test_gnu_tar_reads_the_archive_too(tmp_path):
    """The README's by-hand restore: zstd -dc | tar -x must give the same tree (mtimes in whole
    seconds: the nanoseconds are in the index, which tar does not read)."""
    if not (shutil.which("tar") and shutil.which("zstd")):
        pytest.skip("GNU tar / zstd not installed")
    src = tmp_path / "src"
    make_faithful_tree(src)
    archive, _, _ = backup(tmp_path, [Root(str(src), ".")])
    target = tmp_path / "by-hand"
    target.mkdir()
    subprocess.run(f"zstd -dc '{archive}' | tar -xf - -C '{target}'", shell=True, check=True,
                   capture_output=True)
    expected = {p: e for p, e in snapshot(src).items() if not p.startswith("specials/")}
    assert snapshot(target) == whole_seconds(expected)


def test_roots_outside_the_main_root_keep_their_absolute_path(tmp_path):
    main, etc = tmp_path / "app", tmp_path / "etc" / "nginx"
    main.mkdir()
    etc.mkdir(parents=True)
    (main / "dag.py").write_text("dag")
    (etc / "nginx.conf").write_text("conf")
    (tmp_path / "env-real").write_text("SECRET=1")
    os.symlink(tmp_path / "env-real", main / ".env-link")  # inside the tree: kept as a link
    os.symlink(tmp_path / "env-real", tmp_path / ".env")  # a root that is a symlink: its content
    roots = [Root(str(main), "."), Root(str(etc), str(etc).lstrip("/")), Root(str(tmp_path / ".env"), ".env")]
    archive, index, _ = backup(tmp_path, roots)
    records = {r["path"]: r for r in index_records(index)}
    assert set(records) == {"dag.py", ".env-link", str(etc).lstrip("/"), str(etc / "nginx.conf").lstrip("/"), ".env"}
    assert records[".env"]["type"] == "file" and records[".env-link"]["type"] == "symlink"
    restore(archive, tmp_path / "r")
    assert (tmp_path / "r" / str(etc / "nginx.conf").lstrip("/")).read_text() == "conf"

    for bad in ("/abs", "a/../../b"):
        with pytest.raises(ValueError, match="arcname"):
            archive_tree([Root(str(main), bad)], io.BytesIO(), io.BytesIO())
    with pytest.raises(ValueError, match="share an arcname"):
        archive_tree([Root(str(main), "x"), Root(str(etc), "x")], io.BytesIO(), io.BytesIO())
    with pytest.raises(BackupSourceError, match="missing"):
        archive_tree([Root(str(tmp_path / "missing"), "m")], io.BytesIO(), io.BytesIO())


def test_progress_is_reported_during_big_files_and_after_each_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(b"x" * (3 * MiB))
    (src / "small").write_bytes(b"y" * 10)
    calls = []
    report = archive_tree([Root(str(src), ".")], io.BytesIO(), io.BytesIO(), progress=lambda f, b: calls.append((f, b)))
    assert calls == sorted(calls) and calls[-1] == (2, 3 * MiB + 10) == (report["files"], report["bytes"])
    assert any(0 < b < 3 * MiB for _, b in calls)  # reported while the big file was being read


# --- files that change or vanish ------------------------------------------------------------


@pytest.mark.parametrize("change", ["grows", "shrinks", "touched"])
def test_a_file_changing_while_read_is_archived_as_read_and_reported(tmp_path, change):
    src = tmp_path / "src"
    src.mkdir()
    original = os.urandom(3 * MiB)
    victim = src / "growing.log"
    victim.write_bytes(original)
    done = []

    def progress(files: int, size: int) -> None:
        if files == 0 and 0 < size < len(original) and not done:  # 1 MiB read, 2 MiB to go
            done.append(size)
            if change == "grows":
                with open(victim, "ab") as f:
                    f.write(b"appended while being read")
            elif change == "shrinks":
                os.truncate(victim, 2 * MiB)
            else:
                os.utime(victim, ns=(T0, T0))

    archive, index, report = backup(tmp_path, [Root(str(src), ".")], progress=progress)
    assert done
    expected_what = {"grows": ["size", "mtime"], "shrinks": ["size", "mtime"], "touched": ["mtime"]}[change]
    assert report["changed"] == [{"path": "growing.log", "changed": expected_what}]
    assert report["changed_count"] == 1
    (record,) = index_records(index)
    archived = original if change != "shrinks" else original[: 2 * MiB] + bytes(MiB)  # size as promised
    assert record["size"] == len(original) and record["sha256"] == sha(archived)
    restore(archive, tmp_path / "r", expected_sha256={"growing.log": record["sha256"]})
    assert (tmp_path / "r" / "growing.log").read_bytes() == archived


def test_a_file_that_cannot_be_read_fails_the_backup_unless_excluded(tmp_path, caplog):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b"):
        (src / name).write_text(f"secret content {name}")

    def delete_the_rest(files: int, size: int) -> None:  # listed, then gone before it is opened
        if files == 1:
            for name in ("a", "b"):
                (src / name).unlink(missing_ok=True)

    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackupSourceError, match=r"cannot read '.*/src/[ab]'") as failure:
        backup(tmp_path, [Root(str(src), ".")], progress=delete_the_rest)
    assert "secret content" not in str(failure.value) + caplog.text
    with pytest.raises(RestoreError):  # the failed archive was left unfinished: it cannot pass as whole
        restore(tmp_path / "out" / "files.tar.zst", tmp_path / "r")

    for name in ("a", "b"):
        (src / name).write_text(f"secret content {name}")
    _, index, report = backup(tmp_path, [Root(str(src), ".")], excludes=["b"], progress=delete_the_rest)
    assert report["files"] == 1 and report["excluded"] == 1


def test_an_unlistable_directory_fails_the_backup_naming_it(tmp_path):
    src = tmp_path / "src"
    (src / "gone").mkdir(parents=True)
    (src / "gone" / "x").write_text("x")
    (src / "0-first").write_text("first")

    def remove_dir(files: int, size: int) -> None:
        shutil.rmtree(src / "gone", ignore_errors=True)

    with pytest.raises(BackupSourceError, match="gone"):
        archive_tree([Root(str(src), ".")], io.BytesIO(), io.BytesIO(), progress=remove_dir)


def test_no_file_content_is_logged_or_reported(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    src = tmp_path / "src"
    src.mkdir()
    marker = "TOP-SECRET-7f3a9c"
    (src / ".env").write_text(f"PASSWORD={marker}\n")
    os.mkfifo(src / "pipe")
    archive, index, report = backup(tmp_path, [Root(str(src), ".")])
    result = restore(archive, tmp_path / "r")
    seen = caplog.text + json.dumps(report) + json.dumps(result) + index.read_bytes().decode("latin-1")
    assert marker not in seen
    assert "pipe" in caplog.text  # the skipped FIFO is named (a path, not content)


# --- restore safety -------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path):
    """A directory next to the target that no restore may touch."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "victim").write_text("original")
    return path


def test_hostile_archives_cannot_write_outside_the_target(tmp_path, outside):
    before = snapshot(outside, skip_root_meta=False)
    target = tmp_path / "target"
    archive = tar_bytes([
        (entry(str(outside / "abs-evil")), b"absolute"),
        (entry("../outside/dotdot-evil"), b"dotdot"),
        (entry("ok/../../outside/nested-evil"), b"nested dotdot"),
        (entry("link", tarfile.SYMTYPE, linkname=str(outside)), None),
        (entry("link/through-symlink"), b"through a symlink"),
        (entry("rel-link", tarfile.SYMTYPE, linkname="../outside"), None),
        (entry("rel-link/victim"), b"pwned via relative link"),
        (entry("dirlink", tarfile.SYMTYPE, linkname=str(outside)), None),
        (entry("dirlink", tarfile.DIRTYPE, mode=0o755), None),
        (entry("dirlink/victim"), b"pwned via link-then-dir"),
        (entry("hl", tarfile.LNKTYPE, linkname=str(outside / "victim")), None),
        (entry("hl"), b"pwned via absolute hard link"),
        (entry("hl2", tarfile.LNKTYPE, linkname="../outside/victim"), None),
        (entry("chr", tarfile.CHRTYPE, devmajor=1, devminor=3), None),
        (entry("blk", tarfile.BLKTYPE, devmajor=7, devminor=0), None),
        (entry("fifo", tarfile.FIFOTYPE), None),
        (entry("suid", mode=0o4755), b"#!/bin/sh\n"),
        (entry("sgid", tarfile.DIRTYPE, mode=0o2775), None),
        (entry("sticky", tarfile.DIRTYPE, mode=0o1777), None),
        (entry("fine.txt"), b"fine"),
    ])
    report = restore_bytes(archive, target)

    assert snapshot(outside, skip_root_meta=False) == before  # nothing outside was written
    reasons = {r["path"]: r["reason"] for r in report["refused"]}
    assert reasons[str(outside / "abs-evil")] == "absolute path"
    assert reasons["../outside/dotdot-evil"] == reasons["ok/../../outside/nested-evil"] == "'..' in path"
    assert "not a directory" in reasons["link/through-symlink"] and "not a directory" in reasons["rel-link/victim"]
    assert "not a directory" in reasons["dirlink"] and "not a directory" in reasons["dirlink/victim"]
    assert reasons["hl"] == reasons["hl2"] == "hard link to outside the archive"
    assert reasons["chr"].startswith("device node") and reasons["blk"].startswith("device node")
    assert reasons["fifo"] == "FIFO"
    # what was restored is harmless: links stay links, the later "hl" is a plain new file
    assert os.readlink(target / "link") == str(outside) and os.readlink(target / "rel-link") == "../outside"
    assert (target / "hl").read_bytes() == b"pwned via absolute hard link" and (target / "hl").stat().st_nlink == 1
    assert not any(os.path.lexists(target / n) for n in ("chr", "blk", "fifo", "hl2"))
    assert stat.S_IMODE((target / "suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "sgid").stat().st_mode) == 0o775
    assert stat.S_IMODE((target / "sticky").stat().st_mode) == 0o777
    assert {n["path"] for n in report["neutralised"]} == {"suid", "sgid", "sticky"}
    assert (target / "fine.txt").read_bytes() == b"fine"
    assert sorted(os.listdir(tmp_path)) == ["outside", "target"]  # no staging left anywhere


def test_hard_links_only_to_files_of_this_restore(tmp_path, outside):
    target = tmp_path / "target"
    target.mkdir()
    (target / "existing").write_text("on disk before the restore")
    archive = tar_bytes([
        (entry("to-disk", tarfile.LNKTYPE, linkname="existing"), None),
        (entry("data.txt"), b"data"),
        (entry("to-data", tarfile.LNKTYPE, linkname="data.txt"), None),
        (entry("to-link", tarfile.SYMTYPE, linkname=str(outside / "victim")), None),
        (entry("via-symlink", tarfile.LNKTYPE, linkname="to-link"), None),
    ])
    report = restore_bytes(archive, target)
    refused = {r["path"] for r in report["refused"]}
    assert refused == {"to-disk", "via-symlink"}
    assert os.path.samefile(target / "data.txt", target / "to-data")
    assert (target / "existing").stat().st_nlink == 1 and (outside / "victim").stat().st_nlink == 1


def test_a_symlink_on_disk_is_replaced_not_written_through(tmp_path, outside):
    before = snapshot(outside, skip_root_meta=False)
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "conf")
    os.symlink(outside / "victim", target / "victim-link")
    archive = tar_bytes([(entry("conf", tarfile.DIRTYPE, mode=0o755), None), (entry("conf/victim"), b"new"),
                         (entry("victim-link"), b"a file now")])
    report = restore_bytes(archive, target)
    assert snapshot(outside, skip_root_meta=False) == before
    assert not (target / "conf").is_symlink() and (target / "conf" / "victim").read_bytes() == b"new"
    assert (target / "victim-link").read_bytes() == b"a file now" and not (target / "victim-link").is_symlink()
    assert set(report["replaced"]) == {"conf", "victim-link"}


def test_corrupt_archives_fail_cleanly(tmp_path):
    target = tmp_path / "target"
    good = tar_bytes([(entry("a.txt"), b"a" * 5000)])
    for bad in (good[:1500], good[:512 * 3], good[:100] + b"X" + good[101:]):
        with pytest.raises(RestoreError):
            restore_bytes(bad, target)
        assert not target.exists()  # created for the restore, removed with it


# --- staging, selection, what is left alone -------------------------------------------------


def make_backup(tmp_path: Path):
    src = tmp_path / "src"
    (src / "dags" / "sub").mkdir(parents=True)
    (src / "dags" / "a.py").write_text("a v1")
    (src / "dags" / "sub" / "b.py").write_text("b v1")
    (src / "config").mkdir()
    (src / "config" / "app.json").write_text("{}")
    (src / "top.txt").write_text("top")
    os.link(src / "top.txt", src / "dags" / "top-link")
    archive, index, _ = backup(tmp_path, [Root(str(src), ".")])
    digests = {r["path"]: r["sha256"] for r in index_records(index) if r["type"] == "file"}
    return archive, digests


def test_a_checksum_mismatch_leaves_the_target_exactly_as_it_was(tmp_path):
    archive, digests = make_backup(tmp_path)
    target = tmp_path / "target"
    (target / "dags").mkdir(parents=True)
    (target / "dags" / "a.py").write_text("a on disk")
    (target / "mine.txt").write_text("mine")
    os.utime(target, ns=(T0, T0))
    before = snapshot(target, skip_root_meta=False)

    wrong = {**digests, "dags/sub/b.py": "0" * 64}
    with pytest.raises(RestoreError, match="dags/sub/b.py"):
        restore(archive, target, expected_sha256=wrong)
    assert snapshot(target, skip_root_meta=False) == before
    unlisted = {p: d for p, d in digests.items() if p != "config/app.json"}
    with pytest.raises(RestoreError, match="not in the index"):
        restore(archive, target, expected_sha256=unlisted)
    assert snapshot(target, skip_root_meta=False) == before

    restore(archive, target, expected_sha256=digests)
    assert (target / "dags" / "a.py").read_text() == "a v1"


def test_files_in_the_backup_replace_others_are_left_alone_and_listed(tmp_path):
    archive, _ = make_backup(tmp_path)
    target = tmp_path / "target"
    (target / "dags" / "old").mkdir(parents=True)
    (target / "dags" / "a.py").write_text("edited on disk")
    (target / "dags" / "old" / "x.py").write_text("x")
    (target / "notes.txt").write_text("notes")
    report = restore(archive, target)
    assert (target / "dags" / "a.py").read_text() == "a v1"
    assert report["replaced"] == ["dags/a.py"]
    assert sorted(report["left_alone"]) == ["dags/old", "notes.txt"] and report["left_alone_count"] == 2
    assert (target / "notes.txt").exists() and (target / "dags" / "old" / "x.py").exists()


def test_mirror_removes_what_the_backup_lacks_only_when_confirmed(tmp_path):
    archive, _ = make_backup(tmp_path)
    target = tmp_path / "target"
    (target / "dags" / "old").mkdir(parents=True)
    (target / "dags" / "old" / "x.py").write_text("x")
    (target / "notes.txt").write_text("notes")
    before = snapshot(target)
    with pytest.raises(ValueError, match="confirm_mirror"):
        restore(archive, target, mirror=True)
    assert snapshot(target) == before

    report = restore(archive, target, paths=["dags"], mirror=True, confirm_mirror=True)
    assert report["removed"] == ["dags/old"] and not (target / "dags" / "old").exists()
    assert (target / "notes.txt").exists()  # outside the restored scope
    report = restore(archive, target, mirror=True, confirm_mirror=True)
    assert report["removed"] == ["notes.txt"]
    assert sorted(os.listdir(target)) == ["config", "dags", "top.txt"]


def test_a_subset_of_paths_can_be_restored(tmp_path):
    archive, digests = make_backup(tmp_path)
    target = tmp_path / "target"
    report = restore(archive, target, paths=["dags/sub", "config/app.json", "dags/top-link"],
                     expected_sha256=digests)
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == [
        "config", "config/app.json", "dags", "dags/sub", "dags/sub/b.py"]
    # the hard link's data is the unselected top.txt: refused, and said so
    assert [r["path"] for r in report["refused"]] == ["dags/top-link"]

    before = snapshot(target, skip_root_meta=False)
    with pytest.raises(RestoreError, match="nope"):
        restore(archive, target, paths=["dags/a.py", "nope"])
    assert snapshot(target, skip_root_meta=False) == before
    with pytest.raises(ValueError):
        restore(archive, target, paths=["../etc"])


# --- memory ---------------------------------------------------------------------------------


class NullSink:
    def write(self, data) -> int:
        return len(data)


def peak_bytes(fn) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_however_many_files(tmp_path):
    def tree(n: int) -> Path:
        root = tmp_path / f"tree{n}"
        root.mkdir()
        for i in range(n):  # one directory: even its listing must not be held in memory
            (root / f"file-{i:06d}.txt").write_bytes(b"%d\n" % i * 20)
        return root

    small, large = tree(2_000), tree(20_000)
    peaks = {}
    for name, root in (("small", small), ("large", large)):
        peaks[name] = peak_bytes(lambda: archive_tree([Root(str(root), ".")], NullSink(), NullSink()))
    assert peaks["large"] < 4 * MiB, peaks
    assert peaks["large"] < peaks["small"] * 1.5 + 256 * 1024, peaks  # 10x the files, not 10x the memory

    archive = tmp_path / "large.tar"
    with open(archive, "wb") as out:
        archive_tree([Root(str(large), ".")], out, NullSink())
    with open(archive, "rb") as f:
        restore_peak = peak_bytes(lambda: extract_archive(f, str(tmp_path / "restored")))
    assert restore_peak < 6 * MiB, restore_peak
    assert len(os.listdir(tmp_path / "restored")) == 20_000


# --- impossible header values (issue 14 item 1) ---------------------------------------------


def ustar_block(name: bytes = b"f.txt", *, kind: bytes = b"0", size: bytes | None = None, mode: bytes = b"0000644\0",
                uid: bytes = b"0001750\0", gid: bytes = b"0000000\0", mtime: bytes = b"14524563200\0",
                link: bytes = b"", checksum: bytes | None = None) -> bytes:
    """One raw ustar header block, every numeric field given as its raw bytes (checksum computed
    unless given): for headers no honest writer produces."""
    from gravitypm_ops.formats.tar.common import USTAR

    fields = [name, mode, uid, gid, size if size is not None else b"00000000000\0", mtime, b" " * 8, kind,
              link, b"ustar\0", b"00", b"", b"", b"", b"", b""]
    block = USTAR.pack(*fields)
    chk = checksum if checksum is not None else b"%06o\0 " % (sum(block))
    return block[:148] + chk + block[156:]


def rec(key: str, value: str) -> bytes:
    """A well-formed pax record, whatever its value."""
    from gravitypm_ops.formats.tar.write import _pax_record

    return _pax_record(key, value.encode())


def pax_block(records: bytes, name: bytes = b"PaxHeader/f.txt") -> bytes:
    return ustar_block(name, kind=b"x", size=b"%011o\0" % len(records)) + records + bytes(-len(records) % 512)


END = bytes(1024)


NEGATIVE_SIZES = {
    "pax size=-1": pax_block(rec("size", "-1")) + ustar_block(size=b"00000000005\0") + b"hello".ljust(512, b"\0"),
    "base-256 size -1": ustar_block(size=b"\xff" * 12) + b"hello".ljust(512, b"\0"),
    "base-256 size -2**40": ustar_block(size=(-(1 << 40)).to_bytes(12, "big", signed=True)) + bytes(512),
    "octal size -7": ustar_block(size=b"-0000000007\0") + bytes(512),
}


@pytest.mark.parametrize("archive", NEGATIVE_SIZES.values(), ids=NEGATIVE_SIZES.keys())
def test_a_negative_size_is_refused_at_once_naming_the_member(tmp_path, archive):
    target = tmp_path / "target"
    with time_limit(5), pytest.raises(RestoreError, match=r"f\.txt.*size"):
        restore_bytes(archive + END, target)
    assert not target.exists()


IMPOSSIBLE_HEADERS = {
    "absurd pax size": (pax_block(rec("size", "9" * 17)) + ustar_block() + END, "size"),
    "absurd base-256 size": (ustar_block(size=b"\x80" + (1 << 62).to_bytes(11, "big")) + END, "size"),
    "pax size not a number": (pax_block(rec("size", "0x10")) + ustar_block() + END, "size"),
    "pax size with spaces": (pax_block(rec("size", " 10")) + ustar_block() + END, "size"),
    "pax size in other digits": (pax_block(rec("size", "١٢")) + ustar_block() + END, "size"),
    "negative uid": (ustar_block(uid=b"\xff" * 8) + END, "uid"),
    "negative pax gid": (pax_block(rec("gid", "-5")) + ustar_block() + END, "gid"),
    "absurd pax uid": (pax_block(rec("uid", "9" * 16)) + ustar_block() + END, "uid"),
    "absurd pax mtime": (pax_block(rec("mtime", "9" * 26)) + ustar_block() + END, "mtime"),
    "absurd base-256 mtime": (ustar_block(mtime=b"\x80" + (1 << 80).to_bytes(11, "big")) + END, "mtime"),
    "non-octal mode": (ustar_block(mode=b"0000698\0") + END, "mode"),
    "non-octal size": (ustar_block(size=b"0000000009a\0") + END, "size"),
    "octal with underscore": (ustar_block(size=b"0_00000001\0\0") + END, "size"),
    "non-octal checksum": (ustar_block(checksum=b"12x456\0 ") + END, "checksum"),
    "pax record longer than the header": (pax_block(b"99 path=x\n") + ustar_block() + END, "pax"),
    "pax record length zero": (pax_block(b"0 path=x\n") + ustar_block() + END, "pax"),
    "pax record without '='": (pax_block(b"9 pathxx\n") + ustar_block() + END, "pax"),
    "pax path with a NUL": (pax_block(rec("path", "a\0b")) + ustar_block() + END, "pax"),
    "negative pax header size": (ustar_block(b"PaxHeader/f.txt", kind=b"x", size=b"\xff" * 12) + END, "size"),
    "truncated header": (ustar_block()[:300], "truncated"),
    "truncated data": (ustar_block(size=b"00000001000\0") + bytes(100), "truncated"),
}


@pytest.mark.parametrize("archive, what", IMPOSSIBLE_HEADERS.values(), ids=IMPOSSIBLE_HEADERS.keys())
def test_impossible_header_values_are_a_restore_error(tmp_path, archive, what):
    with time_limit(5), pytest.raises(RestoreError, match=what) as failure:
        restore_bytes(archive, tmp_path / "target")
    if what not in ("truncated", "checksum"):
        assert "f.txt" in str(failure.value)  # names the member
    assert not (tmp_path / "target").exists()


def test_honest_extremes_still_restore(tmp_path):
    """Negative and far-future mtimes, big ids and 0-byte files are real: the limits keep them."""
    archive = tar_bytes([
        (entry("old", mtime=-1_500_000_000), b"old"),
        (entry("future", mtime=9_000_000_000, uid=3_000_000, gid=4_000_000), b"future"),
        (entry("empty"), b""),
    ])
    restore_bytes(archive, tmp_path / "t")
    assert (tmp_path / "t" / "old").stat().st_mtime == -1_500_000_000
    assert (tmp_path / "t" / "future").read_bytes() == b"future"


# --- archive and index agree, entry for entry (issue 14 items 4 and 6) ----------------------


class EndlessZeros(io.RawIOBase):
    """`head`, then zeros for ever: a tar member that claims a terabyte, as a bomb decompresses."""

    def __init__(self, head: bytes):
        self.head, self.given = head, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = len(buffer)
        chunk = (self.head[self.given : self.given + n]).ljust(n, b"\0")
        buffer[:n] = chunk
        self.given += n
        return n


def test_a_member_bigger_than_its_index_entry_is_refused_before_its_data_is_written(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "app.txt").write_text("on disk")
    before = snapshot(target, skip_root_meta=False)
    stream = EndlessZeros(ustar_block(b"big", size=b"\x80" + (1 << 40).to_bytes(11, "big")))
    index = [{"path": "big", "type": "file", "size": 5, "sha256": sha(b"hello")}]
    with time_limit(10), pytest.raises(RestoreError, match=r"'big'.*1099511627776 bytes.*index.*5"):
        extract_archive(stream, str(target), index=index)
    assert stream.given < 4 * MiB  # refused at the header, not after a terabyte of zeros
    assert snapshot(target, skip_root_meta=False) == before


def test_a_bomb_through_zstd_is_refused_whole(tmp_path):
    """A small .tar.zst whose member decompresses to far more than the index says."""
    bomb = tar_bytes([(entry("ok.txt"), b"fine"), (entry("app.bin"), bytes(8 * MiB))])
    packed = io.BytesIO()
    with compressing_writer(packed, ZSTD) as out:
        out.write(bomb)
    assert len(packed.getvalue()) < 64 * 1024
    index = [{"path": "ok.txt", "type": "file", "size": 4, "sha256": sha(b"fine")},
             {"path": "app.bin", "type": "file", "size": 5, "sha256": sha(b"hello")}]
    target = tmp_path / "target"
    with pytest.raises(RestoreError, match="app.bin"):
        extract_archive(decompressing_reader(io.BytesIO(packed.getvalue()), ZSTD), str(target), index=index)
    assert not target.exists()


def test_the_total_must_match_the_manifest_content(tmp_path):
    archive, index, report = backup(tmp_path, [Root(str(make_backup_src(tmp_path)), ".")])
    records = index_records(index)
    assert restore(archive, tmp_path / "ok", index=records, content=report)["verified"] == report["files"] + report["hardlinks"]
    with pytest.raises(RestoreError, match="bytes"):
        restore(archive, tmp_path / "r1", index=records, content={**report, "bytes": report["bytes"] - 1})
    with pytest.raises(RestoreError, match="files"):
        restore(archive, tmp_path / "r2", index=records, content={**report, "files": report["files"] + 1})
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def make_backup_src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "dags").mkdir(parents=True)
    (src / "dags" / "a.py").write_text("a v1")
    (src / "top.txt").write_text("top")
    os.link(src / "top.txt", src / "dags" / "top-link")
    os.symlink("top.txt", src / "link")
    return src


def honest_archive_and_index():
    members = [(entry("dir", tarfile.DIRTYPE, mode=0o755), None), (entry("dir/a.txt"), b"aaa"),
               (entry("link", tarfile.SYMTYPE, linkname="dir/a.txt"), None),
               (entry("hard", tarfile.LNKTYPE, linkname="dir/a.txt"), None)]
    index = [{"path": "dir", "type": "dir"}, {"path": "dir/a.txt", "type": "file", "size": 3, "sha256": sha(b"aaa")},
             {"path": "link", "type": "symlink", "target": "dir/a.txt"},
             {"path": "hard", "type": "hardlink", "target": "dir/a.txt", "size": 3, "sha256": sha(b"aaa")}]
    return members, index


def test_the_index_reads_every_record_as_json_does_and_refuses_what_json_refuses():
    """read_index decodes with msgspec (issue 16) and hands msgspec's refusals to json.loads:
    the records, and the errors, must be json's exactly."""
    records = [
        {"path": os.fsdecode(b"latin1-\xe9.txt"), "type": "file", "size": 3},  # a lone surrogate: msgspec refuses it
        {"path": "caf\u00e9/\U0001f600", "mtime_ns": 2**63 - 1, "huge": 2**70, "ratio": 1.5e308},
        {"path": "nul\u0000name", "target": None, "flag": True},
    ]
    text = b"\n\n".join(json.dumps(r).encode() for r in records) + b"\n  \n"
    assert list(read_index(io.BytesIO(text))) == records == [json.loads(json.dumps(r)) for r in records]
    assert list(read_index(io.BytesIO(b'{"f": 1e400}'))) == [{"f": float("inf")}]  # json's reading, not an error
    for corrupt in (b'{"path": "a"} {"path": "b"}\n', b'{"path": "a",\n', b'{"a": NaN!}\n', b"\xff\n"):
        with pytest.raises(ValueError):  # json.JSONDecodeError / UnicodeDecodeError, as before
            list(read_index(io.BytesIO(corrupt)))


def test_an_archive_that_agrees_with_its_index_restores(tmp_path):
    members, index = honest_archive_and_index()
    report = restore_bytes(tar_bytes(members), tmp_path / "t", index=index, strict=True)
    assert report["verified"] == 2 and os.readlink(tmp_path / "t" / "link") == "dir/a.txt"


DISAGREEMENTS = {
    "symlink not in the index": (lambda m, i: (m + [(entry("sneaky", tarfile.SYMTYPE, linkname="/etc"), None)], i),
                                 "'sneaky'.*not in the index"),
    "directory not in the index": (lambda m, i: (m + [(entry("extra", tarfile.DIRTYPE), None)], i),
                                   "'extra'.*not in the index"),
    "file not in the index": (lambda m, i: (m + [(entry("extra.txt"), b"x")], i), "'extra.txt'.*not in the index"),
    "index entry not in the archive": (lambda m, i: (m, i + [{"path": "gone.txt", "type": "file", "size": 1,
                                                              "sha256": sha(b"g")}]), "not in the archive.*'gone.txt'"),
    "symlink target differs": (lambda m, i: (m[:2] + [(entry("link", tarfile.SYMTYPE, linkname="/etc/shadow"), None)]
                                             + m[3:], i), "'link'.*target"),
    "type differs": (lambda m, i: (m[:2] + [(entry("link"), b"now a file")] + m[3:], i), "'link'.*file.*symlink"),
    "hard link target differs": (lambda m, i: (m[:3] + [(entry("hard", tarfile.LNKTYPE, linkname="link"), None)], i),
                                 "'hard'.*target"),
    "hard link content differs": (lambda m, i: (m, i[:3] + [{**i[3], "sha256": sha(b"other")}]), "'hard'"),
    "twice in the archive": (lambda m, i: (m + [m[1]], i), "'dir/a.txt'.*twice"),
    "size differs": (lambda m, i: (m, [i[0], {**i[1], "size": 2}, *i[2:]]), "'dir/a.txt'.*3 bytes.*index.*2"),
}


@pytest.mark.parametrize("change", DISAGREEMENTS.values(), ids=DISAGREEMENTS.keys())
def test_an_archive_that_disagrees_with_its_index_is_refused_whole(tmp_path, change):
    members, index = change[0](*honest_archive_and_index())
    target = tmp_path / "target"
    target.mkdir()
    (target / "mine").write_text("mine")
    before = snapshot(target, skip_root_meta=False)
    for paths in (None, ["dir"]):
        with pytest.raises(RestoreError, match=change[1]):
            restore_bytes(tar_bytes(members), target, index=index, paths=paths)
        assert snapshot(target, skip_root_meta=False) == before


def test_an_entry_the_filesystem_cannot_hold_is_a_restore_error_naming_it(tmp_path):
    with pytest.raises(RestoreError, match="x{300}.*File name too long"):
        restore_bytes(tar_bytes([(entry("ok.txt"), b"ok"), (entry("x" * 300), b"a")]), tmp_path / "t")
    assert not (tmp_path / "t").exists()


# --- big and small files in one directory (files opened relative to it, issue 16) ----------


def big_file_backup(tmp_path: Path) -> tuple[Path, list[dict]]:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(3):  # big ones between small ones, all in one directory
        (src / "d" / f"big{i}.bin").write_bytes(os.urandom(MiB + i))
        (src / "d" / f"small{i}.txt").write_text(f"small {i}")
    archive, index, _ = backup(tmp_path, [Root(str(src), ".")])
    return archive, index_records(index)


def test_a_big_file_with_the_wrong_hash_fails_the_restore_and_leaves_the_target_alone(tmp_path):
    archive, records = big_file_backup(tmp_path)
    digests = {r["path"]: r["sha256"] for r in records if r["type"] == "file"}
    target = tmp_path / "target"
    target.mkdir()
    (target / "mine.txt").write_text("mine")
    before = snapshot(target, skip_root_meta=False)
    for wrong in ("d/big0.bin", "d/big2.bin"):  # the first and the last big file
        with pytest.raises(RestoreError, match=wrong):
            restore(archive, target, expected_sha256={**digests, wrong: "0" * 64})
        assert snapshot(target, skip_root_meta=False) == before
    tampered = [{**r, "sha256": "f" * 64} if r["path"] == "d/big1.bin" else r for r in records]
    with pytest.raises(RestoreError, match="d/big1.bin"):
        restore(archive, target, index=tampered)
    assert snapshot(target, skip_root_meta=False) == before
    report = restore(archive, target, index=records)
    assert report["verified"] == report["files"] == 6
    assert snapshot(target)["d/big2.bin"]["sha256"] == digests["d/big2.bin"]


@pytest.mark.parametrize("bad", ["g" * 64, "f" * 63, 0, ["f" * 64]])
def test_an_index_sha256_that_is_no_sha256_refuses_the_backup_before_anything_is_written(tmp_path, bad):
    archive, records = big_file_backup(tmp_path)
    tampered = [{**r, "sha256": bad} if r["path"] == "d/big1.bin" else r for r in records]
    with pytest.raises(RestoreError, match="index is corrupt: 'd/big1.bin' has no valid sha256"):
        restore(archive, tmp_path / "target", index=tampered)
    assert not (tmp_path / "target").exists()


def test_a_failing_write_is_a_restore_error_naming_the_file(tmp_path):
    archive, records = big_file_backup(tmp_path)
    target = tmp_path / "target"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MiB // 2, hard))  # Python ignores SIGXFSZ: write fails EFBIG
    try:
        with pytest.raises(RestoreError, match="d/big0.bin.*cannot be staged: File too large"):
            restore(archive, target, index=records)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert not target.exists()


def test_files_land_in_their_own_directories_when_the_archive_jumps_between_them(tmp_path, outside):
    """create() keeps the current directory open; an archive that goes back and forth between
    directories, or tries to turn one into a symlink in between, must not move a file."""
    members = [
        (entry("a", tarfile.DIRTYPE, mode=0o755), None),
        (entry("b", tarfile.DIRTYPE, mode=0o755), None),
        (entry("a/1"), b"a1"),
        (entry("b/2"), b"b2"),
        (entry("a/3"), b"a3"),
        (entry("a", tarfile.SYMTYPE, linkname=str(outside)), None),  # refused: a is a directory
        (entry("a/4"), b"a4"),
        (entry("c/deep/5"), b"c5"),
        (entry("a/6"), b"a6"),
    ]
    target = tmp_path / "target"
    report = restore_bytes(tar_bytes(members), target)
    assert {p: (target / p).read_bytes() for p in ("a/1", "b/2", "a/3", "a/4", "c/deep/5", "a/6")} == {
        "a/1": b"a1", "b/2": b"b2", "a/3": b"a3", "a/4": b"a4", "c/deep/5": b"c5", "a/6": b"a6"}
    assert (target / "a").is_dir() and not (target / "a").is_symlink()
    assert [r["path"] for r in report["refused"]] == ["a"]
    assert os.listdir(outside) == ["victim"] and (outside / "victim").read_text() == "original"


# --- mtimes: whole seconds in the header, nanoseconds in the index (issue 16) ----------------


def test_no_pax_header_only_for_an_mtime_and_the_restore_takes_the_nanoseconds_from_the_index(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a.txt").write_text("a")
    (src / "b.txt").write_text("b")
    os.symlink("a.txt", src / "d" / "link")
    for i, path in enumerate((src / "d" / "a.txt", src / "d" / "link", src / "b.txt", src / "d")):
        os.utime(path, ns=(T0, T0 + i * 1_000_001), follow_symlinks=False)
    archive, index, report = backup(tmp_path, [Root(str(src), ".")])
    with open(archive, "rb") as f:
        tar_data = decompressing_reader(f, ZSTD).read()
    with tarfile.open(fileobj=io.BytesIO(tar_data)) as tar:
        members = tar.getmembers()
    assert len(members) == 4 and all(m.pax_headers == {} for m in members)  # no extended header at all
    assert tar_data.count(b"ustar\x0000") == 4  # one header block per member
    assert {m.mtime for m in members} == {T0 // 10**9}
    records = index_records(index)
    assert sorted(r["mtime_ns"] for r in records) == [T0 + i * 1_000_001 for i in range(4)]

    restore(archive, tmp_path / "t", index=records, content=report)
    assert snapshot(tmp_path / "t") == snapshot(src)
    restore(archive, tmp_path / "no-index")
    assert snapshot(tmp_path / "no-index") == whole_seconds(snapshot(src)) != snapshot(src)


def pax_mtime_archive() -> tuple[bytes, list[dict]]:
    """An archive as this writer made them before issue 16 (a pax mtime with the nanoseconds on
    every member, the same in the index), and its index."""
    from gravitypm_ops.formats.tar.write import _pax_time

    times = {"d": T0 + 3_000_003, "d/a.txt": T0, "d/link": T0 + 1_000_001, "b.txt": T0 + 2_000_002,
             "old.txt": -1_500_000_000}
    members = [(entry("d", tarfile.DIRTYPE, mode=0o750), None), (entry("d/a.txt", mode=0o640), b"aaa"),
               (entry("d/link", tarfile.SYMTYPE, linkname="a.txt"), None), (entry("b.txt"), b"bb"),
               (entry("old.txt"), b"before 1970")]
    index = []
    for info, data in members:
        ns = times[info.name]
        info.mtime, info.pax_headers = ns // 10**9 if ns > 0 else 0, {"mtime": _pax_time(ns).decode()}
        kind = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink"}.get(info.type, "file")
        record = {"path": info.name, "type": kind, "mode": info.mode, "mtime_ns": ns}
        if data is not None:
            record.update(size=len(data), sha256=sha(data))
        if kind == "symlink":
            record["target"] = info.linkname
        index.append(record)
    return tar_bytes(members), index


def test_an_archive_with_pax_mtimes_restores_exactly_as_before(tmp_path):
    archive, index = pax_mtime_archive()
    assert archive.count(b"mtime=") == 5
    expected = {"d": T0 + 3_000_003, "d/a.txt": T0, "d/link": T0 + 1_000_001, "b.txt": T0 + 2_000_002,
                "old.txt": -1_500_000_000}
    for name, kwargs in (("with-index", {"index": index, "strict": True}), ("without", {})):
        restore_bytes(archive, tmp_path / name, **kwargs)
        found = snapshot(tmp_path / name)
        assert {p: e["mtime_ns"] for p, e in found.items()} == expected
        assert stat.S_IMODE(found["d/a.txt"]["mode"]) == 0o640 and stat.S_IMODE(found["d"]["mode"]) == 0o750
        assert (tmp_path / name / "d" / "a.txt").read_bytes() == b"aaa"


MTIME_DISAGREEMENTS = {
    # pax mtimes are exact: the index must say the same to the nanosecond
    "pax: one ns apart": (True, lambda ns: ns + 1),
    # a ustar header holds whole seconds: the index's must lie within that second
    "ustar: a second later": (False, lambda ns: ns // 10**9 * 10**9 + 10**9),
    "ustar: earlier": (False, lambda ns: ns // 10**9 * 10**9 - 1),
    "not a number": (False, lambda ns: str(ns)),
    "a float": (False, lambda ns: float(ns)),
    "past int64": (False, lambda ns: 1 << 63),
}


@pytest.mark.parametrize("pax, change", MTIME_DISAGREEMENTS.values(), ids=MTIME_DISAGREEMENTS.keys())
def test_an_mtime_the_index_disagrees_with_is_refused_whole(tmp_path, pax, change):
    if pax:
        archive, index = pax_mtime_archive()
    else:
        src = tmp_path / "src"
        src.mkdir()
        (src / "b.txt").write_text("bb")
        os.utime(src / "b.txt", ns=(T0, T0))
        path, _, _ = backup(tmp_path, [Root(str(src), ".")], ZSTD)
        with open(path, "rb") as f:
            archive = decompressing_reader(f, ZSTD).read()
        index = [{"path": "b.txt", "type": "file", "size": 2, "sha256": sha(b"bb"), "mtime_ns": T0}]
    restore_bytes(archive, tmp_path / "honest", index=index)  # as written, it restores
    assert os.stat(tmp_path / "honest" / "b.txt").st_mtime_ns == T0 + 2_000_002 * pax
    index = [{**r, "mtime_ns": change(r["mtime_ns"])} if r["path"] == "b.txt" else r for r in index]
    with pytest.raises(RestoreError, match="'b.txt'.*mtime differs from the index"):
        restore_bytes(archive, tmp_path / "t", index=index)
    assert not (tmp_path / "t").exists()
