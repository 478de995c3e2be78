"""formats/tar/hash_check: restored files are hashed by a second process (issue 16), on real files.

The restore hands each written file's descriptor to a worker process, which reads the file back and
compares its SHA-256 with the index's. These tests check what that must not weaken: every file is
checked, a mismatch anywhere is named and fails the restore before anything moves, a dead worker
fails it too, and nothing (descriptor, process) outlives a restore.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import ClassVar

import psutil
import pytest

from gravitypm_ops.formats.tar import extract, hash_check
from gravitypm_ops.formats.tar.common import RestoreError
from gravitypm_ops.formats.tar.hash_check import HashChecker
from gravitypm_ops.formats.tar.write import Root
from tests.time_limit import time_limit
from tests.unit.formats.test_tar import backup, index_records, restore, snapshot

MANY = hash_check.MAX_FDS * hash_check.MAX_BATCHES * 2 + 7  # past the in-flight bound, a partial batch last


def many_files_backup(tmp_path: Path) -> tuple[Path, list[dict], dict]:
    src = tmp_path / "src"
    for i in range(MANY):
        directory = src / f"d{i // 100}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:04d}").write_bytes(os.urandom(i % 5000))
    archive, index, report = backup(tmp_path, [Root(str(src), ".")])
    return archive, index_records(index), report


class RecordedChecker(HashChecker):
    """The restore's HashChecker, remembered so the test can see what it left behind."""

    made: ClassVar[list[HashChecker]] = []

    def __init__(self) -> None:
        super().__init__()
        self.made.append(self)


def record_checkers(monkeypatch, checker: type[RecordedChecker] = RecordedChecker) -> list[HashChecker]:
    made: ClassVar[list[HashChecker]] = []
    monkeypatch.setattr(checker, "made", made)
    monkeypatch.setattr(extract, "HashChecker", checker)
    return made


def assert_nothing_left(tmp_path: Path, checkers: list[HashChecker]) -> None:
    """No descriptor into the test's files, every checker's socket closed and its worker reaped.

    Only what a restore could leave is looked at: this xdist worker may also host the session's
    stack, whose servers start and end processes and sockets of their own at any time."""
    into_tmp = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
                into_tmp.append(fd)
        except OSError:  # the listing's own descriptor, closed by now
            pass
    assert into_tmp == []
    assert checkers, "the restore started no hash check"
    for checker in checkers:
        assert checker._sock.fileno() == -1 and checker._worker.returncode is not None
    workers = []
    for child in psutil.Process().children():
        try:
            if hash_check.hash_worker.__file__ in child.cmdline():
                workers.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    assert workers == []


def test_every_file_is_checked_and_a_wrong_one_anywhere_is_named_before_anything_moves(tmp_path, monkeypatch):
    archive, records, report = many_files_backup(tmp_path)
    files = [r for r in records if r["type"] == "file"]
    target = tmp_path / "target"
    target.mkdir()
    (target / "mine.txt").write_text("mine")
    before = snapshot(target, skip_root_meta=False)
    checkers = record_checkers(monkeypatch)
    # the first file, one in a batch sent while others were in flight, the last (a partial batch)
    for wrong in (files[0], files[len(files) // 2], files[-1]):
        tampered = [{**r, "sha256": hashlib.sha256(b"other").hexdigest()} if r is wrong else r for r in records]
        with time_limit(30), pytest.raises(RestoreError, match=f"'{wrong['path']}': restored bytes differ"):
            restore(archive, target, index=tampered, content=report)
        assert snapshot(target, skip_root_meta=False) == before
    with time_limit(30):
        result = restore(archive, target, index=records, content=report)
    assert result["verified"] == result["files"] == MANY
    assert snapshot(target) == {**snapshot(tmp_path / "src"), "mine.txt": snapshot(target)["mine.txt"]}
    assert len(checkers) == 4  # one per restore
    assert_nothing_left(tmp_path, checkers)


def test_the_checker_hashes_what_is_on_disk(tmp_path):
    """The bytes compared are the file's, read back through the descriptor it was written with."""
    checker = HashChecker()
    try:
        for name, written, listed in (("same", b"abc", b"abc"), ("changed", b"abc", b"abd")):
            fd = os.open(tmp_path / name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, written)
            checker.submit(fd, name, hashlib.sha256(listed).digest(), len(written))
        with time_limit(10), pytest.raises(RestoreError, match="'changed': restored bytes differ"):
            checker.finish()
    finally:
        checker.close()
    assert checker._worker.returncode is not None


def test_a_worker_that_dies_fails_the_restore(tmp_path, monkeypatch):
    archive, records, report = many_files_backup(tmp_path)

    class DyingChecker(RecordedChecker):
        def submit(self, fd, rel, digest, size):
            if rel.endswith("f0300"):
                self._worker.kill()
                self._worker.wait()
            super().submit(fd, rel, digest, size)

    checkers = record_checkers(monkeypatch, DyingChecker)
    with time_limit(30), pytest.raises(RestoreError, match="the hash check stopped"):
        restore(archive, tmp_path / "target", index=records, content=report)
    assert not (tmp_path / "target").exists()
    assert_nothing_left(tmp_path, checkers)


def test_a_worker_that_cannot_start_is_a_restore_error_and_nothing_is_restored(tmp_path, monkeypatch):
    archive, records, report = many_files_backup(tmp_path)
    monkeypatch.setattr(hash_check.sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(RestoreError, match="cannot start the hash check.*no-python"):
        restore(archive, tmp_path / "target", index=records, content=report)
    assert not (tmp_path / "target").exists()


def test_a_restore_without_hashes_starts_no_worker(tmp_path, monkeypatch):
    archive, _, _ = many_files_backup(tmp_path)

    def no_checker():
        raise AssertionError("nothing to check: no worker is needed")

    monkeypatch.setattr(extract, "HashChecker", no_checker)
    assert restore(archive, tmp_path / "target")["files"] == MANY
