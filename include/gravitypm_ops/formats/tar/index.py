"""The JSON-lines file index that travels beside every tar archive."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

from gravitypm_ops.formats.tar.common import CHUNK

log = logging.getLogger(__name__)


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
