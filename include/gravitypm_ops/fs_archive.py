"""Stream directory trees into a tar archive plus a JSON-lines file index, and restore them safely.

Backup (`archive_tree`) writes two streams at once and never stages either:

- a POSIX **pax** tar stream (readable by GNU tar, bsdtar and Python's tarfile): ustar headers,
  plus a pax extended header where ustar cannot hold a value — long or non-ASCII paths and link
  targets, sub-second mtimes (nanoseconds, as ``mtime=<s>.<ns>``), sizes >= 8 GiB, large ids.
  Owner/group *names* are left empty: ownership is numeric. Hard links are ``LNKTYPE`` entries
  naming the first path of the inode. Regular files (sparse ones too) are stored as plain data.
- a **file index**, one JSON object per line and per archive entry, in archive order::

    {"path": "dags/a b.py", "type": "file", "size": 120, "mode": 420, "uid": 50000, "gid": 0,
     "mtime_ns": 1764230000123456789, "sha256": "…"}

  ``type`` is file | dir | symlink | hardlink; ``mode`` holds the permission bits (incl.
  setuid/setgid/sticky); symlink and hardlink records add ``target`` (the link text, or the
  archive path of the first link); hardlink records repeat size and sha256 of their content.
  Paths are archive paths: relative, "/"-separated, no trailing "/".

Compression is a separate stage (`compressing_writer`): zstd (multi-threaded) or gzip.

Reading, hashing and compressing overlap: the caller's thread walks, reads (``os.read``
releases the GIL) and hashes (so does hashlib); a thread of ours feeds zstd, whose own worker
threads compress on every core, and writes to the sink. On restore, decompression runs in a
thread ahead of the tar parsing and file writing. Headers are built and parsed here rather
than with `tarfile`, whose per-entry cost dominated trees of many small files.

Memory is bounded by a few MiB of queued chunks plus zstd's buffers, whatever the number or
size of files: directories are read lazily, the index is written as it goes, no tar header is
kept. What does grow: the inodes with several links (backup), and the restored directories'
names and metadata (restore) — in proportion to those, not to the files or bytes.

Nothing here logs file content; messages and reports name paths only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
import stat
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import zstandard

from gravitypm_ops.streaming import BackgroundCompressor, BackgroundGzip, prefetch

log = logging.getLogger(__name__)

__all__ = [
    "BackupSourceError",
    "Compression",
    "RestoreError",
    "Root",
    "archive_tree",
    "compile_excludes",
    "compressing_writer",
    "decompressing_reader",
    "extract_archive",
    "read_index",
]

CHUNK = 1 << 20  # read/write unit for file data: large enough for few syscalls, small enough to queue
LIST_LIMIT = 1000  # report lists (skipped, changed, replaced, …) keep this many entries, then only count
STAGING_PREFIX = ".gravitypm-restore-"


class BackupSourceError(RuntimeError):
    """A source path cannot be read as a whole: the backup fails rather than silently miss it."""


class RestoreError(RuntimeError):
    """A restore cannot be completed as asked; the target was left as it was."""


# --- compression ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Compression:
    algorithm: str = "zstd"
    level: int = 3

    LEVELS = {"zstd": (1, 19), "gzip": (1, 9)}

    def __post_init__(self) -> None:
        if self.algorithm not in self.LEVELS:
            raise ValueError(f"compression.algorithm: {self.algorithm!r} is not one of zstd, gzip")
        low, high = self.LEVELS[self.algorithm]
        if isinstance(self.level, bool) or not isinstance(self.level, int) or not low <= self.level <= high:
            raise ValueError(f"compression.level: {self.algorithm} takes an integer {low}..{high}, got {self.level!r}")

    @property
    def extension(self) -> str:
        return ".tar.zst" if self.algorithm == "zstd" else ".tar.gz"

    @classmethod
    def from_dict(cls, d: Mapping) -> Compression:
        if not isinstance(d, Mapping):
            raise ValueError(f"compression: expected a mapping like {{'algorithm': 'zstd', 'level': 3}}, got {d!r}")
        unknown = set(d) - {"algorithm", "level"}
        if unknown:
            raise ValueError(f"compression: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        algorithm = d.get("algorithm", "zstd")
        return cls(algorithm, d.get("level", 3 if algorithm == "zstd" else 6))

    def to_dict(self) -> dict:
        return {"algorithm": self.algorithm, "level": self.level}


@contextmanager
def compressing_writer(sink, compression: Compression) -> Iterator:
    """A writable that compresses into `sink.write`. The stream is finished (frame end / gzip
    trailer written) only when the block exits normally; on an exception it is left unfinished,
    so a truncated artifact can never pass for a whole one."""
    if compression.algorithm == "zstd":
        # One frame with a content checksum; zstd's own worker threads do the compressing.
        zstd = zstandard.ZstdCompressor(level=compression.level, threads=-1, write_checksum=True)
        stream = BackgroundCompressor(sink, zstd.compressobj(size=-1))
    else:
        stream = BackgroundGzip(sink, compresslevel=compression.level)
    try:
        yield stream
    except BaseException:
        stream.abort()
        raise
    stream.close()


class _ZstdFrameCheck:
    """Follows the zstd frame layout (RFC 8878 §3.1) over the compressed bytes, to tell a whole
    stream from a truncated one: python-zstandard's readers just stop at a cut-off frame."""

    MAGIC, SKIPPABLE = 0xFD2FB528, 0x184D2A50

    def __init__(self) -> None:
        self._head = bytearray()
        self._want, self._skip, self._state, self._frames, self._checksum = 4, 0, "magic", 0, 0

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            step = min(self._want - len(self._head), end - pos)
            self._head += data[pos : pos + step]
            pos += step
            if len(self._head) == self._want:
                head, self._head = bytes(self._head), bytearray()
                self._advance(head)

    def _expect(self, state: str, want: int, skip: int = 0) -> None:
        self._state, self._want, self._skip = state, want, skip

    def _advance(self, head: bytes) -> None:
        if self._state == "magic":
            magic = int.from_bytes(head, "little")
            if magic == self.MAGIC:
                self._expect("frame header", 1)
            elif magic & 0xFFFFFFF0 == self.SKIPPABLE:
                self._expect("skippable size", 4)
            else:
                raise RestoreError("not a zstd stream (bad frame magic)")
        elif self._state == "skippable size":
            self._expect("magic", 4, int.from_bytes(head, "little"))
        elif self._state == "frame header":
            fhd = head[0]
            single_segment = fhd >> 5 & 1
            size_field = (1 if single_segment else 0, 2, 4, 8)[fhd >> 6]
            rest = (0 if single_segment else 1) + (0, 1, 2, 4)[fhd & 3] + size_field
            self._checksum = fhd >> 2 & 1
            self._expect("block header", 3, rest)
        elif self._state == "block header":
            value = int.from_bytes(head, "little")
            last, kind, size = value & 1, value >> 1 & 3, value >> 3
            if kind == 3:
                raise RestoreError("corrupt zstd stream (reserved block type)")
            body = 1 if kind == 1 else size  # an RLE block stores its one byte
            if not last:
                self._expect("block header", 3, body)
            else:
                self._frames += 1
                self._expect("magic", 4, body + 4 * self._checksum)

    def finish(self) -> None:
        if self._frames == 0 or self._state != "magic" or self._head or self._skip:
            raise RestoreError("zstd stream is truncated (its last frame never ends)")


