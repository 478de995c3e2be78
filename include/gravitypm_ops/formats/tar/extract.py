"""Safe extraction: staged inside the target, checked against the index, moved into place all or nothing."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import zstandard

from gravitypm_ops.formats.tar.common import CHUNK, CappedList, RestoreError, join_arcname
from gravitypm_ops.formats.tar.hash_check import HashChecker
from gravitypm_ops.formats.tar.read import (
    FILE_TYPES,
    MTIME_NS_LIMIT,
    NO_DATA_TYPES,
    REFUSED_TYPES,
    Member,
    Refused,
    TarReader,
    safe_relpath,
)

log = logging.getLogger(__name__)
STAGING_PREFIX = ".gravitypm-restore-"


def _write_all(fd: int, data: memoryview) -> None:
    written = os.write(fd, data) if data else 0  # one call, nearly always
    while written < len(data):
        written += os.write(fd, data[written:])


def _umask() -> int:
    """The process umask, read without setting it (os.umask would, racing other threads);
    0o777 when unknown, so every file gets its fchmod."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o777


class _Selection:
    """Which archive paths a restore takes: all, or exact paths and directory prefixes."""

    def __init__(self, paths: Sequence[str] | None):
        self.paths = None
        if paths is not None:
            try:
                self.paths = {safe_relpath(p) for p in paths}
            except Refused as why:
                raise ValueError(f"restore paths must be archive paths (relative, no '..'): {why}") from None
            if "" in self.paths:
                self.paths = None  # "." asks for everything
        self.found: set[str] = set()

    def wants(self, rel: str) -> bool:
        if self.paths is None:
            return True
        probe = rel
        while True:  # rel itself, then each parent: O(depth), whatever the number of paths
            if probe in self.paths:
                self.found.add(probe)
                return True
            if "/" not in probe:
                return False
            probe = probe.rpartition("/")[0]

    def missing(self) -> list[str]:
        return [] if self.paths is None else sorted(self.paths - self.found)

    def scopes(self) -> list[str]:
        return [""] if self.paths is None else sorted(self.paths)


_KINDS = {b"5": "dir", b"2": "symlink", b"1": "hardlink", **dict.fromkeys(FILE_TYPES, "file")}
_CONTENT_COUNTS = {"file": "files", "dir": "dirs", "symlink": "symlinks", "hardlink": "hardlinks"}


def _digest(path: str, sha256) -> bytes | None:
    """An index record's sha256 (hex) as its 32 bytes; RestoreError if it is not one."""
    if sha256 is None:
        return None
    try:
        digest = bytes.fromhex(sha256) if type(sha256) is str and len(sha256) == 64 else b""
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise RestoreError(f"the file index is corrupt: {path[:200]!r} has no valid sha256")
    return digest


