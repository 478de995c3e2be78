"""zstd / gzip / none around the tar stream: streaming writers and readers that refuse trailing garbage."""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import zstandard

from gravitypm_ops.formats.streaming import BackgroundCompressor, BackgroundGzip, prefetch
from gravitypm_ops.formats.tar.common import CHUNK, STREAM_CHUNK, RestoreError

log = logging.getLogger(__name__)
# Decompressed bytes are handed from the decompression thread to the reader in chunks this big:
# each hand-over is a GIL round trip between two busy threads, so fewer, larger ones (measured:
# 1 MiB chunks cost the reader ~0.3 ms of lock hand-over each). At most OUT_DEPTH + 2 are held
# (~12 MiB, flat in the archive size).
OUT_CHUNK, OUT_DEPTH = STREAM_CHUNK, 4


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
    while data := reader.read(OUT_CHUNK):
        yield data
    check.finish()


def _gzip_chunks(source) -> Iterator[bytes]:
    first = source.read(CHUNK)
    if not first:  # GzipFile reads an empty stream as empty data; it is a stream cut at 0 bytes
        raise RestoreError("gzip stream is empty (truncated)")
    reader = gzip.GzipFile(fileobj=_ChunkReader(_chain(first, source)), mode="rb")
    while data := reader.read(OUT_CHUNK):  # raises EOFError on a cut-off stream
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
    return _ChunkReader(prefetch(chunks, batch=1, depth=OUT_DEPTH))