def _zstd_chunks(source) -> Iterator[bytes]:
    check = _ZstdFrameCheck()

    class Checked:  # python-zstandard pulls compressed bytes through this
        @staticmethod
        def read(n: int = -1) -> bytes:
            data = source.read(n)
            check.feed(data)
            return data

    reader = zstandard.ZstdDecompressor().stream_reader(Checked, read_size=CHUNK, read_across_frames=True)
    while data := reader.read(CHUNK):
        yield data
    check.finish()


def _gzip_chunks(source) -> Iterator[bytes]:
    first = source.read(CHUNK)
    if not first:  # GzipFile reads an empty stream as empty data; it is a stream cut at 0 bytes
        raise RestoreError("gzip stream is empty (truncated)")
    reader = gzip.GzipFile(fileobj=_ChunkReader(_chain(first, source)), mode="rb")
    while data := reader.read(CHUNK):  # raises EOFError on a cut-off stream
        yield data


def _chain(first: bytes, source) -> Iterator[bytes]:
    yield first
    while data := source.read(CHUNK):
        yield data


class _ChunkReader(io.BufferedIOBase):
    """A readable over an iterator of byte chunks; `read1` hands whole chunks over uncopied."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks, self._chunk, self._pos = chunks, b"", 0

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        if self._pos == len(self._chunk):
            self._chunk, self._pos = next(self._chunks, b""), 0
        if self._pos == 0 and (n < 0 or n >= len(self._chunk)):
            self._pos = len(self._chunk)
            return self._chunk
        end = len(self._chunk) if n < 0 else self._pos + n
        data, self._pos = self._chunk[self._pos : end], min(end, len(self._chunk))
        return data

    def read(self, n: int = -1) -> bytes:
        parts, want = [], n
        while want != 0 and (data := self.read1(want)):
            parts.append(data)
            want = want - len(data) if want > 0 else want
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def close(self) -> None:
        if hasattr(self._chunks, "close"):
            self._chunks.close()  # stops the prefetch thread
        super().close()


def decompressing_reader(source, compression: Compression):
    """A readable stream of the decompressed bytes of `source` (anything with `read(n)`).

    Decompression runs a few MiB ahead in a thread (zstd and zlib release the GIL), so it
    overlaps with whatever consumes the stream. A truncated stream raises at its end
    (RestoreError for zstd, EOFError for gzip) instead of looking like a shorter archive.
    """
    chunks = _zstd_chunks(source) if compression.algorithm == "zstd" else _gzip_chunks(source)
    return _ChunkReader(prefetch(chunks, batch=1, depth=8))


# --- excludes -------------------------------------------------------------------------------


def _glob_segment(segment: str) -> str:
    """One path segment of a glob as a regex: * and ? never cross "/"; [...] as in fnmatch."""
    out, i = [], 0
    while i < len(segment):
        c = segment[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (close := segment.find("]", i + 1 if segment[i : i + 1] in ("!", "]") else i)) != -1:
            body = segment[i:close]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = close + 1
        else:
            out.append(re.escape(c))
    return "".join(out)


def compile_excludes(patterns: Sequence[str]) -> Callable[[str], bool]:
    """A predicate telling whether an archive path is excluded.

    Rules: a pattern is matched against the whole archive path (relative, "/"-separated, as it
    appears in the index), anchored at the archive top — "*.tmp" matches "a.tmp" but not
    "x/a.tmp"; write "**/*.tmp" for any depth. A leading "/" or "./" is ignored. `*` matches
    any run of characters except "/", `?` one such character, `[abc]` / `[!abc]` a class; a
    `**` segment matches zero or more whole segments, so "logs/**" matches "logs" itself and
    everything below it, and "**/.cache/**" any ".cache" directory with its content.
    An excluded directory is not descended into: everything below it is left out too.
    """
    regexes = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip("/."):
            raise ValueError(f"exclude pattern {pattern!r} is empty or not a string")
        parts = [p for p in re.sub(r"^(\./|/)+", "", pattern).split("/") if p not in ("", ".")]
        regexes.append("".join("(?:[^/]+/)*" if p == "**" else _glob_segment(p) + "/" for p in parts))
    if not regexes:
        return lambda path: False
    matcher = re.compile("|".join(f"(?:{r})" for r in regexes), re.DOTALL)
    return lambda path: matcher.fullmatch(path + "/") is not None


# --- backup ---------------------------------------------------------------------------------


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


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


_SPECIAL = {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "char device", stat.S_IFBLK: "block device"}


# ustar header (POSIX.1-1988 + pax, IEEE 1003.1-2001 "pax Header Block"): name, mode, uid, gid,
# size, mtime, checksum, typeflag, linkname, magic, version, uname, gname, devmajor, devminor,
# prefix, padding. Built by hand: Python's tarfile.TarInfo.tobuf costs ~40 us an entry, the time of
# hashing ~60 KiB, which dominated archives of many small files.
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
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
    block = bytearray(_USTAR.pack(
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
    seconds = mtime_ns // 10**9
    if mtime_ns % 10**9 or not 0 <= seconds < 8**11:  # ustar holds whole, positive seconds
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


class _Capped(list):
    """A report list that keeps LIST_LIMIT entries and counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def add(self, item) -> None:
        self.total += 1
        if len(self) < LIST_LIMIT:
            self.append(item)


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
        self.skipped, self.changed = _Capped(), _Capped()
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
            child_arc = _join(arc, entry.name)
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


