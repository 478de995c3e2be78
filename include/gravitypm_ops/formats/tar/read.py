"""A strict streaming tar reader: every header field checked before it is trusted."""

from __future__ import annotations

import logging
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gravitypm_ops.formats.tar.common import STREAM_CHUNK, USTAR, RestoreError

log = logging.getLogger(__name__)


class Refused(Exception):
    """An archive entry we will not write; its message is the reason reported."""


def safe_relpath(name: str) -> str:
    """The normalised relative path of an archive name ("" = the top); Refused if it could
    point outside the target."""
    if name.startswith("/"):
        raise Refused("absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Refused("'..' in path")
    return "/".join(parts)


# Limits on header values. Anything outside is no file this project backs up: a corrupt or crafted
# archive, refused before any of it is trusted (a negative size once sent the reader into an
# endless loop; an absurd one asks the restore to write terabytes a 65 KB archive cannot hold).
MAX_SIZE = 1 << 43  # 8 TiB: bigger than any file of an app host, far below what int64 offsets hold
MAX_ID = (1 << 32) - 2  # uid_t/gid_t; (uid_t)-1 means "leave unchanged" to chown
MAX_MODE = 0o7777777  # the 7 octal digits of the ustar field (file-type bits included by some tars)
MTIME_NS_LIMIT = 1 << 63  # os.utime takes int64 nanoseconds: about ±292 years around 1970
_DECIMAL = re.compile(r"[0-9]{1,20}", re.ASCII)  # int() would also take " 12", "+1", "1_0", "١٢"
# The numeric fields (mode, uid, gid, size, mtime, checksum) laid out as honest writers (this one,
# GNU tar, tarfile) write them: zero-padded octal digits, NUL (the checksum: six digits, NUL,
# space). One match checks all six, one unpack cuts them out; any other form takes the
# field-by-field path (_number).
_PLAIN_NUMBERS = re.compile(rb"[0-7]{7}\0[0-7]{7}\0[0-7]{7}\0[0-7]{11}\0[0-7]{11}\0[0-7]{6}\0 ")
_NUMBER_FIELDS = struct.Struct("100x7sx7sx7sx11sx11sx6s")
_OCTAL = (8,) * 6
_PAX_TIME = re.compile(r"(-?)([0-9]{1,12})(?:\.([0-9]*))?", re.ASCII)


def _pax_time_ns(text: str, name: str = "?") -> int:
    """A pax time ("1700000000.123456789", "-1.5") in ns, exactly (no float rounding)."""
    match = _PAX_TIME.fullmatch(text)
    if match is None or len(text) > 64:
        raise RestoreError(f"corrupt archive: {name!r}: bad pax mtime {text[:40]!r}")
    sign, seconds, fraction = match.groups()
    ns = int(seconds) * 10**9 + int((fraction or "").ljust(9, "0")[:9])
    return -ns if sign else ns


@dataclass(slots=True)
class Member:
    name: str
    type: bytes  # the ustar typeflag
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str
    mtime_whole_seconds: bool = False  # from the ustar field: the exact time may be up to 1 s later


FILE_TYPES = (b"0", b"\0", b"7")  # regular, old-style regular, contiguous
NO_DATA_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")  # as tarfile and GNU tar: no data blocks follow
REFUSED_TYPES = {b"3": "device node (character)", b"4": "device node (block)", b"6": "FIFO"}
_ZERO_BLOCK = bytes(512)
_META_LIMIT = 1 << 20  # pax / GNU long-name payloads are small: a bigger one is a corrupt archive


def _number(field: bytes, what: str = "number", name: str = "?") -> int:
    """A numeric header field: octal text, or GNU base-256 (high bit set) for big values.
    Signed (base-256 can say -1): the caller checks the range of each field."""
    if field[:1] and field[0] & 0x80:  # the marker bit is not part of the value; 0xff… is negative
        if field[0] & 0x40:
            return int.from_bytes(field, "big", signed=True)
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")  # old tars pad with spaces
    if not text:
        return 0
    if text.isdigit():  # ASCII digits only: int(…, 8) alone would also take "-7", "+7", "0_7", "0o7"
        try:
            return int(text, 8)
        except ValueError:  # an 8 or a 9
            pass
    raise RestoreError(f"corrupt archive: {name!r}: {what} field {text[:12]!r} is not an octal number")


def _checked(value: int, what: str, name: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise RestoreError(f"corrupt archive: {name!r}: impossible {what} {value} (allowed {low}..{high})")
    return value


def _pax_int(pax: dict, key: str, name: str) -> int:
    text = pax[key]
    if not _DECIMAL.fullmatch(text):
        raise RestoreError(f"corrupt archive: {name!r}: pax {key} {text[:40]!r} is not a decimal number")
    return int(text)


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    """`<length> <key>=<value>\n` records; ValueError (the reason) for anything else."""
    records, pos = {}, 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos, pos + 21)
        digits = data[pos:space] if space > pos else b""
        if not (digits and digits.isdigit()):  # bytes.isdigit: ASCII digits only
            raise ValueError(f"bad pax record length at byte {pos}")
        end = pos + int(digits)
        if not space + 1 < end <= len(data):
            raise ValueError(f"pax record length {int(digits)} at byte {pos} does not fit the header")
        record = data[space + 1 : end]
        key, eq, value = record[:-1].partition(b"=")
        if not (record.endswith(b"\n") and eq and key):
            raise ValueError(f"malformed pax record at byte {pos}")
        key_text = key.decode("utf-8", "surrogateescape")
        if key_text in ("path", "linkpath") and b"\0" in value:
            raise ValueError(f"NUL byte in pax {key_text}")
        records[key_text] = value.decode("utf-8", "surrogateescape")
        pos = end
    return records


class TarReader:
    """Reads a tar stream member by member, front to back, without seeking: ustar headers,
    pax extended headers (path, linkpath, size, uid, gid, mtime), GNU long names.

    Written for the restore instead of using tarfile, whose header decoding costs ~50 µs a
    member and whose stream mode re-copies its buffer on every read. Strict: a bad checksum,
    a missing end-of-archive block or an unsupported kind of entry (sparse) is an error.
    """

    def __init__(self, stream):
        self._read = getattr(stream, "read1", stream.read)  # read1: whatever is at hand, uncopied
        self._view = memoryview(b"")
        self._last = None  # the last member returned: named when the archive turns out truncated

    def _truncated(self) -> RestoreError:
        where = f" (in or after {self._last!r})" if self._last is not None else ""
        return RestoreError(f"archive is truncated{where}")

    def _fill(self) -> bool:
        if not self._view:
            self._view = memoryview(self._read(STREAM_CHUNK))
        return bool(self._view)

    def _take(self, n: int) -> bytes:
        if len(self._view) >= n:  # the common case: one slice of the current chunk
            out, self._view = bytes(self._view[:n]), self._view[n:]
            return out
        parts = []
        while n:
            if not self._fill():
                raise self._truncated()
            part, self._view = self._view[:n], self._view[n:]
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def data(self, size: int) -> Iterable[memoryview]:
        """The current member's bytes as slices of the stream's chunks (no copies); its padding
        is consumed with them."""
        if not 0 <= size <= MAX_SIZE:  # a negative size would never count down to 0
            raise RestoreError(f"corrupt archive: {self._last!r}: impossible size {size}")
        padded = size + -size % 512
        if padded <= len(self._view):  # a small file, whole in the chunk at hand: no generator
            data, self._view = self._view[:size], self._view[padded:]
            return (data,)
        return self._chunks(size)

    def _chunks(self, size: int) -> Iterator[memoryview]:
        left = size
        while left:
            if not self._fill():
                raise self._truncated()
            part, self._view = self._view[:left], self._view[left:]
            left -= len(part)
            yield part
        self._take(-size % 512)

    def skip(self, size: int) -> None:
        for _ in self.data(size):
            pass

    def next(self) -> Member | None:
        """The next member (its data must be read or skipped before the next call), None at the end."""
        pax: dict[str, str] = {}
        long_name = long_link = None
        pax_error = None  # reported with the name of the header it precedes
        while True:
            if not self._fill():
                raise RestoreError(f"{self._truncated()} (no end-of-archive block)")
            block = self._take(512)
            label = _Label(block, pax, long_name)  # the header's name, for error messages only
            if pax_error is not None:
                raise RestoreError(f"corrupt archive: {label!r}: bad pax extended header: {pax_error}")
            if block == _ZERO_BLOCK:
                return None
            fields = USTAR.unpack(block)
            plain = _PLAIN_NUMBERS.match(block, 100) is not None
            numbers = list(map(int, _NUMBER_FIELDS.unpack_from(block), _OCTAL)) if plain else None
            _check_sum(block, numbers[5] if numbers else _number(fields[6], "checksum", label), label)
            kind = fields[7]
            size = _checked(numbers[3] if numbers else _number(fields[4], "size", label), "size", label, 0, MAX_SIZE)
            if kind not in (b"x", b"g", b"L", b"K"):
                member = _member(fields, numbers, size, pax, long_name, long_link)
                self._last = member.name
                return member
            if size > _META_LIMIT:
                raise RestoreError(f"corrupt archive: {label!r}: oversized extended header ({size} bytes)")
            payload = self._take(size + -size % 512)[:size]
            if kind == b"x":
                try:
                    pax.update(_pax_records(payload))
                except ValueError as why:
                    pax_error = str(why)
            elif kind == b"L":
                long_name = _text(payload)
            elif kind == b"K":
                long_link = _text(payload)
            # b"g" (global defaults) is ignored


class _Label:
    """An error message's name for the header being read, worked out only if a message needs it."""

    __slots__ = ("block", "long_name", "pax")

    def __init__(self, block: bytes, pax: dict, long_name: str | None):
        self.block, self.pax, self.long_name = block, pax, long_name

    def __str__(self) -> str:
        return self.pax.get("path") or self.long_name or _text(self.block[:100])

    def __repr__(self) -> str:
        return repr(str(self))


def _byte_sum(block: bytes) -> int:
    """sum(block) of a 512-byte block, 3x faster: adler32's low 16 bits are 1 + the byte sum
    modulo 65521, and 256 bytes sum to at most 65280, so each half's is exact."""
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def _check_sum(block: bytes, stored: int, name: str) -> None:
    unsigned = _byte_sum(block) - sum(block[148:156]) + 256  # the checksum field counts as 8 spaces
    if stored != unsigned and stored != sum(struct.unpack("148b8x356b", block)) + 256:  # old tars: signed
        raise RestoreError(f"corrupt archive: header checksum mismatch (header of {name!r})")


def _member(fields: tuple, numbers: list[int] | None, size: int, pax: dict, long_name: str | None,
            long_link: str | None) -> Member:
    """A member from its ustar fields (see USTAR; `numbers`: mode, uid, gid, size, mtime, checksum
    already read when they are plain octal), overridden by pax records and GNU long names; every
    number checked against what a real file can have."""
    name, mode, uid, gid, _, mtime, _, kind, link, magic, version, _, _, _, _, prefix = fields
    if "path" in pax:
        name = pax["path"]
    elif long_name is not None:
        name = long_name
    else:
        name = _text(name)
        if magic + version == b"ustar\x0000" and prefix[:1] != b"\0":  # POSIX ustar splits long names
            name = _text(prefix) + "/" + name
    if kind == b"S" or (pax and any(key.startswith("GNU.sparse") for key in pax)):
        raise RestoreError(f"{name!r}: archive has sparse-format entries, which this restore does not support")
    if kind == b"\0" and name.endswith("/"):
        kind = b"5"  # pre-POSIX tars mark directories by the trailing slash only
    if numbers is not None:
        mode, uid, gid, _, mtime, _ = numbers
    if pax:
        if "size" in pax:
            size = _checked(_pax_int(pax, "size", name), "size", name, 0, MAX_SIZE)
        if "uid" in pax:
            uid = _pax_int(pax, "uid", name)
        if "gid" in pax:
            gid = _pax_int(pax, "gid", name)
    # A ustar field overridden by pax is never read (numbers is None: `uid` is still its raw bytes).
    uid = _checked(uid if type(uid) is int else _number(uid, "uid", name), "uid", name, 0, MAX_ID)
    gid = _checked(gid if type(gid) is int else _number(gid, "gid", name), "gid", name, 0, MAX_ID)
    whole_seconds = "mtime" not in pax
    if whole_seconds:
        mtime_ns = (mtime if type(mtime) is int else _number(mtime, "mtime", name)) * 10**9
    else:
        mtime_ns = _pax_time_ns(pax["mtime"], name)
    _checked(mtime_ns, "mtime (ns)", name, -MTIME_NS_LIMIT + 1, MTIME_NS_LIMIT - 1)
    mode = _checked(mode if type(mode) is int else _number(mode, "mode", name), "mode", name, 0, MAX_MODE)
    if "linkpath" in pax:
        link = pax["linkpath"]
    elif long_link is not None:
        link = long_link
    else:
        link = _text(link) if link[:1] != b"\0" else ""
    return Member(name, kind, mode, uid, gid, size, mtime_ns, link, whole_seconds)