class _IndexCheck:
    """The archive must be exactly what its index (and the manifest's content) says, entry for
    entry: same paths, types, link targets, sizes, mtimes (hashes are checked as files are written).
    Checked on each header before any of its data is read, so a member that claims more bytes
    than its index entry (a decompression bomb) is refused before a byte of it is written.
    Any disagreement is a RestoreError: the backup is refused whole.

    mtimes: the writer leaves the nanoseconds to the index (a ustar header holds whole seconds,
    issue 16), so an index mtime within the header's second is the exact one and the member takes
    it; a pax mtime (older archives, times ustar cannot hold) must equal it. Index records without
    mtime_ns (hand-made indexes) leave the header's."""

    def __init__(self, index: Iterable[Mapping], content: Mapping | None):
        # Compact, as it grows with the file count (~280 bytes a file, BENCHMARKS.md): path -> (type, size,
        # sha256 as 32 bytes, target, mtime_ns, ordinal), and one "seen" byte per ordinal, not a set of paths.
        self.entries: dict[str, tuple] = {}
        for record in index:
            path = record.get("path")
            if not isinstance(path, str) or path in self.entries:
                raise RestoreError(f"the file index is corrupt: bad or repeated path {str(path)[:200]!r}")
            self.entries[path] = (record.get("type"), record.get("size"), _digest(path, record.get("sha256")),
                                  record.get("target"), record.get("mtime_ns"), len(self.entries))
        self.seen = bytearray(len(self.entries))
        self.seen_count = 0
        self.content = {k: v for k, v in (content or {}).items()
                        if k in ("bytes", *_CONTENT_COUNTS.values()) and type(v) is int}
        self.totals = dict.fromkeys(("bytes", *_CONTENT_COUNTS.values()), 0)

    def check(self, member: Member) -> str:
        """Checks `member` against its index entry; returns its safe relative path."""
        try:
            path = safe_relpath(member.name)
        except Refused as why:  # no index path can name it: an unsafe entry, whatever the index says
            raise RestoreError(f"the archive has an unsafe entry {member.name!r} ({why}), nothing was restored: "
                               "the backup is refused") from None
        entry = self.entries.get(path)
        if entry is None:
            raise RestoreError(f"{path!r} is in the archive but not in the index: the backup is refused")
        kind, size, digest, target, mtime_ns, ordinal = entry
        if self.seen[ordinal]:
            raise RestoreError(f"{path!r} is twice in the archive: the backup is refused")
        self.seen[ordinal] = 1
        self.seen_count += 1
        actual = _KINDS.get(member.type) or f"type {member.type!r}"
        if actual != kind:
            raise RestoreError(f"{path!r} is a {actual} in the archive, a {kind} in the index: the backup is refused")
        if kind in ("symlink", "hardlink") and member.linkname != target:
            raise RestoreError(f"{path!r}: the archive's link target differs from the index's: the backup is refused")
        if kind == "hardlink":
            first = self.entries.get(target)
            if first is None or not self.seen[first[5]] or first[0] != "file" or first[1:3] != (size, digest):
                raise RestoreError(f"{path!r}: hard link to {target!r}, which the index does not list as a file "
                                   "of that size and content: the backup is refused")
        if kind == "file":
            if member.size != size:
                raise RestoreError(f"{path!r}: the archive holds {member.size} bytes, the index says {size}: "
                                   "the backup is refused")
            self.totals["bytes"] += size
            if self.totals["bytes"] > self.content.get("bytes", self.totals["bytes"]):
                raise RestoreError(f"the archive holds more than the {self.content['bytes']} bytes of files "
                                   "the manifest records: the backup is refused")
        self.totals[_CONTENT_COUNTS[kind]] += 1
        if mtime_ns is not None and mtime_ns != member.mtime_ns:
            late = mtime_ns - member.mtime_ns if type(mtime_ns) is int else -1
            if not (member.mtime_whole_seconds and 0 <= late < 10**9 and abs(mtime_ns) < MTIME_NS_LIMIT):
                raise RestoreError(f"{path!r}: the archive's mtime differs from the index's: the backup is refused")
            member.mtime_ns = mtime_ns
        return path

    def digest(self, path: str) -> bytes | None:
        entry = self.entries.get(path)
        return entry[2] if entry else None

    def finish(self) -> None:
        """After the whole archive: nothing of the index missing, totals as the manifest says."""
        if self.seen_count != len(self.entries):
            missing = sorted(p for p, entry in self.entries.items() if not self.seen[entry[5]])
            raise RestoreError(f"{len(missing)} entr(y/ies) of the index not in the archive: {missing[:20]}: "
                               "the backup is refused")
        wrong = {k: (self.totals[k], v) for k, v in self.content.items() if self.totals[k] != v}
        if wrong:
            raise RestoreError(f"the archive differs from the manifest's content (archive, manifest): {wrong}: "
                               "the backup is refused")


