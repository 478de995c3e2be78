"""Property-based fuzzing of the strict tar reader and the safe extractor (issue 14 item 1).

A backup in the vault may have been written by someone hostile. Whatever the bytes, reading or
restoring them must end quickly with either the parsed members or a RestoreError: never a hang
(a negative size once looped forever, holding the restore for its 6 h timeout and the
verification pool for good), never another exception type (which callers do not expect).

Each input starts from a valid archive (built by tarfile) and breaks it the way a crafted
archive would: numeric header fields replaced (octal text, base-256, junk) with the checksum
fixed up so the field is actually parsed, pax records with wrong lengths, truncation, random
bytes after a valid header. Examples are bounded and each one runs under an alarm.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gravitypm_ops.formats.tar.common import RestoreError
from gravitypm_ops.formats.tar.extract import extract_archive
from gravitypm_ops.formats.tar.read import TarReader
from tests.time_limit import time_limit

FUZZ = settings(max_examples=300, deadline=timedelta(milliseconds=800), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_EXTRACT = settings(FUZZ, max_examples=80)
ALARM_SECONDS = 3  # far above any honest example (~1 ms): only a loop reaches it

# ustar numeric fields: (offset, width)
FIELDS = {"mode": (100, 8), "uid": (108, 8), "gid": (116, 8), "size": (124, 12), "mtime": (136, 12)}


def read_members(data: bytes) -> list:
    """What the restore's reader makes of `data`: every member, each one's data read through."""
    members = []
    tar = TarReader(io.BytesIO(data))
    while (member := tar.next()) is not None:
        members.append(member)
        tar.skip(member.size if member.type not in (b"1", b"2", b"3", b"4", b"5", b"6") else 0)
        assert len(members) <= len(data) // 512  # each member costs at least one block
    return members


def reads_or_refuses(data: bytes) -> None:
    with time_limit(ALARM_SECONDS, "the tar reader did not finish: it loops"):
        try:
            members = read_members(data)
        except RestoreError:
            return
    for member in members:  # what a parse lets through is a possible file
        assert 0 <= member.size and 0 <= member.uid and 0 <= member.gid and 0 <= member.mode
        assert abs(member.mtime_ns) < 1 << 63


def extracts_or_refuses(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as top, time_limit(ALARM_SECONDS, "the tar reader did not finish: it loops"):
        try:
            extract_archive(io.BytesIO(data), f"{top}/target", strict=True)
        except RestoreError:
            pass


def base_archive(files: list[tuple[str, bytes]], pax: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i, (name, data) in enumerate(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            if pax and i == 0:
                info.pax_headers = dict(pax)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fix_checksum(data: bytearray, header: int) -> None:
    block = data[header : header + 512]
    if len(block) == 512:
        block[148:156] = b" " * 8
        data[header + 148 : header + 156] = b"%06o\0 " % sum(block)


def header_offsets(data: bytes) -> list[int]:
    """Where tarfile put its header blocks (pax headers included)."""
    offsets, pos = [], 0
    while pos + 512 <= len(data) and data[pos : pos + 512] != bytes(512):
        offsets.append(pos)
        size = int(data[pos + 124 : pos + 136].split(b"\0")[0] or b"0", 8)
        pos += 512 + size + -size % 512
    return offsets


names = st.text(st.characters(codec="utf-8", exclude_characters="\0/"), min_size=1, max_size=20)
contents = st.binary(max_size=1500)
files = st.lists(st.tuples(names, contents), min_size=1, max_size=3)

numeric_values = st.one_of(
    st.integers(-(1 << 70), 1 << 70).map(lambda n: b"%o" % n if n >= 0 else b"-%o" % -n),  # octal text
    st.integers(-(1 << 90), 1 << 90).map(  # GNU base-256, any sign
        lambda n: (n.to_bytes(12, "big", signed=True) if -(1 << 94) < n < 1 << 94 else b"\xff" * 12)),
    st.sampled_from([b"\xff" * 12, b"\x80" + b"\xff" * 11, b"\xc0" + bytes(11), b"-1", b"0x10", b"1_0", b" 7 ",
                     b"8", b"\0", b""]),
    st.binary(min_size=1, max_size=12),
)


@FUZZ
@given(files, st.sampled_from(sorted(FIELDS)), numeric_values, st.booleans(), st.integers(0, 5))
def test_malformed_numeric_fields(members, field, value, fix, which):
    data = bytearray(base_archive(members))
    headers = header_offsets(bytes(data))
    header = headers[which % len(headers)]
    offset, width = FIELDS[field]
    data[header + offset : header + offset + width] = value[:width].ljust(width, b"\0")
    if fix:  # else the checksum refuses it before the field is even read
        fix_checksum(data, header)
    reads_or_refuses(bytes(data))


pax_keys = st.sampled_from(["size", "uid", "gid", "mtime", "path", "linkpath", "hdrcharset", "comment", ""])
pax_values = st.one_of(
    st.integers(-(1 << 70), 1 << 70).map(str),
    st.sampled_from(["-1", "1e3", " 5", "+5", "1_0", "١٢", "0x10", "1.5", "-1.5", "99999999999999999999.9", "",
                     "a\0b", "../x", "/etc/passwd"]),
    st.text(max_size=30),
)


@st.composite
def pax_payloads(draw) -> bytes:
    """pax records, each length off by a drawn amount (0 = right), sometimes junk between."""
    out = b""
    for _ in range(draw(st.integers(1, 4))):
        body = b" " + draw(pax_keys).encode() + b"=" + draw(pax_values).encode("utf-8", "surrogateescape") + b"\n"
        length = len(body) + len(str(len(body) + 2))
        length += draw(st.sampled_from([0, 0, 0, -1, 1, -len(body), 10**6, -(10**6)]) | st.integers(-600, 600))
        out += str(length).encode() + body
        if draw(st.integers(0, 9)) == 0:
            out += draw(st.binary(max_size=8))
    return out


def with_pax_payload(members, payload: bytes) -> bytes:
    """An honest archive whose first pax header's records are replaced by `payload` (size and
    checksum fixed, so the reader really parses it)."""
    data = bytearray(base_archive(members, pax={"comment": "x"}))
    header = header_offsets(bytes(data))[0]
    assert data[header + 156 : header + 157] == b"x"
    old_size = int(data[header + 124 : header + 136].split(b"\0")[0], 8)
    rest = data[header + 512 + old_size + -old_size % 512 :]
    block = data[header : header + 512]
    block[124:136] = b"%011o\0" % len(payload)
    new = bytearray(data[:header] + block + payload + bytes(-len(payload) % 512) + rest)
    fix_checksum(new, header)
    return bytes(new)


@FUZZ
@given(files, pax_payloads())
def test_pax_records_with_bad_lengths(members, payload):
    reads_or_refuses(with_pax_payload(members, payload))


@FUZZ
@given(files, st.data())
def test_truncated_archives(members, data):
    archive = base_archive(members)
    cut = data.draw(st.integers(0, len(archive) - 1))
    reads_or_refuses(archive[:cut])


@FUZZ
@given(files, st.binary(max_size=3000), st.booleans())
def test_random_bytes_after_a_valid_header(members, junk, aligned):
    archive = base_archive(members)
    first = next(o for o in header_offsets(archive) if archive[o + 156 : o + 157] != b"x")  # not a pax header
    keep = first + 512 if aligned else first + 512 + len(junk) % 512
    reads_or_refuses(archive[:keep] + junk)


@FUZZ
@given(st.binary(min_size=0, max_size=4096))
def test_random_bytes(junk):
    reads_or_refuses(junk)


@FUZZ_EXTRACT
@given(files, st.sampled_from(sorted(FIELDS)), numeric_values, st.integers(0, 5))
def test_the_extractor_too_ends_with_a_report_or_restore_error(members, field, value, which):
    data = bytearray(base_archive(members))
    headers = header_offsets(bytes(data))
    header = headers[which % len(headers)]
    offset, width = FIELDS[field]
    data[header + offset : header + offset + width] = value[:width].ljust(width, b"\0")
    fix_checksum(data, header)
    extracts_or_refuses(bytes(data))


@FUZZ_EXTRACT
@given(files, pax_payloads())
def test_the_extractor_with_hostile_pax_records(members, payload):
    extracts_or_refuses(with_pax_payload(members, payload))