def read_index(stream) -> Iterator[dict]:
    """The records of a file index, one dict per line, read in chunks (any size of index)."""
    rest = b""
    while chunk := stream.read(CHUNK):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if rest.strip():
        yield json.loads(rest)


# --- restore --------------------------------------------------------------------------------


class _Refused(Exception):
    """An archive entry we will not write; its message is the reason reported."""


def _safe_relpath(name: str) -> str:
    """The normalised relative path of an archive name ("" = the top); _Refused if it could
    point outside the target."""
    if name.startswith("/"):
        raise _Refused("absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Refused("'..' in path")
    return "/".join(parts)


def _pax_time_ns(text: str) -> int:
    """A pax time ("1700000000.123456789", "-1.5") in ns, exactly (no float rounding)."""
    match = re.fullmatch(r"(-?)(\d+)(?:\.(\d*))?", text)
    if match is None:
        raise RestoreError(f"corrupt archive: bad pax time {text!r}")
    sign, seconds, fraction = match.groups()
    ns = int(seconds) * 10**9 + int((fraction or "").ljust(9, "0")[:9])
    return -ns if sign else ns


@dataclass
class _Member:
    name: str
    type: bytes  # the ustar typeflag
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str


_FILE_TYPES = (b"0", b"\0", b"7")  # regular, old-style regular, contiguous
_NO_DATA_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")  # as tarfile and GNU tar: no data blocks follow
_REFUSED_TYPES = {b"3": "device node (character)", b"4": "device node (block)", b"6": "FIFO"}
_ZERO_BLOCK = bytes(512)
_META_LIMIT = 1 << 20  # pax / GNU long-name payloads are small: a bigger one is a corrupt archive


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 (high bit set) for big values."""
    if field[:1] and field[0] & 0x80:  # the marker bit is not part of the value; 0xff… is negative
        if field[0] & 0x40:
            return int.from_bytes(field, "big", signed=True)
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise RestoreError(f"corrupt archive: bad number {text!r} in a header") from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    records, pos = {}, 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        length = int(data[pos:space]) if space > pos and data[pos:space].isdigit() else 0
        record = data[space + 1 : pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise RestoreError("corrupt archive: bad pax extended header")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class _TarReader:
    """Reads a tar stream member by member, front to back, without seeking: ustar headers,
    pax extended headers (path, linkpath, size, uid, gid, mtime), GNU long names.

    Written for the restore instead of using tarfile, whose header decoding costs ~50 µs a
    member and whose stream mode re-copies its buffer on every read. Strict: a bad checksum,
    a missing end-of-archive block or an unsupported kind of entry (sparse) is an error.
    """

    def __init__(self, stream):
        self._read = getattr(stream, "read1", stream.read)  # read1: whatever is at hand, uncopied
        self._view = memoryview(b"")

    def _fill(self) -> bool:
        if not self._view:
            self._view = memoryview(self._read(CHUNK))
        return bool(self._view)

    def _take(self, n: int) -> bytes:
        if len(self._view) >= n:  # the common case: one slice of the current chunk
            out, self._view = bytes(self._view[:n]), self._view[n:]
            return out
        parts = []
        while n:
            if not self._fill():
                raise RestoreError("archive is truncated")
            part, self._view = self._view[:n], self._view[n:]
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def data(self, size: int) -> Iterator[memoryview]:
        """The current member's bytes as slices of the stream's chunks (no copies), then its padding."""
        left = size
        while left:
            if not self._fill():
                raise RestoreError("archive is truncated")
            part, self._view = self._view[:left], self._view[left:]
            left -= len(part)
            yield part
        self._take(-size % 512)

    def skip(self, size: int) -> None:
        for _ in self.data(size):
            pass

    def next(self) -> _Member | None:
        """The next member (its data must be read or skipped before the next call), None at the end."""
        pax: dict[str, str] = {}
        long_name = long_link = None
        while True:
            if not self._fill():
                raise RestoreError("archive is truncated (no end-of-archive block)")
            block = self._take(512)
            if block == _ZERO_BLOCK:
                return None
            fields = _USTAR.unpack(block)
            _check_sum(block, fields[6])
            kind, size = fields[7], _number(fields[4])
            if kind not in (b"x", b"g", b"L", b"K"):
                return _member(fields, size, pax, long_name, long_link)
            if size > _META_LIMIT:
                raise RestoreError("corrupt archive: oversized extended header")
            payload = self._take(size + -size % 512)[:size]
            if kind == b"x":
                pax.update(_pax_records(payload))
            elif kind == b"L":
                long_name = _text(payload)
            elif kind == b"K":
                long_link = _text(payload)
            # b"g" (global defaults) is ignored


def _check_sum(block: bytes, stored_field: bytes) -> None:
    stored = _number(stored_field)
    unsigned = sum(block) - sum(stored_field) + 256  # the checksum field counts as 8 spaces
    if stored != unsigned and stored != sum(struct.unpack("148b8x356b", block)) + 256:  # old tars: signed
        raise RestoreError("corrupt archive: header checksum mismatch")


def _member(fields: tuple, size: int, pax: dict, long_name: str | None, long_link: str | None) -> _Member:
    """A member from its ustar fields (see _USTAR), overridden by pax records and GNU long names."""
    name, mode, uid, gid, _, mtime, _, kind, link, magic, version, _, _, _, _, prefix = fields
    if kind == b"S" or any(key.startswith("GNU.sparse") for key in pax):
        raise RestoreError("archive has sparse-format entries, which this restore does not support")
    if "path" in pax:
        name = pax["path"]
    elif long_name is not None:
        name = long_name
    else:
        name = _text(name)
        if magic + version == b"ustar\x0000" and prefix[:1] != b"\0":  # POSIX ustar splits long names
            name = _text(prefix) + "/" + name
    if kind == b"\0" and name.endswith("/"):
        kind = b"5"  # pre-POSIX tars mark directories by the trailing slash only
    try:
        return _Member(
            name=name, type=kind, mode=_number(mode), size=int(pax.get("size", size)),
            uid=int(pax["uid"]) if "uid" in pax else _number(uid),
            gid=int(pax["gid"]) if "gid" in pax else _number(gid),
            mtime_ns=_pax_time_ns(pax["mtime"]) if "mtime" in pax else _number(mtime) * 10**9,
            linkname=pax.get("linkpath", long_link if long_link is not None else _text(link)),
        )
    except ValueError:
        raise RestoreError("corrupt archive: bad number in a pax header") from None


def _write_all(fd: int, data) -> None:
    with memoryview(data) as view:
        while view:
            view = view[os.write(fd, view) :]


class _Selection:
    """Which archive paths a restore takes: all, or exact paths and directory prefixes."""

    def __init__(self, paths: Sequence[str] | None):
        self.paths = None
        if paths is not None:
            try:
                self.paths = {_safe_relpath(p) for p in paths}
            except _Refused as why:
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


class _Stager:
    """Extracts archive members into a fresh staging directory, refusing anything unsafe.

    Safety rests on three rules: names are relative without ".." (_safe_relpath); every parent
    of an entry is a directory this run created (so a symlink or file of the archive can never
    be written through); files are created with O_EXCL|O_NOFOLLOW after removing whatever an
    earlier entry put at that path (so a hard or soft link is replaced, never followed).
    Hard links may only point at regular files staged earlier; devices and FIFOs are refused;
    setuid/setgid/sticky bits are dropped.
    """

    def __init__(self, root: str, selection: _Selection, expected_sha256: Mapping[str, str] | None):
        self.root, self.selection, self.expected = root, selection, expected_sha256
        self.as_root = os.geteuid() == 0
        self.ids = (os.geteuid(), os.getegid())  # what new files get anyway: no chown needed
        self.dirs_made = {""}  # staging-relative directories known to be real directories we made
        self.dir_meta: list[tuple[str, int, int, int, int]] = []  # applied after the move, deepest first
        self.counts = dict.fromkeys(("files", "dirs", "symlinks", "hardlinks", "bytes", "verified"), 0)
        self.restored, self.refused, self.neutralised = _Capped(), _Capped(), _Capped()
        self.pending_data = False  # the current member's data still has to be skipped

    def extract(self, tar_in) -> None:
        try:
            tar = _TarReader(tar_in)
            while (member := tar.next()) is not None:
                self.member(tar, member)
            while tar_in.read(CHUNK):  # to the end: the layers below check their trailers at EOF
                pass
        except (EOFError, zstandard.ZstdError, gzip.BadGzipFile) as err:
            raise RestoreError(f"archive is corrupt or truncated: {err}") from None

    def member(self, tar: _TarReader, member: _Member) -> None:
        is_file = member.type in _FILE_TYPES
        self.pending_data = member.type not in _NO_DATA_TYPES
        try:
            rel = _safe_relpath(member.name)
            if not rel or not self.selection.wants(rel):
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
                raise _Refused(_REFUSED_TYPES.get(member.type, "not a file, directory or link"))
        except _Refused as why:
            rel = None
            self.refused.add({"path": member.name.rstrip("/") or member.name, "reason": str(why)})
            log.warning("restore refused %r: %s", member.name, why)
        if self.pending_data:  # not read by file(): skip it to reach the next header
            tar.skip(member.size)
        if rel:
            self.restored.add(rel)
            if member.mode & 0o7000:
                self.neutralised.add({"path": rel, "dropped": "setuid/setgid/sticky bits"})

    # -- staging paths --
    def make_dirs(self, rel: str) -> str:
        """Create `rel` and its parents in staging as real directories; _Refused if an earlier
        entry put a file or symlink on the way."""
        if rel in self.dirs_made:  # the common case: a sibling made it already
            return os.path.join(self.root, rel)
        done = ""
        for part in rel.split("/") if rel else ():
            done = _join(done, part)
            if done in self.dirs_made:
                continue
            path = os.path.join(self.root, done)
            try:
                os.mkdir(path, 0o755)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    raise _Refused(f"{done!r} is a symlink or file in the archive, not a directory") from None
            self.dirs_made.add(done)
        return os.path.join(self.root, rel)

    def clear(self, rel: str) -> str:
        """The staging path for a non-directory entry, with its parents made and any earlier
        entry of the same name removed (a later duplicate wins, as with tar)."""
        self.make_dirs(rel.rpartition("/")[0])
        path = os.path.join(self.root, rel)
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                raise _Refused("a directory of the archive has the same path")
            os.unlink(path)
        except FileNotFoundError:
            pass
        return path

    def create(self, rel: str) -> int:
        """A new staging file for `rel`, replacing an earlier entry of that name; never follows links."""
        path = os.path.join(self.make_dirs(rel.rpartition("/")[0]), rel.rpartition("/")[2])
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(path, flags, 0o600)
        except FileExistsError:
            return os.open(self.clear(rel), flags, 0o600)

    # -- entry kinds --
    def file(self, tar: _TarReader, member: _Member, rel: str) -> None:
        fd = self.create(rel)
        sha = hashlib.sha256() if self.expected is not None else None
        self.pending_data = False
        # Written and hashed here, not in a writer thread: each hand-over to a thread costs a
        # GIL round trip, more than a small file's few syscalls (measured: 2x slower on many
        # small files, no gain on big ones — decompression already runs in its own thread).
        try:
            for data in tar.data(member.size):
                if sha:
                    sha.update(data)
                _write_all(fd, data)
            if sha:
                self.verify(rel, sha.hexdigest())
            self.set_meta(fd, member)
        finally:
            os.close(fd)
        self.counts["files"] += 1
        self.counts["bytes"] += member.size

    def verify(self, rel: str, digest: str) -> None:
        expected = self.expected.get(rel)
        if expected is None:
            raise RestoreError(f"{rel!r} is in the archive but not in the index: refusing to restore unverified")
        if digest != expected:
            raise RestoreError(f"{rel!r}: restored bytes have sha256 {digest[:16]}…, the index says {expected[:16]}…")
        self.counts["verified"] += 1

    def set_meta(self, fd: int, member) -> None:
        os.fchmod(fd, member.mode & 0o777)
        if self.as_root and (member.uid, member.gid) != self.ids:
            os.fchown(fd, member.uid, member.gid)
        os.utime(fd, ns=(member.mtime_ns, member.mtime_ns))

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
            source_rel = _safe_relpath(member.linkname)
        except _Refused:
            raise _Refused("hard link to outside the archive") from None
        source = os.path.join(self.root, source_rel)
        parent_ok = source_rel.rpartition("/")[0] in self.dirs_made
        if not (source_rel and parent_ok and os.path.isfile(source) and not os.path.islink(source)):
            raise _Refused(f"hard link to {member.linkname!r}, which is not a file restored by this restore")
        os.link(source, self.clear(rel), follow_symlinks=False)
        self.counts["hardlinks"] += 1


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
            child = _join(rel, name)
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


def _move_into_place(staging: str, target: str, replaced: _Capped, refused: _Capped) -> None:
    """Move staged entries into the target, top-down. A path absent from the target moves whole
    (one rename, even for a directory tree); a file or symlink on disk is replaced by the
    backup's entry (rename over it, never through it); directories present on both sides merge."""
    stack = [""]
    while stack:
        rel = stack.pop()
        for name in sorted(os.listdir(os.path.join(staging, rel))):
            child = _join(rel, name)
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
        stager = _Stager(staging, selection, expected_sha256)
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
    left_alone, removed, replaced = _Capped(), _Capped(), _Capped()
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