class _Stager:
    """Extracts archive members into a fresh staging directory, refusing anything unsafe.

    Safety rests on three rules: names are relative without ".." (safe_relpath); every parent
    of an entry is a directory this run created (so a symlink or file of the archive can never
    be written through); files are created with O_EXCL|O_NOFOLLOW after removing whatever an
    earlier entry put at that path (so a hard or soft link is replaced, never followed).
    Hard links may only point at regular files staged earlier; devices and FIFOs are refused;
    setuid/setgid/sticky bits are dropped.
    """

    def __init__(self, root: str, selection: _Selection, expected_sha256: Mapping[str, str] | None,
                 index: _IndexCheck | None = None):
        self.root, self.selection, self.expected, self.index = root, selection, expected_sha256, index
        self.as_root = os.geteuid() == 0
        self.ids = (os.geteuid(), os.getegid())  # what new files get anyway: no chown needed
        self.umask = _umask()  # files are created with their mode: chmod only what the umask took away
        self.dirs_made = {""}  # staging-relative directories known to be real directories we made
        self.dir_meta: list[tuple[str, int, int, int, int]] = []  # applied after the move, deepest first
        self.counts = dict.fromkeys(("files", "dirs", "symlinks", "hardlinks", "bytes", "verified"), 0)
        self.restored, self.refused, self.neutralised = CappedList(), CappedList(), CappedList()
        self.pending_data = False  # the current member's data still has to be skipped
        self.hashing = expected_sha256 is not None or index is not None
        self.checker: HashChecker | None = None  # hashes the written files in a second process
        self.parent: tuple[str, int] | None = None  # (staging-relative dir, open fd) of the last file made

    def extract(self, tar_in) -> None:
        try:
            if self.hashing:
                self.checker = HashChecker()
            tar = TarReader(tar_in)
            while (member := tar.next()) is not None:
                self.member(tar, member)
            if self.index is not None:
                self.index.finish()
            while tar_in.read(CHUNK):  # to the end: the layers below check their trailers at EOF
                pass
            if self.checker is not None:
                self.checker.finish()  # every file's sha256 checked: only now may anything move
        except (EOFError, zstandard.ZstdError, gzip.BadGzipFile) as err:
            raise RestoreError(f"archive is corrupt or truncated: {err}") from None
        finally:
            if self.parent is not None:
                os.close(self.parent[1])
                self.parent = None
            if self.checker is not None:
                self.checker.close()

    def member(self, tar: TarReader, member: Member) -> None:
        is_file = member.type in FILE_TYPES
        self.pending_data = member.type not in NO_DATA_TYPES
        checked = self.index.check(member) if self.index is not None else None  # before any data is read
        try:
            rel = checked if checked is not None else safe_relpath(member.name)
            if not rel or (self.selection.paths is not None and not self.selection.wants(rel)):
                rel = None  # not restored ("." is the target itself, left as it is)
            elif is_file:
                self.file(tar, member, rel)
            elif member.type == b"5":
                self.directory(member, rel)
            elif member.type == b"2":
                self.symlink(member, rel)
            elif member.type == b"1":
                self.hardlink(member, rel)
            else:
                raise Refused(REFUSED_TYPES.get(member.type, "not a file, directory or link"))
        except Refused as why:
            rel = None
            self.refused.add({"path": member.name.rstrip("/") or member.name, "reason": str(why)})
            log.warning("restore refused %r: %s", member.name, why)
        except OSError as err:  # a name too long for the filesystem, a full disk, …: named, not raw
            raise RestoreError(f"{member.name[:300]!r}: cannot be staged: {err.strerror or err}") from None
        if self.pending_data:  # not read by file(): skip it to reach the next header
            tar.skip(member.size)
        if rel:
            self.restored.add(rel)
            if member.mode & 0o7000:
                self.neutralised.add({"path": rel, "dropped": "setuid/setgid/sticky bits"})

    # -- staging paths --
    def make_dirs(self, rel: str) -> str:
        """Create `rel` and its parents in staging as real directories; Refused if an earlier
        entry put a file or symlink on the way."""
        if rel in self.dirs_made:  # the common case: a sibling made it already
            return os.path.join(self.root, rel)
        done = ""
        for part in rel.split("/") if rel else ():
            done = join_arcname(done, part)
            if done in self.dirs_made:
                continue
            path = os.path.join(self.root, done)
            try:
                os.mkdir(path, 0o755)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    raise Refused(f"{done!r} is a symlink or file in the archive, not a directory") from None
            self.dirs_made.add(done)
        return os.path.join(self.root, rel)

    def clear(self, rel: str) -> str:
        """The staging path for a non-directory entry, with its parents made and any earlier
        entry of the same name removed (a later duplicate wins, as with tar)."""
        self.make_dirs(rel.rpartition("/")[0])
        path = os.path.join(self.root, rel)
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                raise Refused("a directory of the archive has the same path")
            os.unlink(path)
        except FileNotFoundError:
            pass
        return path

    def create(self, rel: str, mode: int) -> int:
        """A new staging file for `rel` (permission bits `mode`, less the umask), replacing an
        earlier entry of that name; never follows links. The staging directory is private (0700):
        nobody else can open the file before it is complete, whatever its mode.

        Opened relative to its parent directory's descriptor, kept open while the archive's
        entries stay in that directory (tar order): no path walk per file. The parent is a
        directory this run made (make_dirs), and no later entry can replace one (clear refuses).
        """
        parent, _, name = rel.rpartition("/")
        if self.parent is None or self.parent[0] != parent:
            fd = os.open(self.make_dirs(parent), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            if self.parent is not None:
                os.close(self.parent[1])
            self.parent = (parent, fd)
        # Readable too: the hash check reads the file back through this descriptor.
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags, mode, dir_fd=self.parent[1])
        except FileExistsError:
            return os.open(self.clear(rel), flags, mode)

    # -- entry kinds --
    def file(self, tar: TarReader, member: Member, rel: str) -> None:
        mode = member.mode & 0o777  # a descriptor opened at creation writes whatever mode the new file has
        digest = self.expected_digest(rel) if self.hashing else None
        fd = self.create(rel, mode)
        self.pending_data = False
        # Written here, not in a writer thread: each hand-over to a thread costs a GIL round trip,
        # more than a small file's few syscalls (measured: 2x slower on many small files, and
        # slower on big ones, issue 16). Hashing is another process's: see HashChecker.
        try:
            for data in tar.data(member.size):
                _write_all(fd, data)
            if mode & self.umask:
                os.fchmod(fd, mode)
            if self.as_root and (member.uid, member.gid) != self.ids:
                os.fchown(fd, member.uid, member.gid)
            os.utime(fd, ns=(member.mtime_ns, member.mtime_ns))
        except BaseException:
            os.close(fd)
            raise
        if self.checker is not None:
            self.checker.submit(fd, rel, digest, member.size)  # closes fd
            self.counts["verified"] += 1  # or the restore fails in checker.finish(), before any move
        else:
            os.close(fd)
        self.counts["files"] += 1
        self.counts["bytes"] += member.size

    def expected_digest(self, rel: str) -> bytes:
        """A file's sha256 (32 bytes) from the index; RestoreError if it is not listed."""
        if self.index is not None:
            expected = self.index.digest(rel)
        else:
            expected = self.expected.get(rel)
            expected = _digest(rel, expected) if expected is not None else None
        if expected is None:
            raise RestoreError(f"{rel!r} is in the archive but not in the index: refusing to restore unverified")
        return expected

    def directory(self, member, rel: str) -> None:
        self.make_dirs(rel)
        self.dir_meta.append((rel, member.mode & 0o777, member.mtime_ns, member.uid, member.gid))
        self.counts["dirs"] += 1

    def symlink(self, member, rel: str) -> None:
        path = self.clear(rel)
        os.symlink(member.linkname, path)  # stored as a link: never followed by the restore
        if self.as_root and (member.uid, member.gid) != self.ids:
            os.lchown(path, member.uid, member.gid)
        os.utime(path, ns=(member.mtime_ns, member.mtime_ns), follow_symlinks=False)
        self.counts["symlinks"] += 1

    def hardlink(self, member, rel: str) -> None:
        try:
            source_rel = safe_relpath(member.linkname)
        except Refused:
            raise Refused("hard link to outside the archive") from None
        source = os.path.join(self.root, source_rel)
        parent_ok = source_rel.rpartition("/")[0] in self.dirs_made
        if not (source_rel and parent_ok and os.path.isfile(source) and not os.path.islink(source)):
            raise Refused(f"hard link to {member.linkname!r}, which is not a file restored by this restore")
        os.link(source, self.clear(rel), follow_symlinks=False)
        self.counts["hardlinks"] += 1
        if self.index is not None:  # its content is its target's, verified above; the index agreed on both
            self.counts["verified"] += 1


