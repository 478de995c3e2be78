"""CRC-64/XZ (Go's crc64.ECMA), the checksum of every mongodump archive block.

Computed by `fastcrc` (Rust, tens of GB/s): a pure-Python CRC ran at ~30 MB/s and held the
GIL, which made it the DB backup's bottleneck. Go's ``crc64.Update(crc, ECMA, p)`` is
``fastcrc.crc64.xz(p, crc)``: both invert the running sum in and out, so sums chain.
"""

from __future__ import annotations

from fastcrc import crc64 as _fastcrc64

_xz = _fastcrc64.xz


class Crc64:
    """Incremental CRC-64, bit-identical to Go's ``crc64.New(crc64.MakeTable(crc64.ECMA))``."""

    __slots__ = ("_sum",)

    def __init__(self, initial: int = 0) -> None:
        self._sum = initial

    def update(self, data: bytes | bytearray | memoryview) -> Crc64:
        self._sum = _xz(data, self._sum)
        return self

    def digest(self) -> int:
        """The unsigned 64-bit sum (Go's ``Sum64()``)."""
        return self._sum

    def signed(self) -> int:
        """The sum as mongodump stores it in the EOF header: ``int64(Sum64())``."""
        return _to_int64(self._sum)


def crc64_ecma(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Go's ``crc64.Update(crc, crc64.MakeTable(crc64.ECMA), data)`` (``crc=0``: Checksum)."""
    return _xz(data, crc)


def _to_int64(u: int) -> int:
    return u - (1 << 64) if u >= (1 << 63) else u
