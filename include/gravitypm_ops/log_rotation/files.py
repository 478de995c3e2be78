"""The files of a rotation: rotated names, create / copytruncate, gzip, hashing, waiting for writers to go quiet."""

from __future__ import annotations

import fnmatch
import grp
import hashlib
import logging
import os
import pwd
import re
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)
TMP_SUFFIX = ".gravitypm-tmp"
CHUNK = 1 << 20


class RotationError(RuntimeError):
    """Rotation cannot proceed as configured (unknown user, missing logs, a busy lock, …)."""


@dataclass(frozen=True)
class CreateSpec:
    """`create` resolved against this host: ids looked up once, before any file is touched."""

    mode: int | None
    uid: int | None
    gid: int | None
    apply_owner: bool
    note: str = ""

    @classmethod
    def resolve(cls, create: Mapping | bool) -> CreateSpec | None:
        if create is False:
            return None
        # "resolved first by trying the textual representation and ... afterwards by the numeric value"
        uid = lookup_id(create["owner"], pwd.getpwnam, pwd.getpwuid, "user") if create["owner"] is not None else None
        gid = lookup_id(create["group"], grp.getgrnam, grp.getgrgid, "group") if create["group"] is not None else None
        mode = int(create["mode"], 8) if create["mode"] else None
        if uid is None and gid is None:
            return cls(mode, None, None, False)
        euid = os.geteuid()
        allowed = euid == 0 or (uid in (None, euid) and (gid is None or gid == os.getegid() or gid in os.getgroups()))
        note = "" if allowed else (
            f"owner/group {create['owner']}:{create['group']} not applied: only root may give files away "
            f"(running as uid {euid})"
        )
        return cls(mode, uid, gid, allowed, note)


def lookup_id(name, by_name, by_id, what: str) -> int:
    try:
        return (by_name(name)[2]) if isinstance(name, str) else by_id(name)[2]
    except KeyError:
        pass
    if isinstance(name, str) and name.isdigit():
        try:
            return by_id(int(name))[2]
        except KeyError:
            pass
    raise RotationError(
        f"log_rotation.create: {what} {name!r} does not exist on this host; nothing was rotated "
        f"(create it, or set log_rotation.create to another {what})"
    )


@dataclass(frozen=True)
class RotatedFile:
    """One old version of a log, final (compressed, writer gone) and ready to ship."""

    log: str  # "app.log"
    path: str
    number: int
    size: int
    sha256: str
    uncompressed_size: int | None
    compressed: bool
    mtime: float

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def numbered(logs_dir: str, log_name: str) -> dict[int, str]:
    """{N: path} of app.log.N and app.log.N.gz."""
    rx = re.compile(re.escape(log_name) + r"\.(\d+)(\.gz)?")
    found = {}
    for entry in os.scandir(logs_dir):
        m = rx.fullmatch(entry.name)
        if m and entry.is_file(follow_symlinks=False):
            found[int(m.group(1))] = entry.path
    return found


ROTATED_NAME = re.compile(r".*\.\d+(\.gz)?")


def matching_logs(logs_dir: str, pattern: str) -> list[str]:
    names = []
    for entry in os.scandir(logs_dir):
        if (
            fnmatch.fnmatchcase(entry.name, pattern)
            and not ROTATED_NAME.fullmatch(entry.name)  # "*" would otherwise rotate rotated files again
            and not entry.name.startswith(".gravitypm-")
            and not entry.name.endswith(TMP_SUFFIX)  # an interrupted compression's leftover, removed at prune
            and entry.is_file(follow_symlinks=False)
        ):
            names.append(entry.name)
    return sorted(names)


def copy_owner_mode(src_stat: os.stat_result, path: str) -> None:
    os.chmod(path, src_stat.st_mode & 0o7777)
    if os.geteuid() == 0:
        os.chown(path, src_stat.st_uid, src_stat.st_gid)


def create_new(path: str, old: os.stat_result, spec: CreateSpec) -> str:
    """`create`: the new, empty log; returns a note when owner/group could not be applied."""
    mode = spec.mode if spec.mode is not None else old.st_mode & 0o7777
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, mode)  # exact, whatever the umask
        uid = spec.uid if spec.uid is not None else old.st_uid
        gid = spec.gid if spec.gid is not None else old.st_gid
        if spec.apply_owner:
            os.fchown(fd, uid, gid)
            return ""
        return spec.note
    finally:
        os.close(fd)


def copytruncate(path: str, target: str) -> None:
    """Copy `path` to `target`, then truncate `path` in place (the writer keeps its descriptor)."""
    st = os.stat(path)
    with open(path, "r+b") as src, open(target + TMP_SUFFIX, "wb") as dst:
        while data := src.read(CHUNK):
            dst.write(data)
        # Whatever the writer appended meanwhile, then truncate at once: the man page's "very
        # small time slice" between the last read and the truncate is all that remains.
        while data := src.read(CHUNK):
            dst.write(data)
        dst.flush()
        os.fsync(dst.fileno())
        os.ftruncate(src.fileno(), 0)
    copy_owner_mode(st, target + TMP_SUFFIX)
    os.utime(target + TMP_SUFFIX, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(target + TMP_SUFFIX, target)


def compress_file(path: str, level: int = 6) -> tuple[str, str, int, int]:
    """gzip `path` into `path`.gz like `gzip -6` (mode, owner and times kept), then remove `path`.

    Returns (gz path, sha256 of the .gz, .gz size, uncompressed size). Memory: one chunk.
    """
    target = path + ".gz"
    st = os.stat(path)
    sha, size, raw = hashlib.sha256(), 0, 0
    deflate = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: a gzip member, as gzip(1) writes
    with open(path, "rb") as src, open(target + TMP_SUFFIX, "wb") as dst:
        while data := src.read(CHUNK):
            raw += len(data)
            out = deflate.compress(data)
            if out:
                sha.update(out)
                size += len(out)
                dst.write(out)
        out = deflate.flush()
        sha.update(out)
        size += len(out)
        dst.write(out)
        dst.flush()
        os.fsync(dst.fileno())
    copy_owner_mode(st, target + TMP_SUFFIX)
    os.utime(target + TMP_SUFFIX, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(target + TMP_SUFFIX, target)
    os.unlink(path)
    return target, sha.hexdigest(), size, raw


def file_sha256(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(CHUNK):
            sha.update(data)
    return sha.hexdigest()


def wait_until_quiet(paths: list[str], settle: float, max_wait: float) -> list[str]:
    """Wait until none of `paths` grows for `settle` seconds; returns those still growing at `max_wait`."""
    if not paths:
        return []
    deadline = time.monotonic() + max_wait
    sizes = {p: os.stat(p).st_size for p in paths if os.path.exists(p)}
    while True:
        time.sleep(settle)
        now = {p: os.stat(p).st_size for p in sizes if os.path.exists(p)}
        growing = [p for p in now if now[p] != sizes[p]]
        if not growing:
            return []
        if time.monotonic() >= deadline:
            return growing
        sizes = now