def _walk_missing(staging: str, target: str, scope: str) -> Iterator[str]:
    """Paths under target/scope that the staged backup does not have (a directory the backup
    lacks is yielded once, not descended into). Symlinks on disk are never followed."""
    if not (_is_real_dir(staging, scope) and _is_real_dir(target, scope)):
        return  # a file was restored there, or the disk has no directory there (or a symlink)
    skip = os.path.basename(staging)
    stack = [scope]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(target, rel)) as it:
                entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name, is_dir in entries:
            if not rel and name == skip:
                continue
            child = join_arcname(rel, name)
            staged = os.path.join(staging, child)
            if not os.path.lexists(staged):
                yield child
            elif is_dir and os.path.isdir(staged) and not os.path.islink(staged):
                stack.append(child)


def _is_real_dir(top: str, rel: str) -> bool:
    """Whether top/rel is a directory reached without following any symlink."""
    path = top
    for part in rel.split("/") if rel else ():
        path = os.path.join(path, part)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return False
        except FileNotFoundError:
            return False
    return os.path.isdir(top)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)  # does not follow symlinks inside
    else:
        os.unlink(path)


def _move_into_place(staging: str, target: str, replaced: CappedList, refused: CappedList) -> None:
    """Move staged entries into the target, top-down. A path absent from the target moves whole
    (one rename, even for a directory tree); a file or symlink on disk is replaced by the
    backup's entry (rename over it, never through it); directories present on both sides merge."""
    stack = [""]
    while stack:
        rel = stack.pop()
        for name in sorted(os.listdir(os.path.join(staging, rel))):
            child = join_arcname(rel, name)
            src, dst = os.path.join(staging, child), os.path.join(target, child)
            src_is_dir = stat.S_ISDIR(os.lstat(src).st_mode)
            try:
                dst_mode = os.lstat(dst).st_mode
            except FileNotFoundError:
                os.rename(src, dst)
                continue
            if src_is_dir and stat.S_ISDIR(dst_mode):
                stack.append(child)
                continue
            if stat.S_ISDIR(dst_mode):
                try:
                    os.rmdir(dst)  # only an empty directory gives way to a file of the backup
                except OSError:
                    refused.add({"path": child, "reason": "a non-empty directory on disk is where the backup has a file"})
                    continue
            elif src_is_dir:
                os.unlink(dst)  # a file or symlink on disk where the backup has a directory
            os.replace(src, dst)
            replaced.add(child)


