"""The restore's SHA-256 checker, run as its own process by `hash_check.HashChecker`.

Standalone on purpose (standard library only, run with ``python -I -S``): it starts in ~15 ms and
shares nothing with the restoring interpreter but one socket.

Protocol (a SOCK_SEQPACKET socket: one message is one batch):
- in: up to MAX_FDS open files of the staging directory (SCM_RIGHTS) and, per file, its expected
  SHA-256 (32 bytes, same order); the socket closing means "no more" (the restore ended or died);
- out, per batch, in order: one byte 0, then the positions in the batch whose bytes on disk do
  not hash to what was expected (4 bytes each, big-endian); nothing more when all match (so an
  empty read means the worker is gone).
"""

import hashlib
import os
import socket
import struct
import sys

MAX_FDS = 64  # a batch; SCM_RIGHTS allows 253
READ = 1 << 20


def _sha256(fd: int, buffer: bytearray, view: memoryview) -> bytes:
    sha, offset = hashlib.sha256(), 0
    while n := os.preadv(fd, [buffer], offset):
        sha.update(view[:n])
        offset += n
    return sha.digest()


def main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    buffer = bytearray(READ)
    view = memoryview(buffer)
    while True:
        payload, fds, _, _ = socket.recv_fds(sock, 32 * MAX_FDS, MAX_FDS)
        if not payload and not fds:
            return
        try:
            if len(payload) != 32 * len(fds):
                raise SystemExit("hash_worker: a batch's digests do not match its files")
            bad = b"\0" + b"".join(struct.pack(">I", i) for i, file in enumerate(fds)
                           if _sha256(file, buffer, view) != payload[32 * i : 32 * i + 32])
        finally:
            for file in fds:
                os.close(file)
        sock.send(bad)


if __name__ == "__main__":
    main(int(sys.argv[1]))
