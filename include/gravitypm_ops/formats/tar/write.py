"""The tar writer: a tree streamed into a pax archive and its file index at once (`archive_tree`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from gravitypm_ops.formats.tar.common import CHUNK, USTAR, BackupSourceError, CappedList, join_arcname
from gravitypm_ops.formats.tar.excludes import compile_excludes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Root:
    source: str  # absolute path of a file or directory
    arcname: str  # its path inside the archive, relative, no leading "/" ("." = the archive top)


def _clean_arcname(arcname: str) -> str:
    """"" for the archive top, else a normalised relative path; ValueError for anything else."""
    if arcname.startswith("/"):
        raise ValueError(f"Root.arcname {arcname!r} must be relative (no leading '/')")
    parts = [p for p in arcname.split("/") if p not in ("", ".")]
    if ".." in parts or "\0" in arcname:
        raise ValueError(f"Root.arcname {arcname!r} must not contain '..' or NUL")
    return "/".join(parts)


_SPECIAL = {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "char device", stat.S_IFBLK: "block device"}
_TYPEFLAG = {"file": b"0", "hardlink": b"1", "symlink": b"2", "dir": b"5"}
_ZERO_FIELD = b"0000000\0"


def _pax_record(key: str, value: bytes) -> bytes:
    """`<length> <key>=<value>\n`, where the length counts its own digits."""
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while length != len(str(length)) + len(body):
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _ustar(name: bytes, typeflag: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, link: bytes) -> bytes:
    block = bytearray(USTAR.pack(
        name, b"%07o\0" % mode, b"%07o\0" % uid, b"%07o\0" % gid, b"%011o\0" % size, b"%011o\0" % mtime,
        b" " * 8, typeflag, link, b"ustar\0", b"00", b"", b"", _ZERO_FIELD, _ZERO_FIELD, b"",
    ))
    block[148:156] = b"%06o\0 " % sum(block)  # checksum: all header bytes, its own field as spaces
    return bytes(block)


def _pax_time(ns: int) -> bytes:
    sign, (seconds, nanos) = ("-" if ns < 0 else ""), divmod(abs(ns), 10**9)
    return f"{sign}{seconds}.{nanos:09d}".encode()


def _tar_header(name: str, kind: str, mode: int, uid: int, gid: int, size: int, mtime_ns: int, link: str) -> bytes:
    """A ustar header, preceded by a pax extended header holding what ustar cannot."""
    records = []
    raw_name, raw_link, binary = _encode_path(name), _encode_path(link), False
    for key, raw, text in (("path", raw_name, name), ("linkpath", raw_link, link)):
        if len(raw) > 100 or not raw.isascii():
            records.append(_pax_record(key, raw))
            binary = binary or _not_utf8(text)
    numbers = {"uid": (uid, 8), "gid": (gid, 8), "size": (size, 12)}
    fields = {}
    for key, (value, width) in numbers.items():
        fits = 0 <= value < 8 ** (width - 1)
        fields[key] = value if fits else 0
        if not fits:
            records.append(_pax_record(key, str(value).encode()))
    # ustar holds whole, positive seconds. The nanoseconds are in the index, which the restore
    # checks every member against and sets the exact mtime from: a pax header per member only for
    # them doubled the headers a restore parses (issue 16). Outside ustar's range, pax keeps it exact.
    seconds = mtime_ns // 10**9
    if not 0 <= seconds < 8**11:
        records.append(_pax_record("mtime", _pax_time(mtime_ns)))
    mtime = seconds if 0 <= seconds < 8**11 else 0
    main = _ustar(raw_name[:100], _TYPEFLAG[kind], mode, fields["uid"], fields["gid"], fields["size"], mtime,
                  raw_link[:100])
    if not records:
        return main
    if binary:  # names that are not UTF-8 travel as raw bytes (POSIX: hdrcharset)
        records.insert(0, _pax_record("hdrcharset", b"BINARY"))
    data = b"".join(records)
    pax = _ustar(b"././@PaxHeader", b"x", 0, 0, 0, len(data), 0, b"")
    return pax + data + bytes(-len(data) % 512) + main


def _encode_path(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")  # undecodable names come back as their bytes


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _listing(path: str) -> Iterator[os.DirEntry]:
    """A directory's entries, read lazily; a failure to list names the directory."""
    try:
        with os.scandir(path) as entries:
            yield from entries
    except OSError as err:
        raise BackupSourceError(f"cannot list directory {path!r}: {err.strerror}") from None