def _apply_dir_meta(target: str, dir_meta: list, as_root: bool) -> None:
    """Directory modes and mtimes, set last (adding entries changes a directory's mtime),
    deepest first (a read-only parent must not block its children)."""
    for rel, mode, mtime, uid, gid in sorted(dir_meta, reverse=True):
        try:
            fd = os.open(os.path.join(target, rel), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # refused or replaced by something else: nothing of ours to set
        try:
            if as_root:
                os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)


def extract_archive(
    tar_in,
    target: str,
    *,
    paths: Sequence[str] | None = None,
    expected_sha256: Mapping[str, str] | None = None,
    index: Iterable[Mapping] | None = None,
    content: Mapping | None = None,
    mirror: bool = False,
    confirm_mirror: bool = False,
    before_commit: Callable[[], None] | None = None,
    strict: bool = False,
) -> dict:
    """Restore an uncompressed tar stream (`tar_in.read`) into `target`, safely.

    Everything is first extracted into a staging directory inside `target` (same filesystem,
    so moving is a rename); only when the whole archive was read, every selected path found and
    every file matched `expected_sha256` (path -> sha256, e.g. from the index) is it moved into
    place — any failure before that leaves the target exactly as it was.

    - `paths`: restore only these archive paths (a file, or a directory and all below it).
    - `index`: the backup's file index records (see the package docstring). The archive must
      agree with it entry for entry — every member listed with the same type, link target,
      size and mtime (checked on the header, before any data is written: a member bigger than
      its entry is refused at once), every file's sha256 as listed, no entry twice, no index entry
      missing — and, with `content` (the manifest's content), the totals of bytes, files,
      dirs, symlinks and hard links must be the manifest's. The whole archive is checked
      whatever `paths` selects. Takes the place of `expected_sha256`. Exact (nanosecond) mtimes
      come from it: without it, an archive of this writer restores whole-second mtimes.
    - `before_commit` runs after staging, before anything moves (e.g. the artifact hash check).
    - `strict`: any refused entry fails the whole restore before anything moves (an archive
      with unsafe entries is crafted or corrupt: restore none of it into production).
    - Entries of the backup replace what is on disk at their path. Paths on disk (within the
      restored scope) that the backup lacks are left alone and listed, or with `mirror=True`
      and `confirm_mirror=True` removed.
    - Refused (listed, not written): absolute paths, "..", writes through a symlink or file,
      hard links to anything but a file this restore wrote, devices, FIFOs. setuid, setgid and
      sticky bits are dropped. Ownership (numeric) is restored only when running as root.

    Report lists (restored, replaced, left_alone, removed, refused, neutralised) hold the first
    LIST_LIMIT entries; `<name>_count` holds the totals.
    """
    if mirror and not confirm_mirror:
        raise ValueError("mirror=True deletes files that are not in the backup: pass confirm_mirror=True to do it")
    selection = _Selection(paths)
    with _staging_dir(os.path.abspath(target)) as (staging, target):
        checker = _IndexCheck(index, content) if index is not None else None
        stager = _Stager(staging, selection, expected_sha256, checker)
        stager.extract(tar_in)
        if missing := selection.missing():
            raise RestoreError(f"not in the archive: {missing[:20]}")
        if strict and stager.refused.total:
            raise RestoreError(
                f"the archive has {stager.refused.total} unsafe entr(y/ies), nothing was restored: "
                f"{list(stager.refused)[:5]}"
            )
        if before_commit is not None:
            before_commit()
        moved = _commit(staging, target, stager, selection, mirror)
    report = {**stager.counts, "ownership": "restored" if stager.as_root else "not restored (not running as root)"}
    lists = {"restored": stager.restored, **moved, "refused": stager.refused, "neutralised": stager.neutralised}
    for name, items in lists.items():
        report[name], report[f"{name}_count"] = list(items), items.total
    return report


@contextmanager
def _staging_dir(target: str):
    """A fresh staging directory inside `target` (same filesystem: moving out is a rename),
    removed afterwards. On failure the target is given back as it was: removed if this restore
    created it, else its own mtime (touched by the staging directory) is put back."""
    created = not os.path.lexists(target)
    os.makedirs(target, exist_ok=True)
    before = os.stat(target)
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target)
    try:
        yield staging, target
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        raise
    shutil.rmtree(staging, ignore_errors=True)


def _commit(staging: str, target: str, stager: _Stager, selection: _Selection, mirror: bool) -> dict:
    """Everything is staged and verified: list (or, mirroring, remove) what the backup lacks
    within the restored scope, move the staged entries in, then set directory metadata."""
    left_alone, removed, replaced = CappedList(), CappedList(), CappedList()
    for scope in selection.scopes():
        for rel in _walk_missing(staging, target, scope):
            if mirror:
                _remove(os.path.join(target, rel))
                removed.add(rel)
            else:
                left_alone.add(rel)
    _move_into_place(staging, target, replaced, stager.refused)
    _apply_dir_meta(target, stager.dir_meta, stager.as_root)
    return {"replaced": replaced, "left_alone": left_alone, "removed": removed}
