"""Check restored files' SHA-256 in a second process, while the restore writes the next ones.

Why a process (issue 16): hashing every byte is ~30 % of a restore's CPU (tar does not hash at
all), and in the restoring interpreter it shares one GIL with the tar parsing and the file writes.
A thread for it lost as much in GIL hand-overs as it saved (measured three times, BENCHMARKS.md).
A process on the second core runs it beside the parsing, as `zstd -dc | tar -x` runs beside itself.

What is checked is the file itself: the worker reads back each staged file through the very
descriptor the restore wrote it with (passed over a Unix socket), so the bytes hashed are the bytes
on disk that will be moved into place. The staging directory is private (0700): nothing else can
change them in between. `finish` returns only when every file submitted has been checked, and raises
RestoreError on the first mismatch: nothing leaves staging unverified.

Bounded: at most MAX_BATCHES batches of MAX_FDS descriptors (and their digests) are in flight; the
restore waits for the worker beyond that. The worker exits when its socket closes (the restore
ended, or died), and `close` kills it outright.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import deque

from gravitypm_ops.formats.tar import hash_worker
from gravitypm_ops.formats.tar.common import RestoreError

MAX_FDS = hash_worker.MAX_FDS
MAX_BATCH_BYTES = 4 << 20  # a batch is sent once it holds this much data: the worker starts early
MAX_BATCHES = 4  # in flight: <= 256 open descriptors held by the socket, <= 16 MiB of hashing queued


class HashChecker:
    """`submit(fd, rel, digest, size)` each staged file once written; `finish()` before committing."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._worker = subprocess.Popen(
                [sys.executable, "-I", "-S", hash_worker.__file__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
            )
        except OSError as err:  # no interpreter to run it (a missing sys.executable, no processes left)
            ours.close()
            raise RestoreError(f"cannot start the hash check, nothing was restored: {err}") from None
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        self._fds: list[int] = []
        self._digests: list[bytes] = []
        self._names: list[str] = []
        self._bytes = 0
        self._in_flight: deque[list[str]] = deque()  # names of each batch sent, in order

    def submit(self, fd: int, rel: str, digest: bytes, size: int) -> None:
        """Queue `fd` (readable, written in full; closed here) for checking against `digest`."""
        self._fds.append(fd)
        self._digests.append(digest)
        self._names.append(rel)
        self._bytes += size
        if len(self._fds) == MAX_FDS or self._bytes >= MAX_BATCH_BYTES:
            self._send()

    def _send(self) -> None:
        while len(self._in_flight) >= MAX_BATCHES:
            self._receive()
        fds, digests, names = self._fds, self._digests, self._names
        self._fds, self._digests, self._names, self._bytes = [], [], [], 0
        try:
            socket.send_fds(self._sock, [b"".join(digests)], fds)
        except OSError:
            raise self._stopped() from None
        finally:
            for fd in fds:
                os.close(fd)  # sent: the worker holds its own copy
        self._in_flight.append(names)

    def _receive(self) -> None:
        try:
            reply = self._sock.recv(4 * MAX_FDS + 1)
        except OSError:
            reply = b""
        names = self._in_flight.popleft()
        if not reply:
            raise self._stopped()
        if len(reply) > 1:
            position = int.from_bytes(reply[1:5], "big")
            rel = names[position] if position < len(names) else "?"
            raise RestoreError(f"{rel!r}: restored bytes differ from the index's sha256")

    def _stopped(self) -> RestoreError:
        return RestoreError(f"the hash check stopped: its worker exited ({self._worker.poll()}), nothing was restored")

    def finish(self) -> None:
        """Wait until every submitted file is checked; RestoreError on a mismatch."""
        if self._fds:
            self._send()
        while self._in_flight:
            self._receive()

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        self._sock.close()
        if self._worker.poll() is None:
            self._worker.kill()
        self._worker.wait()