def _open_source(path: str) -> int:
    """Open a regular file for reading, never through a symlink swapped in after listing."""
    # O_NONBLOCK: if a FIFO was swapped in, opening it must not wait for a writer (fstat then
    # tells it is no regular file); it changes nothing for regular files.
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)


class _Coalescer:
    """Gathers small writes (headers, small files) into ~1 MiB writes; big chunks pass straight on."""

    def __init__(self, write: Callable, size: int = CHUNK):
        self._write, self._size, self._buffer = write, size, bytearray()

    def write(self, data) -> None:
        if len(data) >= self._size:
            self.flush()
            self._write(data)
            return
        self._buffer += data
        if len(self._buffer) >= self._size:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._write(bytes(self._buffer))
            self._buffer.clear()


class _Archiver:
    """One run of archive_tree: walks roots, writes tar + index, builds the report."""

    def __init__(self, tar_out, index_out, excludes, progress):
        self.tar = _Coalescer(tar_out.write)
        self.index = _Coalescer(index_out.write, 256 << 10)
        self.excluded = compile_excludes(excludes)
        self.progress = progress or (lambda files, size: None)
        self.counts = dict.fromkeys(("files", "dirs", "symlinks", "hardlinks", "bytes", "excluded"), 0)
        self.skipped, self.changed = CappedList(), CappedList()
        self.links: dict[tuple[int, int], tuple[str, int, str]] = {}  # (dev, ino) -> (path, size, sha256)

    # -- walking --
    def add_root(self, root: Root) -> None:
        arcname = _clean_arcname(root.arcname)
        if arcname and self.excluded(arcname):
            self.counts["excluded"] += 1
            return
        source = os.path.realpath(root.source)  # a root that is a symlink: archive what it points to
        try:
            st = os.lstat(source)
        except OSError as err:
            raise BackupSourceError(f"cannot read backup root {root.source!r}: {err.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            if not arcname:
                raise ValueError(f"Root {root.source!r} is not a directory: it needs an arcname")
            self.add(source, arcname, st)
            return
        if arcname:
            self.add(source, arcname, st, descend=False)
        self.walk(source, arcname)

    def walk(self, top: str, top_arc: str) -> None:
        """Depth-first, each directory's content right after it (tar readers such as GNU tar set
        a directory's mtime once they leave it); entries in the order the directory lists them,
        read lazily, so a directory of a million files costs no memory. Holds one open
        directory per level of depth."""
        stack = [(_listing(top), top_arc)]
        while stack:
            listing, arc = stack[-1]
            entry = next(listing, None)
            if entry is None:
                stack.pop()
                continue
            child_arc = join_arcname(arc, entry.name)
            if self.excluded(child_arc):
                self.counts["excluded"] += 1
            elif self.add(entry.path, child_arc):
                stack.append((_listing(entry.path), child_arc))

    def add(self, path: str, arc: str, st: os.stat_result | None = None, descend: bool = True) -> bool:
        """Archive one entry; True if it is a directory to descend into."""
        if st is None:
            try:
                st = os.lstat(path)
            except OSError as err:  # listed a moment ago: it vanished or cannot be reached
                raise BackupSourceError(f"cannot read {path!r}: {err.strerror}") from None
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            self.record(self.header(arc, "dir", st))
            self.counts["dirs"] += 1
            return descend
        if kind == stat.S_IFLNK:
            try:
                target = os.readlink(path)
            except OSError as err:
                raise BackupSourceError(f"cannot read symlink {path!r}: {err.strerror}") from None
            self.record({**self.header(arc, "symlink", st, target=target), "target": target})
            self.counts["symlinks"] += 1
        elif kind == stat.S_IFREG:
            first = self.links.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
            if first is not None:
                link, size, digest = first
                record = self.header(arc, "hardlink", st, target=link)
                self.record({**record, "target": link, "size": size, "sha256": digest})
                self.counts["hardlinks"] += 1
            else:
                self.file(path, arc, st)
        else:
            self.skipped.add({"path": arc, "type": _SPECIAL.get(kind, "unknown")})
            log.warning("skipped %s (%s): not a file, directory or symlink", arc, _SPECIAL.get(kind, "unknown"))
        return False

    # -- writing --
    def header(self, arc: str, kind: str, st: os.stat_result, *, size: int = 0, target: str = "") -> dict:
        """Write one tar header; return the entry's index record for the caller to complete."""
        mode = stat.S_IMODE(st.st_mode)
        name = arc + "/" if kind == "dir" else arc
        self.tar.write(_tar_header(name, kind, mode, st.st_uid, st.st_gid, size, st.st_mtime_ns, target))
        return {"path": arc, "type": kind, "mode": mode, "uid": st.st_uid, "gid": st.st_gid,
                "mtime_ns": st.st_mtime_ns}

    def record(self, record: dict) -> None:
        self.index.write(json.dumps(record).encode() + b"\n")

    def file(self, path: str, arc: str, listed: os.stat_result) -> None:
        """Archive a regular file's bytes as of opening it; flag it if it changed meanwhile."""
        try:
            fd = _open_source(path)
        except OSError as err:
            raise BackupSourceError(f"cannot read {path!r}: {err.strerror}") from None
        try:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                raise BackupSourceError(f"{path!r} is no longer a regular file")
            size = opened.st_size  # the header promises exactly this many bytes
            record = self.header(arc, "file", opened, size=size)
            digest, short = self.copy(fd, size, path)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        self.record({**record, "size": size, "sha256": digest})
        self.counts["files"] += 1
        self.counts["bytes"] += size
        self.note_changes(arc, listed, opened, after, short)
        if listed.st_nlink > 1:
            self.links[(listed.st_dev, listed.st_ino)] = (arc, size, digest)
        self.progress(self.counts["files"], self.counts["bytes"])

    def copy(self, fd: int, size: int, path: str) -> tuple[str, int]:
        """Stream exactly `size` bytes (zero-filled if the file shrank) plus tar padding.
        Returns (sha256 of what was archived, bytes missing because the file shrank)."""
        sha = hashlib.sha256()
        left = size
        while left:
            try:
                data = os.read(fd, min(left, CHUNK))
            except OSError as err:
                raise BackupSourceError(f"cannot read {path!r}: {err.strerror}") from None
            if not data:  # shrank while read: keep the promised size; flagged as changed
                break
            sha.update(data)
            self.tar.write(data)
            left -= len(data)
            if size > CHUNK:
                self.progress(self.counts["files"], self.counts["bytes"] + size - left)
        short = left
        while left:
            zeros = bytes(min(left, CHUNK))
            sha.update(zeros)
            self.tar.write(zeros)
            left -= len(zeros)
        if size % 512:
            self.tar.write(bytes(512 - size % 512))
        return sha.hexdigest(), short

    def note_changes(self, arc, listed, opened, after, short) -> None:
        what = []
        if short or after.st_size != listed.st_size or opened.st_size != listed.st_size:
            what.append("size")
        if after.st_mtime_ns != listed.st_mtime_ns or opened.st_mtime_ns != listed.st_mtime_ns:
            what.append("mtime")
        if opened.st_ino != listed.st_ino:
            what.append("replaced")
        if what:
            self.changed.add({"path": arc, "changed": what})
            log.warning("%s changed while it was backed up (%s): its archived copy may be inconsistent",
                        arc, ", ".join(what))

    def finish(self) -> dict:
        self.tar.write(bytes(2 * 512))  # end-of-archive marker
        self.tar.flush()
        self.index.flush()
        return {
            **self.counts,
            "skipped": list(self.skipped), "skipped_count": self.skipped.total,
            "changed": list(self.changed), "changed_count": self.changed.total,
        }


def archive_tree(
    roots: list[Root],
    tar_out,
    index_out,
    *,
    excludes: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write a pax tar stream of `roots` to `tar_out.write` and the JSON-lines index to
    `index_out.write` (both bytes, uncompressed: wrap them in `compressing_writer`).

    Directories are walked depth-first in name order; symlinks are stored as links (a root that
    is itself a symlink is followed), hard links as links to the first path seen, sockets, FIFOs
    and devices are skipped and listed. `excludes`: see `compile_excludes`. A file that changes
    while read is archived as read and listed in "changed"; one that cannot be read raises
    BackupSourceError. `progress(files, bytes)` is called after each file and each MiB.
    Returns counts (files, dirs, symlinks, hardlinks, bytes, excluded), "skipped" and "changed"
    (the first LIST_LIMIT entries; the *_count fields hold the totals).
    """
    arcnames = [_clean_arcname(r.arcname) for r in roots]
    if len(set(arcnames)) != len(arcnames):
        raise ValueError(f"two roots share an arcname: {arcnames}")
    archiver = _Archiver(tar_out, index_out, excludes, progress)
    for root in roots:
        archiver.add_root(root)
    return archiver.finish()
