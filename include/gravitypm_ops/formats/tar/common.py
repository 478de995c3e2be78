"""What the tar writer and the safe extractor share: chunk size, report caps, errors."""

from __future__ import annotations

import logging
import struct

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # read/write unit for file data: large enough for few syscalls, small enough to queue
# Decompressed bytes come in chunks of this size, and the tar reader asks for as much: a smaller
# read would copy every chunk into pieces (256 MiB of copies on a 256 MiB restore, issue 16).
STREAM_CHUNK = 2 << 20
LIST_LIMIT = 1000  # report lists (skipped, changed, replaced, …) keep this many entries, then only count


class BackupSourceError(RuntimeError):
    """A source path cannot be read as a whole: the backup fails rather than silently miss it."""


class RestoreError(RuntimeError):
    """A restore cannot be completed as asked; the target was left as it was."""


def join_arcname(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


# ustar header (POSIX.1-1988 + pax, IEEE 1003.1-2001 "pax Header Block"): name, mode, uid, gid,
# size, mtime, checksum, typeflag, linkname, magic, version, uname, gname, devmajor, devminor,
# prefix, padding. Built by hand: Python's tarfile.TarInfo.tobuf costs ~40 us an entry, the time of
# hashing ~60 KiB, which dominated archives of many small files.
USTAR = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")


class CappedList(list):
    """A report list that keeps LIST_LIMIT entries and counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def add(self, item) -> None:
        self.total += 1
        if len(self) < LIST_LIMIT:
            self.append(item)
